"""Exact shapes of any architecture transformers knows, by building it on the meta device.

The meta device allocates no memory and reads no weights, so even a 70B model builds in
seconds. This is the one place in `advisor/` that imports torch, and only when called:
families with a record in `families.py` never come here (see `model.py`).
"""
from __future__ import annotations

import json
from functools import lru_cache

from .errors import RankwiseError
from .spec import Linear, ModelSpec, experts_per_token


# Path components of the parts a multimodal model adds to its language model: their weights are
# counted (family "vision": loaded and frozen, as peft leaves them) but are no LoRA targets here.
TOWER_PARTS = ("vision", "visual", "audio", "multi_modal", "mm_projector", "image_newline")


def _in_tower(module_name: str) -> bool:
    return any(part.startswith(TOWER_PARTS) or part.startswith(("embed_vision", "embed_audio"))
               for part in module_name.split("."))


def _model_class(cfg: dict):
    """(first, fallback) classes to build the whole model: the multimodal one first when config.json
    has a vision or audio tower (its weights load with the language model), else the causal LM."""
    from transformers import AutoModelForCausalLM

    try:
        from transformers import AutoModelForMultimodalLM
    except ImportError:  # older transformers
        from transformers import AutoModelForImageTextToText as AutoModelForMultimodalLM
    towers = any(k.endswith(("vision_config", "audio_config")) and v for k, v in cfg.items())
    if towers:
        return AutoModelForMultimodalLM, AutoModelForCausalLM
    return AutoModelForCausalLM, AutoModelForMultimodalLM  # Mistral 4's text model is registered only there


# the classes of the token mixers a linear may sit in, where the module path does not say "attn": Nemotron-H names
# every block's module `mixer` (attention, Mamba2, MLP and MoE alike), Granite 4.0-H its Mamba2 layers `mamba`
MIXER_CLASSES = ("Attention", "Mamba", "DeltaNet", "Mixer")  # Falcon-H1's FalconH1Mixer (under `mamba`)


def _linear_family(module_name: str, leaf: str, parent_class: str = "") -> str:
    """Which `Linear.family` (attn | mlp | experts | lm_head) a module found on the meta device belongs to; the
    sequence mixers (softmax attention, and a hybrid's Mamba2 or Gated DeltaNet layers) are attn."""
    if leaf == "lm_head":
        return "lm_head"
    if "shared_expert" in module_name:  # DeepSeek's shared_experts, Llama 4's shared_expert: every token runs them
        return "mlp"
    if "expert" in module_name:
        return "experts"
    if any(k in module_name for k in ("attn", "attention")) or any(k in parent_class for k in MIXER_CLASSES):
        return "attn"
    return "mlp"


def _one_linear(name: str, shapes: dict[tuple, int]) -> Linear:
    """The linears named `name` (a leaf name: what peft's target_modules matches) → one `Linear`. Layers that
    differ give one name several shapes: DeepSeek-V2/V3 and GLM-4.5's first dense layers beside the shared
    experts of the MoE layers (both `gate_proj`), Llama 4's dense and MoE layers. They become one linear of the
    total count with the shared dimension kept and the other averaged, so its parameters, and r x (d_in + d_out)
    x count for its adapters, are the sum over the variants (to rounding)."""
    if len(shapes) == 1:
        (fam, d_in, d_out, bias, adaptable), count = next(iter(shapes.items()))
        return Linear(name, fam, d_in, d_out, count, bias, adaptable)
    count = sum(shapes.values())
    fams = {k[0] for k in shapes}
    fam = fams.pop() if len(fams) == 1 else "mlp"
    ins, outs = {k[1] for k in shapes}, {k[2] for k in shapes}
    params = sum(c * k[1] * k[2] for k, c in shapes.items())
    if len(ins) == 1:
        d_in = ins.pop()
        d_out = round(params / (count * d_in))
    elif len(outs) == 1:
        d_out = outs.pop()
        d_in = round(params / (count * d_out))
    else:  # both differ: the input averaged, the output set by the parameters
        d_in = round(sum(c * k[1] for k, c in shapes.items()) / count)
        d_out = round(params / (count * d_in))
    return Linear(name, fam, d_in, d_out, count, any(k[3] for k in shapes), all(k[4] for k in shapes))


def build_on_meta(name: str, cfg: dict):
    """The whole model (towers included) built from config.json's fields on the meta device."""
    import torch  # deferred: torch costs seconds to import and only unknown architectures need it
    from transformers import AutoConfig

    cfg = {k: v for k, v in cfg.items() if k not in ("auto_map",)}  # never pull remote code
    try:
        config = AutoConfig.for_model(**cfg)
        first, fallback = _model_class(cfg)
        with torch.device("meta"):
            try:
                return first.from_config(config)
            except ValueError:
                return fallback.from_config(config)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RankwiseError(f"{name}: transformers cannot build model_type {cfg.get('model_type')!r}: {e}",
                            "check the config, or that your transformers version knows this architecture") from None


@lru_cache(maxsize=8)
def _parameters(name: str, cfg_json: str) -> tuple[tuple[str, int], ...]:
    return tuple((n, p.numel()) for n, p in build_on_meta(name, json.loads(cfg_json)).named_parameters())


def parameters(name: str, cfg: dict) -> tuple[tuple[str, int], ...]:
    """(name, elements) of every parameter as `model.named_parameters()` lists them (a tied head once, under the
    embedding's name), built on the meta device: what a tool that selects parameters by name sees."""
    return _parameters(name, json.dumps(cfg, sort_keys=True, default=str))


def read_on_meta(name: str, source: str, cfg: dict) -> ModelSpec:
    import torch

    model = build_on_meta(name, cfg)
    config = model.config
    cfg = {k: v for k, v in cfg.items() if k not in ("auto_map",)}

    linears: dict[str, dict[tuple, int]] = {}  # leaf name → {(family, d_in, d_out, bias, adaptable): count}
    fam = dict.fromkeys(("embed", "attn", "mlp", "experts", "router", "norm", "lm_head", "vision", "other"), 0)
    seen: set[int] = set()
    experts = 0
    classes = {n: type(m).__name__ for n, m in model.named_modules()}
    for mod_name, mod in model.named_modules():
        leaf = mod_name.rsplit(".", 1)[-1]
        kind = type(mod).__name__
        own = [(pn, p) for pn, p in mod.named_parameters(recurse=False) if id(p) not in seen]
        for _, p in own:
            seen.add(id(p))
        n_own = sum(p.numel() for _, p in own)
        if _in_tower(mod_name):
            fam["vision"] += n_own
        elif leaf == "router":  # Llama 4's router is an nn.Linear subclass: no LoRA target
            fam["router"] += n_own
        elif isinstance(mod, torch.nn.Linear) or kind == "Conv1D":  # GPT-2 style Conv1D holds (d_in, d_out)
            fam_name = _linear_family(mod_name, leaf, classes.get(mod_name.rpartition(".")[0], ""))
            d_in, d_out = (mod.in_features, mod.out_features) if kind != "Conv1D" else tuple(mod.weight.shape)
            shapes = linears.setdefault(leaf, {})
            key = (fam_name, d_in, d_out, mod.bias is not None, True)
            shapes[key] = shapes.get(key, 0) + 1
            fam[fam_name] += n_own
        elif isinstance(mod, torch.nn.Embedding):
            fam["embed"] += n_own
        elif "norm" in kind.lower():
            fam["norm"] += n_own
        elif "router" in kind.lower() or (leaf == "gate" and "moe" in mod_name.lower() + kind.lower()):
            fam["router"] += n_own
        elif own and "expert" in kind.lower():
            stacked = getattr(mod, "moe_num_experts", None) or getattr(mod, "num_experts", None)
            for pn, p in own:
                if p.dim() == 3:  # fused (experts, d_out, d_in)
                    n_exp, d_out, d_in = p.shape
                elif (p.dim() == 2 and not pn.endswith("bias") and isinstance(stacked, int) and stacked > 1
                      and p.shape[0] % stacked == 0):
                    n_exp, d_out, d_in = stacked, p.shape[0] // stacked, p.shape[1]  # DBRX: experts stacked in rows
                else:
                    n_exp = 0
                if n_exp:
                    experts = n_exp
                    shapes = linears.setdefault(f"experts.{pn}", {})
                    key = ("experts", d_in, d_out, False, False)
                    shapes[key] = shapes.get(key, 0) + n_exp
                fam["experts"] += p.numel()
        else:
            fam["other"] += n_own
    for key in ("vision", "other"):
        if not fam[key]:
            del fam[key]
    tied = bool(getattr(config, "tie_word_embeddings", False)) and fam["lm_head"] == 0
    text = config.get_text_config() if hasattr(config, "get_text_config") else config

    def field(key: str, default=0):
        try:  # Gemma 4's config raises (not AttributeError) for fields that vary per layer
            return getattr(text, key, default) or default
        except Exception:  # noqa: BLE001 — a per-layer field has no one value: the default stands
            return default

    heads = field("num_attention_heads")
    hidden = field("hidden_size")
    return ModelSpec(
        name=name, source=source, model_type=config.model_type, hidden_size=hidden,
        intermediate_size=field("intermediate_size"), num_layers=field("num_hidden_layers"), num_heads=heads,
        num_kv_heads=field("num_key_value_heads") or heads,
        head_dim=field("head_dim") or (hidden // heads if heads else 0), vocab_size=field("vocab_size"),
        max_positions=field("max_position_embeddings"), tied_embeddings=tied,
        linears=tuple(_one_linear(k, v) for k, v in linears.items()), params_by_family=fam,
        num_experts=experts, experts_per_token=experts_per_token(cfg) or field("num_experts_per_tok"), config=cfg,
    )
