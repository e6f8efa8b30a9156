"""The rank sweep: short real runs over a grid of ranks, tracked by Optuna, read by advisor/knee.py.

Every trial is a real `rankwise train --detach` run (its own run directory and event log)
of the same preset with `lora.r` (and alpha, kept at the preset's alpha/r ratio, 2 by
default), the same data, seed and number of steps. The sweep only reads the trial's event
log: eval losses are reported to Optuna as they arrive, and a trial the pruner finds
clearly worse is stopped with `request_stop` (it checkpoints and ends interrupted).

Optuna bookkeeping:
- one study per sweep in `<sweep_dir>/sweep.db` (SQLite) by default, or `--storage URL`
  (any RDB Optuna supports) shared by `--worker` processes on other machines;
- the grid is a `GridSampler` over the planned ranks, and each grid point is enqueued as a
  fixed trial: a worker claims a queued trial atomically (Optuna flips WAITING → RUNNING
  in one guarded UPDATE), so two workers never run the same rank; GridSampler alone may
  re-run a point under concurrency, as its own source says;
- heartbeats mark a trial whose sweep process died as failed, and a copy of it is queued
  again; it remembers the run directory, so a run that finished (or is still running in its
  own session) after its sweep died is taken over, not trained again;
- finished, pruned and failed trials are never redone: re-running the same command with the
  same sweep directory continues where it stopped, and only new ranks run.

Optuna is imported lazily (`rankwise sweep --help` stays fast). Planning (ranks, steps, the
trial configs) and the results files live in trainer/sweep_plan.py.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from rankwise.advisor import knee as kn
from rankwise.advisor.errors import RankwiseError

from .events import EVENTS_FILE, Tail, read_events
from .sweep_plan import (DB, MAX_CURVE, RECOMMENDED, RESULTS_CSV, RESULTS_JSON, SweepPlan, _downsample,
                         curve_from_events, default_steps, eval_every, fit_reason, parse_ranks, plan, read_results,
                         recommended_yaml, sweep_id, trial_config, write_results)

__all__ = [  # the sweep's one face for the CLI and the TUI: planning and results come from sweep_plan
    "DB", "RECOMMENDED", "RESULTS_CSV", "RESULTS_JSON", "SweepPlan", "Interrupted", "clearly_worse_pruner",
    "curves", "default_steps", "enqueue", "eval_every", "fit_reason", "open_study", "parse_ranks", "plan",
    "rank_grid", "read_results", "recommended_yaml", "sweep_id", "trial_config", "validate_top_two", "work",
    "write_results",
]

HEARTBEAT_S = 5
GRACE_S = 30  # a RUNNING trial without a heartbeat for this long belongs to a dead sweep process
PRUNE_MARGIN = 0.10  # "clearly worse": >10% above the best finished trial's eval loss at the same step
PRUNE_AFTER = 0.5  # and only in the second half of the run (early losses of small ranks catch up)
PROGRESS_S = 10  # at most this often, a running trial's evals are written to results.json
OUTCOMES_NOT_DONE = ("interrupted", "unused", "duplicate")  # FAIL trials that do not count as a result


# ------------------------------------------------------------------ Optuna


@contextmanager
def _lock(sweep_dir: Path):
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _requeue_stale(study, trial) -> None:
    """Heartbeat callback: a trial whose sweep process died is queued again, with its run dir."""
    study.enqueue_trial(dict(trial.params), user_attrs={k: v for k, v in trial.user_attrs.items()
                                                         if k in ("run_dir", "phase")})


def _quiet() -> None:
    """Heartbeats with ask/tell are marked experimental; the sweep records them itself."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def open_study(p: SweepPlan, phase: str = "sweep", ranks: list[int] | None = None):
    import optuna
    from optuna.storages import RDBStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _quiet()
    p.sweep_dir.mkdir(parents=True, exist_ok=True)
    name = p.study_name if phase == "sweep" else f"{p.study_name}-{phase}"
    with _lock(p.sweep_dir):  # one process at a time creates the tables and the study (same machine)
        for attempt in range(5):  # other machines on a shared --storage may be creating them too
            try:
                storage = RDBStorage(p.storage, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                     heartbeat_stale_trial_callback=_requeue_stale,
                                     engine_kwargs={"connect_args": {"timeout": 60}}
                                     if p.storage.startswith("sqlite") else None)
                break
            except Exception as e:  # noqa: BLE001 - sqlalchemy's errors
                from sqlalchemy.exc import ArgumentError, NoSuchModuleError

                if attempt == 4 or isinstance(e, (ArgumentError, NoSuchModuleError)):  # a bad URL: no retry
                    raise RankwiseError(f"--storage {p.storage}: cannot open it: {str(e).splitlines()[0]}",
                                        "check the URL and that the database server is reachable") from None
                time.sleep(1 + attempt)
        return optuna.create_study(study_name=name, storage=storage, load_if_exists=True, direction="minimize",
                                   sampler=rank_grid(sorted(ranks or p.ranks)),
                                   pruner=clearly_worse_pruner())


def rank_grid(ranks: list[int]):
    """Optuna's GridSampler over the ranks, for trials claimed from the queue: a queued rank gets
    its grid id (so the grid's bookkeeping of visited points holds), and the sampler never calls
    `study.stop()` — that is for `optimize()`; this loop ends when the queue is empty."""
    import optuna

    class RankGrid(optuna.samplers.GridSampler):
        def before_trial(self, study, trial) -> None:
            fixed = trial.system_attrs.get("fixed_params") or {}
            if "grid_id" not in trial.system_attrs and fixed.get("rank") in ranks:
                study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
                study._storage.set_trial_system_attr(trial._trial_id, "grid_id", ranks.index(fixed["rank"]))
                return
            super().before_trial(study, trial)

        def after_trial(self, study, trial, state, values) -> None:
            pass

    return RankGrid({"rank": ranks})


def clearly_worse_pruner():
    import optuna

    class ClearlyWorse(optuna.pruners.BasePruner):
        """Prune in the second half of a run when the eval loss is > PRUNE_MARGIN above the best
        finished trial's at the same step. Median pruning would stop half the grid: too eager
        for a sweep whose point is to compare every rank."""

        def prune(self, study, trial) -> bool:
            step = trial.last_step
            if step is None:
                return False
            max_steps = trial.user_attrs.get("max_steps")
            if max_steps and (step < PRUNE_AFTER * max_steps or step >= max_steps):
                return False  # too early to judge, or already at the end: let it finish
            value = trial.intermediate_values[step]
            done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            ref = [t.intermediate_values[step] for t in done if step in t.intermediate_values]
            return bool(ref) and value > min(ref) * (1 + PRUNE_MARGIN)

    return ClearlyWorse()


def _done_ranks(study) -> set[int]:
    from optuna.trial import TrialState

    out = set()
    for t in study.get_trials(deepcopy=False):
        rank = trial_rank(t)
        if rank is None:
            continue
        if t.state == TrialState.FAIL and t.user_attrs.get("outcome") in OUTCOMES_NOT_DONE:
            continue
        out.add(rank)
    return out


def trial_rank(t) -> int | None:
    """A trial's rank: its param once running, its queued fixed param while waiting."""
    if "rank" in t.params:
        return t.params["rank"]
    return (t.system_attrs.get("fixed_params") or {}).get("rank")


def enqueue(p: SweepPlan, study, ranks: list[int], phase: str = "sweep") -> list[int]:
    """Queue the ranks that have no trial yet (finished, pruned, failed, running or queued)."""
    with _lock(p.sweep_dir):
        have = _done_ranks(study)
        new = [r for r in ranks if r not in have]
        for r in sorted(new, reverse=True):  # largest first: it sets the bar the pruner measures others by
            study.enqueue_trial({"rank": r}, user_attrs={"phase": phase})
    return new


# ------------------------------------------------------------------ running trials


class Interrupted(Exception):
    pass


def launch(p: SweepPlan, rank: int, phase: str, env: dict, resume: str | None = None) -> Path:
    """`rankwise train --detach` for one trial; returns its run dir."""
    from .rundir import write_atomic

    cli = [sys.executable, "-m", "rankwise.tui.cli", "train", "--detach", "--runs-dir", str(p.runs_dir)]
    if resume:
        cmd = cli + ["--resume", resume]
    else:
        trials = p.sweep_dir / "trials"
        trials.mkdir(parents=True, exist_ok=True)
        path = trials / f"{phase}-r{rank}.yaml"
        write_atomic(path, trial_config(p, rank, phase).to_yaml())
        cmd = cli + ["--preset", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
    if proc.returncode != 0:
        raise RankwiseError(f"r={rank}: `rankwise train` refused the trial: {proc.stderr.strip().splitlines()[-1:]}",
                            "run the trial preset by hand to see why: rankwise train --preset "
                            f"{p.sweep_dir / 'trials' / f'{phase}-r{rank}.yaml'}")
    run_id = proc.stdout.strip().splitlines()[-1]
    return p.runs_dir / run_id


def _takeover(p: SweepPlan, run_dir: str | None):
    """A queued copy of a trial whose sweep died: its run may be finished, running, or resumable."""
    from .runs import run_info

    if not run_dir or not Path(run_dir).is_dir():
        return None, None
    info = run_info(run_dir)
    if info.status in ("finished", "running"):
        return Path(run_dir), None
    if info.last_checkpoint:
        return None, info.id  # resume it from its checkpoint
    return None, None


def _follow(p: SweepPlan, study, trial, run_dir: Path, phase: str, skip: int = 0, on_progress=None,
            stopping: threading.Event | None = None):
    """Read the run's events until its end: report eval losses, prune, cap by time, heartbeat."""
    from .runs import run_info

    tail = Tail(run_dir / EVENTS_FILE)
    t0 = beat = time.monotonic()
    pruned = capped = stop_sent = False
    end = None
    reported = set()
    gone = False
    shown = 0.0
    trained_since = None
    fresh = skip == 0  # a resumed run's old end event says "interrupted" until its new start arrives
    while end is None:
        if stopping is not None and stopping.is_set():
            raise KeyboardInterrupt  # Ctrl-C reached the main thread: this trial thread stops the same way
        events = tail.poll()
        dropped = min(skip, len(events))
        skip -= dropped
        if any(e["type"] == "start" for e in events[dropped:]):
            fresh = True
            trained_since = trained_since or time.monotonic()  # the time cap counts training, not loading
        for e in events[dropped:]:
            if e["type"] == "eval" and e.get("eval_loss") is not None and e["step"] not in reported:
                reported.add(e["step"])
                trial.report(float(e["eval_loss"]), int(e["step"]))
                if on_progress and time.monotonic() - shown >= PROGRESS_S:
                    on_progress()  # results.json shows the running trial's curve so far
                    shown = time.monotonic()
                if p.prune and phase == "sweep" and not stop_sent and trial.should_prune():
                    pruned = stop_sent = _stop(run_dir)
            elif e["type"] == "end":
                end = e
        if end is None:
            now = time.monotonic()
            if now - beat >= HEARTBEAT_S:
                study._storage.record_heartbeat(trial._trial_id)
                beat = now
            if p.minutes and phase == "sweep" and not stop_sent and trained_since and now - trained_since > p.minutes * 60:
                capped = stop_sent = _stop(run_dir)
            info = run_info(run_dir) if fresh else None
            if not fresh and now - t0 > 300:
                end = {"status": "failed", "note": "the resumed run never started; see its train.log"}
                break
            if info is not None and info.status != "running":
                if gone:  # no end event on a second look: it died (killed, OOM killer, reboot)
                    end = {"status": "failed", "note": info.note or info.error}
                    break
                gone = True  # its end event may have landed after our poll: read once more
                continue
            time.sleep(0.5)
    return end, pruned, capped


def run_trial(p: SweepPlan, study, trial, env: dict, say, on_progress=None,
              stopping: threading.Event | None = None) -> str:
    """Run (or take over) one claimed trial to its end; tell Optuna. Returns the trial's status."""
    from optuna.trial import TrialState

    rank = trial.suggest_int("rank", 1, 1 << 16)
    phase = trial.user_attrs.get("phase", "sweep")
    if "fixed_params" not in study._storage.get_trial_system_attrs(trial._trial_id):
        # not claimed from the queue (another worker took the last one between our check and ask)
        trial.set_user_attr("outcome", "unused")
        study.tell(trial, state=TrialState.FAIL)
        return "unused"
    others = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number and t.params.get("rank") == rank]
    if any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.RUNNING and t.number < trial.number)
           for t in others):
        trial.set_user_attr("outcome", "duplicate")
        study.tell(trial, state=TrialState.FAIL)
        return "duplicate"
    max_steps = p.steps if phase == "sweep" else p.cfg.train.max_steps
    trial.set_user_attr("max_steps", max_steps)
    earlier = trial.user_attrs.get("run_dir")
    run_dir = None
    try:
        run_dir, resume = _takeover(p, earlier)
        skip = 0
        if run_dir is None:
            if resume:  # its old events (up to the interrupted end) are history
                skip = len(read_events(p.runs_dir / resume / EVENTS_FILE))
            try:
                run_dir = launch(p, rank, phase, env, resume)
            except RankwiseError as e:
                trial.set_user_attr("outcome", "failed")
                trial.set_user_attr("note", e.message)
                study.tell(trial, state=TrialState.FAIL)
                say(rank, "failed", None, e.message)
                return "failed"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("run_id", run_dir.name)
        if not earlier:
            how = None
        elif resume:
            how = "resumed from its checkpoint"
        elif Path(earlier) != run_dir:
            how = f"started again ({Path(earlier).name} left no complete checkpoint)"
        else:
            how = "taken over from an earlier sweep process"
        say(rank, "running", run_dir.name, how)
        if on_progress:
            on_progress()
        end, pruned, capped = _follow(p, study, trial, run_dir, phase, skip, on_progress, stopping)
    except KeyboardInterrupt:  # Ctrl-C: stop the trial's run, queue the trial again, leave
        if run_dir is not None:
            _stop(run_dir)
            _wait_end(run_dir, 120)
        study.enqueue_trial({"rank": rank}, user_attrs={"phase": phase, **({"run_dir": str(run_dir)} if run_dir else {})})
        trial.set_user_attr("outcome", "interrupted")
        study.tell(trial, state=TrialState.FAIL)
        raise Interrupted(rank) from None

    train, evals = curve_from_events(read_events(run_dir / EVENTS_FILE))
    trial.set_user_attr("train", _downsample(train))
    trial.set_user_attr("evals", evals[-MAX_CURVE:])
    status = end.get("status")
    if pruned and status == "interrupted":
        trial.set_user_attr("outcome", "pruned")
        study.tell(trial, state=TrialState.PRUNED)
        say(rank, "pruned", run_dir.name, f"eval loss {evals[-1][1]:.4f} clearly worse at step {evals[-1][0]}"
            if evals else None)
        return "pruned"
    if status == "finished" or (capped and status == "interrupted"):
        if not evals:
            trial.set_user_attr("outcome", "failed")
            trial.set_user_attr("note", "no eval loss in the run's log (is there validation data?)")
            study.tell(trial, state=TrialState.FAIL)
            return "failed"
        trial.set_user_attr("outcome", "complete")
        if capped:
            trial.set_user_attr("note", f"stopped at the {p.minutes:g}-minute cap, step {evals[-1][0]}")
        study.tell(trial, evals[-1][1])
        say(rank, "complete", run_dir.name, f"val loss {evals[-1][1]:.4f}")
        return "complete"
    note = end.get("note") or f"run ended {status}; see {run_dir / 'train.log'}"
    errs = [e.get("message") for e in read_events(run_dir / EVENTS_FILE) if e.get("type") == "error"]
    trial.set_user_attr("outcome", "failed")
    trial.set_user_attr("note", errs[-1] if errs else note)
    study.tell(trial, state=TrialState.FAIL)
    say(rank, "failed", run_dir.name, errs[-1] if errs else note)
    return "failed"


def _stop(run_dir: Path) -> bool:
    from .runs import request_stop

    try:
        request_stop(run_dir)
    except RankwiseError:
        pass  # already ended: its end event follows
    return True


def _wait_end(run_dir: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.get("type") == "end" for e in read_events(run_dir / EVENTS_FILE)):
            return
        time.sleep(0.3)


def _waiting(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _running(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def work(p: SweepPlan, phase: str, say, wait_for_others: bool = True, on_trial=None) -> list[str]:
    """Claim and run queued trials until none is left, one per slot (GPU) in parallel; then, unless
    `wait_for_others` is off, wait until other workers' trials end too."""
    from optuna.storages import fail_stale_trials

    statuses: list[str] = []
    errors: list[BaseException] = []
    stopping = threading.Event()

    def slot_loop(device: str | None) -> None:
        study = open_study(p, phase)
        env = {**os.environ}
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        try:
            while not errors and not stopping.is_set():
                fail_stale_trials(study)
                if not _waiting(study):
                    return
                trial = study.ask()
                statuses.append(run_trial(p, study, trial, env, say, on_trial, stopping))
                if on_trial:
                    on_trial()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)

    slots = p.slots if len(p.slots) > 1 else [p.slots[0]]
    if len(slots) == 1:
        slot_loop(slots[0])
    else:
        threads = [threading.Thread(target=slot_loop, args=(d,), daemon=True) for d in slots]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.5)
        except KeyboardInterrupt:  # every slot stops its run, queues its trial again, and ends
            stopping.set()
            for t in threads:
                t.join(180)
            raise Interrupted(0) from None
    if errors:
        raise errors[0]
    if wait_for_others:
        study = open_study(p, phase)
        from optuna.trial import TrialState

        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            say(trial_rank(t), "elsewhere", t.user_attrs.get("run_id"),
                f"running in another sweep process; taken over if its heartbeat stops for {GRACE_S} s")
        while _running(study) or _waiting(study):
            fail_stale_trials(study)
            if _waiting(study):
                return statuses + work(p, phase, say, wait_for_others, on_trial)
            time.sleep(1.0)
    return statuses


# ------------------------------------------------------------------ results


def curves(p: SweepPlan, phase: str = "sweep") -> tuple[list[kn.Curve], dict]:
    """One curve per rank (its best-standing trial), plus the ranks skipped for memory."""
    from optuna.trial import TrialState

    study = open_study(p, phase)
    order = {"complete": 0, "pruned": 1, "running": 2, "waiting": 3, "failed": 4}
    best: dict[int, tuple[int, kn.Curve, dict]] = {}
    for t in study.get_trials(deepcopy=False):
        rank = trial_rank(t)
        if rank is None:
            continue
        outcome = t.user_attrs.get("outcome")
        if outcome in OUTCOMES_NOT_DONE:
            continue
        status = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.RUNNING: "running",
                  TrialState.WAITING: "waiting"}.get(t.state, "failed")
        train = t.user_attrs.get("train")
        evals = t.user_attrs.get("evals")
        if train is None and t.user_attrs.get("run_dir"):  # running: read its log so far
            train, evals = curve_from_events(read_events(Path(t.user_attrs["run_dir"]) / EVENTS_FILE))
        c = kn.Curve(rank, status, tuple(map(tuple, train or ())), tuple(map(tuple, evals or ())),
                     t.user_attrs.get("note"))
        if rank not in best or order[status] < best[rank][0]:
            best[rank] = (order[status], c, {"run_id": t.user_attrs.get("run_id"),
                                             "run_dir": t.user_attrs.get("run_dir"), "trial": t.number})
    out = [c for _, c, _ in best.values()]
    out += [kn.Curve(r, "skipped", note=why) for r, why in p.skipped.items() if r not in best]
    runs = {r: meta for r, (_, _, meta) in best.items()}
    return out, runs


def validate_top_two(p: SweepPlan, analysis: kn.Analysis, say) -> dict:
    """Train the recommended rank and the best other one for the preset's full length, and compare."""
    ranks = kn.validation_pair(analysis)
    study = open_study(p, "validate", ranks)
    enqueue(p, study, ranks, "validate")
    work(p, "validate", say)
    cs, runs = curves(p, "validate")
    full = {c.rank: c for c in cs}
    rows = {}
    for r in ranks:
        c = full.get(r)
        rows[r] = {"status": c.status if c else "missing", "val_loss": c.evals[-1][1] if c and c.evals else None,
                   "best_val_loss": min(e for _, e in c.evals) if c and c.evals else None,
                   "train_loss": c.train[-1][1] if c and c.train else None, **runs.get(r, {})}
    full = {r: v["val_loss"] for r, v in rows.items() if v["val_loss"] is not None}
    winner = kn.validated_pick(analysis.recommended_rank, full, p.threshold) if full else None
    return {"ranks": ranks, "runs": {str(r): v for r, v in rows.items()}, "winner": winner}
