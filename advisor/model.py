"""The model reader: `--model` → a `ModelSpec` (shapes, never weights).

A name resolves, in order, to a local directory or config.json, a model id in the local
Hugging Face cache (offline), or a catalog entry. Known families (Llama, Mistral, Mixtral,
Qwen2, Gemma 2, Phi-3) are computed analytically from config.json in microseconds; any
other architecture transformers knows is instantiated on the meta device (see `meta.py`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import catalog
from .errors import RankwiseError, closest


@dataclass(frozen=True)
class Linear:
    """One kind of linear weight: `count` modules named `name` of shape d_in → d_out."""

    name: str  # leaf name, as LoRA target_modules match it: "q_proj"
    family: str  # attn | mlp | experts | lm_head
    d_in: int
    d_out: int
    count: int
    bias: bool = False
    adaptable: bool = True  # an nn.Linear that LoRA target_modules can wrap (fused expert tensors are not)

    @property
    def params(self) -> int:
        return self.count * (self.d_in * self.d_out + (self.d_out if self.bias else 0))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str  # catalog | local | hf-cache
    model_type: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int
    tied_embeddings: bool
    linears: tuple[Linear, ...]
    params_by_family: dict[str, int]  # embed, attn, mlp, experts, router, norm, lm_head, other
    num_experts: int = 0
    experts_per_token: int = 0
    config: dict = field(default_factory=dict, repr=False, compare=False)
    path: str | None = None  # local folder holding weights/tokenizer, when there is one

    @property
    def total_params(self) -> int:
        return sum(self.params_by_family.values())

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    def adaptable_names(self) -> list[str]:
        """Module names LoRA can target, lm_head excluded (as peft's all-linear does)."""
        return [l.name for l in self.linears if l.adaptable and l.family != "lm_head"]

    def target_set(self, kind: str) -> list[str]:
        """A named target set → this model's module names."""
        names = self.adaptable_names()
        attn = [n for n in names if self.linear(n).family == "attn"]
        mlp = [n for n in names if self.linear(n).family == "mlp"]
        qv = [n for n in ("q_proj", "v_proj") if n in names] or [n for n in attn if "qkv" in n]
        if kind == "minimal":
            return qv
        if kind == "standard":
            return attn
        if kind == "aggressive":
            return attn + mlp
        if kind == "all-linear":
            return names
        raise RankwiseError(f"unknown target set {kind!r}", "use minimal, standard, aggressive or all-linear")

    def linear(self, name: str) -> Linear:
        for l in self.linears:
            if l.name == name:
                return l
        raise KeyError(name)

    def resolve_targets(self, targets: str | list[str] | tuple[str, ...]) -> list[Linear]:
        """Target modules (a named set, a comma list or a list) → the adapted linears.
        A name the model does not have is an error that lists those it has."""
        if isinstance(targets, str):
            if targets in ("minimal", "standard", "aggressive", "all-linear"):
                return [self.linear(n) for n in self.target_set(targets)]
            targets = [t.strip() for t in targets.split(",") if t.strip()]
        have = self.adaptable_names()
        missing = [t for t in targets if t not in have]
        if missing:
            hint = f"{self.name} has: {', '.join(have)}"
            sugg = [s for t in missing for s in closest(t, have, 1)]
            if sugg:
                hint = f"did you mean {', '.join(sugg)}? " + hint
            raise RankwiseError(f"target module{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                                f"not in {self.name}", hint)
        return [self.linear(n) for n in dict.fromkeys(targets)]

    def lora_params(self, targets, r: int) -> int:
        """Trainable LoRA parameters: Σ over adapted linears of r·(d_in + d_out)."""
        return sum(l.count * r * (l.d_in + l.d_out) for l in self.resolve_targets(targets))

    def summary(self) -> dict:
        return {
            "name": self.name, "source": self.source, "model_type": self.model_type,
            "total_params": self.total_params, "params_by_family": dict(self.params_by_family),
            "layers": self.num_layers, "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size, "heads": self.num_heads,
            "kv_heads": self.num_kv_heads, "head_dim": self.head_dim, "vocab_size": self.vocab_size,
            "max_positions": self.max_positions, "tied_embeddings": self.tied_embeddings,
            "num_experts": self.num_experts, "experts_per_token": self.experts_per_token,
            "linears": [{"name": l.name, "family": l.family, "d_in": l.d_in, "d_out": l.d_out,
                         "count": l.count, "bias": l.bias, "adaptable": l.adaptable} for l in self.linears],
        }


# ------------------------------------------------------------------ analytic families

ANALYTIC = ("llama", "mistral", "mixtral", "qwen2", "gemma2", "phi3")


def _analytic(name: str, source: str, cfg: dict) -> ModelSpec:
    mt = cfg["model_type"]
    h, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    inter = cfg["intermediate_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    hd = cfg.get("head_dim") or h // heads
    vocab = cfg["vocab_size"]
    tied = bool(cfg.get("tie_word_embeddings", mt in ("gemma2",)))
    qkv_bias = mt == "qwen2" or bool(cfg.get("attention_bias", False))
    mlp_bias = bool(cfg.get("mlp_bias", False))
    experts = int(cfg.get("num_local_experts") or 0) if mt == "mixtral" else 0

    if mt == "phi3":
        attn = [Linear("qkv_proj", "attn", h, (heads + 2 * kv) * hd, L), Linear("o_proj", "attn", heads * hd, h, L)]
        mlp = [Linear("gate_up_proj", "mlp", h, 2 * inter, L), Linear("down_proj", "mlp", inter, h, L)]
    else:
        attn = [Linear("q_proj", "attn", h, heads * hd, L, qkv_bias), Linear("k_proj", "attn", h, kv * hd, L, qkv_bias),
                Linear("v_proj", "attn", h, kv * hd, L, qkv_bias),
                Linear("o_proj", "attn", heads * hd, h, L, bool(cfg.get("attention_bias", False)))]
        if experts:  # transformers 5 fuses each layer's experts into 3-D tensors (not nn.Linear)
            mlp = [Linear("experts.gate_up_proj", "experts", h, 2 * inter, L * experts, adaptable=False),
                   Linear("experts.down_proj", "experts", inter, h, L * experts, adaptable=False)]
        else:
            mlp = [Linear("gate_proj", "mlp", h, inter, L, mlp_bias), Linear("up_proj", "mlp", h, inter, L, mlp_bias),
                   Linear("down_proj", "mlp", inter, h, L, mlp_bias)]
    lm_head = [Linear("lm_head", "lm_head", h, vocab, 1)]  # a module even when it shares the embedding
    linears = tuple(attn + mlp + lm_head)
    norms_per_layer = 4 if mt == "gemma2" else 2
    fam = {
        "embed": vocab * h,
        "attn": sum(l.params for l in attn),
        "mlp": sum(l.params for l in mlp if l.family == "mlp"),
        "experts": sum(l.params for l in mlp if l.family == "experts"),
        "router": L * experts * h,
        "norm": (norms_per_layer * L + 1) * h,
        "lm_head": 0 if tied else vocab * h,
    }
    return ModelSpec(
        name=name, source=source, model_type=mt, hidden_size=h, intermediate_size=inter, num_layers=L,
        num_heads=heads, num_kv_heads=kv, head_dim=hd, vocab_size=vocab,
        max_positions=int(cfg.get("max_position_embeddings") or 0), tied_embeddings=tied, linears=linears,
        params_by_family=fam, num_experts=experts, experts_per_token=int(cfg.get("num_experts_per_tok") or 0),
        config=cfg,
    )


def spec_from_config(name: str, source: str, cfg: dict, path: str | None = None) -> ModelSpec:
    """config.json contents → ModelSpec (analytic when known, meta device otherwise)."""
    mt = cfg.get("model_type")
    if not mt:
        raise RankwiseError(f"{name}: config.json has no model_type", "is this a transformers model config?")
    if mt in ANALYTIC:
        try:
            spec = _analytic(name, source, cfg)
        except KeyError as e:
            raise RankwiseError(f"{name}: config.json lacks {e.args[0]!r}", "is the config complete?") from None
    else:
        from .meta import read_on_meta  # imports torch: only for architectures we cannot compute

        spec = read_on_meta(name, source, cfg)
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
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise RankwiseError(f"cannot read {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise RankwiseError(f"{path}:{e.lineno}: not valid JSON: {e.msg}", "is this a model's config.json?") from None
    if not isinstance(data, dict):
        raise RankwiseError(f"{path}: expected a JSON object", "is this a model's config.json?")
    if "text_config" in data and "hidden_size" not in data and isinstance(data["text_config"], dict):
        data = {**data["text_config"], "model_type": data["text_config"].get("model_type", data.get("model_type"))}
    return data


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
    found = catalog.lookup(name)
    if found:
        key, cfg = found
        return spec_from_config(key, "catalog", cfg)
    if "/" in name and not name.startswith((".", "/", "~")):
        snap = _cached_snapshot(name)
        if snap:
            return spec_from_config(name, "hf-cache", _read_config(snap / "config.json", name), str(snap))
    looks_like_path = name.startswith((".", "/", "~")) or name.endswith(".json")
    names = list(catalog.CATALOG)
    near = closest(name.lower().split("/")[-1], names, 3)
    if looks_like_path:
        raise RankwiseError(f"model path not found: {name}", "check the path; it must hold config.json")
    hint = (f"closest catalog names: {', '.join(near)}" if near else f"catalog: {', '.join(names)}")
    hint += "; a local folder or a model already in the Hugging Face cache also works (nothing is downloaded)"
    raise RankwiseError(f"unknown model {name!r}", hint)
