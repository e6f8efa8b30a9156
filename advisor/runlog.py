"""A run's event log as the run doctor reads it: the series (`Run`, `Point`) and their statistics.

`read_run(events, cfg)` takes the events as `trainer/events.py` reads them (dicts) or as its
typed classes (attributes; `field_of` reads either). A resumed run (or an OOM retry) logs its
steps again from its checkpoint: the later log wins. The reader drops a non-finite number, so
a `step` event without its `loss` (the writer always writes one) reads as a NaN/Inf loss, and
one without the `grad_norm` earlier steps had as a NaN/Inf gradient norm.

Noise is measured on the run itself, never assumed: σ of the logged loss is the robust spread
of its step-to-step differences (1.4826·MAD/√2: the MAD ignores spikes and, taken around the
median difference, the falling trend; a difference of two noisy values has √2 times their
spread). Pure: no torch, no file I/O.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Point:
    step: int
    loss: float  # NaN when the log holds no finite loss for this step
    grad_norm: float | None
    lr: float | None
    tokens_per_s: float | None
    peak_mem: int | None


@dataclass(frozen=True)
class Run:
    """What the rules read, computed once from the events."""

    points: tuple[Point, ...]
    evals: tuple[tuple[int, float], ...]
    device: str | None = None
    device_total_bytes: int | None = None
    max_steps: int | None = None
    method: str | None = None
    ended: bool = False  # an end event, or the last logged step reached max_steps
    trained_share: float | None = None  # supervised / training tokens, when the start event says
    cfg: Any = None  # the run's RunConfig, for concrete patches
    recorded: tuple = ()  # the `diagnosis` events the live run wrote (dicts or typed)
    adapters: Any = None  # the `adapters` event (trainer/callbacks.py AdapterUse), when the run wrote one
    steps_per_epoch: float | None = None  # optimizer steps an epoch: step / epoch of the step events (HF's epoch)

    @property
    def losses(self) -> list[float]:
        return [p.loss for p in self.points if math.isfinite(p.loss)]

    def lr(self) -> float | None:
        """The configured peak lr, else the highest logged one."""
        if self.cfg is not None:
            return self.cfg.train.lr
        seen = [p.lr for p in self.points if p.lr]
        return max(seen) if seen else None


# ---------------------------------------------------------------- reading events


def field_of(event, name: str):
    """A field of a dict event (the reader's) or a typed one (trainer/events.py classes)."""
    return event.get(name) if isinstance(event, dict) else getattr(event, name, None)


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def read_run(events, cfg=None) -> Run:
    points: dict[int, Point] = {}
    evals: dict[int, float] = {}
    recorded: dict[str, Any] = {}
    info: dict[str, Any] = {}
    ended = had_grad = False
    for e in events:
        kind = field_of(e, "type")
        if kind == "start":
            info.update({k: field_of(e, k) for k in ("device", "device_total_bytes", "max_steps", "method")})
            sup, tot = _num(field_of(e, "supervised_tokens")), _num(field_of(e, "train_tokens"))
            info["trained_share"] = sup / tot if sup is not None and tot else info.get("trained_share")
            back = field_of(e, "resumed_from_step")
            ended = False
            if back is not None:  # steps after the checkpoint are trained again: the new log wins
                points = {s: p for s, p in points.items() if s <= back}
                evals = {s: v for s, v in evals.items() if s <= back}
        elif kind == "retry":
            back = field_of(e, "from_step") or 0
            points = {s: p for s, p in points.items() if s <= back}
            evals = {s: v for s, v in evals.items() if s <= back}
        elif kind == "step" and isinstance(field_of(e, "step"), int):
            loss, grad = _num(field_of(e, "loss")), _num(field_of(e, "grad_norm"))
            if grad is None and had_grad:
                grad = math.nan  # logged before, missing now: the reader dropped a NaN/Inf
            had_grad = had_grad or grad is not None
            points[field_of(e, "step")] = Point(
                field_of(e, "step"), loss if loss is not None else math.nan, grad,
                _num(field_of(e, "lr")), _num(field_of(e, "tokens_per_s")), field_of(e, "peak_mem_bytes"))
            info["max_steps"] = field_of(e, "max_steps") or info.get("max_steps")
            epoch = _num(field_of(e, "epoch"))
            if epoch and epoch > 0 and field_of(e, "step") > 0:
                info["steps_per_epoch"] = field_of(e, "step") / epoch
        elif kind == "eval" and isinstance(field_of(e, "step"), int) and _num(field_of(e, "eval_loss")) is not None:
            evals[field_of(e, "step")] = _num(field_of(e, "eval_loss"))
        elif kind == "end":
            ended = True
        elif kind == "diagnosis" and isinstance(field_of(e, "code"), str):
            recorded.setdefault(field_of(e, "code"), e)  # the first time each code fired
        elif kind == "adapters" and isinstance(field_of(e, "unused"), dict):
            info["adapters"] = e
    pts = tuple(points[s] for s in sorted(points))
    if pts and info.get("max_steps") and pts[-1].step >= info["max_steps"]:
        ended = True
    return Run(pts, tuple(sorted(evals.items())), info.get("device"), info.get("device_total_bytes"),
               info.get("max_steps"), info.get("method"), ended, info.get("trained_share"), cfg,
               tuple(recorded.values()), info.get("adapters"), info.get("steps_per_epoch"))


# ---------------------------------------------------------------- statistics


def noise(values: list[float]) -> float:
    """σ of a series' noise from its step-to-step differences (robust; see the module docstring)."""
    diffs = [b - a for a, b in zip(values, values[1:])]
    if len(diffs) < 2:
        return 0.0
    mid = statistics.median(diffs)
    return 1.4826 * statistics.median(abs(d - mid) for d in diffs) / math.sqrt(2)


def window_fall(values: list[float]) -> tuple[float, float, float, float]:
    """(first-window median, last-window median, the fall between them, its standard error)."""
    w = max(3, len(values) // 4)
    first, last = statistics.median(values[:w]), statistics.median(values[-w:])
    se = 1.2533 * noise(values) * math.sqrt(2 / w)  # the median's standard error is 1.2533·σ/√w
    return first, last, first - last, se


def slope(xs: list[float], ys: list[float]) -> float:
    """Theil–Sen slope: the median of the pairwise slopes (one wild point cannot tilt it)."""
    pairs = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]]
    return statistics.median(pairs) if pairs else 0.0


def rounded(x, digits: int = 4):
    """A number for `evidence`: rounded, and JSON-safe ("nan"/"inf" for the non-finite)."""
    if x is None or isinstance(x, (int, bool)):
        return x
    if not math.isfinite(x):
        return str(x)
    return float(f"{x:.{digits}g}")


def train_near(run: Run, step: int, k: int = 2, centred: bool = True) -> float | None:
    """The train loss at `step`: the median of the 2k+1 finite logged losses centred on it (one
    logged loss is noisy; a window ending at the step lags a falling curve and would make the
    eval/train gap look like it grows). None until the k losses after it are logged, unless the
    run has ended (then the window is cut at its end). `centred=False`: the k+1 up to the step
    (known at once, for a rule that must not wait)."""
    pts = [p for p in run.points if math.isfinite(p.loss)]
    i = next((n for n, p in enumerate(pts) if p.step >= step), None)
    if not centred:
        before = [p.loss for p in pts if p.step <= step][-(k + 1):]
        return statistics.median(before) if before else None
    if i is None or (i + k >= len(pts) and not run.ended):
        return None
    return statistics.median(p.loss for p in pts[max(0, i - k):i + k + 1])
