"""A full fine-tune in a foreign config (axolotl with no `adapter`, LLaMA-Factory `finetuning_type: full`).

rankwise estimates LoRA and QLoRA. Judging a full fine-tune by the LoRA estimate of the same settings would
say "fits" where the run needs several times the memory, so `check` does not: it gives the part of a full
fine-tune that is plain arithmetic, a floor, and judges by it only when the floor alone is over the GPU.

The floor per GPU: every weight in the compute dtype, its gradient in the same dtype (the HF Trainer's
parameters train in the dtype they load in: axolotl and LLaMA-Factory load the model in bf16/fp16 when the
config asks for it), and the optimizer's states for every weight (torch AdamW: exp_avg and exp_avg_sq
`zeros_like` the parameter; 8-bit AdamW: one byte each plus block constants; `memory._optimizer_bytes`).
Sharded (FSDP full/hybrid, ZeRO-3) all three divide by the GPUs; FSDP SHARD_GRAD_OP keeps the gathered
weights whole through the step, so only gradients and states divide; with CPU offload the floor says
nothing, and the fit is left unchecked. Left out, so it stays a floor: activations,
fp32 master weights, communication buffers, the allocator's cache and the CUDA context.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..units import gib
from .mapping import Said

if TYPE_CHECKING:
    from ..plan import Plan
    from ..spec import ModelSpec

NOTE = "no adapter: every weight trains; judged by what its weights, gradients and optimizer states need"

# Rules whose answer is about the LoRA adapter or the LoRA estimate: not this run's.
LORA_ONLY = frozenset({
    "wont-fit", "ddp-wont-fit", "disk-short", "host-ram-short", "multi-gpu-config", "adapter-start",
    "all-modules-low-rank", "alpha-below-rank", "alpha-far-above-rank", "dropout-out-of-range",
    "high-rank-high-dropout", "lr-out-of-range", "qlora-high-lr", "rank-out-of-range", "rslora-off-high-rank",
    "unknown-target-module", "effective-batch-large",
})


@dataclass(frozen=True)
class Floor:
    key: str  # the foreign key that makes it a full fine-tune (adapter, finetuning_type)
    params: int
    weights: int  # bytes per GPU
    grads: int
    states: int
    gpus: int
    gpu_bytes: int | None
    offloaded: bool

    @property
    def bytes(self) -> int:
        return self.weights + self.grads + self.states

    @property
    def verdict(self) -> str | None:
        """wont-fit when the floor alone is over the GPU; None (not checked) otherwise."""
        if self.offloaded or self.gpu_bytes is None or self.bytes <= self.gpu_bytes:
            return None
        return "wont-fit"

    def text(self) -> str:
        per = " per GPU" if self.gpus > 1 else ""
        return (f"at least {gib(self.bytes):.1f} GiB{per} for the {self.params / 1e9:.1f}B weights, their gradients "
                f"and optimizer states ({gib(self.weights):.1f} + {gib(self.grads):.1f} + {gib(self.states):.1f} "
                "GiB), before activations")

    def unchecked_reason(self) -> str:
        if self.offloaded:
            return "a full fine-tune with CPU offload: rankwise estimates LoRA and QLoRA, not full fine-tunes"
        return (f"a full fine-tune: {self.text()}; rankwise estimates LoRA and QLoRA, not the rest of a full "
                "fine-tune")

    def finding(self, lora_peak_gib: float | None, gpus_needed: int | None = None) -> Said:
        """What `check` says about it, at the key that makes it one; `gpus_needed`: a config written for several
        GPUs and judged on one, the fewest of them (up to 8) whose floor is under the GPU."""
        lora = f" (its LoRA estimate: ~{lora_peak_gib:.1f} GiB)" if lora_peak_gib is not None else ""
        adapter = ("adapter: lora or qlora" if self.key == "adapter"
                   else f"{self.key}: lora (and quantization_bit: 4 for QLoRA)")
        fix = f"train an adapter: {adapter}{lora}, then check again"
        if gpus_needed:
            fix += f"; as written, for several GPUs: rankwise check FILE --gpus {gpus_needed} (the floor fits there)"
        why = ("every weight trains, so its gradient and optimizer states are held too; rankwise estimates LoRA "
               "and QLoRA, so the LoRA estimate of these settings is not this run's")
        patch = {self.key: "lora"}
        if self.verdict == "wont-fit":
            return Said("full-finetune", "error", self.key, f"{self.key}: a full fine-tune will not fit: "
                        f"{self.text()}, over {gib(self.gpu_bytes):.1f} GiB per GPU", why, fix, patch)
        what = "its weights and gradients sit on the CPU" if self.offloaded else self.text()
        return Said("full-finetune", "warning", self.key, f"{self.key}: a full fine-tune, fit not checked: {what}",
                    why, fix, patch)

    def to_dict(self) -> dict:
        return {"key": self.key, "params": self.params, "floor_bytes": self.bytes, "weights_bytes": self.weights,
                "grads_bytes": self.grads, "optimizer_bytes": self.states, "gpus": self.gpus,
                "offloaded": self.offloaded, "fit": self.verdict}


def floor(key: str, spec: "ModelSpec", plan: "Plan", gpu_bytes: int | None) -> Floor:
    """The floor of a full fine-tune of `spec` under `plan` (its precision, optimizer, GPUs and strategy)."""
    from ..memory import _optimizer_bytes

    n, a = spec.total_params, plan.dtype_bytes
    weights, grads, states = n * a, n * a, _optimizer_bytes(n, plan.optimizer, a)
    gpus = plan.gpus
    if plan.sharded and gpus > 1:
        if plan.strategy == "deepspeed" or plan.fsdp_sharding in ("full", "hybrid"):
            weights //= gpus
        if plan.fsdp_sharding != "no_shard" or plan.strategy == "deepspeed":
            grads //= gpus
            states //= gpus
    offloaded = plan.offload != "none"
    return Floor(key, n, weights, grads, states, gpus, gpu_bytes, offloaded)


def gpus_needed(key: str, spec: "ModelSpec", plan: "Plan", gpu_bytes: int | None, strategy: str) -> int | None:
    """The fewest GPUs (2-8) under `strategy` whose floor is under the GPU: None when none is (or no GPU)."""
    from dataclasses import replace

    if not gpu_bytes:
        return None
    return next((n for n in range(2, 9)
                 if floor(key, spec, replace(plan, gpus=n, strategy=strategy), gpu_bytes).verdict is None), None)
