"""The event log: the one contract between a training process and everything that shows it.

A run's trainer appends one JSON object per line to `runs/<id>/events.jsonl`. The headless
panel, `rankwise attach`, `rankwise runs`, the TUI and scripts only ever read this file.
No torch here: readers must stay light.

Every event has `type` and `time` (unix seconds). By type:

- start:      run_id, pid, model, method, device, device_total_bytes (null on CPU),
              max_steps, epochs, micro_batch, grad_accum, estimate_peak_gib, resumed_from_step,
              train_rows, val_rows, truncated_rows, skipped_rows
- step:       step, max_steps, epoch, loss, lr, grad_norm, tokens_per_s, mem_bytes,
              peak_mem_bytes, eta_s
- eval:       step, eval_loss
- checkpoint: step, path
- retry:      attempt, reason, micro_batch, grad_accum, from_step
- log:        level, message
- end:        status (finished | interrupted | failed), step, final_loss, best_eval_loss,
              peak_mem_bytes, adapter_path, exit_code
- error:      message, hint (a failure the user should read; followed by end status failed)
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator

EVENTS_FILE = "events.jsonl"
TYPES = ("start", "step", "eval", "checkpoint", "retry", "log", "end", "error")
END_STATUSES = ("finished", "interrupted", "failed")


class EventSink:
    """Appends events to one file, a line at a time, flushed so readers see each at once."""

    def __init__(self, path: str | Path, echo=None):
        self.path = Path(path)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._echo = echo  # optional callable(dict), e.g. --json-events

    def emit(self, type_: str, **fields) -> dict:
        if type_ not in TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        event = {"type": type_, "time": round(time.time(), 3), **fields}
        self._fh.write(json.dumps(event, default=_jsonable) + "\n")
        self._fh.flush()
        if type_ in ("end", "error", "checkpoint"):
            os.fsync(self._fh.fileno())  # these must survive a crash right after
        if self._echo:
            self._echo(event)
        return event

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def _jsonable(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


# Fields every reader may format as numbers; a hand-edited or foreign line that puts anything
# else there loses the field rather than crashing a viewer.
NUMERIC = ("time", "pid", "step", "max_steps", "epoch", "epochs", "loss", "lr", "grad_norm", "tokens_per_s",
           "mem_bytes", "peak_mem_bytes", "eta_s", "eval_loss", "final_loss", "best_eval_loss", "attempt",
           "micro_batch", "grad_accum", "from_step", "device_total_bytes", "estimate_peak_gib",
           "resumed_from_step", "train_rows", "val_rows", "truncated_rows", "skipped_rows", "exit_code")


def parse_line(line: str) -> dict | None:
    """One line → event, or None for a torn/partial or foreign line."""
    line = line.strip()
    if not line:
        return None
    try:
        event = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    for key in NUMERIC:
        value = event.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or value != value or value in (float("inf"), float("-inf"))):
            del event[key]
    return event


def read_events(path: str | Path) -> list[dict]:
    """All complete events in a log (a half-written last line is skipped)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [e for e in map(parse_line, fh) if e is not None]
    except FileNotFoundError:
        return []


class Tail:
    """Incremental reader: `poll()` returns events appended since the last call."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._pos = 0
        self._partial = ""

    def poll(self) -> list[dict]:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                fh.seek(self._pos)
                chunk = fh.read()
                self._pos = fh.tell()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()  # incomplete until its newline arrives
        return [e for e in map(parse_line, lines) if e is not None]

    def follow(self, interval: float = 0.25, stop=None) -> Iterator[dict]:
        """Yield events as they arrive until an `end` event (or `stop()` is true)."""
        while True:
            events = self.poll()
            for e in events:
                yield e
                if e["type"] == "end":
                    return
            if stop is not None and stop():
                return
            if not events:
                time.sleep(interval)
