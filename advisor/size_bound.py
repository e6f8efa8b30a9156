"""A bounded fit answer for a model known only by the size its name states.

`rankwise check` meets model ids outside the index (`Apertus-8B-Instruct-2509`). Without the
shape there is no estimate, but the name says how many parameters there are (roughly), and the
peak of a LoRA/QLoRA run is mostly set by that count. So:

1. `name_size(name)` reads a parameter count from the id's last path part: `7B`, `1.5B`,
   `450M`, `8x7B` (8 experts of a 7B: the nominal total), `122B-A10B` (MoE: 122B total, 10B
   active). Not read as sizes: effective-size markers (gemma-3n `E2B`), versions (`Llama-3.2`,
   `PaddleOCR-VL-1.6`), dates (`2409`), context lengths (`-8k`), training tokens (`-3T`), a size
   glued to letters or digits (`r7b`, `7b1`), an active count alone (`MoE-A2.7B`), a size next
   to an expert count (`Llama-4-Scout-17B-16E`: 17B is the active count) and names with two
   total sizes (`OLMoE-1B-7B`). No size: no answer, as before; nor for a checkpoint shipped quantized
   (`-GPTQ`, `-AWQ`, `-FP8`, `-bnb-4bit`: `PREQUANTIZED`), whose weights the stand-ins do not store alike.
2. `bound(...)` estimates the config on stand-ins: the models of the index and the catalog
   whose shapes are computed analytically (no torch: `check` stays fast), of the same kind
   (MoE when the name says experts or an active count, else dense), whose size as named lies
   within a factor `BAND` of this name's. Each stand-in goes through `fit.assess`, the path a
   resolved model takes (method, GPUs, strategy, batch, sequence, checkpointing, optimizer).
   Its weight components (`WEIGHT_PARTS`: bytes per parameter times parameters) are scaled by
   this name's size over the stand-in's named size, so a name carries the stand-in's own
   rounding (Qwen2.5-7B holds 7.6B): everything else — adapter, optimizer states, activations,
   logits, gather buffers, allocator — is the stand-in's own, from its real shape. The answer
   is the lowest and highest of those peaks.
3. The verdict (`fit.verdict`) at both ends: the same at both, over `MIN_STAND_INS` architectures at
   least → that verdict, approximate; different → undecided (the GPU's limit lies inside the range:
   the shape decides). With one architecture only "won't fit", and only when its weights alone exceed
   the GPU. `auto_method` resolves `method: auto` on the range as fit.assess does on one estimate.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

from . import fit
from .units import gib, human_count

if TYPE_CHECKING:
    from .config import RunConfig
    from .hardware import Hardware
    from .spec import ModelSpec

# Stand-ins lie within a factor √2 of the name's size (0.71x–1.41x, a factor 2 wide). Families step
# in factors of about 2 to 2.5 (the index's Qwen2.5: 0.5, 1.5, 3, 7, 14, 32, 72B; Llama 3: 1, 3, 8, 70B;
# Qwen3: 0.6, 1.7, 4, 8, 14, 32B): the band takes the sizes a name could round to and the next size
# of a family only where the steps are finer (7B and 9B for 8B), not the next tier (14B for 8B).
BAND = (2 ** -0.5, 2 ** 0.5)
# The components that are bytes per parameter times parameters (memory.py `_weights`, per GPU when sharded).
WEIGHT_PARTS = ("base_weights", "quant_constants", "unquantized_weights")
# A range needs two architectures: one stand-in is a point, its shape no more likely than another's. With
# one, only "won't fit" is said, and only when its weights alone (scaled) exceed the GPU.
MIN_STAND_INS = 2

_UNIT = {"b": 1e9, "m": 1e6}
_EDGE_L = r"(?<![A-Za-z0-9.])"  # a size starts a token: not glued to a letter (E2B, r7b), digit or version dot
_EDGE_R = r"(?![A-Za-z0-9])"  # and ends it: 7b1, 7Bx are not sizes
_NUM = r"(\d+(?:\.\d+)?)"
EXPERTS_X = re.compile(_EDGE_L + r"(\d+)[xX]" + _NUM + r"([Bb])" + _EDGE_R)  # 8x7B
ACTIVE = re.compile(_EDGE_L + r"[Aa]" + _NUM + r"([BbMm])" + _EDGE_R)  # A10B, a800m
EXPERT_COUNT = re.compile(_EDGE_L + r"\d+[Ee]" + _EDGE_R)  # 16E, 128E (Llama 4: the size is the active one)
SIZE = re.compile(_EDGE_L + _NUM + r"([BbMm])" + _EDGE_R)
# A checkpoint shipped quantized (GPTQ, AWQ, FP8, bitsandbytes, GGUF, ...) stores its weights in a format the
# stand-ins (estimated as the method loads an unquantized base) do not: no bound is given for it.
PREQUANTIZED = re.compile(r"(?i)(?<![a-z])(gptq|awq|gguf|exl2|mlx|fp8|int4|int8|w4a16|w8a8|nf4|bnb|\d+bit)(?![a-z])")


@dataclass(frozen=True)
class NameSize:
    """A parameter count read from a model id."""

    total: float  # parameters (8x7B: 56e9, the nominal total)
    moe: bool  # the name says experts (8x7B) or an active count (A10B)
    active: float | None = None  # A10B
    text: str = ""  # the tokens read: "122B-A10B"
    nominal: bool = False  # experts x size (8x7B): more than the total, as experts share attention and embeddings

    def describe(self) -> str:
        """`70B, dense` · `122B-A10B: 122B total, 10B active, MoE` · `8x7B: 56B nominal, MoE`."""
        if not self.moe:
            return f"{self.text}, dense"
        what = "nominal" if self.nominal else "total"
        active = f", {human_count(self.active)} active" if self.active else ""
        return f"{self.text}: {human_count(self.total)} {what}{active}, MoE"


def _count(num: str, unit: str) -> float:
    return float(num) * _UNIT[unit.lower()]


def name_size(name: str) -> NameSize | None:
    """The parameter count the id's last path part states, or None when it states none (or two)."""
    base = str(name).strip().rstrip("/").rsplit("/", 1)[-1]
    if EXPERT_COUNT.search(base):
        return None  # Llama-4-Scout-17B-16E: 17B active of 109B; the total is not in the name
    experts = EXPERTS_X.findall(base)
    rest = EXPERTS_X.sub(" ", base)
    actives = ACTIVE.findall(rest)
    rest = ACTIVE.sub(" ", rest)
    sizes = SIZE.findall(rest)
    if len(experts) + len(sizes) != 1 or len(actives) > 1:
        return None  # no size, an active count alone (Qwen1.5-MoE-A2.7B) or two sizes (OLMoE-1B-7B)
    active = _count(*actives[0]) if actives else None
    if experts:
        n, num, unit = experts[0]
        total, text = int(n) * _count(num, unit), f"{n}x{num}{unit}"
    else:
        total, text = _count(*sizes[0]), "".join(sizes[0])
    if active is not None:
        if active >= total:
            return None
        text += f"-A{actives[0][0]}{actives[0][1]}"
    return NameSize(total, bool(experts) or active is not None, active, text, bool(experts)) if total > 0 else None


# ------------------------------------------------------------------ stand-ins


@dataclass(frozen=True)
class Candidate:
    spec: "ModelSpec"
    said: NameSize | None  # the size its name states

    def named(self, size: NameSize) -> float:
        """Its size as a name like `size` would state it: its name's, when written the same way (both
        experts x size, or both a total), else its true total."""
        if self.said is not None and self.said.nominal == size.nominal:
            return self.said.total
        return float(self.spec.total_params)


@lru_cache(maxsize=1)
def _pool() -> tuple[Candidate, ...]:
    """Every analytically read model of the index and the catalog, one per distinct shape."""
    from . import catalog, model_index
    from .families import is_analytic
    from .model import spec_from_config

    entries = [(key, "catalog", cfg) for key, cfg in catalog.CATALOG.items()]
    entries += [(g["ids"][0], "index", g["config"]) for g in model_index.groups()]
    out, seen = [], set()
    for name, source, cfg in entries:
        if not is_analytic(cfg.get("model_type", ""), cfg):
            continue
        spec = spec_from_config(name, source, dict(cfg))
        shape = (spec.model_type, spec.num_layers, spec.hidden_size, spec.intermediate_size, spec.num_heads,
                 spec.num_kv_heads, spec.num_experts, spec.vocab_size // 1024)  # CodeLlama's 32016 is Llama 2's 32000
        if shape in seen:
            continue
        seen.add(shape)
        out.append(Candidate(spec, name_size(name)))
    return tuple(out)


def stand_ins(size: NameSize) -> list[Candidate]:
    """The pool's models of the same kind whose named size is within BAND of `size`, smallest first."""
    lo, hi = BAND[0] * size.total, BAND[1] * size.total
    found = [c for c in _pool() if c.spec.is_moe == size.moe and lo <= c.named(size) <= hi]
    return sorted(found, key=lambda c: (c.named(size), c.spec.total_params))


# ------------------------------------------------------------------ the bound


@dataclass(frozen=True)
class StandIn:
    name: str
    params: int  # its true total
    named: float
    scale: float  # this name's size / its named size: the factor on its weight components
    peak_bytes: int  # the config's peak per GPU on it, weights scaled
    method: str
    weight_bytes: int = 0  # of which its weights per GPU, scaled


@dataclass(frozen=True)
class Bound:
    """The peak per GPU between `low_bytes` and `high_bytes`; `verdict` when both ends agree."""

    model: str
    size: NameSize
    stand_ins: tuple[StandIn, ...]
    gpu_bytes: int | None
    low_bytes: int | None = None
    high_bytes: int | None = None

    @property
    def architectures(self) -> int:
        return len({s.name for s in self.stand_ins})

    @property
    def weights_alone_too_big(self) -> bool:
        """Every stand-in's weights alone (scaled to the name's size) exceed the GPU."""
        return bool(self.stand_ins) and self.gpu_bytes is not None and \
            min(s.weight_bytes for s in self.stand_ins) > self.gpu_bytes

    @property
    def verdict(self) -> str | None:
        """fits | tight | wont-fit | no-gpu when both ends of the range agree (over MIN_STAND_INS
        architectures, or the weights alone exceed the GPU); None: undecided."""
        if self.weights_alone_too_big:
            return "wont-fit"
        if self.architectures < MIN_STAND_INS:
            return "no-gpu" if self.stand_ins and self.gpu_bytes is None else None
        lo, hi = fit.verdict(self.low_bytes, self.gpu_bytes), fit.verdict(self.high_bytes, self.gpu_bytes)
        return lo if lo == hi else None

    @property
    def decided(self) -> bool:
        return self.verdict in ("fits", "tight", "wont-fit")

    def why_undecided(self) -> str:
        """Why the name's size gives no verdict (for `unchecked_reason`)."""
        if not self.stand_ins:
            return (f"no indexed {'MoE' if self.size.moe else 'dense'} model of about its name's size "
                    f"({self.size.text}) to stand in")
        if self.architectures < MIN_STAND_INS:
            return (f"its name's size ({self.size.text}) has one stand-in ({self.stand_ins[0].name}, "
                    f"{self.range_text()}), too few to bound what the shape adds")
        return (f"its name's size ({self.size.text}) puts the peak at {self.range_text()}, across the GPU's "
                "limit: cannot tell without the shape")

    def range_text(self) -> str:
        return f"{gib(self.low_bytes):.1f}–{gib(self.high_bytes):.1f} GiB"

    def basis(self) -> str:
        """Where the range comes from, in words."""
        kind = "MoE" if self.size.moe else "dense"
        if not self.stand_ins:
            lo, hi = (human_count(b * self.size.total) for b in BAND)
            return (f"approximate from the name's size ({self.size.describe()}), but no analytically read "
                    f"{kind} model of the index is named {lo}–{hi} to stand in")
        names = list(dict.fromkeys(s.name for s in self.stand_ins))
        listed = ", ".join(names) if len(names) <= 4 else f"{', '.join(names[:2])}, … {names[-1]}"
        sizes = [s.params for s in self.stand_ins]
        return (f"approximate from the name's size ({self.size.describe()}): the config estimated on {len(names)} "
                f"indexed {kind} model{'s' if len(names) > 1 else ''} of "
                f"{human_count(min(sizes))}–{human_count(max(sizes))} ({listed}), their weights scaled to "
                f"{human_count(self.size.total)}")

    def to_dict(self) -> dict:
        return {"size": self.size.text, "total_params": self.size.total, "active_params": self.size.active,
                "moe": self.size.moe, "verdict": self.verdict, "decided": self.decided,
                "low_gib": round(gib(self.low_bytes), 3) if self.low_bytes is not None else None,
                "high_gib": round(gib(self.high_bytes), 3) if self.high_bytes is not None else None,
                "band": [round(b, 3) for b in BAND], "basis": self.basis(), "text": finding_text(self),
                "stand_ins": [{"name": s.name, "params": s.params, "named": s.named, "scale": round(s.scale, 3),
                               "peak_gib": round(gib(s.peak_bytes), 3), "weights_gib": round(gib(s.weight_bytes), 3),
                               "method": s.method} for s in self.stand_ins]}


Match = Callable[[list[str]], list[str]]


def _names_in(cfg: "RunConfig", names: list[str]) -> list[str] | None:
    """The config's target list as the stand-in has it; None for a named set (it resolves on any model)."""
    from .spec import TARGET_SETS

    t = cfg.lora.target_modules
    if isinstance(t, str) and t in TARGET_SETS:
        return None
    items = [s.strip() for s in t.split(",")] if isinstance(t, str) else list(t)
    return [n for n in dict.fromkeys(items) if n in names]


def _configs(spec: "ModelSpec", cfg: "RunConfig", match: Match | None) -> list["RunConfig"]:
    """The config on this stand-in: its target list as peft would match it on the stand-in's linears; a list
    that matches none of them (another architecture's names) is bracketed by `minimal` and `all-linear`."""
    from .config import with_values

    names = spec.adaptable_names()
    hit = match(names) if match is not None else _names_in(cfg, names)
    if hit is None:
        return [cfg]
    if hit:
        return [with_values(cfg, {"lora.target_modules": hit})]
    return [with_values(cfg, {"lora.target_modules": s}) for s in ("minimal", "all-linear")]


def _weights(f: fit.Fit, scale: float) -> int:
    return round(scale * sum(f.estimate.components.get(k, 0) for k in WEIGHT_PARTS))


def _scaled_peak(f: fit.Fit, scale: float) -> int:
    return f.estimate.peak_bytes + _weights(f, scale) - _weights(f, 1.0)


def _bounded(model: str, hw: "Hardware | None", rows_of: Callable[[Candidate, float, float], list[StandIn]]) \
        -> Bound | None:
    """The peak per GPU bounded from the size `model`'s name states, `rows_of(candidate, named, scale)` giving each
    stand-in's rows (its size as its name states it, and the name's size over it); None when the name states none."""
    size = name_size(model)
    if size is None or PREQUANTIZED.search(str(model).rsplit("/", 1)[-1]):
        return None
    gpu_bytes = hw.gpu_bytes if hw is not None and hw.has_gpu else None
    rows = [r for c in stand_ins(size) for r in rows_of(c, c.named(size), size.total / c.named(size))]
    if not rows:
        return Bound(model, size, (), gpu_bytes)
    peaks = [r.peak_bytes for r in rows]
    unique = tuple({(r.name, r.peak_bytes): r for r in rows}.values())
    return Bound(model, size, unique, gpu_bytes, min(peaks), max(peaks))


def bound(model: str, cfg: "RunConfig", hw: "Hardware | None", method: str,
          match: Match | None = None) -> Bound | None:
    """The config's peak per GPU bounded from the size `model`'s name states; None when it states none.

    `method` is a resolved method name (not auto). `match`: the file's target modules as peft would match
    them on a list of linear names (a foreign file's regex), else the config's own list is intersected."""
    def rows_of(c: Candidate, named: float, scale: float) -> list[StandIn]:
        judged = (fit.assess(c.spec, one, hw, method=method) for one in _configs(c.spec, cfg, match))
        return [StandIn(c.spec.name, c.spec.total_params, named, scale, _scaled_peak(f, scale), f.method,
                        _weights(f, scale)) for f in judged]

    return _bounded(model, hw, rows_of)


def full_bound(model: str, floor_of: Callable, hw: "Hardware | None") -> Bound | None:
    """A full fine-tune's peak per GPU bounded from the size `model`'s name states: `floor_of(spec)` (a
    foreign/full_ft.Floor) on each stand-in, its weights, gradients and optimizer states scaled to the name's size
    (the "weights" a verdict may rest on alone); None when the name states no size."""
    def rows_of(c: Candidate, named: float, scale: float) -> list[StandIn]:
        floor = floor_of(c.spec)
        held = round(scale * floor.bytes)
        peak = (floor.peak if floor.peak is not None else floor.bytes) - floor.bytes + held
        return [StandIn(c.spec.name, c.spec.total_params, named, scale, peak, "full", held)]

    return _bounded(model, hw, rows_of)


def auto_method(model: str, cfg: "RunConfig", hw: "Hardware | None",
                match: Match | None = None) -> tuple[str, str, Bound] | None:
    """`method: auto` for a model known by its name's size, as fit.assess resolves it for a known one: the
    table's first method (LoRA) when its whole range fits with headroom, else the leanest (QLoRA); with no
    GPU, by the name's size (fit.CPU_LORA_MAX_PARAMS). None when the name states no size."""
    from .methods import DEFAULT, LEANEST, METHODS

    first, lean = METHODS[DEFAULT], METHODS[LEANEST]
    b = bound(model, cfg, hw, first.name, match)
    if b is None:
        return None
    if b.gpu_bytes is None:
        big = b.size.total > fit.CPU_LORA_MAX_PARAMS
        pick = lean if big else first
        return (pick.name, f"method auto: no GPU found or declared: {pick.label}, as the name's "
                f"{human_count(b.size.total)} parameters are {'large' if big else 'small'}",
                b if pick is first else bound(model, cfg, hw, lean.name, match))
    if b.verdict == "fits":
        return first.name, (f"method auto: {first.label}'s range ({b.range_text()}, approximate) fits "
                            f"{gib(b.gpu_bytes):.0f} GiB with headroom"), b
    lb = bound(model, cfg, hw, lean.name, match)
    said = b.range_text() if b.stand_ins else "no range"
    return lean.name, (f"method auto: {first.label} ({said}, approximate) is not sure to fit "
                       f"{gib(b.gpu_bytes):.0f} GiB with headroom; {lean.label}"), lb


def finding_text(b: Bound) -> str:
    """One line: the range, the verdict or why there is none, the basis."""
    if not b.stand_ins:
        return b.basis()
    have = f"{gib(b.gpu_bytes):.1f} GiB per GPU" if b.gpu_bytes else "no GPU"
    v = b.verdict
    if v is None and b.architectures < MIN_STAND_INS:
        return (f"{b.range_text()} on {have} from one stand-in: one architecture is no range, and its weights "
                f"alone fit, so it cannot tell (--fetch-config or --model); {b.basis()}")
    if v == "wont-fit" and b.weights_alone_too_big:
        held = ("the weights, their gradients and optimizer states" if all(s.method == "full" for s in b.stand_ins)
                else "the weights")
        return f"{held} alone exceed {have} ({b.range_text()} in all); {b.basis()}"
    if v is None:
        return (f"between {b.range_text()} on {have}: cannot tell without the shape "
                f"(--fetch-config or --model); {b.basis()}")
    return f"{b.range_text()} on {have}; {b.basis()}"


__all__ = ["BAND", "WEIGHT_PARTS", "NameSize", "Bound", "StandIn", "name_size", "stand_ins", "bound", "auto_method",
           "finding_text"]
