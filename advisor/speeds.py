"""What the time planner (advisor/time.py) divides the work by: the device's datasheet speeds and how close
a training stack gets to them (`StackSpeed`, each with its source), the fixed costs (kernel launches, the
loops of a recurrent layer's torch fallback, setup and loading), and the scaling over several GPUs.
No torch, no I/O here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import linear_attention
from .hardware import Hardware, speed_of

if TYPE_CHECKING:
    from .model import ModelSpec


@dataclass(frozen=True)
class StackSpeed:
    """How close a training stack gets to the device's peak, with where the number comes from."""

    name: str
    efficiency: float  # sustained share of peak dense TFLOP/s for the counted FLOPs
    bandwidth_share: float  # sustained share of peak memory bandwidth
    kbit_factor: float  # throughput of a 4-bit base relative to a 16-bit one at the same FLOPs
    layer_overhead_s: float  # fixed seconds per decoder layer per pass (launches, Python)
    step_overhead_s: float  # fixed seconds per optimizer step (optimizer, logging, scheduler)
    source: str
    op_s: float = 1e-5  # seconds an eager op costs where its work is negligible: the launch and its Python


# Kernels a recurrent layer's torch fallback launches a layer, forward and backward, each (fixed, per unit): its Python
# loops run once a token (Mamba1's `mamba_selective_scan`: the state update's multiply and add, its 16-bit copy, the
# read by C, ...) or once a 64-token chunk (the delta rules' scan over chunks; KDA's UT transform also loops over a
# chunk's 64 rows, for all chunks at once: most of its fixed part). Each op takes the whole micro-batch, so these
# layers' time is launches, not FLOPs. Counted as the non-view aten ops tiny mixers dispatch (tests/test_time.py,
# TorchDispatchMode on the CPU; a GPU launches the same ops); Mamba1's fixed part (~40-80) is left out. Mamba2's
# chunked scan is vectorised (~230 ops a layer whatever the length): left to layer_overhead_s.
FALLBACK_LOOPS = {  # kind -> (tokens a unit, (fixed, per unit) forward, (fixed, per unit) backward)
    "Mamba1": (1, (0, 5), (0, 13)),
    "Gated DeltaNet": (linear_attention.CHUNK, (88, 21), (128, 43)),
    "Kimi Delta Attention": (linear_attention.CHUNK, (480, 28), (1040, 61)),
}


def fallback_loops(spec: "ModelSpec", plan, device_kind: str) -> list[tuple[str, int]]:
    """(kind, layers) of the recurrent layers that run a torch fallback's loops here: always on the CPU; on a GPU those
    whose kernel package is not installed (plan.linear_kernel, plan.mamba_kernel)."""
    out = []
    gdn, m1 = spec.linear_attention, spec.mamba1
    if gdn is not None and (device_kind == "cpu" or plan.linear_kernel != "fla"):
        out.append((gdn.name, gdn.layers))
    if m1 is not None and (device_kind == "cpu" or plan.mamba_kernel != "mamba_ssm"):
        out.append(("Mamba1", m1.layers))
    return out


def loop_ops(kind: str, seq_len: int, forwards: int, backward: bool = True) -> int:
    """Kernels one layer of `kind` launches in a micro-batch of `seq_len` tokens: `forwards` forward passes (2 under
    checkpointing) and one backward (none for an evaluation's forward)."""
    unit, (f0, f1), (b0, b1) = FALLBACK_LOOPS[kind]
    units = -(-seq_len // unit)
    return forwards * (f0 + f1 * units) + ((b0 + b1 * units) if backward else 0)


# transformers + peft under the HF Trainer on a GPU (what rankwise runs). efficiency: the
# fms-acceleration benchmark's Mistral-7B LoRA rows on one A100-80GB (refs/a100_80gb.csv at
# 0aab2c6: 3598 and 3632 train tokens/s at batch 4 and 8 × 4096, checkpointing, FA2) are 0.70
# of the A100's 312 TFLOP/s under this FLOP count, once the non-GEMM activation traffic
# (`activation_bytes`) is counted beside it at the bandwidth (0.55 when it was not: the efficiency
# then stood in for that traffic, which is a larger share of a small model's step); kbit_factor: its baseline-peft-bnb QLoRA rows
# (2749 and 2881 tokens/s) are 0.76 and 0.79 of those LoRA rows — bitsandbytes dequantizes each
# weight and then runs an unfused 16-bit GEMM. bandwidth_share 0.8: STREAM-like copies reach
# ~80-90% of HBM peak (NVIDIA's bandwidthTest); layer_overhead_s: ~40 kernels per layer per
# pass at ~10 µs launch+Python each (op_s; PyTorch eager; a judgment, small beside the FLOPs of a 7B;
# "~5-25 µs of CPU-side work per op", jiahuanglin.xyz's lesson "From PyTorch op to kernel launch").
GPU_HF = StackSpeed("hf", 0.70, 0.8, 0.78, 4e-4, 0.02,
                    "fitted to fms-acceleration refs/a100_80gb.csv (Mistral-7B LoRA/QLoRA, 1×A100-80GB)")
# The CPU (the demo): PyTorch's fp32 GEMMs sustain ~10 GFLOP/s per core on small matrices
# (an AVX2 core peaks at 32 FLOPs/cycle; small training GEMMs reach a fraction), ~10 GB/s
# per socket for weights streamed, and every op costs ~0.1 ms of dispatch, so a decoder layer
# pass ~10 ms and a Trainer step ~0.25 s. Conservative on purpose: one finished demo run
# calibrates it (advisor/calibration.py).
CPU_GFLOPS_PER_CORE = 10.0
CPU_BANDWIDTH_GBS = 10.0
CPU_HF = StackSpeed("hf-cpu", 1.0, 1.0, 0.5, 1e-2, 0.25,
                    "conservative CPU figures (10 GFLOP/s per core, 10 ms per layer pass); calibrate with a demo run",
                    op_s=1e-4)
STACKS = {s.name: s for s in (GPU_HF, CPU_HF)}

# Several GPUs: DDP overlaps its gradient all-reduce with backward (small LoRA gradients);
# FSDP/ZeRO-3 all-gather every layer's weights in forward and backward. Judgments, said in
# the assumptions: 0.95 and 0.85 of N× one GPU's throughput.
SCALING = {"single": 1.0, "ddp": 0.95, "fsdp": 0.85, "deepspeed": 0.85}

# Before the first step: reading the weights (disk → host → GPU, ~1 GB/s from a local SSD
# through safetensors) plus process start and model build (~15 s on a GPU box, ~5 s for the
# demo). Judgments; calibration replaces them with what this machine took.
LOAD_GBS = 1.0
# distributed.offload: each pass copies the rank's shard of every unit from host RAM before the gather
# (FSDP CPUOffload / ZeRO-3 offload_param). PCIe 4.0 x16: 16 GT/s x 16 lanes, 128b/130b coding = 31.5
# GB/s a direction (PCI-SIG PCIe 4.0 base specification), at the stack's bandwidth share.
PCIE_GBS = 31.5
SETUP_S = {"gpu": 15.0, "cpu": 5.0}


@dataclass(frozen=True)
class Device:
    """What the work is divided by."""

    name: str  # the GPU table's name, "cpu", or the planned-as card
    kind: str  # gpu | cpu
    tflops: float
    bandwidth_gbs: float
    stack: StackSpeed
    source: str

    @classmethod
    def of(cls, hw: Hardware | None) -> "Device":
        if hw is not None and hw.has_gpu:
            gpu = hw.gpus[0]
            known, speed = speed_of(gpu.name)
            name = known or f"{gpu.name} (planned as an A100-40GB)"
            return cls(name, "gpu", speed.tflops, speed.bandwidth_gbs, GPU_HF, speed.source)
        cores = hw.host.cpu_cores if hw is not None and hw.host is not None else 1
        return cls("cpu", "cpu", cores * CPU_GFLOPS_PER_CORE / 1000, CPU_BANDWIDTH_GBS, CPU_HF,
                   f"{cores} cores × {CPU_GFLOPS_PER_CORE:g} GFLOP/s")
