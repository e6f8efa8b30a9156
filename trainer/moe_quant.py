"""QLoRA's 4-bit storage for an MoE's fused expert tensors (quant.quantize_experts).

transformers 5 holds an MoE's experts as 3-D nn.Parameter tensors, which its bitsandbytes quantizer does not convert:
loaded "in 4 bits", Mixtral keeps 97% of its weights in bf16 (advisor/storage.py). bitsandbytes quantizes a parameter
with `replace_parameter_4bit`: NF4 data, and a parametrization that dequantizes it on access (cached for the
module's forward). Done as each expert tensor loads (transformers.core_model_loading.set_param_for_module, wrapped for
the length of from_pretrained), one tensor's 16-bit copy exists at a time, never the whole model's; transformers'
caching-allocator warm-up, which reserves the 16-bit size of every tensor at once, is skipped for the same reason.
axolotl does the same (monkeypatch/moe_quant.py). Tensors the wrap did not see (a transformers without that function)
are quantized after loading (`quantize_rest`), and the worker says so: their 16-bit copies were on the device first.

The 8-bit method (LLM.int8 base linears) stores them in bitsandbytes' row-wise int8, LLM.int8's weight format: one int8
a weight and one fp32 absmax a row (`int8_vectorwise_quant`), dequantized on access to the tensor's own dtype
(`Int8Rows`), with the same per-forward cache; bitsandbytes has no 8-bit `replace_parameter`, so the parametrization
is rankwise's (axolotl's monkeypatch/moe_quant.py does the same for its `load_in_8bit`, without the cast back).

The estimate's side is advisor/storage.py (`experts_as_parameters`: which runs do this) and advisor/activations.py
(`built_expert_bytes`: the dequantized layer each forward builds).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache


# peft LoraConfig.exclude_modules (a regex over module names): the modules torch's parametrize puts in a quantized
# tensor's place (`<module>.parametrizations.<tensor name>`), never LoRA targets
PARAMETRIZED = r".*\.parametrizations\..*"


def matches(name: str, fused: tuple[str, ...]) -> bool:
    """Is the full parameter name one of the model's fused expert tensors (their names as the spec has them)?"""
    return any(name == f or name.endswith("." + f) for f in fused)


def _fused(name: str, p, fused: tuple[str, ...]) -> bool:
    """Is this parameter one of the fused expert tensors, still in 16/32 bits?"""
    return p.dim() == 3 and p.is_floating_point() and matches(name, fused)


def _quantize(module, name: str, quant_type: str, double_quant: bool, bits: int = 4) -> None:
    if bits == 8:
        _quantize_int8(module, name)
        return
    from bitsandbytes.nn.parametrize import replace_parameter_4bit

    replace_parameter_4bit(module, name, compress_statistics=double_quant, quant_type=quant_type)


@lru_cache(maxsize=None)
def _int8_rows():
    """The parametrization class, made once on first use (this module is imported without torch)."""
    import torch

    class Int8Rows(torch.nn.Module):
        """Row-wise int8 (one fp32 absmax a row of the tensor seen as 2-D), dequantized on access to `dtype`."""

        def __init__(self, stats: torch.Tensor, dtype: torch.dtype):
            super().__init__()
            self.register_buffer("stats", stats)
            self.dtype = dtype

        @torch.no_grad()
        def forward(self, quantized: torch.Tensor) -> torch.Tensor:
            from bitsandbytes.functional import int8_vectorwise_dequant

            rows = quantized.reshape(-1, quantized.shape[-1])
            return int8_vectorwise_dequant(rows, self.stats).reshape(quantized.shape).to(self.dtype)

    return Int8Rows


def _cache_on(module, inputs) -> None:
    """torch's parametrize cache for the module's forward (what `parametrize.cached()` does around it): the experts are
    dequantized once a forward however often they are read, and the cache is dropped when the forward ends."""
    import torch.nn.utils.parametrize as P

    P._cache_enabled += 1


def _cache_off(module, inputs, output) -> None:
    import torch.nn.utils.parametrize as P

    P._cache_enabled -= 1
    if not P._cache_enabled:
        P._cache = {}


def _quantize_int8(module, name: str) -> None:
    """One fused expert tensor to row-wise int8 behind a parametrization. bitsandbytes' CUDA int8_vectorwise_quant
    takes fp16, so the weights pass through fp16 (expert weights are far inside its range)."""
    import torch
    import torch.nn.utils.parametrize as P
    from bitsandbytes.functional import int8_vectorwise_quant

    param = getattr(module, name)
    q, stats, _ = int8_vectorwise_quant(param.data.reshape(-1, param.shape[-1]).to(torch.float16))
    setattr(module, name, torch.nn.Parameter(q.reshape(param.shape), requires_grad=False))
    P.register_parametrization(module, name, _int8_rows()(stats, param.dtype), unsafe=True)
    if not getattr(module, "_rankwise_int8_cache", False):
        # always_call: non-reentrant checkpointing stops its recompute mid-forward, which would skip a plain hook
        module.register_forward_pre_hook(_cache_on)
        module.register_forward_hook(_cache_off, always_call=True)
        module._rankwise_int8_cache = True


@contextmanager
def quantized_on_load(fused: tuple[str, ...], quant_type: str, double_quant: bool,
                      bits: int = 4) -> Iterator[list[str]]:
    """Inside: each fused expert tensor from_pretrained sets is quantized right after. Yields the names done."""
    import transformers.core_model_loading as loading
    import transformers.modeling_utils as modeling

    done: list[str] = []
    if not fused or not hasattr(loading, "set_param_for_module"):  # none, or another transformers (quantize_rest)
        yield done
        return
    set_param, warmup = loading.set_param_for_module, getattr(modeling, "caching_allocator_warmup", None)

    def set_and_quantize(model, target_name, param_value, *args, **kwargs):
        set_param(model, target_name, param_value, *args, **kwargs)
        if _fused(target_name, param_value, fused):
            path, _, name = target_name.rpartition(".")
            _quantize(model.get_submodule(path), name, quant_type, double_quant, bits)
            done.append(target_name)

    loading.set_param_for_module = set_and_quantize
    if warmup is not None:
        modeling.caching_allocator_warmup = lambda *args, **kwargs: None
    try:
        yield done
    finally:
        loading.set_param_for_module = set_param
        if warmup is not None:
            modeling.caching_allocator_warmup = warmup


def fused_to_quantize(cfg, spec, how, sharded: bool) -> tuple[str, ...]:
    """The fused expert tensors a run with `cfg` stores in 4 (or 8) bits itself, loaded by `how` (a methods.Method) on
    one process or DDP (`sharded` False) or under FSDP/ZeRO-3: advisor/storage.py `experts_as_parameters` decides,
    as for the estimate. () for none."""
    from rankwise.advisor.plan import Plan
    from rankwise.advisor.storage import experts_as_parameters

    if not how.quantized or not spec.fused_names():
        return ()
    strategy = ("deepspeed" if cfg.distributed.strategy == "deepspeed" else "fsdp") if sharded else None
    plan = Plan.from_config(cfg, method=how.name, gpus=2 if sharded else 1, strategy=strategy)
    return tuple(spec.fused_names()) if experts_as_parameters(plan) else ()


def load(from_pretrained, fused: tuple[str, ...], quant, bits: int = 4) -> tuple[object, list[str], list[str]]:
    """`from_pretrained()` with the fused experts quantized (quant: the config's quant section; bits: the method's,
    4 or 8): (the model, the tensors quantized as they loaded, those quantized after)."""
    with quantized_on_load(fused, quant.quant_type, quant.double_quant, bits) as done:
        model = from_pretrained()
    late = quantize_rest(model, fused, quant.quant_type, quant.double_quant, bits) if fused else []
    return model, done, late


def said(done: list[str], late: list[str], quant_type: str, bits: int = 4) -> str:
    """The log line for what `load` did."""
    to = "row-wise int8" if bits == 8 else quant_type.upper()
    return (f"MoE experts: {len(done)} fused tensors quantized to {to} as they loaded"
            + (f", {len(late)} after loading (their 16-bit copies were on the device first)" if late else "")
            + " (quant.quantize_experts)")


def quantize_rest(model, fused: tuple[str, ...], quant_type: str, double_quant: bool, bits: int = 4) -> list[str]:
    """Quantize the fused expert tensors still in 16 bits (not parametrized yet); returns their names."""
    out = []
    for path, module in model.named_modules():
        for name, p in list(module.named_parameters(recurse=False)):
            full = f"{path}.{name}" if path else name
            if _fused(full, p, fused):
                _quantize(module, name, quant_type, double_quant, bits)
                out.append(full)
    return out


def quantized_experts(model) -> int:
    """How many parameters of `model` are stored through bitsandbytes' 4-bit parametrization or rankwise's int8 one."""
    from bitsandbytes.nn.parametrize import Bnb4bitParametrization

    kinds = (Bnb4bitParametrization, _int8_rows())
    return sum(1 for m in model.modules() if hasattr(m, "parametrizations")
               for plist in m.parametrizations.values() if any(isinstance(p, kinds) for p in plist))
