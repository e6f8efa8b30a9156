"""What the run panel shows, folded from a run's typed events (and the tail of its train.log).

`RunView.update(event)` is the only writer of the state an event brings; the headless panel,
`rankwise attach` and the TUI's Run screen fold the same events through it. A new field a step
or start event carries needs nothing here: `view.last_step` and `view.start` hold the events
themselves, and the panel reads the field from them.
"""
from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from rankwise.trainer.events import Checkpoint, Data, Diagnosis, End, Error, Eval, Event, Log, Retry, Sample, Start, Step

from .formatting import clean, fmt_duration

SPARK_POINTS = 60  # the loss sparkline's width


@dataclass
class RunView:
    run_dir: Path | None = None
    run_id: str = ""
    status: str = "starting"
    start: Start | None = None  # the latest start (a resumed run appends one)
    last_step: Step | None = None  # the latest step; a field it left out is carried from earlier steps
    step: int = 0
    max_steps: int | None = None
    peak_mem_bytes: int | None = None  # the highest seen, then the end event's
    train_curve: list = field(default_factory=list)  # (step, loss)
    eval_curve: list = field(default_factory=list)  # (step, eval_loss)
    best_eval_loss: float | None = None
    eval_rising: bool = False  # the last eval is above the best so far: the usual first sign of overfitting
    checkpoint: Checkpoint | None = None
    retries: list = field(default_factory=list)  # Retry events
    logs: deque = field(default_factory=lambda: deque(maxlen=4))  # (level, text) from `log` events
    log_tail: list = field(default_factory=list)  # last lines of train.log, when no `log` events come
    error: str | None = None
    error_hint: str | None = None
    diagnoses: dict = field(default_factory=dict)  # code → the run doctor's Diagnosis event (the latest per code)
    samples: list = field(default_factory=list)  # the newest step's Sample events (train.sample_every)
    end: End | None = None
    started: float | None = None
    updated: float | None = None

    def __post_init__(self):
        if self.run_dir is not None and not self.run_id:
            self.run_id = Path(self.run_dir).name

    def update(self, e: Event) -> None:
        self.updated = e.time if e.time is not None else self.updated
        if isinstance(e, Start):
            self.status, self.end, self.start = "running", None, e
            self.run_id = e.run_id or self.run_id
            self.max_steps = e.max_steps or self.max_steps
            self.started = e.time if e.time is not None else self.started  # ETA counts from the latest start
        elif isinstance(e, Step):
            self.status, loss = "running", e.loss
            if self.last_step is not None:
                e = replace(e, **{f.name: getattr(self.last_step, f.name) for f in fields(e)
                                  if getattr(e, f.name) is None})
            self.last_step = e
            self.step = e.step if e.step is not None else self.step
            self.max_steps = e.max_steps or self.max_steps
            if e.peak_mem_bytes is not None:
                self.peak_mem_bytes = max(self.peak_mem_bytes or 0, e.peak_mem_bytes)
            if loss is not None:
                self.train_curve.append((self.step, loss))
        elif isinstance(e, Eval):
            if e.eval_loss is not None:
                self.eval_curve.append((e.step if e.step is not None else self.step, e.eval_loss))
                self.eval_rising = self.best_eval_loss is not None and e.eval_loss > self.best_eval_loss
                self.best_eval_loss = e.eval_loss if self.best_eval_loss is None else min(self.best_eval_loss, e.eval_loss)
        elif isinstance(e, Checkpoint):
            self.checkpoint = e
        elif isinstance(e, Retry):
            self.retries.append(e)
        elif isinstance(e, Log):
            self.logs.append((e.level or "info", clean(e.message or "")))
        elif isinstance(e, Data):
            if self.logs and self.logs[-1][1].startswith("data: reading") and e.phase == "progress":
                self.logs.pop()  # the newest progress replaces the last one
            self.logs.append(("warning" if e.skipped_rows or e.truncated_rows else "info", data_text(e)))
        elif isinstance(e, Error):
            self.error, self.error_hint = e.message, e.hint
        elif isinstance(e, Diagnosis):
            self.diagnoses.pop(e.code, None)  # re-inserted: the dict's order is arrival order
            self.diagnoses[e.code] = e
        elif isinstance(e, Sample):
            if self.samples and self.samples[-1].step != e.step:
                self.samples = []  # a newer step's samples replace the older ones
            self.samples.append(e)
        elif isinstance(e, End):
            self.end = e
            self.status = e.status or "failed"
            self.step = e.step or self.step
            if e.peak_mem_bytes is not None:
                self.peak_mem_bytes = e.peak_mem_bytes
            if e.best_eval_loss is not None:
                self.best_eval_loss = e.best_eval_loss

    def worker_gone(self, note: str | None = None) -> None:
        """The worker exited without an end event: the run failed (killed, OOM killer, reboot)."""
        self.status = "failed"
        self.error = self.error or note or "the worker exited without an end event"

    @property
    def current_diagnoses(self) -> list[Diagnosis]:
        """What the run doctor said, newest first."""
        return list(reversed(self.diagnoses.values()))

    @property
    def loss(self) -> float | None:
        return self.train_curve[-1][1] if self.train_curve else None

    @property
    def losses(self) -> list[float]:
        """The latest losses, for the sparkline."""
        return [loss for _, loss in self.train_curve[-SPARK_POINTS:]]

    @property
    def last_eval(self) -> tuple[int, float] | None:
        return self.eval_curve[-1] if self.eval_curve else None

    @property
    def gap(self) -> float | None:
        """Validation minus train loss: growing means overfitting."""
        if self.last_eval is None or self.loss is None:
            return None
        return self.last_eval[1] - self.loss

    def eta(self) -> float | None:
        """Seconds left: measured from the steps so far, else the planner's (`eta_planned`)."""
        if self.last_step is not None and self.last_step.eta_s is not None:
            return self.last_step.eta_s
        if self.started and self.updated and self.step and self.max_steps:
            done = self.step - ((self.start.resumed_from_step if self.start else None) or 0)
            if done > 0:
                return (self.updated - self.started) / done * (self.max_steps - self.step)
        return self.planned_eta()

    def planned_eta(self) -> float | None:
        """Before the first measured step: the start event's planned seconds for the steps left."""
        planned = self.start.planned_s if self.start is not None else None
        if planned is None or not self.max_steps:
            return None
        return planned * max(0, self.max_steps - self.step) / self.max_steps

    @property
    def eta_planned(self) -> bool:
        """The ETA shown is the planner's, not yet measured."""
        measured = (self.last_step is not None and self.last_step.eta_s is not None) or (
            self.step > ((self.start.resumed_from_step if self.start else None) or 0))
        return not measured and self.planned_eta() is not None


def read_log_tail(path: Path, n: int = 4, max_bytes: int = 8192) -> list[str]:
    """The last `n` non-empty lines of a log file, cleaned (progress bars' \\r and escapes removed)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [clean(l.split("\r")[-1]).strip() for l in data.splitlines()]
    return [l for l in lines if l][-n:]


def data_text(e: Data) -> str:
    """One line for a data event: progress (rows, rows/s, ETA) or what was done to the rows."""
    if e.phase == "progress":
        total = f" of ~{e.total_rows:,}" if e.total_rows else ""
        rate = f", {e.rows_per_s:,.0f} rows/s" if e.rows_per_s else ""
        eta = f", eta {fmt_duration(e.eta_s)}" if e.eta_s is not None else ""
        return clean(f"data: reading {e.rows or 0:,}{total} rows{rate}{eta}")
    parts = [f"data ready: {e.rows or 0:,} training rows" + (" (from the cache)" if e.cached else "")]
    if e.skipped_rows:
        parts.append(f"{e.skipped_rows:,} bad row{'s' if e.skipped_rows != 1 else ''} skipped")
    if e.truncated_rows:
        parts.append(f"{e.truncated_rows:,} truncated to max_seq_len")
    if e.packing_efficiency is not None:
        parts.append(f"packing {e.packing_efficiency:.0%} full")
    line = ", ".join(parts)
    if e.examples:
        line += "; e.g. " + e.examples[0]
    return clean(line)
