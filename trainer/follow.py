"""Following a run while it trains: the one loop behind the headless panel, `rankwise attach`,
the TUI's Run screen and the sweep.

`Follower(run_dir)` is iterated for batches of typed events, one batch per poll (empty when
nothing landed; the loop body is where a viewer redraws, reads keys or sends a heartbeat). The
iteration ends after the batch holding the `end` event (`.end`), or once the worker is gone
without one (`.gone`: killed, OOM killer, reboot); a viewer that wants to leave earlier breaks
out. No torch.

Is the worker gone? With `proc` (the process this terminal started): it has exited. Otherwise,
after a `start` event: its pid is no longer our worker (a recycled pid does not count). Before
one (the worker is still importing torch; a resumed run's new start is pending): nothing in
the run directory changed for `STARTING_GRACE_S`. A death is only believed after one more
poll, since the end event may land just before the process exits.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

from .events import EVENTS_FILE, End, Event, Start, Tail, typed
from .runs import STARTING_GRACE_S, is_our_worker

CHECK_S = 2.0  # how often to look at the process table while the log is quiet
CHECK_PROC_S = 0.5  # ... when we hold the worker's Popen (cheap to ask)


class Follower:
    """Iterate for batches of events until the run ends, or its worker is gone.

    `from_offset`: the byte of events.jsonl to start at (a resumed run's earlier events, its
    old `end` included, are history). `proc`: the worker's Popen when this process started it.
    `poll`: seconds between reads while the log is quiet."""

    def __init__(self, run_dir: str | Path, *, from_offset: int = 0, proc=None, poll: float = 0.25):
        self.run_dir = Path(run_dir)
        self.proc = proc
        self.poll = poll
        self.end: End | None = None
        self.start: Start | None = None  # the latest start event seen
        self.gone = False
        self._tail = Tail(self.run_dir / EVENTS_FILE, offset=from_offset)

    def __iter__(self) -> Iterator[list[Event]]:
        last_check = 0.0
        while True:
            batch = self._read()
            yield batch
            if self.end is not None:
                return
            if batch:
                continue
            now = time.monotonic()
            if now - last_check >= (CHECK_PROC_S if self.proc is not None else CHECK_S):
                last_check = now
                if not self._alive():
                    late = self._read()  # the end event may have landed just before it exited
                    if late:
                        yield late
                    self.gone = self.end is None
                    return
            time.sleep(self.poll)

    def _read(self) -> list[Event]:
        batch = [e for e in map(typed, self._tail.poll()) if e is not None]
        for e in batch:
            if isinstance(e, Start):
                self.start, self.end = e, None
            elif isinstance(e, End):
                self.end = e
        return batch

    def _alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self.start is not None:
            return is_our_worker(self.start.pid, self.run_dir)
        return _touched_within(self.run_dir, STARTING_GRACE_S)


def _touched_within(run_dir: Path, seconds: float) -> bool:
    """Something in the run directory (its log, train.log) changed in the last `seconds`."""
    try:
        newest = max(p.stat().st_mtime for p in [run_dir, *run_dir.iterdir()])
    except (OSError, ValueError):
        return False
    return time.time() - newest < seconds
