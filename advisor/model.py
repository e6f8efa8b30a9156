"""The model reader: `--model` → a `ModelSpec` (shapes, never weights).

A name resolves, in order, to a local directory or config.json, a model id in the local
Hugging Face cache (offline), a config.json fetched earlier with --fetch-config (`config_cache.py`),
a catalog entry, a Hugging Face id of the model index (`model_index.py`: re-uploads and instruct
variants included), and last, only with --fetch-config, a config.json fetched now. Families with a
record in `families.py` (Llama, Mistral, Mixtral, Qwen2, Qwen3 and Qwen3-MoE, OLMo 2, Gemma 2,
Gemma 3 text, Phi-3) are computed analytically from config.json in microseconds; any other
architecture transformers knows is instantiated on the meta device (see `meta.py`). The shapes
themselves (`ModelSpec`, `Linear`) live in `spec.py`.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from . import catalog, config_cache, model_index
from .errors import RankwiseError, closest
from .families import FAMILIES, is_analytic
from .meta import read_on_meta  # light: it imports torch only inside read_on_meta
from .spec import Linear, ModelSpec, experts_per_token

__all__ = ["Linear", "ModelSpec", "load_model", "spec_from_config", "hf_cache_dir"]


# ------------------------------------------------------------------ analytic families

def _analytic(name: str, source: str, cfg: dict) -> ModelSpec:
    """config.json of a family in `families.FAMILIES` → its exact shapes, no torch."""
    fam = FAMILIES[cfg["model_type"]]
    h, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    inter = cfg["intermediate_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    hd = cfg.get("head_dim") or h // heads
    vocab = cfg["vocab_size"]
    tied = bool(cfg.get("tie_word_embeddings", fam.tied_default))
    o_bias = bool(cfg.get("attention_bias", False))
    qkv_bias = fam.qkv_bias or o_bias
    mlp_bias = bool(cfg.get("mlp_bias", False))
    experts = fam.experts(cfg)
    expert_inter = int(cfg[fam.expert_inter_key]) if fam.expert_inter_key and experts else inter

    if fam.fused_qkv:
        attn = [Linear(fam.fused_qkv, "attn", h, (heads + 2 * kv) * hd, L, qkv_bias)]
    else:
        attn = [Linear("q_proj", "attn", h, heads * hd, L, qkv_bias), Linear("k_proj", "attn", h, kv * hd, L, qkv_bias),
                Linear("v_proj", "attn", h, kv * hd, L, qkv_bias)]
    attn.append(Linear("o_proj", "attn", heads * hd, h, L, o_bias))
    if experts:  # transformers 5 fuses each layer's experts into 3-D tensors (not nn.Linear)
        mlp = [Linear("experts.gate_up_proj", "experts", h, 2 * expert_inter, L * experts, adaptable=False),
               Linear("experts.down_proj", "experts", expert_inter, h, L * experts, adaptable=False)]
    elif fam.fused_gate_up:
        mlp = [Linear(fam.fused_gate_up, "mlp", h, 2 * inter, L, mlp_bias)]
    else:
        mlp = [Linear("gate_proj", "mlp", h, inter, L, mlp_bias), Linear("up_proj", "mlp", h, inter, L, mlp_bias)]
    if not experts:
        mlp.append(Linear("down_proj", "mlp", inter, h, L, mlp_bias))
    lm_head = [Linear("lm_head", "lm_head", h, vocab, 1)]  # a module even when it shares the embedding
    linears = tuple(attn + mlp + lm_head)
    by_family = {
        "embed": vocab * h,
        "attn": sum(l.params for l in attn),
        "mlp": sum(l.params for l in mlp if l.family == "mlp"),
        "experts": sum(l.params for l in mlp if l.family == "experts"),
        "router": L * experts * h,
        "norm": (fam.norms_per_layer * L + 1) * h + L * fam.qk_norm_params(heads, kv, hd),
        "lm_head": 0 if tied else vocab * h,
    }
    return ModelSpec(
        name=name, source=source, model_type=fam.model_type, hidden_size=h, intermediate_size=inter, num_layers=L,
        num_heads=heads, num_kv_heads=kv, head_dim=hd, vocab_size=vocab,
        max_positions=int(cfg.get("max_position_embeddings") or 0), tied_embeddings=tied, linears=linears,
        params_by_family=by_family, num_experts=experts, experts_per_token=experts_per_token(cfg),
        config=cfg,
    )


def spec_from_config(name: str, source: str, cfg: dict, path: str | None = None) -> ModelSpec:
    """config.json contents → ModelSpec (analytic when known, meta device otherwise)."""
    mt = cfg.get("model_type")
    if not mt:
        raise RankwiseError(f"{name}: config.json has no model_type", "is this a transformers model config?")
    if is_analytic(mt, cfg):
        try:
            spec = _analytic(name, source, cfg)
        except KeyError as e:
            raise RankwiseError(f"{name}: config.json lacks {e.args[0]!r}", "is the config complete?") from None
    else:
        spec = read_on_meta(name, source, cfg)  # imports torch: only for architectures no family record covers
    if path:
        spec = ModelSpec(**{**spec.__dict__, "path": path})
    return spec


# ------------------------------------------------------------------ resolving --model


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def _cached_snapshot(model_id: str) -> Path | None:
    """The folder of a model already in the local HF cache (no network)."""
    repo = hf_cache_dir() / ("models--" + model_id.replace("/", "--"))
    snaps = repo / "snapshots"
    if not snaps.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        snap = snaps / ref.read_text().strip()
        if (snap / "config.json").is_file():
            return snap
    found = sorted((p for p in snaps.iterdir() if (p / "config.json").is_file()), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _read_config(path: Path, name: str) -> dict:
    try:
        data = config_cache.config_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise RankwiseError(f"cannot read {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise RankwiseError(f"{path}:{e.lineno}: not valid JSON: {e.msg}", "is this a model's config.json?") from None
    if not isinstance(data, dict):
        raise RankwiseError(f"{path}: expected a JSON object", "is this a model's config.json?")
    towers = any(k.endswith(("vision_config", "audio_config")) and v for k, v in data.items())
    if "text_config" in data and "hidden_size" not in data and isinstance(data["text_config"], dict) and not towers:
        data = {**data["text_config"], "model_type": data["text_config"].get("model_type", data.get("model_type"))}
    return data  # a multimodal config stays whole: its towers load with the language model (meta.py)


def name_quantization(name: str) -> dict | None:
    """The shipped quantization a model's name states (GPTQ, AWQ, AQLM), as config.json's
    `quantization_config` would: for a model known by name only (catalog, index), whose config at hand is
    the unquantized original's. Bits from `4bit`/`int4`/`w4a16`, default 4, the group from `128g`, default
    128: the defaults of AutoGPTQ's BaseQuantizeConfig (bits 4, group_size 128) and AutoAWQ's quant_config
    (w_bit 4, q_group_size 128), and TheBloke's GPTQ main branches ("4-bit, 128g"). AQLM from `2Bit-1x16`
    (codebooks x bits per codebook; the group is the inputs that make the bits: 1 x 16 / 2 = 8), default
    transformers' AqlmConfig (1x16, groups of 8). None when the name states none of them."""
    low = name.lower()
    fmt = next((f for f in ("aqlm", "gptq", "awq") if re.search(rf"(^|[^a-z]){f}([^a-z]|$)", low)), None)
    if fmt is None:
        return None
    found = re.search(r"(?:^|[^a-z0-9])(?:int([1-8])|w([1-8])a16|([1-8])[-_]?bit)(?:[^a-z0-9]|$)", low)
    bits = next((x for x in found.groups() if x), None) if found else None
    if fmt == "aqlm":
        books = re.search(r"(?:^|[^0-9])([1-8])x(8|16)(?:[^0-9]|$)", low)
        n, nbits = (int(books.group(1)), int(books.group(2))) if books else (1, 16)
        b = int(bits) if bits else 2
        return {"quant_method": "aqlm", "num_codebooks": n, "nbits_per_codebook": nbits,
                "in_group_size": max(1, n * nbits // b), "out_group_size": 1,
                "rankwise_inferred": _stated("AQLM", name, [(bits, f"{b}-bit"), (books, f"{n}x{nbits}")])}
    group = re.search(r"(?:^|[^a-z0-9])(\d{2,4})g(?:[^a-z]|$)|(?:^|[-_])g(\d{2,4})(?:[^0-9]|$)", low)
    b, g = int(bits) if bits else 4, int(next(x for x in group.groups() if x)) if group else 128
    return {"quant_method": fmt, "bits": b, "group_size": g,
            "rankwise_inferred": _stated(fmt.upper(), name, [(bits, f"{b}-bit"), (group, f"group {g}")])}


def _stated(fmt: str, name: str, parts: list) -> str:
    """What `name_quantization` read from the name and what it assumed."""
    said = [text for found, text in parts if found]
    assumed = [text for found, text in parts if not found]
    return (f"{name} says {fmt}" + (f" {', '.join(said)}" if said else "")
            + (f"; {', '.join(assumed)} assumed" if assumed else ""))


def _with_name_quantization(name: str, cfg: dict) -> dict:
    q = None if cfg.get("quantization_config") else name_quantization(name)
    return {**cfg, "quantization_config": q} if q else cfg


def _catalog_spec(name: str) -> ModelSpec | None:
    """A catalog model by `name` (or an alias), with what its name says of its shipped quantization."""
    found = catalog.lookup(name)
    if found is None:
        return None
    key, cfg = found
    return spec_from_config(key, "catalog", _with_name_quantization(name, cfg))


def load_model(name: str) -> ModelSpec:
    """Resolve `--model NAME` without touching the network or any weights."""
    name = str(name).strip()
    if not name:
        raise RankwiseError("no model given", "pass --model with a catalog name, a local folder or a cached model id")
    p = Path(name).expanduser()
    if p.is_file() and p.name.endswith(".json"):
        return spec_from_config(name, "local", _read_config(p, name), str(p.parent))
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise RankwiseError(f"{p} has no config.json", "point --model at a transformers model folder")
        return spec_from_config(name, "local", _read_config(p / "config.json", name), str(p))
    looks_like_path = name.startswith((".", "/", "~")) or name.endswith(".json")
    if "/" in name and not looks_like_path:
        snap = _cached_snapshot(name)
        if snap:  # the real config.json (and weights, for training) beat any table
            return spec_from_config(name, "hf-cache", _read_config(snap / "config.json", name), str(snap))
    fetched = None if looks_like_path else config_cache.cached(name)
    if fetched:  # fetched earlier with --fetch-config (config.json only: no weights)
        return spec_from_config(name, "fetched", _read_config(fetched, name))
    spec = _catalog_spec(name)
    if spec:
        return spec
    entry = None if looks_like_path else model_index.lookup(name)
    if entry:  # families with no record in families.py are read on the meta device from these fields
        return spec_from_config(name, "index", _with_name_quantization(name, entry.config))
    if looks_like_path:
        raise RankwiseError(f"model path not found: {name}", "check the path; it must hold config.json")
    if config_cache.enabled() and config_cache.is_model_id(name):  # asked for: fetch config.json alone
        return spec_from_config(name, "fetched", _read_config(config_cache.fetch(name), name))
    names = list(catalog.CATALOG)
    near = closest(name.lower().split("/")[-1], names, 3) + model_index.close_ids(name)
    hint = (f"closest known names: {', '.join(near)}" if near else f"catalog: {', '.join(names)}")
    hint += ("; a local folder, a model already in the Hugging Face cache or a Hugging Face id of the "
             "model index also works (nothing is downloaded)")
    if config_cache.is_model_id(name):
        hint += "; --fetch-config fetches this id's config.json (no weights) and keeps it for later runs"
    raise UnknownModel(f"unknown model {name!r}", hint)


def by_folder_name(name: str) -> tuple[ModelSpec, str] | None:
    """A model path that is not on this machine (a foreign config written on the training server), resolved by
    its last folder's name when that names a catalog model or one indexed architecture: (spec, what was assumed).
    Only for configs written elsewhere (`check`, `estimate --preset` on a foreign file): `--model` with a path
    that does not exist stays bad input."""
    base = Path(str(name).strip().rstrip("/")).name
    if not base or Path(name).expanduser().exists():
        return None
    spec = _catalog_spec(base)
    if spec is None:
        entry = model_index.by_base_name(base)
        if entry is None:
            return None
        spec = spec_from_config(entry.model_id, "index", _with_name_quantization(base, entry.config))
    return spec, (f"{name} is not on this machine: estimated as {spec.name}, the model its folder's name names "
                  "(pass --model to say otherwise)")


def load_written(name: str) -> tuple[ModelSpec, str | None]:
    """`load_model` for the model a config file names, which may be a path on the machine the file was written
    for: one this machine lacks is read by its folder's name (`by_folder_name`) with the note that says so
    (None when load_model resolved it); otherwise load_model's own error."""
    try:
        return load_model(name), None
    except RankwiseError:
        named = by_folder_name(name)
        if named is None:
            raise
        return named


class UnknownModel(RankwiseError):
    """A model name that is no path, not cached, not in the catalog nor the model index."""
