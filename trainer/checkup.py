"""The live checkup: the run doctor (advisor/doctor.py) on the events this worker has emitted.

`Watched(sink)` passes every event on to the sink and keeps what the doctor reads: every
non-step event and the first `FIRST_KEPT` and last `RECENT_KEPT` step events, so a check
costs the same at step 100 and at step 100 000. `Checkup`, a TrainerCallback placed after the
one that emits the step and eval events, runs the doctor at each logging step and evaluation
(a few milliseconds) and writes each diagnosis as a `diagnosis` event the first time its code
fires.

Stopping: a code in `train.stop_on` saves a checkpoint at that step and ends training; a
`loss-nan` ends it at once, without a checkpoint (the weights already hold NaN), unless
`train.stop_on_nan: false`. The ranks of a multi-process run agree on the stop (one
all-reduce per logging step). The worker then keeps the best checkpoint by eval loss as the
adapter (`best_checkpoint`; before the NaN for loss-nan) and says which in summary.json.
"""
from __future__ import annotations

import logging
from pathlib import Path

from transformers import TrainerCallback

from rankwise.advisor.doctor import Diagnosis, diagnose
from rankwise.advisor.runlog import field_of

from . import rundir
from .process import synced

FIRST_KEPT = 50  # the start of the curve: loss-flat and underfitting compare against it
RECENT_KEPT = 500  # the recent band: spikes, grad norms, throughput and memory look no further back
log = logging.getLogger("rankwise.worker")


class Watched:
    """An event sink that remembers, boundedly, what it emitted (for the doctor). `history`: the
    events already in the log (a resumed run), so the doctor sees the whole run, not its tail."""

    def __init__(self, sink, history=()):
        self.sink = sink
        self.kept: list = []
        self._steps = 0
        for e in history:
            self._keep(e)

    def emit(self, type_: str, **fields):
        event = self.sink.emit(type_, **fields)
        self._keep(event)
        return event

    def _keep(self, event) -> None:
        self.kept.append(event)
        if _type(event) != "step":
            return
        self._steps += 1
        if self._steps > FIRST_KEPT + RECENT_KEPT:  # drop the oldest step after the first block
            nth = 0
            for i, e in enumerate(self.kept):
                if _type(e) == "step":
                    nth += 1
                    if nth == FIRST_KEPT + 1:
                        del self.kept[i]
                        break
            self._steps -= 1

    def close(self) -> None:
        self.sink.close()


def _type(e) -> str | None:
    return e.get("type") if isinstance(e, dict) else e.type


class Checkup(TrainerCallback):
    def __init__(self, watched: Watched, cfg):
        self.watched, self.cfg = watched, cfg
        self.stop_codes = set(cfg.train.stop_on) | ({"loss-nan"} if cfg.train.stop_on_nan else set())
        # codes already written (before a resume) are not written again
        self.fired: set[str] = {field_of(e, "code") for e in watched.kept if _type(e) == "diagnosis"}
        self.stopped: Diagnosis | None = None  # the diagnosis that stopped the run

    def on_log(self, args, state, control, logs=None, **kw):
        found = diagnose(self.watched.kept, self.cfg)
        for d in sorted(found, key=lambda d: d.step or 0):
            if d.code in self.fired:
                continue
            self.fired.add(d.code)
            level = {"error": logging.ERROR, "warning": logging.WARNING}.get(d.severity, logging.INFO)
            log.log(level, "doctor: %s [%s] at step %s: %s — %s", d.code, d.severity, d.step, d.message, d.fix)
            self.watched.emit("diagnosis", code=d.code, severity=d.severity, step=d.step, message=d.message,
                              why=d.why, fix=d.fix, evidence=d.evidence, patch=d.patch)
            if d.code in self.stop_codes and self.stopped is None:
                self.stopped = d
        if synced(self.stopped is not None) and not control.should_training_stop:
            nan = self.stopped is not None and self.stopped.code == "loss-nan"
            control.should_save = control.should_save or not nan  # a checkpoint of NaN weights is no use
            control.should_training_stop = True
            if self.stopped is not None:
                why = "train.stop_on_nan" if nan else "train.stop_on"
                log.warning("doctor: stopping the run (%s): %s at step %s", why, self.stopped.code, self.stopped.step)

    def eval_losses(self) -> dict[int, float]:
        """Eval loss by step, as this process saw them (a resumed run's earlier ones included)."""
        return {field_of(e, "step"): field_of(e, "eval_loss") for e in self.watched.kept if _type(e) == "eval"}


def best_checkpoint(run_dir: Path, evals: dict[int, float],
                    before: int | None = None) -> tuple[int, Path, float | None] | None:
    """The complete checkpoint with the lowest eval loss at its step (those before `before` only);
    without an eval at any of them, the newest. (step, path, eval loss or None)."""
    found = [(s, p) for s, p in rundir.complete_checkpoints(run_dir) if before is None or s < before]
    if not found:
        return None
    scored = [(evals[s], s, p) for s, p in found if evals.get(s) is not None]
    if scored:
        loss, s, p = min(scored, key=lambda t: t[0])
        return s, p, loss
    s, p = found[-1]
    return s, p, None


def keep_adapter(checkpoint: Path, adapter: Path) -> None:
    """Copy the PEFT adapter files of an HF checkpoint into the run's adapter folder."""
    import shutil

    adapter.mkdir(parents=True, exist_ok=True)
    for f in checkpoint.iterdir():
        if f.name.startswith("adapter_") or f.name in ("README.md",):
            shutil.copy2(f, adapter / f.name)
