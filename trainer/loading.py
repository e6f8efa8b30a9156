"""How the base model loads on this machine, checked before anything heavy loads: the attention kernel, Liger and the
CCE loss this machine can run, a pre-quantized base and the package it needs, the folder its weights come from (never
a download), where each rank puts a quantized base, and two fixes after loading (bitsandbytes' CPU 4-bit repacking,
an MoE's experts upcast by peft). `rankwise train` (start.py) and the commands that load a trained model (chat,
merge, export) use the same checks as the worker. No torch at import."""
from __future__ import annotations

import os

from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.methods import PreQuantized

from . import cce_loss

NO_WEIGHTS_HINT = "e.g. model.name: /models/Llama-3.1-8B, or a model id already in ~/.cache/huggingface"


def liger_config(cfg) -> dict | None:
    """The HF Trainer's liger_kernel_config (its apply_liger_kernel_to_<model> arguments): liger_layers turns off
    Liger's losses, so train.loss's runs (cce replaces the forward, chunked the loss); None: Liger's defaults."""
    if cfg.train.kernels == "liger_layers":
        return {"fused_linear_cross_entropy": False, "cross_entropy": False}
    return None


def kernel_options(cfg, device: str, model_type: str | None = None) -> tuple[str | None, bool]:
    """(attn_implementation for from_pretrained, or None for transformers' choice; use Liger?).
    Options this machine or this model (its config's `model_type`, where known) cannot run are bad input (exit 2),
    said before anything loads."""
    import importlib.util

    from rankwise.advisor import liger as liger_kernels

    attn = None if cfg.train.attention == "auto" else cfg.train.attention
    if attn == "flash_attention_2":
        if device != "cuda":
            raise RankwiseError("train.attention flash_attention_2 needs an NVIDIA GPU (Ampere or newer); this "
                                "machine has none", "set train.attention: sdpa (the same memory, no extra package)")
        if importlib.util.find_spec("flash_attn") is None:
            raise RankwiseError("train.attention flash_attention_2 needs the flash-attn package",
                                "pip install flash-attn --no-build-isolation, or set train.attention: sdpa")
    if cfg.train.loss == "cce" and not os.environ.get(cce_loss.REFERENCE_ENV):
        _triton_kernels("train.loss cce", "cut_cross_entropy", "cut-cross-entropy", device,
                        "set train.loss: chunked (any device)",
                        "set train.loss: chunked on the CPU (the same loss, its fp32 work a chunk at a time)")
        if cfg.train.precision == "fp32":  # its backward kernels take 16-bit inputs (axolotl's CutCrossEntropyArgs)
            raise RankwiseError("train.loss cce computes in 16 bits and train.precision is fp32",
                                "set train.precision: auto (bf16 where the GPU has it), or train.loss: chunked")
    liger = cfg.train.kernels in ("liger", "liger_layers")
    if liger:
        said = f"train.kernels {cfg.train.kernels}"
        if model_type is not None and not liger_kernels.supports(model_type):
            raise RankwiseError(f"{said}: {liger_kernels.unsupported(model_type)}",
                                "set train.kernels: none (train.loss: chunked saves most of the loss's memory on any "
                                "model)")
        _triton_kernels(said, "liger_kernel", "liger-kernel", device, "set train.kernels: none",
                        "set train.kernels: none on the CPU")
    return attn, liger


def _triton_kernels(option: str, module: str, package: str, device: str, without_package: str, on_cpu: str) -> None:
    """An option whose Triton kernels come from the kernels extra: the package first, then a GPU (exit 2 each)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise RankwiseError(f"{option} needs the {package} package",
                            f"pip install 'rankwise[kernels]', or {without_package}")
    if device != "cuda":
        raise RankwiseError(f"{option} runs Triton kernels, which need a GPU; this machine has none", on_cpu)


def prequantized(spec) -> "PreQuantized | None":
    """The base's shipped quantization (GPTQ/AWQ/AQLM, from config.json), or None; bad input (exit 2)
    when no package that loads it is installed."""
    import importlib.util

    pre = PreQuantized.of(spec.config)
    if pre is not None and not any(importlib.util.find_spec(m) for m in pre.PACKAGES[pre.fmt]):
        raise RankwiseError(f"{spec.name} is a pre-quantized {pre.fmt.upper()} model, and loading it needs "
                            f"{' or '.join(pre.PACKAGES[pre.fmt])}", f"pip install '{pre.INSTALL[pre.fmt]}' (GPU "
                            "kernels), or train a 16-bit copy of the model with method: qlora")
    return pre


def keep_4bit_trainable_on_cpu(model) -> int:
    """Stop bitsandbytes repacking the 4-bit weights for its CPU inference kernel; returns how many layers.

    On a CPU with AVX512-BF16, bitsandbytes 0.50's Linear4bit.forward converts its weight for the CPU gemv kernel
    the first time it runs in eval mode without grad (the Trainer's evaluation), for good: every later forward,
    training included, goes through bitsandbytes::gemv_4bit, which has no autograd kernel, so the gradient
    through each frozen 4-bit layer is lost and every adapter before the last layer trains on a wrong gradient
    (measured: layer 0's LoRA gradient changes by 85% after one evaluation, same weights and batch;
    tests/test_qlora_cpu.py). The conversion is gated on the module's `support_avx512bf16_for_cpu`."""
    n = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


def quantized_device_map(device: str, local_rank: int) -> dict | None:
    """Where a quantized base is loaded: each rank onto its own GPU (DDP; FSDP, which then shards it). Left unset,
    transformers' bitsandbytes quantizer takes torch.cuda.current_device(), 0 on every rank until accelerate's
    state sets the device. Under ZeRO-3, None: transformers refuses any device_map there ("DeepSpeed Zero-3 is not
    compatible with passing a `device_map`", integrations/accelerate.py check_and_set_device_map), and the
    TrainingArguments built before the model have set this rank's device, which the quantizer then takes. ZeRO-3
    does not partition a quantized model as it loads (modeling_utils `needs_zero3_init = ... and not
    _is_quantized`): it is loaded whole onto each GPU (memory._zero3_load). Both measured on the CPU:
    bench/zero3_load_probe.py."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    if is_deepspeed_zero3_enabled():
        return None
    return {"": local_rank if device == "cuda" else "cpu"}


def weights_dir(spec, cfg) -> str:
    """The folder to load weights from: a local folder or a cached snapshot; never a download."""
    if not spec.path:  # a catalog or model-index entry: the architecture only
        raise RankwiseError(f"model.name {cfg.model.name!r} has no weights on this machine: rankwise knows its "
                            f"architecture ({spec.source}) but nothing is downloaded; point model.name at a local folder "
                            "or a model id already in the local Hugging Face cache", NO_WEIGHTS_HINT)
    return spec.path


def experts_in(model, dtype) -> int:
    """Cast transformers 5's fused MoE experts back to `dtype` after peft's prepare_model_for_kbit_training: it upcasts
    every parameter that is not 4-bit to fp32, meant for norms and embeddings, and bitsandbytes leaves the experts
    (frozen 3-D nn.Parameter tensors) unquantized, so an fp32 copy of them would double the model's largest part
    (advisor/storage.py). Returns how many tensors were cast."""
    import torch

    cast = [p for p in model.parameters()
            if p.dim() >= 3 and p.dtype == torch.float32 and dtype != torch.float32 and not p.requires_grad]
    for p in cast:
        p.data = p.data.to(dtype)
    return len(cast)
