"""Planning a rank sweep and writing its results: which ranks, how long, which config per trial;
results.json, results.csv and the recommended preset. No torch (trainer/sweep.py runs the trials,
trainer/sweep_trials.py records them)."""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from rankwise.advisor import knee as kn
from rankwise.advisor.errors import RankwiseError

OPTUNA_DB = "sweep.db"  # where earlier rankwise sweeps kept their trials (Optuna): not read any more
RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
RECOMMENDED = "recommended.yaml"
MAX_CURVE = 400  # points kept per curve in the trials' record (downsampled beyond)
TRIALS = "trials.json"  # the trials' record (trainer/sweep_trials.py)
DEFAULT_RANKS = (4, 8, 16, 32, 64)  # the grid without --ranks, trimmed to the model's width (within_width)

@dataclass
class SweepPlan:
    preset: Path
    cfg: object  # RunConfig of the preset (with --set applied)
    name: str
    ranks: list[int]
    skipped: dict[int, str]
    steps: int | None
    minutes: float | None
    alpha_ratio: float
    sweep_dir: Path
    runs_dir: Path
    storage: str  # the trials' record: <sweep_dir>/trials.json (results.json names it)
    study_name: str  # the sweep id
    threshold: float = kn.DEFAULT_THRESHOLD
    prune: bool = True
    slots: list[str | None] = field(default_factory=lambda: [None])  # CUDA_VISIBLE_DEVICES per parallel trial
    notes: list[str] = field(default_factory=list)
    alpha: float | None = None  # held at every rank (advisor/coupling.py); None: the preset's alpha
    lrs: list[float] = field(default_factory=list)  # a learning-rate grid per rank (--lrs); empty: the preset's
    best_lrs: dict[int, float] = field(default_factory=dict)  # each rank's best rate of the grid (for --validate)

    @property
    def alpha_value(self) -> float:
        return self.alpha if self.alpha is not None else self.cfg.lora.alpha_value

    def phases(self) -> list[str]:
        """One sweep phase per learning rate of the grid ("sweep" alone without --lrs)."""
        return [lr_phase(lr) for lr in self.lrs] if len(self.lrs) > 1 else ["sweep"]


def lr_phase(lr: float) -> str:
    """The sweep phase of one learning rate of the grid: sweep-lr0.0002."""
    return f"sweep-lr{lr:g}"


def phase_lr(phase: str) -> float | None:
    return float(phase[len("sweep-lr"):]) if phase.startswith("sweep-lr") else None


def parse_lrs(text: str | None) -> list[float]:
    if not text:
        return []
    try:
        lrs = [float(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise RankwiseError(f"--lrs {text!r}: not a comma-separated list of learning rates",
                            "e.g. --lrs 1e-4,2e-4,4e-4") from None
    if not lrs or any(not 0 < x < 1 for x in lrs):
        raise RankwiseError(f"--lrs {text!r}: learning rates must be between 0 and 1", "e.g. --lrs 1e-4,2e-4,4e-4")
    return sorted(set(lrs))


# ------------------------------------------------------------------ planning (no torch)


def parse_ranks(text: str) -> list[int]:
    try:
        ranks = [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise RankwiseError(f"--ranks {text!r}: not a comma-separated list of whole numbers",
                            "e.g. --ranks 4,8,16,32,64") from None
    if not ranks or any(r < 1 for r in ranks):
        raise RankwiseError(f"--ranks {text!r}: ranks must be whole numbers >= 1", "e.g. --ranks 4,8,16,32,64")
    return sorted(set(ranks))


def within_width(cfg, ranks: list[int] | None) -> tuple[list[int], str | None]:
    """The ranks to try and a note. Without --ranks (None): DEFAULT_RANKS up to the model's low-rank limit
    (half its hidden size, ModelSpec.low_rank_limit; the bound `advise` and `check`'s rank-above-width keep
    to), the ranks left out named. With --ranks: the user's ranks, and a note for those above the limit."""
    from rankwise.advisor.model import load_model

    grid = sorted(ranks) if ranks else list(DEFAULT_RANKS)
    try:
        spec = load_model(cfg.model.name)
    except RankwiseError:
        return grid, None
    limit, h = spec.low_rank_limit, spec.hidden_size
    over = [r for r in grid if r > limit]
    if not over:
        return grid, None
    why = (f"above half this {h}-wide model's hidden size ({limit}), where an adapter on a {h}×{h} projection "
           "holds as many parameters as the projection (rank-above-width)")
    if ranks:
        return grid, f"r={', '.join(map(str, over))} {'is' if len(over) == 1 else 'are'} {why}"
    kept = [r for r in grid if r <= limit] or [limit]
    return kept, (f"r={', '.join(map(str, over))} left out of the default grid: {why}; "
                  "--ranks tries {} anyway".format("it" if len(over) == 1 else "them"))


def default_steps(cfg) -> int:
    """A quarter of the preset's max_steps (at least 10), or 200 for a preset that trains by epochs."""
    return max(10, cfg.train.max_steps // 4) if cfg.train.max_steps else 200


def eval_every(steps: int) -> int:
    """About five evals per trial, on a divisor of `steps` so the last step is evaluated."""
    want = max(1, steps // 5)
    divisors = [d for d in range(1, steps + 1) if steps % d == 0]
    return min(divisors, key=lambda d: (abs(d - want), d))


def sweep_id(name: str, cfg, steps: int | None, minutes: float | None) -> str:
    """Same preset, overrides and length → same id: re-running the command resumes the sweep (a
    learning-rate grid adds phases to the same sweep)."""
    base = cfg.model_copy(deep=True)
    base.lora.r, base.lora.alpha = 1, cfg.lora.alpha_value  # alpha is held at every rank: part of the sweep
    digest = hashlib.sha256(f"{base.to_yaml()}|{steps}|{minutes}".encode()).hexdigest()[:8]
    return f"{name}-{digest}"


def fit_reason(cfg, rank: int, hw) -> str | None:
    """Why this rank would not fit the GPU (None: it fits, or there is no GPU to judge)."""
    from rankwise.advisor.fit import assess
    from rankwise.advisor.forecast import data_lengths
    from rankwise.advisor.model import load_model

    if hw is None or hw.gpu_bytes is None:
        return None
    c = cfg.model_copy(deep=True)
    c.lora.r = rank
    if "gpus" not in c.distributed.model_fields_set:
        c.distributed.gpus = 1  # a trial runs as one plain process on its slot's GPU
    try:
        spec = load_model(c.model.name)
        judged = assess(spec, c, hw, lengths=data_lengths(c, spec))  # as the trial's own start judges it
    except RankwiseError:
        return None
    if judged.verdict == "wont-fit":
        return (f"estimated peak {judged.peak_gib:.1f} GiB > {hw.gpu_bytes / 2**30:.1f} GiB GPU "
                f"({judged.method}); skipped instead of running into an OOM")
    return None


def plan(preset_ref: str, overrides: list[str], ranks: list[int] | None, steps: int | None, minutes: float | None,
         hw, sweep_dir: str | None, runs_dir: str | None, storage: str | None,
         threshold: float = kn.DEFAULT_THRESHOLD, prune: bool = True, slots: list[str | None] | None = None,
         lrs: list[float] | None = None) -> SweepPlan:
    from rankwise.advisor.loader import load_config
    from rankwise.advisor.presets import resolve_preset

    from .rundir import check_writable, run_name, runs_root

    if steps is not None and steps < 1:
        raise RankwiseError(f"--steps {steps}: must be >= 1", "e.g. --steps 100")
    if minutes is not None and minutes <= 0:
        raise RankwiseError(f"--minutes {minutes}: must be > 0", "e.g. --minutes 10")
    if storage:
        raise RankwiseError(f"--storage {storage}: sweeps no longer keep their trials in an Optuna database; "
                            "the sweep folder is the record (trials.json beside the trials' run dirs)",
                            "to share a sweep between machines, put --sweep-dir (and --runs-dir) on a filesystem "
                            "they all mount and start the same command there with --worker")
    if not 0 < threshold < 1:
        raise RankwiseError(f"--threshold {threshold}: must be between 0 and 1", "e.g. --threshold 0.02 for 2%")
    preset = resolve_preset(preset_ref)
    cfg = load_config(preset, overrides)
    notes = []
    if not cfg.data.val_path and not cfg.data.val_ratio:
        cfg.data.val_ratio = 0.1
        notes.append("the preset holds out no validation data; the sweep holds out 10% (data.val_ratio 0.1)")
    ranks, width = within_width(cfg, ranks)  # None (no --ranks): the default grid, within the model's width
    if width:
        notes.append(width)
    if minutes is None and steps is None:
        steps = default_steps(cfg)
    if minutes is not None and steps is None:
        steps = cfg.train.max_steps or None
    ratio = (cfg.lora.alpha / cfg.lora.r) if cfg.lora.alpha is not None else 2.0
    name = run_name(cfg, preset)
    root = runs_root(cfg, runs_dir)
    check_writable(root)
    sid = sweep_id(name, cfg, steps, minutes)
    sdir = Path(sweep_dir).expanduser() if sweep_dir else root / "sweeps" / sid
    check_writable(sdir)
    if (sdir / OPTUNA_DB).exists() and not (sdir / TRIALS).exists():
        notes.append(f"{sdir / OPTUNA_DB} is from an older rankwise (Optuna): its trials are not read, so ranks "
                     "run again here; its runs stay in the runs dir")
    skipped = {r: why for r in ranks if (why := fit_reason(cfg, r, hw))}
    if hw is None or hw.gpu_bytes is None:
        notes.append("no GPU to plan for: no rank skipped for memory (pass --gpu-mem to check a GPU's size)")
    run = [r for r in ranks if r not in skipped]
    if not run:
        raise RankwiseError(f"no rank in {ranks} fits the GPU: {skipped[ranks[0]]}",
                            "try smaller ranks, method qlora, or a smaller micro_batch/max_seq_len")
    short = too_short(cfg, run, steps)
    if short:
        notes.append(short)
    return SweepPlan(preset=preset, cfg=cfg, name=name, ranks=run, skipped=skipped, steps=steps, minutes=minutes,
                     alpha_ratio=ratio, sweep_dir=sdir.resolve(), runs_dir=root.resolve(),
                     storage=str((sdir / TRIALS).resolve()), study_name=sid,
                     threshold=threshold, prune=prune, slots=slots or [None], notes=notes,
                     alpha=cfg.lora.alpha_value, lrs=list(lrs or []))


def too_short(cfg, ranks: list[int], steps: int | None) -> str | None:
    """Why trials of `steps` cannot separate the ranks, or None. Early in training every rank follows
    the same loss curve; a low rank falls off it only once the tokens trained exceed its capacity
    (TML 2025, "LoRA Without Regret"; the capacity arithmetic of advisor/rank.py)."""
    from rankwise.advisor.model import load_model
    from rankwise.advisor.rank import capacity, capacity_limited
    from rankwise.advisor.units import human_count

    if not steps or len(ranks) < 2:
        return None
    try:
        spec = load_model(cfg.model.name)
        trainable = spec.lora_params(cfg.lora.target_modules, min(ranks))
    except RankwiseError:
        return None
    tokens = steps * cfg.train.effective_batch * cfg.train.max_seq_len  # at most: every row a full sequence
    if capacity_limited(tokens, trainable):
        return None
    return (f"trials too short to separate ranks: {steps} steps train on at most ~{human_count(tokens)} tokens, "
            f"within even r={min(ranks)}'s ~{human_count(capacity(trainable))}-token capacity "
            f"({human_count(trainable)} trainable parameters); every rank follows the same loss curve that early "
            "(low ranks fall off it only after enough steps, TML 2025), so differences between ranks are mostly noise: "
            "give more --steps or --minutes")


def trial_lr(p: SweepPlan, rank: int, lr: float | None = None) -> float:
    """The learning rate of a trial: the preset's (or the grid's `lr`), moved with rank as rankwise's
    one parametrisation says (advisor/coupling.py): unchanged at a fixed alpha, scaled under rsLoRA."""
    from rankwise.advisor import coupling

    base = lr if lr is not None else p.cfg.train.lr
    lora = p.cfg.lora
    ratio = coupling.learning_rate(None, rank, p.alpha_value, lora.use_rslora) / \
        coupling.learning_rate(None, lora.r, p.alpha_value, lora.use_rslora)
    return float(f"{base * ratio:.3g}")


def trial_config(p: SweepPlan, rank: int, phase: str = "sweep"):
    """The preset with this rank, alpha held (rankwise's one parametrisation, advisor/coupling.py),
    the phase's learning rate, and the sweep's length and eval cadence."""
    c = p.cfg.model_copy(deep=True)
    c.lora.r = rank
    c.lora.alpha = p.alpha_value
    c.train.lr = trial_lr(p, rank, phase_lr(phase)) if phase != "validate" or rank not in p.best_lrs \
        else p.best_lrs[rank]
    c.output.name = f"{p.name}-{phase}-r{rank}"
    if phase.startswith("sweep") and p.steps:
        c.train.max_steps = p.steps
        c.train.eval_steps = eval_every(p.steps)
        c.train.logging_steps = max(1, p.steps // 100)
        c.train.save_steps = p.steps
        c.train.evals_per_epoch = c.train.saves_per_epoch = None  # the sweep's intervals, not the preset's counts
        c.train.save_total_limit = 1
    return c


def recommended_yaml(p: SweepPlan, rank: int, reason: str, lr: float | None = None) -> str:
    c = p.cfg.model_copy(deep=True)
    c.lora.r = rank
    c.lora.alpha = p.alpha_value
    c.train.lr = trial_lr(p, rank, lr)
    c.name = f"{p.name}-r{rank}"
    header = (f"# {p.name} with the rank chosen by `rankwise sweep` ({p.sweep_dir.name}):\n"
              f"# {reason}\n# Launch: rankwise train --preset {p.sweep_dir / RECOMMENDED}\n")
    return header + c.to_yaml()


# ------------------------------------------------------------------ results


def _downsample(points: list, n: int = MAX_CURVE) -> list:
    if len(points) <= n:
        return points
    k = math.ceil(len(points) / n)
    return points[::k] + ([points[-1]] if (len(points) - 1) % k else [])


def curve_from_events(events: list[dict]) -> tuple[list, list]:
    steps, evals = {}, {}
    for e in events:
        if e.get("type") == "step" and e.get("loss") is not None:
            steps[int(e["step"])] = float(e["loss"])
        elif e.get("type") == "eval" and e.get("eval_loss") is not None:
            evals[int(e["step"])] = float(e["eval_loss"])
    return sorted(steps.items()), sorted(evals.items())


def write_results(p: SweepPlan, analysis: kn.Analysis, runs: dict, state: str, validation: dict | None = None,
                  reason_suffix: str | None = None) -> dict:
    from .rundir import write_atomic, write_json

    trials = []
    for r in analysis.results:
        d = r.to_dict()
        d.update(runs.get(r.rank, {}))
        trials.append(d)
    losses = [t["val_loss"] for t in trials if t.get("status") == "complete" and t.get("val_loss") is not None]
    close = []
    if len(losses) >= 2 and (max(losses) - min(losses)) < p.threshold * min(losses):
        close = [f"every rank within {100 * (max(losses) / min(losses) - 1):.1f}% of the best (under the "
                 f"{100 * p.threshold:g}% threshold): the trials may be too short to separate ranks (low ranks fall "
                 "off the loss curve only after enough steps, TML 2025); longer --steps or --minutes can tell them "
                 "apart"]
    data = {
        "sweep_id": p.study_name, "state": state, "preset": str(p.preset), "storage": p.storage,
        "steps": p.steps, "minutes": p.minutes, "alpha_ratio": p.alpha_ratio, "threshold": p.threshold,
        "alpha": p.alpha_value, "lrs": list(p.lrs),
        "recommended_rank": analysis.recommended_rank,
        "reason": analysis.reason + (f"; {reason_suffix}" if reason_suffix else ""), "knee_rank": analysis.knee_rank,
        "common_step": analysis.common_step, "sweep_dir": str(p.sweep_dir),
        "recommended_preset": str(p.sweep_dir / RECOMMENDED) if analysis.recommended_rank is not None and state == "done" else None, "notes": list(p.notes) + list(analysis.notes) + close,
        "trials": trials, "validation": validation, "updated": time.time(),
    }
    p.sweep_dir.mkdir(parents=True, exist_ok=True)
    write_json(p.sweep_dir / RESULTS_JSON, data)
    cols = ["rank", "status", "val_loss", "best_val_loss", "final_val_loss", "train_loss", "gap_start", "gap_end",
            "gap_growing", "spikes", "roughness", "stable", "run_id", "note", "lr"]
    lines = [",".join(cols)]
    for t in trials:
        lines.append(",".join(_csv(t.get(c)) for c in cols))
    write_atomic(p.sweep_dir / RESULTS_CSV, "\n".join(lines) + "\n")
    if analysis.recommended_rank is not None and state == "done":
        best_lr = runs.get(analysis.recommended_rank, {}).get("lr") if len(p.lrs) > 1 else None
        write_atomic(p.sweep_dir / RECOMMENDED, recommended_yaml(p, analysis.recommended_rank, data["reason"], best_lr))
    return data


def _csv(v) -> str:
    if v is None:
        return ""
    s = f"{v:.6g}" if isinstance(v, float) else str(v)
    return '"' + s.replace('"', '""') + '"' if ("," in s or '"' in s) else s


def read_results(sweep_dir: str | Path) -> dict | None:
    try:
        data = json.loads((Path(sweep_dir) / RESULTS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
