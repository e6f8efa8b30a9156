"""The machine around the GPU: host RAM to load, save and merge, and disk for what a run writes.

Counted from the model's size and the resolved plan (a `Fit`), against `Host` (RAM
available, free disk where runs are written) when the machine was probed — a declared plan
(`--gpu`, `--gpu-mem`) is for another machine, so its figures are shown, not judged.
`advisor/redflags.py` turns a shortfall into
`host-ram-short` / `disk-short`. No torch, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .hardware import Hardware
from .units import GIB

if TYPE_CHECKING:
    from .config import RunConfig
    from .fit import Fit
    from .model import ModelSpec

# A training process's own RSS before any weights: torch + the CUDA runtime and its kernels
# + transformers/peft imported (~2.5-3.5 GiB on CUDA 12 wheels, read from `ps` after
# `import torch; torch.zeros(1, device="cuda")`; ~1 GiB without CUDA). Judgments, one each.
PROCESS_GPU = 3 * GIB
PROCESS_CPU = 1 * GIB
# save_pretrained writes safetensors shards of at most 5 GB (transformers' max_shard_size
# default "5GB"); loading with low memory materializes about one shard at a time on the host
# (safetensors memory-maps the file; accelerate moves each tensor to its device as it loads).
SHARD_BYTES = 5 * 10 ** 9
# A Trainer checkpoint beside the adapter and optimizer: scheduler, RNG states, trainer_state.json,
# training_args.bin, the tokenizer files (a few MiB; 40 MiB covers a 200k-vocab tokenizer.json).
CHECKPOINT_EXTRA = 40 * 2 ** 20
ADAPTER_BYTES = 4  # peft keeps adapter weights in fp32 (autocast_adapter_dtype) and saves them so
OPTIMIZER_STATE_BYTES = {"adamw_torch": 8, "adamw_8bit": 2, "paged_adamw_8bit": 2}  # two moments per weight


@dataclass(frozen=True)
class HostPlan:
    load_bytes: int  # host RAM peak while loading, as rankwise loads (low-memory, shard by shard)
    load_full_bytes: int  # ... if the whole state dict were read into RAM first (no low-memory loading)
    train_bytes: int  # host RAM while training (on the CPU: the model and activations live there)
    save_bytes: int  # host RAM peak while saving a checkpoint
    merge_bytes: int  # `rankwise merge`: the base in 16-bit (fp32 without a GPU) on the CPU, plus the adapter
    checkpoint_bytes: int  # one checkpoint on disk
    checkpoints: int  # on disk at once (save_total_limit, + the one written before the oldest goes)
    adapter_bytes: int
    merged_bytes: int  # a merged 16-bit model
    ram_available: int | None
    disk_free: int | None
    disk_path: str | None
    notes: tuple[str, ...] = ()

    @property
    def ram_bytes(self) -> int:
        """Host RAM the training run needs at its peak (load, train, save)."""
        return max(self.load_bytes, self.train_bytes, self.save_bytes)

    @property
    def disk_bytes(self) -> int:
        """Disk the run writes: its checkpoints and the final adapter."""
        return self.checkpoints * self.checkpoint_bytes + self.adapter_bytes

    @property
    def ram_short(self) -> bool:
        return self.ram_available is not None and self.ram_bytes > self.ram_available

    @property
    def merge_ram_short(self) -> bool:
        return self.ram_available is not None and self.merge_bytes > self.ram_available

    @property
    def disk_short(self) -> bool:
        return self.disk_free is not None and self.disk_bytes > self.disk_free

    @property
    def merged_disk_short(self) -> bool:
        return self.disk_free is not None and self.disk_bytes + self.merged_bytes > self.disk_free

    def to_dict(self) -> dict:
        g = lambda b: None if b is None else round(b / GIB, 2)  # noqa: E731
        return {"ram_gib": g(self.ram_bytes), "disk_gib": g(self.disk_bytes),
                "ram": {"load_gib": g(self.load_bytes), "load_without_low_memory_gib": g(self.load_full_bytes),
                        "train_gib": g(self.train_bytes), "save_gib": g(self.save_bytes),
                        "merge_gib": g(self.merge_bytes)},
                "disk": {"checkpoint_gib": g(self.checkpoint_bytes), "checkpoints": self.checkpoints,
                         "adapter_gib": g(self.adapter_bytes), "merged_gib": g(self.merged_bytes)},
                "ram_available_gib": g(self.ram_available), "disk_free_gib": g(self.disk_free),
                "disk_path": self.disk_path, "notes": list(self.notes)}


def plan_host(spec: "ModelSpec", cfg: "RunConfig", fit: "Fit", hw: Hardware | None) -> HostPlan:
    """Host RAM and disk for `cfg` as `fit` resolved it, against `hw.host` (None: not judged)."""
    gpu = hw is not None and hw.has_gpu
    n = spec.total_params
    b16 = 2 * n
    base = PROCESS_GPU if gpu else PROCESS_CPU
    shard = min(SHARD_BYTES, b16)
    plan = fit.estimate.plan
    notes = []
    procs = plan.gpus if gpu else 1  # one process a GPU, each with its own torch and CUDA runtime
    load = base + shard
    once = 0  # host bytes one process holds however many there are (ZeRO-3: rank 0's copy of the model)
    load_full = base + 2 * b16  # the state dict and the model it fills, both on the host
    if plan.descriptor.quantized:
        notes.append("4-bit quantization on load: each 16-bit shard passes through the host, "
                     "then is quantized on the GPU")
    elif plan.sharded and gpu and plan.strategy == "deepspeed":
        # ZeRO-3 builds the model under deepspeed.zero.Init (the worker creates TrainingArguments, and with them
        # the HfDeepSpeedConfig, first): transformers 5.24 reads every checkpoint file into one state dict on rank
        # 0 (map_location "cpu"; "meta" on the others) and copies it into the partitions (modeling_utils
        # `_load_pretrained_model`); read from source, not measured
        load, once = base, b16
        notes.append(f"ZeRO-3 load: rank 0 reads the whole 16-bit model into host RAM ({b16 / GIB:.1f} GiB), "
                     "the other ranks only its shapes")
    elif plan.sharded and gpu:
        # no device_map under FSDP: the whole 16-bit model is read into host RAM, on every rank
        # (transformers 5.24 reads the weights on every rank, cpu_ram_efficient_loading or not:
        # tests/test_host_load.py), before FSDP moves it to the GPU unit by unit
        load = base + b16
        notes.append(f"FSDP load: every rank reads the whole 16-bit model into host RAM "
                     f"({procs} x {b16 / GIB:.1f} GiB on this machine) before it is sharded")
    if procs > 1:
        load, load_full = procs * load, procs * load_full
        notes.append(f"{procs} processes on this machine, each with its own torch/CUDA runtime "
                     f"(~{PROCESS_GPU / GIB:.0f} GiB each)")
    load += once
    train = procs * base
    if not gpu:  # CPU training: weights (fp32 on the CPU), adapter, optimizer and activations in host RAM
        train = base + fit.estimate.peak_bytes - fit.estimate.components.get("cuda_context", 0)
        load = max(load, base + 4 * n)
        notes.append("no GPU: the model trains in host RAM (fp32 on the CPU)")
    if fit.estimate.host_offload_bytes:  # distributed.offload: every rank's shards wait in this machine's RAM
        train += fit.estimate.host_offload_bytes
        notes.append(f"CPU offload: {fit.estimate.host_offload_bytes / 2**30:.1f} GiB of shards in host RAM while training")
    if fit.estimate.host_activation_bytes and gpu:  # train.activation_offload: pinned, so not swappable
        train += fit.estimate.host_activation_bytes
        notes.append(f"activation offload: {fit.estimate.host_activation_bytes / 2**30:.1f} GiB of checkpointed "
                     "inputs in pinned host RAM while training")
    trainable = fit.estimate.trainable_params
    opt = OPTIMIZER_STATE_BYTES.get(plan.optimizer, 8)
    adapter = trainable * ADAPTER_BYTES
    if plan.added_tokens:  # peft saves a resized embedding and head whole (save_embedding_layers="auto"), 16-bit
        grown = spec.with_added_tokens(plan.added_tokens).params_by_family
        adapter += 2 * (grown.get("embed", 0) + grown.get("lm_head", 0))
    ckpt = adapter + trainable * opt + CHECKPOINT_EXTRA
    save = base + ckpt
    if procs > 1:
        save = (procs - 1) * base + save  # the others wait while rank 0 writes
    if plan.sharded:  # FULL_STATE_DICT: rank 0 gathers the whole model on the host to save the adapter
        save = procs * base + b16
        notes.append("FSDP/ZeRO-3 save: rank 0 gathers the full 16-bit model in host RAM (FULL_STATE_DICT)")
    # merge.py: bf16/fp16 where CUDA is available, fp32 otherwise; the merged copy is saved shard by shard
    merge = (PROCESS_GPU if gpu else PROCESS_CPU) + (2 if gpu else 4) * n + adapter + shard
    keep = cfg.train.save_total_limit + 1  # HF writes the new checkpoint before it rotates out the oldest
    # only a probed machine's host is the one the run will have: a declared plan (`--gpu A100-80GB`)
    # is for another machine, and this one's RAM and disk say nothing about it
    host = hw.host if hw is not None and hw.source == "probe" else None
    return HostPlan(load_bytes=int(load), load_full_bytes=int(load_full), train_bytes=int(train), save_bytes=int(save),
                    merge_bytes=int(merge), checkpoint_bytes=int(ckpt), checkpoints=keep, adapter_bytes=int(adapter),
                    merged_bytes=int(b16), ram_available=host.ram_available_bytes if host else None,
                    disk_free=host.disk_free_bytes if host else None, disk_path=host.disk_path if host else None,
                    notes=tuple(notes))
