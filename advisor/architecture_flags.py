"""Red flags about the model's architecture: an MoE whose experts the quantized method leaves 16-bit, and hybrids
with recurrent sequence mixers (Gated DeltaNet, Mamba2, Mamba1, short convolutions) under packing or without their
kernels. Rules over redflags.Context like the others in advisor/redflags.py (which lists them in RULES); apart
because they judge what the model is built of, not the LoRA settings.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .finding import Finding
from .mamba import Mamba1, kernel_missing, other_mixers
from .memory import estimate
from .methods import METHODS

if TYPE_CHECKING:  # only for the annotations: redflags imports these rules
    from .model import ModelSpec
    from .redflags import Context


def moe_experts_16bit(ctx: Context) -> Finding | None:
    """A quantized method on an MoE whose fused experts transformers 5 keeps out of bitsandbytes (storage.quantized):
    the method shrinks only attention and dense linears, most of the model stays 16-bit (in the estimate too)."""
    from .plan import Plan
    from .storage import unquantized_experts

    if ctx.spec is None or METHODS.get(ctx.method) is None or METHODS[ctx.method].quant is None:
        return None
    plan = ctx.judged.estimate.plan if ctx.judged is not None else Plan.from_config(ctx.cfg, method=ctx.method)
    kept = unquantized_experts(ctx.spec, plan)
    if not kept:
        return None
    share = kept / ctx.spec.total_params
    why = ("transformers 5 holds MoE experts as fused nn.Parameter tensors, which its bitsandbytes integration does not "
           "quantize; only attention and dense linears shrink (the estimate counts it so)")
    if plan.target_parameters:
        why += "; lora.target_parameters adapts them, and peft cannot adapt a quantized parameter"
        fix, patch = ("plan the memory for 16-bit experts, or drop lora.target_parameters to store them quantized "
                      "(frozen)"), {"lora.target_parameters": []}
    elif plan.sharded:
        why += "; rankwise quantizes them itself only on one GPU or under DDP: FSDP cannot flatten that storage"
        fix, patch = ("plan the memory for 16-bit experts, or train on one GPU / DDP where a quantized copy fits "
                      "(distributed.strategy: ddp)"), None
    else:
        why += "; quant.quantize_experts is off"
        to = "NF4" if plan.descriptor.quant.bits == 4 else "row-wise int8"
        fix, patch = f"set quant.quantize_experts: true (rankwise quantizes them to {to} as they load)", {
            "quant.quantize_experts": True}
    return Finding("moe-experts-16bit", "info",
                   f"{METHODS[ctx.method].label} leaves this MoE's experts 16-bit: {share:.0%} of its weights "
                   f"({kept * 2 / 2 ** 30:.1f} GiB) are not quantized", why, fix, patch)


def recurrent_layers(spec: ModelSpec) -> tuple[int, str] | None:
    """(layers, kind) of a model's sequence mixers that read no position_ids: Gated DeltaNet (linear_attention.py),
    Mamba2 (mamba.py), or those mamba.other_mixers finds (the Mamba1 of Jamba, Mamba and Falcon-Mamba; LFM2's short
    convolutions); None for a model without them."""
    if spec.linear_attention is not None:
        return spec.linear_attention.layers, spec.linear_attention.name
    if spec.mamba is not None:
        return spec.mamba.layers, "Mamba2"
    return other_mixers(spec.model_type, spec.config, spec.num_layers)


def packing_linear_attention(ctx: Context) -> Finding | None:
    """Packing on a hybrid with Gated DeltaNet, Mamba2, Mamba1 or short-convolution layers: rankwise packs with
    position_ids restarting per example, which transformers turns into a block-diagonal mask for softmax attention, but
    those layers read sequence bounds only from `cu_seq_lens_q` / `seq_idx` (modeling_qwen3_5.py,
    modeling_nemotron_h.py) or none (modeling_jamba.py, modeling_lfm2.py), so their conv1d and recurrent state run on
    from one packed example into the next (tests/test_linear_attention.py and test_mamba.py: the second example's
    logits change)."""
    found = recurrent_layers(ctx.spec) if ctx.spec is not None and ctx.cfg.data.packing else None
    if found is None:
        return None
    layers, kind = found
    window = int(ctx.spec.config.get("conv_L_cache") or 3)  # LFM2's conv kernel (configuration_lfm2.py default 3)
    return Finding("packing-linear-attention", "warning",
                   f"data.packing on {ctx.spec.name}: its {layers} {kind} layers see the packed examples as one "
                   "sequence",
                   "packed rows restart position_ids per example; transformers masks softmax attention from them, but "
                   + (f"its short convolutions ({window} tokens wide) let each example's first {window - 1} tokens "
                      "read the previous example's last ones" if kind == "short-convolution"
                      else "its recurrent layers carry their state and conv1d from one example into the next"),
                   "turn data.packing off (rows are padded to the batch's longest instead)", {"data.packing": False})


# the recurrent layers' kernel package and the Plan field that says it is installed, by kind
RECURRENT_KERNELS = {"Gated DeltaNet": ("flash-linear-attention", "linear_kernel", "fla"),
           "Kimi Delta Attention": ("flash-linear-attention", "linear_kernel", "fla"),
           "Mamba2": ("mamba-ssm", "mamba_kernel", "mamba_ssm"),
           "Mamba1": ("mamba-ssm", "mamba_kernel", "mamba_ssm")}
# How to install a kind's kernels so that they run (mamba.kernel_missing: mamba-ssm's fused paths call causal-conv1d,
# which it does not install, and Mamba1 needs its selective_scan_cuda build, opt-in on its main branch since July 2026;
# the variable is ignored by released versions)
INSTALL = {"Gated DeltaNet": "pip install flash-linear-attention",
           "Kimi Delta Attention": "pip install flash-linear-attention",
           "Mamba2": "pip install mamba-ssm causal-conv1d --no-build-isolation",
           "Mamba1": "MAMBA_KEEP_CUDA_BUILD=TRUE pip install mamba-ssm causal-conv1d --no-build-isolation"}


def linear_attention_fallback(ctx: Context) -> Finding | None:
    """A Gated DeltaNet or Mamba2 hybrid trained on a GPU without its kernel package: transformers runs the torch
    fallback of the chunked scan, which keeps several times what the kernel keeps (linear_attention.py, mamba.py) and
    is slower."""
    found = recurrent_layers(ctx.spec) if ctx.spec is not None else None
    if found is None or ctx.estimate is None or ctx.hw is None or not ctx.hw.has_gpu:
        return None
    layers, kind = found
    if kind not in RECURRENT_KERNELS:  # LFM2's short convolutions: their fallback is one small conv1d
        return None
    package, field, kernel = RECURRENT_KERNELS[kind]
    if getattr(ctx.estimate.plan, field) == kernel:
        return None
    more = ctx.estimate.peak_bytes - estimate(ctx.spec, replace(ctx.estimate.plan, **{field: kernel})).peak_bytes
    return Finding("linear-attention-fallback", "info",
                   f"{ctx.spec.name}'s {layers} {kind} layers will run transformers' torch fallback ({package} is not "
                   "installed): "
                   + (f"{more / 2 ** 30:.1f} GiB more at the peak than its kernel, and slower" if more >= 2 ** 30 / 20
                      else "slower than its kernel (the peak is set elsewhere here, the same with either)"),
                   f"transformers uses {package}'s kernel on a GPU when the package is there; its fallback keeps "
                   + ("each token's fp32 state, exp(A·Δ) and B·Δ (d_inner x d_state) for backward, in a loop over "
                      "every token" if kind == "Mamba1" else "fp32 chunk matrices and states for backward")
                   + (" (the estimate counts the fallback; the step time its kernels, vectorised over the sequence)"
                      if kind == "Mamba2" else " (the estimate counts the fallback, and the step time the kernel "
                                               "launches of its Python loop)"),
                   f"{INSTALL[kind]} where it trains (then the estimate counts its kernel)")


def mamba_kernel_incomplete(ctx: Context) -> Finding | None:
    """A model with Mamba2 or Mamba1 mixers on a GPU where mamba-ssm is installed without what its training path there
    needs (mamba.kernel_missing): transformers calls mamba-ssm, which fails at the first training step, after the model
    has loaded."""
    spec = ctx.spec
    m = (spec.mamba or spec.mamba1) if spec is not None else None
    if m is None or ctx.hw is None or not ctx.hw.has_gpu:
        return None
    missing = kernel_missing(m)
    if not missing:
        return None
    kind = "Mamba1" if isinstance(m, Mamba1) else "Mamba2"
    fixes = {"selective_scan_cuda": "MAMBA_KEEP_CUDA_BUILD=TRUE pip install mamba-ssm --no-build-isolation",
             "causal-conv1d": "pip install causal-conv1d --no-build-isolation"}
    needs = {"selective_scan_cuda": "the Mamba1 scan needs the selective_scan_cuda extension (built only on request "
                                    "in mamba-ssm's source since July 2026)",
             "causal-conv1d": "its fused path calls causal-conv1d's kernel, an optional package mamba-ssm does not "
                              "install"}
    return Finding("mamba-kernel-incomplete", "warning",
                   f"mamba-ssm is installed without {' and '.join(missing)}: {spec.name}'s {m.layers} {kind} layers "
                   "will fail at the first training step on the GPU",
                   "transformers calls mamba-ssm's kernels wherever the package imports and the device is CUDA, with "
                   "no fallback (since transformers#47630, August 2026; older versions take the slow path); "
                   + "; ".join(needs[x] for x in missing),
                   "; ".join(fixes[x] for x in missing) + " (or pip uninstall mamba-ssm: the slower torch scan runs)")
