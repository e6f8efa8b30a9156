"""The run doctor: what is wrong with a run, seen in its event log, and what to change.

`diagnose(events, cfg=None)` reads a run's events — as `trainer/events.py` reads them (dicts) or
as its typed classes — into one `Run` (the series every rule looks at, computed once) and runs
each rule in `RULES` over it. A rule is one small
function: `Run -> Diagnosis | None`. Pure: no torch, no file I/O (the callers read the log).

A diagnosis says where it was first seen (`step`), the numbers that triggered it (`evidence`),
why it happens, the fix in a sentence and `patch`, the dotted RunConfig keys that apply it
(as red flags have; concrete values when `cfg`, the run's config, is given). Severities:
error (the run is wasting its compute), warning (likely a problem), info (worth knowing).

Noise is measured on the run itself, never assumed (advisor/runlog.py reads the events into
series and holds the statistics). A run shorter than a rule needs is not judged by it.
`diagnosis` events the live run recorded are kept when the rules no longer reproduce them
(e.g. a NaN only the live process saw).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from .finding import SEVERITY_ORDER
from .methods import METHODS
from .runlog import Run, field_of, noise, read_run, rounded as _r, slope, train_near, window_fall

# Every code a rule can give, with what it means: `train.stop_on`, the README and the tests read this.
CODES: dict[str, str] = {
    "loss-nan": "the loss or the gradient norm is NaN/Inf",
    "loss-zero-masked": "loss ~0 from the start, or almost no token is trained on: the labels are masked",
    "loss-flat": "the loss has not fallen beyond its own noise",
    "loss-spikes": "logged losses jump far above their recent band",
    "grad-explosion": "the gradient norm grows far beyond its recent band",
    "overfitting": "the eval loss rises for several evaluations while the train loss falls",
    "gap-widening": "the gap between eval and train loss keeps growing",
    "underfitting": "the train loss was still falling steeply when the run ended",
    "throughput-drop": "tokens/s fell well below the run's own earlier rate",
    "memory-creep": "the measured peak memory keeps climbing step after step",
    "adapter-unused": "LoRA adapters got no gradient in the first steps: the model's forward bypasses their modules",
}

# ---------------------------------------------------------------- thresholds (each with its reason)
# loss-zero-masked
ZERO_LOSS = 1e-3  # nats/token: an untrained adapter predicts real text at the base model's loss (>~0.5); this
# low from the first logged step only happens when the loss averages over no token at all (every label -100)
MASKED_SHARE = 0.01  # under 1% of the training tokens carry a label: almost nothing is learned per step
# loss-flat / underfitting
FLAT_MIN_STEPS = 12  # logged losses past warmup (from the first at >= half the peak lr) before "flat" is judged
FLAT_SIGMAS = 3.0  # a fall under 3 standard errors of the two window medians' difference is noise
FLAT_REL = 0.02  # ... or under 2% of the starting loss: real but too small to be learning
UNDERFIT_SHARE = 0.5  # still falling at >= half the run's average rate over its last third: not converged
# loss-spikes / grad-explosion
BAND = 10  # the recent band: the median of the 10 values logged before
NOISE_WINDOW = 50  # σ for a spike from the 50 losses before it: local, as the noise shrinks with the loss
MIN_HISTORY = 5  # values before the band's noise is judged (fewer: the early rule below)
EARLY_SPIKE = 2.0  # in the first steps (2-4 values before): twice the band. The loss of an untrained adapter only
# falls at first; doubling right after the start is divergence (demo-cpu at lr 5: 2.5, 3.4, 7.7, 10.2)
SPIKE_SIGMAS = 6.0  # a logged loss 6σ above the band: batch-to-batch noise of the run itself almost never does it
SPIKE_REL = 0.25  # ... and 25% above it (the sweep's old rule): small spikes in a very quiet loss do not matter
GRAD_JUMP = 10.0  # one grad norm 10x its band (Adam runs have isolated 5x jumps on a hard batch: demo-cpu does)
GRAD_GROWTH, GRAD_RUN = 3.0, 3  # or 3 logged grad norms in a row above 3x the band: growth, not one batch
# overfitting / gap-widening
OVERFIT_RISES = 2  # consecutive eval-loss rises: one rise on a fixed eval set can be one unlucky update
EVAL_RISE = 0.02  # and the eval loss 2% above its best: smaller moves are within the eval's own wobble
# and the best at least OVERFIT_EPOCHS of training back (at most OVERFIT_SHARE of the run, so that a short run can
# still stop and keep its best): patience measured in training, not in evaluations, so that the verdict does not
# depend on how often the run evaluates. Real validation curves have several local minima (Prechelt 1998, §2.1.2);
# at 4 evaluations an epoch, two rises in a row is half an epoch, and the bench (bench/advice_quality.py) saw runs of
# new facts stopped there on a rise of 6% whose loss went on to fall by 40% (0.878 -> 0.514 at r=32, lr 2e-3)
OVERFIT_EPOCHS = 1.0
OVERFIT_SHARE = 0.25
GAP_EVALS = 3  # the gap grew at each of the last 3 evaluations (2 widenings)
GAP_RISE = 0.05  # by 5% of the best eval loss in all
# throughput-drop / memory-creep
TPUT_WINDOW = 8  # logged steps in the recent window (medians: eval/save pauses fall out)
TPUT_SKIP = 2  # the first rates include start-up and the first compile of kernels
TPUT_DROP = 0.5  # the recent median under half the earlier median
MEM_WINDOW = 8  # logged steps whose rises are counted: long enough that one long batch is one rise of eight
MEM_CREEP = 0.10  # the measured peak grew 10% since the first third of the run (past warm-up) ...
MEM_MIN_BYTES = 64 << 20  # ... and by 64 MiB: allocator rounding and RSS noise stay below
MEM_RISES = 0.6  # rising at >= 60% of the recent steps: a climb, not the one longest batch arriving


@dataclass(frozen=True)
class Diagnosis:
    code: str  # one of CODES
    severity: str  # error | warning | info
    step: int | None  # where it was first seen
    message: str  # what was seen, in a line
    why: str
    fix: str
    evidence: dict[str, Any] = field(default_factory=dict)  # the numbers that triggered it
    patch: dict[str, Any] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _from_event(e) -> Diagnosis:
    sev = field_of(e, "severity")
    return Diagnosis(field_of(e, "code"), sev if sev in SEVERITY_ORDER else "warning", field_of(e, "step"),
                     field_of(e, "message") or "", field_of(e, "why") or "", field_of(e, "fix") or "",
                     field_of(e, "evidence") or {}, field_of(e, "patch"))


def _lr_patch(run: Run, factor: float) -> dict:
    """A lower lr: `factor` times the run's, and at most the top of the method's usual band."""
    lr = run.lr()
    if not lr:
        return {}
    method = METHODS.get(run.method or getattr(run.cfg, "method", None) or "")
    top = method.lr_range[1] if method else math.inf
    return {"train.lr": float(f"{min(lr * factor, top):.2g}")}


# ---------------------------------------------------------------- rules


def loss_nan(run: Run) -> Diagnosis | None:
    bad = next((p for p in run.points if not math.isfinite(p.loss)
                or (p.grad_norm is not None and not math.isfinite(p.grad_norm))), None)
    if bad is None:
        return None
    last = next((p for p in reversed(run.points) if p.step < bad.step and math.isfinite(p.loss)), None)
    patch = _lr_patch(run, 0.1)
    cfg = run.cfg
    if cfg is not None and cfg.train.precision == "fp16":
        patch["train.precision"] = "bf16"
    if cfg is not None and not cfg.train.max_grad_norm:
        patch["train.max_grad_norm"] = 1.0
    what = "loss" if not math.isfinite(bad.loss) else "gradient norm"
    return Diagnosis("loss-nan", "error", bad.step, f"the {what} is NaN/Inf at step {bad.step}",
                     "a learning rate too high for the rank/alpha, fp16 overflow, or a bad data row; once the "
                     "adapter's weights hold a NaN every later step is lost",
                     "lower train.lr (about 10x), train in bf16 rather than fp16, keep gradient clipping on "
                     "(train.max_grad_norm: 1.0); resume from the last checkpoint before the NaN",
                     {"loss": _r(bad.loss), "grad_norm": _r(bad.grad_norm), "lr": _r(bad.lr),
                      "last_finite_loss": _r(last.loss) if last else None,
                      "last_finite_step": last.step if last else None},
                     patch or None)


def loss_zero_masked(run: Run) -> Diagnosis | None:
    why = ("a loss averaged over no trained token: every label is masked (-100), usually a chat template or "
           "response marker that does not match the data, or prompts longer than train.max_seq_len")
    fix = "`rankwise check --data FILE --model MODEL` shows which tokens are trained and names the rows with none"
    share = run.trained_share
    if share is not None and share < MASKED_SHARE:
        sev = "error" if share == 0 else "warning"
        return Diagnosis("loss-zero-masked", sev, run.points[0].step if run.points else None,
                         f"only {share:.2%} of the training tokens are trained on", why, fix,
                         {"trained_share": _r(share), "threshold": MASKED_SHARE})
    first = run.points[0] if run.points else None
    if first is not None and math.isfinite(first.loss) and abs(first.loss) < ZERO_LOSS:
        return Diagnosis("loss-zero-masked", "error", first.step,
                         f"the loss is {first.loss:.2g} from the first logged step", why, fix,
                         {"first_loss": _r(first.loss), "threshold": ZERO_LOSS})
    return None


def loss_flat(run: Run) -> Diagnosis | None:
    lrs = [p.lr for p in run.points if p.lr is not None]
    if run.cfg is None and len(lrs) >= 2 and lrs[-1] > lrs[-2]:
        return None  # still warming up (with the config, its peak lr says how far)
    peak = run.lr()
    warm = 0 if peak is None else next((i for i, p in enumerate(run.points) if p.lr and p.lr >= 0.5 * peak),
                                       len(run.points))  # no lr logged (a sweep's curve): every step counts
    trained = [p for p in run.points[warm:] if math.isfinite(p.loss)]  # past warmup (the decay still trains)
    losses = run.losses
    if len(trained) < FLAT_MIN_STEPS or len(losses) < FLAT_MIN_STEPS:
        return None
    first, last, fall, se = window_fall(losses)
    needed = max(FLAT_SIGMAS * se, FLAT_REL * abs(first))
    if abs(fall) >= needed:
        return None  # fell (or rose: loss-spikes and grad-explosion judge that) beyond the noise
    patch = {}
    if run.cfg is not None:
        m = METHODS.get(run.method or run.cfg.method) or next(iter(METHODS.values()))
        lr = run.cfg.train.lr
        patch = {"train.lr": m.lr if lr < m.lr_range[0] else float(f"{lr * 2:.2g}"),
                 "lora.alpha": 2 * run.cfg.lora.alpha_value}
    return Diagnosis("loss-flat", "warning", run.points[-1].step,
                     f"the loss has not fallen: {first:.3g} at the start, {last:.3g} now ({len(losses)} logged steps)",
                     "the adapter barely moves: learning rate or alpha too low, too few trainable parameters "
                     "(rank, target modules), or a frozen adapter",
                     "raise train.lr or lora.alpha (rankwise sets the rate by model size at alpha 32: "
                     "`rankwise advise --why train.lr`; the guide's rule: raise alpha if the model under-learns), "
                     "or raise lora.r / adapt more modules",
                     {"start_loss": _r(first), "loss_now": _r(last), "fall": _r(fall), "needed": _r(needed),
                      "noise": _r(noise(losses)), "steps": len(losses), "peak_lr": _r(peak)}, patch or None)


def _bands(values: list[tuple[int, float]]):
    """(step, value, band, i) for each value with 2 or more before it; band = median of up to BAND before."""
    for i in range(2, len(values)):
        yield values[i][0], values[i][1], statistics.median(v for _, v in values[max(0, i - BAND):i]), i


def loss_spikes(run: Run) -> Diagnosis | None:
    series = [(p.step, p.loss) for p in run.points if math.isfinite(p.loss)]
    spikes = []
    for step, loss, band, i in _bands(series):
        if i < MIN_HISTORY:
            spike, sigma = loss > EARLY_SPIKE * band, None
        else:
            sigma = noise([v for _, v in series[max(0, i - NOISE_WINDOW):i]])
            spike = loss > band + SPIKE_SIGMAS * sigma and loss > band * (1 + SPIKE_REL)
        if spike:
            spikes.append((step, loss, band, sigma))
    if not spikes:
        return None
    step, loss, band, sigma = spikes[0]
    return Diagnosis("loss-spikes", "warning", step,
                     f"{len(spikes)} loss spike(s), the first at step {step}: {loss:.3g} against a band of {band:.3g}",
                     "updates too large for the curvature: learning rate or alpha too high, too little warmup, or "
                     "a few very unusual batches", "lower train.lr (or lora.alpha), lengthen the warmup "
                     "(train.warmup_ratio), keep gradient clipping on",
                     {"spikes": len(spikes), "loss": _r(loss), "band": _r(band), "noise": _r(sigma),
                      "spike_steps": [s for s, *_ in spikes[:10]]}, _lr_patch(run, 0.5) or None)


def grad_explosion(run: Run) -> Diagnosis | None:
    series = [(p.step, p.grad_norm) for p in run.points if p.grad_norm is not None and math.isfinite(p.grad_norm)]
    run_len = 0
    for step, g, band, i in _bands(series):
        run_len = run_len + 1 if band > 0 and g > GRAD_GROWTH * band and i >= MIN_HISTORY else 0
        if (band > 0 and g > GRAD_JUMP * band) or run_len >= GRAD_RUN:
            return Diagnosis("grad-explosion", "warning", step,
                             f"gradient norm {g:.3g} at step {step}, {g / band:.1f}x its recent band ({band:.3g})",
                             "the updates are growing: learning rate or alpha too high for this rank, or too short "
                             "a warmup; the loss usually spikes or turns NaN next",
                             "lower train.lr (or lora.alpha), lengthen the warmup, keep train.max_grad_norm at 1.0",
                             {"grad_norm": _r(g), "band": _r(band), "ratio": _r(g / band), "in_a_row": run_len},
                             _lr_patch(run, 0.5) or None)
    return None


def overfit_patience(run: Run) -> float:
    """Steps of training the eval loss must stay off its best before `overfitting` fires: OVERFIT_EPOCHS epochs,
    at most OVERFIT_SHARE of the run; 0 where the log does not say how long an epoch is (then the rises decide)."""
    if not run.steps_per_epoch:
        return 0.0
    return min(OVERFIT_EPOCHS * run.steps_per_epoch, OVERFIT_SHARE * run.max_steps if run.max_steps else math.inf)


def overfitting(run: Run) -> Diagnosis | None:
    ev = run.evals
    patience = overfit_patience(run)
    for j in range(OVERFIT_RISES, len(ev)):
        best_i = min(range(j + 1), key=lambda k: ev[k][1])
        rising = all(ev[k][1] > ev[k - 1][1] for k in range(j - OVERFIT_RISES + 1, j + 1))
        if (not rising or best_i > j - OVERFIT_RISES or ev[j][1] < ev[best_i][1] * (1 + EVAL_RISE)
                or ev[j][0] - ev[best_i][0] < patience):
            continue
        # trailing windows: the stop (train.stop_on) should come at this evaluation, not steps later
        t_best, t_now = train_near(run, ev[best_i][0], centred=False), train_near(run, ev[j][0], centred=False)
        if t_best is None or t_now is None or t_now >= t_best:
            continue  # the train loss is not falling: not memorizing
        patch = {"train.stop_on": ["overfitting"]}
        if run.cfg is not None:
            patch["lora.dropout"] = max(0.1, run.cfg.lora.dropout)
        why = ("the adapter is memorizing the training rows: too many epochs for the data, or more capacity (rank) "
               "than it needs")
        fix = (f"keep the checkpoint at step {ev[best_i][0]} (train.stop_on: [overfitting] does it), add dropout, "
               "lower lora.r or train fewer epochs")
        cfg = run.cfg
        if best_i == 0 and cfg is not None and cfg.task == "domain" and not cfg.data.val_path:
            # never better than the first evaluation on new facts: the split may hold facts no row teaches
            why += ("; or, for new facts, the validation split holds facts no training row states (a random split "
                    "of one-row facts), whose loss rises as the adapter learns the rest: then the first checkpoint "
                    "is the worst to keep")
            fix += ("; for new facts, set data.val_path to questions about trained facts first (rankwise advise "
                    "--why data.val_ratio)")
        return Diagnosis("overfitting", "warning", ev[j][0],
                         f"eval loss up {OVERFIT_RISES}x in a row to {ev[j][1]:.3g} (best {ev[best_i][1]:.3g} at step "
                         f"{ev[best_i][0]}) while the train loss fell to {t_now:.3g}",
                         why, fix,
                         {"best_eval_loss": _r(ev[best_i][1]), "best_step": ev[best_i][0], "eval_loss": _r(ev[j][1]),
                          "train_loss_at_best": _r(t_best), "train_loss": _r(t_now)}, patch)
    return None


def gap_widening(run: Run) -> Diagnosis | None:
    gaps = [(s, v - t) for s, v in run.evals if (t := train_near(run, s)) is not None]
    best = min((v for _, v in run.evals), default=None)
    for j in range(GAP_EVALS - 1, len(gaps)):
        last = gaps[j - GAP_EVALS + 1:j + 1]
        growing = all(b[1] > a[1] for a, b in zip(last, last[1:]))
        # a gap only counts where eval sits above train: early on the train loss (a logging window's
        # mean, with dropout) sits above the eval loss, and its catching up is not a widening gap
        if growing and last[0][1] > 0 and last[-1][1] - last[0][1] >= GAP_RISE * abs(best or 1.0):
            return Diagnosis("gap-widening", "info", last[-1][0],
                             f"the eval-train gap grew from {last[0][1]:.3g} to {last[-1][1]:.3g} over "
                             f"{GAP_EVALS} evaluations",
                             "the train loss falls faster than the eval loss: the adapter starts to fit the "
                             "training rows more than the task (overfitting usually follows)",
                             "watch the eval loss; more dropout, a lower rank or fewer epochs if it turns up",
                             {"gaps": [_r(g) for _, g in last], "steps": [s for s, _ in last]})
    return None


def underfitting(run: Run) -> Diagnosis | None:
    pts = [p for p in run.points if math.isfinite(p.loss)]
    if not run.ended or len(pts) < FLAT_MIN_STEPS:
        return None
    first, last, fall, se = window_fall([p.loss for p in pts])
    w = max(3, len(pts) // 4)  # window_fall's windows: their centres are the span the fall happened over
    span = (pts[-1 - w // 2].step - pts[w // 2].step) or 1
    n = max(4, len(pts) // 3)
    tail = pts[-n:][::max(1, n // 100)]  # the last third, at most ~100 points: the slope takes every pair
    rate = slope([p.step for p in tail], [p.loss for p in tail])
    tail_fall = -rate * (tail[-1].step - tail[0].step)
    if fall <= 0 or -rate < UNDERFIT_SHARE * fall / span or tail_fall < FLAT_SIGMAS * se:
        return None
    patch = None
    if run.cfg is not None:
        tr = run.cfg.train
        patch = {"train.max_steps": 2 * tr.max_steps} if tr.max_steps else {"train.epochs": 2 * tr.epochs}
    return Diagnosis("underfitting", "info", pts[-1].step,
                     f"the loss was still falling at the end: {-rate * 100:.3g} per 100 steps over the last "
                     f"{n} logged steps ({fall / span * 100:.3g} on average)",
                     "training stopped before the loss levelled off: the adapter can still learn from this data",
                     "train longer (more steps or epochs), or a higher learning rate",
                     {"slope_per_100": _r(-rate * 100), "average_per_100": _r(fall / span * 100),
                      "loss_now": _r(last)}, patch)


def throughput_drop(run: Run) -> Diagnosis | None:
    rates = [(p.step, p.tokens_per_s) for p in run.points if p.tokens_per_s][TPUT_SKIP:]
    if len(rates) < 2 * TPUT_WINDOW:
        return None
    before = statistics.median(r for _, r in rates[:-TPUT_WINDOW])
    now = statistics.median(r for _, r in rates[-TPUT_WINDOW:])
    if now >= TPUT_DROP * before:
        return None
    # on a GPU the rate is steady unless something is wrong; a CPU's follows whatever else the machine runs
    sev = "warning" if run.device == "cuda" else "info"
    return Diagnosis("throughput-drop", sev, rates[-TPUT_WINDOW][0],
                     f"{now:.0f} tokens/s over the last {TPUT_WINDOW} logged steps, {before:.0f} before",
                     "the run slowed down by itself: another process on the device, host swap, thermal or power "
                     "throttling, or a slow disk under the checkpoints",
                     "look at nvidia-smi (clocks, other processes) and free memory on the host",
                     {"tokens_per_s": _r(now), "before": _r(before), "ratio": _r(now / before)})


def memory_creep(run: Run) -> Diagnosis | None:
    peaks = [(p.step, p.peak_mem) for p in run.points if isinstance(p.peak_mem, int)]
    if len(peaks) < 3 * MEM_WINDOW // 2:
        return None
    base = peaks[max(2, len(peaks) // 3)][1]
    growth = peaks[-1][1] - base
    recent = peaks[-MEM_WINDOW - 1:]
    rises = sum(b[1] > a[1] for a, b in zip(recent, recent[1:]))
    if growth < max(MEM_CREEP * base, MEM_MIN_BYTES) or rises < MEM_RISES * MEM_WINDOW:
        return None
    evidence = {"peak_bytes": peaks[-1][1], "base_bytes": base, "growth": _r(growth / base), "rises": rises}
    if run.device_total_bytes:
        per_step = (peaks[-1][1] - recent[0][1]) / max(1, peaks[-1][0] - recent[0][0])
        if per_step > 0:
            evidence["full_at_step"] = int(peaks[-1][0] + (run.device_total_bytes - peaks[-1][1]) / per_step)
    return Diagnosis("memory-creep", "warning", peaks[-1][0],
                     f"the peak memory grew {growth / base:.0%} since step {peaks[max(2, len(peaks) // 3)][0]} and "
                     f"rose at {rises} of the last {MEM_WINDOW} logged steps",
                     "something accumulates each step (tensors kept alive with their graph, a growing cache) or "
                     "the sequences keep getting longer; it ends in out-of-memory",
                     "check callbacks or metrics for kept tensors; with data sorted by length, shuffle it",
                     evidence)


def adapter_unused(run: Run) -> Diagnosis | None:
    """The live run's `adapters` event (trainer/callbacks.py AdapterUse) named adapters whose lora_B never got a
    gradient: peft wrapped the module, but the forward reads its weight bare (a fused kernel handed `.weight`, a
    `.weight @ x`), so the adapter is never called and trains nothing. A module name whose every adapter is unused
    is a target to drop; some of many unused (an MoE's expert linears a few batches did not route to) is said too."""
    e = run.adapters
    unused = {str(k): v for k, v in (field_of(e, "unused") or {}).items() if isinstance(v, list) and len(v) == 2
              and all(isinstance(x, int) for x in v) and v[0] > 0} if e is not None else {}
    if not unused:
        return None
    dead = sorted(n for n, (u, total) in unused.items() if u == total)
    said = ", ".join(f"{n} ({u} of {total})" for n, (u, total) in sorted(unused.items()))
    targets = run.cfg.lora.target_modules if run.cfg is not None else None
    patch = None
    if dead and isinstance(targets, list) and set(targets) - set(dead):
        patch = {"lora.target_modules": [t for t in targets if t not in dead]}
    drop = ", ".join(dead)
    fix = (f"adapt the other modules: drop {drop} from lora.target_modules" if dead else
           "nothing to change if those are MoE experts a few batches did not reach; else drop them")
    return Diagnosis("adapter-unused", "warning" if dead else "info", field_of(e, "step"),
                     f"LoRA adapters got no gradient in the first steps: {said}",
                     "peft wrapped these modules, but the model's forward never called them: it reads their weight "
                     "bare (a fused kernel given `.weight`, or `.weight @ x`), so their adapters train nothing while "
                     "their parameters and optimizer states take memory",
                     fix, {"unused": {n: f"{u}/{t}" for n, (u, t) in unused.items()},
                           "adapters": field_of(e, "adapters")}, patch)


RULES: list[Callable[[Run], Diagnosis | None]] = [
    loss_nan, loss_zero_masked, loss_flat, loss_spikes, grad_explosion, overfitting, gap_widening, underfitting,
    throughput_drop, memory_creep, adapter_unused,
]


def run_rules(run: Run) -> list[Diagnosis]:
    """Every diagnosis, errors first, then newest first. One the live run recorded keeps the step it
    was first seen at (the rules' numbers are the latest); one the rules no longer see is kept as recorded."""
    found = {d.code: replace(d, evidence={k: v for k, v in d.evidence.items() if v is not None})
             for d in (rule(run) for rule in RULES) if d is not None}
    for e in run.recorded:
        code, first = field_of(e, "code"), field_of(e, "step")
        if code not in CODES:
            continue
        if code not in found:
            found[code] = _from_event(e)
        elif isinstance(first, int) and found[code].step is not None and first < found[code].step:
            found[code] = replace(found[code], step=first)
    return sorted(found.values(), key=lambda d: (SEVERITY_ORDER[d.severity], -(d.step or 0)))


def diagnose(events, cfg=None) -> list[Diagnosis]:
    """Diagnoses of a run from its events (dicts or typed events); `cfg` makes the patches concrete."""
    return run_rules(read_run(events, cfg))


def worst(diagnoses: list[Diagnosis]) -> str | None:
    """The highest severity among them, or None."""
    return min((d.severity for d in diagnoses), key=SEVERITY_ORDER.__getitem__, default=None)
