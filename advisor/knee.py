"""Reading a rank sweep: per-rank curves → overfitting and stability signals, the knee, a rank.

Pure functions over plain data (no torch, no optuna): the sweep (trainer/sweep.py) feeds
them the curves it read from each trial's event log, the tests feed them synthetic ones.

- The **knee** is the smallest tested rank r after which doubling stops paying: for every
  larger tested rank r', validation loss improves by less than `threshold` (default 2%) per
  doubling, i.e. (v(r) - v(r')) / v(r) < threshold · log2(r'/r). Checking every larger rank,
  not only 2r, keeps one noisy neighbour from hiding a later gain. A rank with no larger
  tested rank cannot be a knee: nothing says doubling it would not help.
- **Overfitting signal** and **stability** are the run doctor's (advisor/doctor.py), run on
  each trial's curve, so the sweep and `rankwise doctor` never disagree: a trial overfits when
  the doctor says `overfitting` (eval loss up at consecutive evaluations while the train loss
  falls) and is unstable when it says `loss-spikes`, `grad-explosion` or `loss-nan`.
- **Roughness**, shown beside it: the variance of the step-to-step changes around their own
  trend (second differences, scaled to the loss's noise level relative to its mean). A
  smoothly falling curve is not "rough"; a jagged one is. Fewer than MIN_STEPS logged losses:
  not measured.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from . import doctor

DEFAULT_THRESHOLD = 0.02  # the default: doubling the rank must buy >= 2% validation loss
ROUGH = 0.15  # step-to-step noise above 15% of the mean loss: a rough curve (a judgment, not a measurement)
MIN_STEPS = 8  # fewer logged losses than this: too short to measure roughness
UNSTABLE = ("loss-nan", "loss-spikes", "grad-explosion")  # the doctor's codes that make a trial unstable


@dataclass(frozen=True)
class Curve:
    """One trial: (step, loss) from step events, (step, eval_loss) from eval events."""
    rank: int
    status: str  # complete | pruned | failed | skipped | running | waiting
    train: tuple[tuple[int, float], ...] = ()
    evals: tuple[tuple[int, float], ...] = ()
    note: str | None = None
    codes: tuple[str, ...] | None = None  # the doctor's codes from the trial's whole event log, when read


@dataclass(frozen=True)
class RankResult:
    rank: int
    status: str
    val_loss: float | None  # at the common step (the same number of steps for every rank)
    best_val_loss: float | None
    final_val_loss: float | None  # the trial's own last eval
    train_loss: float | None
    gap_start: float | None
    gap_end: float | None
    gap_growing: bool
    spikes: int
    roughness: float | None
    stable: bool
    note: str | None = None
    diagnoses: tuple[str, ...] = ()  # the run doctor's codes for this trial

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Analysis:
    results: tuple[RankResult, ...]
    common_step: int | None
    knee_rank: int | None
    recommended_rank: int | None
    reason: str
    threshold: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"recommended_rank": self.recommended_rank, "reason": self.reason, "knee_rank": self.knee_rank,
                "threshold": self.threshold, "common_step": self.common_step, "notes": list(self.notes),
                "ranks": [r.to_dict() for r in self.results]}


# ------------------------------------------------------------------ one curve


def train_loss_near(train: tuple[tuple[int, float], ...], step: int, window: int = 3) -> float | None:
    """Mean of the last `window` train losses at or before `step` (a single step is noisy)."""
    before = [loss for s, loss in train if s <= step]
    if not before:
        return None
    tail = before[-window:]
    return sum(tail) / len(tail)


def gaps(curve: Curve) -> list[float]:
    out = []
    for step, ev in curve.evals:
        tr = train_loss_near(curve.train, step)
        if tr is not None:
            out.append(ev - tr)
    return out


def diagnoses(curve: Curve) -> dict[str, doctor.Diagnosis]:
    """The run doctor's diagnoses of one trial, from its curve (the events the curve came from)."""
    done = curve.status == "complete"
    last = curve.train[-1][0] if curve.train else None
    events = [{"type": "start", "max_steps": last if done else None}]
    events += [{"type": "step", "step": s, "loss": loss} for s, loss in curve.train]
    events += [{"type": "eval", "step": s, "eval_loss": v} for s, v in curve.evals]
    if done:
        events.append({"type": "end", "status": "finished"})
    return {d.code: d for d in doctor.diagnose(events)}


def gap_growing(curve: Curve) -> bool:
    """Overfitting signal: the doctor's `overfitting`."""
    return "overfitting" in diagnoses(curve)


def _spikes(found: dict) -> int:
    if "loss-spikes" not in found:
        return 0
    d = found["loss-spikes"]
    return int(d.evidence.get("spikes", 1)) if d is not None else 1


def stability(train: tuple[tuple[int, float], ...]) -> tuple[int, float | None]:
    """(spikes as the doctor counts them, roughness); roughness None when too short to measure."""
    losses = [loss for _, loss in train]
    spikes = _spikes(diagnoses(Curve(0, "running", tuple(train))))
    if len(losses) < MIN_STEPS:
        return spikes, None
    deltas = [b - a for a, b in zip(losses, losses[1:])]
    second = [b - a for a, b in zip(deltas, deltas[1:])]  # a smooth trend has near-zero second differences
    mean = sum(losses) / len(losses)
    # for white noise of std σ on the loss, second differences have std σ·√6: this is σ / mean loss
    rough = statistics.pstdev(second) / math.sqrt(6) / abs(mean) if mean else None
    return spikes, rough


def eval_at(curve: Curve, step: int | None) -> float | None:
    """The eval loss at `step` (the last eval at or before it)."""
    if step is None:
        return curve.evals[-1][1] if curve.evals else None
    before = [e for s, e in curve.evals if s <= step]
    return before[-1] if before else None


def result(curve: Curve, common_step: int | None) -> RankResult:
    found = diagnoses(curve)  # from the curve; the whole log (grad norms, NaN) says more when the sweep read it
    if curve.codes is not None:
        found = {c: found.get(c) for c in curve.codes}
    rough = stability(curve.train)[1]
    g = gaps(curve)
    evals = [e for _, e in curve.evals]
    at = common_step if curve.status == "complete" else None
    return RankResult(
        rank=curve.rank, status=curve.status, val_loss=eval_at(curve, at) if curve.evals else None,
        best_val_loss=min(evals) if evals else None, final_val_loss=evals[-1] if evals else None,
        train_loss=curve.train[-1][1] if curve.train else None,
        gap_start=g[0] if g else None, gap_end=g[-1] if g else None, gap_growing="overfitting" in found,
        spikes=_spikes(found), roughness=rough, stable=not set(UNSTABLE) & set(found), note=curve.note,
        diagnoses=tuple(sorted(found)))


# ------------------------------------------------------------------ across ranks


def common_step(curves: list[Curve]) -> int | None:
    """The last eval step every complete trial reached: ranks are compared at the same step."""
    lasts = [c.evals[-1][0] for c in curves if c.status == "complete" and c.evals]
    return min(lasts) if lasts else None


def per_doubling(v_small: float, v_large: float, r_small: int, r_large: int) -> float:
    """Relative improvement of validation loss per doubling of the rank."""
    return (v_small - v_large) / abs(v_small) / math.log2(r_large / r_small)


def knee(points: list[tuple[int, float]], threshold: float = DEFAULT_THRESHOLD) -> int | None:
    """The smallest rank after which every larger rank improves < threshold per doubling."""
    pts = sorted(points)
    for i, (r, v) in enumerate(pts):
        larger = pts[i + 1:]
        if larger and all(per_doubling(v, v2, r, r2) < threshold for r2, v2 in larger):
            return r
    return None


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def explain(points: list[tuple[int, float]], k: int | None, threshold: float) -> str:
    pts = sorted(points)
    if len(pts) < 2:
        r, _ = pts[0]
        return f"only r={r} finished, so there is no knee to measure; r={r} by default"
    if k is None:
        (r1, v1), (r2, v2) = pts[-2], pts[-1]
        return (f"no knee in the tested ranks: going from r={r1} to r={r2} still improved validation loss "
                f"{_pct(per_doubling(v1, v2, r1, r2))} per doubling (threshold {_pct(threshold)}); "
                f"r={r2}, the largest tested, is recommended and a higher rank may help further")
    i = [r for r, _ in pts].index(k)
    v = pts[i][1]
    nxt_r, nxt_v = pts[i + 1]
    gain_next = per_doubling(v, nxt_v, k, nxt_r)
    change = (v - nxt_v) / abs(v)
    moved = f"lowered validation loss by only {_pct(change)}" if change >= 0 else \
        f"made validation loss {_pct(-change)} worse"
    words = (f"r={k} is the knee: going to r={nxt_r} {moved} "
             f"({_pct(gain_next)} per doubling, under the {_pct(threshold)} threshold)")
    if len(pts) > i + 2:
        words += f", and no larger rank up to r={pts[-1][0]} beat that threshold either"
    if i > 0:
        pr, pv = pts[i - 1]
        words += f"; r={pr}→r={k} still improved {_pct(per_doubling(pv, v, pr, k))} per doubling"
    return words


def analyse(curves: list[Curve], threshold: float = DEFAULT_THRESHOLD) -> Analysis:
    if not 0 < threshold < 1:
        raise ValueError(f"threshold {threshold} must be between 0 and 1")
    step = common_step(curves)
    results = tuple(sorted((result(c, step) for c in curves), key=lambda r: r.rank))
    points = [(r.rank, r.val_loss) for r in results if r.status == "complete" and r.val_loss is not None]
    notes = []
    for r in results:
        if r.status == "complete" and r.gap_growing:
            notes.append(f"r={r.rank}: validation loss rose at consecutive evaluations while the train loss fell "
                         f"(overfitting, as `rankwise doctor` says)")
        if r.status == "complete" and not r.stable:
            codes = ", ".join(c for c in r.diagnoses if c in UNSTABLE)
            notes.append(f"r={r.rank}: unstable loss curve ({codes}" + (f", {r.spikes} spike(s)" if r.spikes else "")
                         + ")")
        if r.status == "pruned":
            notes.append(f"r={r.rank}: pruned early (clearly worse than the best trial at the same step); "
                         f"not used for the knee")
        if r.status in ("skipped", "failed") and r.note:
            notes.append(f"r={r.rank}: {r.status}: {r.note}")
    if not points:
        return Analysis(results, step, None, None, "no trial finished: nothing to recommend", threshold, tuple(notes))
    k = knee(points, threshold)
    recommended = k if k is not None else max(points)[0]
    reason = explain(points, k, threshold)
    pruned = [r.rank for r in results if r.status == "pruned"]
    if pruned:
        reason += (f"; r={', r='.join(map(str, pruned))} stopped early as clearly worse than the best rank "
                   f"at the same step")
    rec = next(r for r in results if r.rank == recommended)
    if rec.gap_growing:
        reason += f"; note r={recommended} shows an overfitting signal: consider fewer steps or more dropout"
    return Analysis(results, step, k, recommended, reason, threshold, tuple(notes))


def refine_ranks(best: int, tested: list[int]) -> list[int]:
    """Ranks around `best` not tested yet: best 16 → 12, 20, 24 (×0.75, ×1.25, ×1.5)."""
    out = set()
    for f in (0.75, 1.25, 1.5):
        r = max(1, round(best * f))
        if r != best:
            out.add(r)
    return sorted(r for r in out if r not in tested)


def validation_pair(analysis: Analysis) -> list[int]:
    """The two candidates `--validate` trains at full length: the recommended rank and the best
    other finished rank by validation loss."""
    done = sorted((r for r in analysis.results if r.status == "complete" and r.val_loss is not None),
                  key=lambda r: r.val_loss)
    rec = analysis.recommended_rank
    other = next((r.rank for r in done if r.rank != rec), None)
    return sorted(r for r in (rec, other) if r is not None)


def validated_pick(recommended: int, full: dict[int, float], threshold: float = DEFAULT_THRESHOLD) -> int:
    """After full-length runs: keep the recommendation unless the other rank beat it there — a
    smaller rank by anything, a larger one by at least the knee's threshold per doubling."""
    if recommended not in full:
        return min(full, key=full.get) if full else recommended
    v = full[recommended]
    for r, vr in full.items():
        if r == recommended or vr >= v:
            continue
        if r < recommended or per_doubling(v, vr, recommended, r) >= threshold:
            return r
    return recommended
