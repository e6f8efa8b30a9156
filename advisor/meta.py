"""Exact shapes of any architecture transformers knows, by building it on the meta device.

The meta device allocates no memory and reads no weights, so even a 70B model builds in
seconds. This is the one place in `advisor/` that imports torch, and only when called:
families with a record in `families.py` never come here (see `model.py`).
"""
from __future__ import annotations

from .errors import RankwiseError
from .spec import Linear, ModelSpec


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


def _linear_family(module_name: str, leaf: str) -> str:
    """Which `Linear.family` (attn | mlp | experts | lm_head) a module found on the meta device belongs to."""
    if leaf == "lm_head":
        return "lm_head"
    if "expert" in module_name:
        return "experts"
    if any(k in module_name for k in ("attn", "attention")):
        return "attn"
    return "mlp"


def read_on_meta(name: str, source: str, cfg: dict) -> ModelSpec:
    import torch  # deferred: torch costs seconds to import and only unknown architectures need it
    from transformers import AutoConfig

    cfg = {k: v for k, v in cfg.items() if k not in ("auto_map",)}  # never pull remote code
    try:
        config = AutoConfig.for_model(**cfg)
        first, fallback = _model_class(cfg)
        with torch.device("meta"):
            try:
                model = first.from_config(config)
            except ValueError:
                model = fallback.from_config(config)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RankwiseError(f"{name}: transformers cannot build model_type {cfg.get('model_type')!r}: {e}",
                            "check the config, or that your transformers version knows this architecture") from None

    linears: dict[str, list] = {}
    fam = dict.fromkeys(("embed", "attn", "mlp", "experts", "router", "norm", "lm_head", "vision", "other"), 0)
    seen: set[int] = set()
    experts = 0
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
            fam_name = _linear_family(mod_name, leaf)
            d_in, d_out = (mod.in_features, mod.out_features) if kind != "Conv1D" else tuple(mod.weight.shape)
            entry = linears.setdefault(leaf, [fam_name, d_in, d_out, 0, mod.bias is not None, True])
            entry[3] += 1
            fam[fam_name] += n_own
        elif isinstance(mod, torch.nn.Embedding):
            fam["embed"] += n_own
        elif "norm" in kind.lower():
            fam["norm"] += n_own
        elif "router" in kind.lower() or (leaf == "gate" and "moe" in mod_name.lower() + kind.lower()):
            fam["router"] += n_own
        elif own and "expert" in kind.lower():
            for pn, p in own:
                if p.dim() == 3:  # fused (experts, d_out, d_in)
                    experts = p.shape[0]
                    entry = linears.setdefault(f"experts.{pn}", ["experts", p.shape[2], p.shape[1], 0, False, False])
                    entry[3] += p.shape[0]
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
        linears=tuple(Linear(k, *v) for k, v in linears.items()), params_by_family=fam,
        num_experts=experts, experts_per_token=field("num_experts_per_tok"), config=cfg,
    )
