"""What trying the trained run costs: memory and time of `rankwise compare` on the run's model,
planned with the training plan (estimate/advise JSON `compare`, estimate's `compare after training`
line), so a 7B user knows before training whether the comparison fits and how long it takes.

compare (trainer/compare.py) loads the base as the run trained it — 4-bit for a quantized method
with the other weights in the compute dtype (it does not prepare for k-bit training: no fp32
upcast), 16-bit on a GPU, fp32 on the CPU — and the adapter (peft keeps adapter weights in fp32).
Then for each of N rows and each model (base, adapter): one forward pass over the row for the
response loss, and a generation of `new_tokens` tokens from the row's prompt (a prefill pass, then
one decoding step per token, each reading every weight once).

Memory = weights + adapter + the larger of the loss pass's transient (logits 16-bit + the fp32
copy + the fp32 log-softmax over row × vocab, the same vocab-sized buffers as training's forward)
and the generation's KV cache (prompt + new tokens), + memory.py's allocator share of that
per-pass memory and its CUDA context. No gradients, optimizer states or saved activations.
Time = time.py's setup (process start + weight load) + rows × models × (loss pass + prefill +
new_tokens × decoding step), each pass priced as time.py prices training work: FLOPs over the
device's sustained throughput, weights read over its bandwidth, a fixed cost per layer per pass.
The chat's first answer costs the same load plus one generation.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .hardware import Hardware
from .memory import CUDA_CONTEXT_BYTES, FRAGMENTATION, _weights, adapter_bytes
from .speeds import LOAD_GBS, SETUP_S, Device
from .time import duration, linear_work
from .units import gib

if TYPE_CHECKING:
    from .fit import Fit
    from .model import ModelSpec
    from .time import DataShape

ROWS = 20  # rankwise compare --n: held-out rows compared
NEW_TOKENS = 64  # rankwise compare --max-new-tokens: each model's answer per row
MODELS = 2  # base and adapter (--against adds a third)


@dataclass(frozen=True)
class ComparePlan:
    peak_bytes: int
    components: dict[str, int]
    seconds: float
    parts_s: dict[str, float]  # load, loss passes, generation
    rows: int
    new_tokens: int
    row_tokens: int
    device: str

    def to_dict(self) -> dict:
        return {"peak_gib": round(self.peak_bytes / 1024 ** 3, 3), "peak_bytes": self.peak_bytes,
                "components": {k: round(v / 1024 ** 3, 4) for k, v in self.components.items()},
                "seconds": round(self.seconds, 1), "parts_s": {k: round(v, 2) for k, v in self.parts_s.items()},
                "rows": self.rows, "new_tokens": self.new_tokens, "row_tokens": self.row_tokens,
                "device": self.device}

    def line(self) -> str:
        return (f"compare after training ({self.rows} held-out rows × base and adapter, {self.new_tokens} new tokens "
                f"each): peak {gib(self.peak_bytes):.2f} GiB, ~{duration(self.seconds)}")


def pass_seconds(spec: "ModelSpec", fit: "Fit", device: Device, tokens: int, context: int, adapter: bool,
                 weight_bytes: float) -> float:
    """One forward pass (no backward) of `tokens` new tokens after `context` cached ones, reading
    `weight_bytes` of weights."""
    body, head, lora = linear_work(spec, fit)
    st = device.stack
    quant = fit.estimate.plan.descriptor.quant
    peak = device.tflops * 1e12 * st.efficiency * (st.kbit_factor if quant and tokens > 1 else 1.0)
    bw = device.bandwidth_gbs * 1e9 * st.bandwidth_share
    flops = 2 * tokens * (body + head + (lora if adapter else 0))
    # attention: QKᵀ and A·V over the causal span (the cache + half the new tokens among themselves)
    flops += tokens * spec.num_layers * 4 * (context + tokens / 2) * spec.num_heads * spec.head_dim
    kv_read = 2 * spec.num_layers * spec.num_kv_heads * spec.head_dim * (context + tokens) * 2
    return flops / peak + (weight_bytes + kv_read) / bw + spec.num_layers * st.layer_overhead_s


def weights_read(spec: "ModelSpec", fit: "Fit", dtype_bytes: int, tokens: int) -> float:
    """Bytes of weights one pass reads. A 4-bit base over many tokens: time.py's dequantize (4-bit
    read, 16-bit written, read again by the GEMM); over one token (a decoding step) bitsandbytes'
    gemv_4bit reads the packed weights only (autograd/_functions.py matmul_4bit: one input row, no
    grad). The output head is never quantized."""
    body, head, _ = linear_work(spec, fit)
    quant = fit.estimate.plan.descriptor.quant
    if quant is None:
        per = dtype_bytes
    else:
        per = quant.bits / 8 if tokens == 1 else quant.bits / 8 + 2 + 2
    return body * per + head * dtype_bytes


def plan_compare(spec: "ModelSpec", fit: "Fit", hw: Hardware | None, data: "DataShape | None" = None,
                 rows: int = ROWS, new_tokens: int = NEW_TOKENS, models: int = MODELS) -> ComparePlan:
    """Memory and time of `rankwise compare --n rows --max-new-tokens new_tokens` on the run `fit` plans
    (`models` 3 with --against). Rows are `data`'s mean row, else a full max_seq_len; a prompt is
    counted as long as its whole row (an upper bound)."""
    plan = fit.estimate.plan
    device = Device.of(hw)
    a = 2 if device.kind == "gpu" else 4  # chat.load_base: bf16/fp16 on a GPU, fp32 on the CPU
    load = replace(plan, dtype_bytes=a, kbit_upcast=False, gpus=1, strategy="ddp")  # one process, no upcast
    comps = dict(_weights(spec, load))
    comps["lora_params"] = adapter_bytes(load) * fit.estimate.trainable_params * (models - 1)
    L = plan.seq_len if data is None else max(1, min(plan.seq_len, int(data.tokens_per_row)))
    logits = L * spec.vocab_size * (a + 4 + 4)  # the model's logits, .float(), log_softmax (compare._nll)
    kv = 2 * spec.num_layers * spec.num_kv_heads * spec.head_dim * (L + new_tokens) * a
    comps["logits_loss" if logits >= kv else "kv_cache"] = max(logits, kv)
    comps["allocator_overhead"] = int(FRAGMENTATION * max(logits, kv))
    comps["cuda_context"] = CUDA_CONTEXT_BYTES if device.kind == "gpu" else 0

    full, one = weights_read(spec, fit, a, L), weights_read(spec, fit, a, 1)
    per_model = {}
    for adapter in (False, True):
        loss = pass_seconds(spec, fit, device, L, 0, adapter, full)
        prefill = pass_seconds(spec, fit, device, L, 0, adapter, full)
        step = pass_seconds(spec, fit, device, 1, L + new_tokens // 2, adapter, one)
        per_model[adapter] = (loss, prefill + new_tokens * step)
    adapters = models - 1
    weights_gb = sum(comps.get(k, 0) for k in ("base_weights", "quant_constants", "unquantized_weights")) / 1e9
    parts = {"load": SETUP_S[device.kind] + weights_gb / LOAD_GBS,
             "loss": rows * (per_model[False][0] + adapters * per_model[True][0]),
             "generation": rows * (per_model[False][1] + adapters * per_model[True][1])}
    return ComparePlan(peak_bytes=sum(comps.values()), components=comps, seconds=sum(parts.values()),
                       parts_s=parts, rows=rows, new_tokens=new_tokens, row_tokens=L, device=device.name)
