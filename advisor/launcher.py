"""accelerate's launcher config (what `accelerate config` writes and `accelerate launch --config_file` reads): how
many processes, which engine (DDP, FSDP, DeepSpeed), its offload and sharding, the mixed precision. LLaMA-Factory
and axolotl runs on several GPUs take these from such a file, not from the training YAML, so `check` and
`estimate` read one beside the training config (`--accelerate-config FILE`, loader.read_launcher) as rankwise
settings. No torch, no I/O."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .deepspeed_file import OFFLOAD_DEVICES, Zero12

MARKS = {"compute_environment", "distributed_type"}  # keys every accelerate config has, a training config never
STRATEGY = {"FSDP": "fsdp", "DEEPSPEED": "deepspeed", "MULTI_GPU": "ddp"}
FSDP_SHARDING = {"FULL_SHARD": "full", "1": "full", "SHARD_GRAD_OP": "shard_grad_op", "2": "shard_grad_op",
                 "NO_SHARD": "no_shard", "3": "no_shard", "HYBRID_SHARD": "hybrid", "4": "hybrid"}
PRECISION = {"bf16": "bf16", "fp16": "fp16"}  # mixed_precision "no" leaves the training config's own


@dataclass(frozen=True)
class Launch:
    """An accelerate config's settings in rankwise's keys, and its process count (the GPUs of the machine)."""

    values: dict[str, Any] = field(default_factory=dict)  # dotted rankwise key → value
    gpus: int | None = None
    notes: tuple[str, ...] = ()
    state_dict: str | None = None  # FSDP checkpoints: "full" | "sharded" (a foreign full fine-tune's host RAM)
    zero: Zero12 | None = None  # DeepSpeed ZeRO-1/2 (deepspeed_file.Zero12), Reading.zero

    def overrides(self) -> list[str]:
        """As `--set KEY=VALUE` strings, the form `check` applies."""
        return [f"{k}={v}" for k, v in self.values.items()]

    def flags(self) -> list[str]:
        """As the flags a user would type."""
        return ([f"--gpus {self.gpus}"] if self.gpus and self.gpus > 1 else []) + [
            f"--set {k}={v}" for k, v in self.values.items()]


def zero_note(stage, where: str = "") -> str:
    """How a DeepSpeed ZeRO-0/1/2 launch is judged (`where`: the file that says the stage, if one does)."""
    return (f"DeepSpeed ZeRO-{stage}{f' ({where})' if where else ''}: judged as DDP for a LoRA run (a full "
            "fine-tune's optimizer states, and under ZeRO-2 its gradients, are counted sharded)")


def settings(data: dict) -> Launch:
    """An accelerate config's launch settings (accelerate's config keys: distributed_type, num_processes,
    fsdp_config.fsdp_offload_params / fsdp_sharding_strategy / fsdp_reshard_after_forward, deepspeed_config.
    zero_stage / offload_param_device / offload_optimizer_device, mixed_precision)."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    state_dict = zero = None
    strategy = STRATEGY.get(str(data.get("distributed_type", "")).upper())
    fsdp = data.get("fsdp_config") if isinstance(data.get("fsdp_config"), dict) else {}
    ds = data.get("deepspeed_config") if isinstance(data.get("deepspeed_config"), dict) else {}
    if strategy == "deepspeed":
        stage = ds.get("zero_stage")
        if stage in (0, 1, 2, "0", "1", "2"):
            strategy = "ddp"
            notes.append(zero_note(stage))
            zero = Zero12(int(stage)) if str(stage) in ("1", "2") else None
        elif ds.get("deepspeed_config_file"):  # read by loader.read_launcher: its stage, offload and buckets
            values["distributed.deepspeed_config"] = str(ds["deepspeed_config_file"])
    if strategy:
        values["distributed.strategy"] = strategy
    if strategy == "fsdp":
        if fsdp.get("fsdp_offload_params") is True:
            values["distributed.offload"] = "params_and_optimizer"
        sharding = FSDP_SHARDING.get(str(fsdp.get("fsdp_sharding_strategy", "")).upper())
        if fsdp.get("fsdp_reshard_after_forward") is False:  # FSDP2's SHARD_GRAD_OP
            sharding = "shard_grad_op"
        if sharding and sharding != "full":
            values["distributed.fsdp_sharding"] = sharding
        kind = str(fsdp.get("fsdp_state_dict_type", "")).upper()
        state_dict = {"FULL_STATE_DICT": "full", "SHARDED_STATE_DICT": "sharded"}.get(kind)
        if state_dict is None and str(fsdp.get("fsdp_version", "")) == "2":
            state_dict = "sharded"  # accelerate's default under FSDP2
    if strategy == "deepspeed":
        param = str(ds.get("offload_param_device", "none")).lower() in OFFLOAD_DEVICES
        optim = str(ds.get("offload_optimizer_device", "none")).lower() in OFFLOAD_DEVICES
        if param:
            values["distributed.offload"] = "params_and_optimizer" if optim else "params"
        elif optim:
            notes.append("ZeRO-3 offloads the optimizer states only: estimated without offload (an over-estimate)")
    precision = PRECISION.get(str(data.get("mixed_precision", "")).lower())
    if precision:
        values["train.precision"] = precision
    n = data.get("num_processes")
    gpus = n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else None
    machines = data.get("num_machines")
    if isinstance(machines, int) and not isinstance(machines, bool) and machines > 1 and gpus:
        notes.append(f"num_processes {gpus} over {machines} machines: {gpus // machines} GPUs on each, the "
                     "estimate is per GPU")
    return Launch(values, gpus, tuple(notes), state_dict if strategy == "fsdp" else None, zero)
