"""Showing a run in a plain terminal until it ends: `rankwise train` (foreground) and `rankwise attach`.

In a terminal, the live panel (`tui/panel.py`), redrawn as events land, with `q` to detach;
piped or in CI, one plain line per event; with `--json-events`, each event as a JSON line.
The events come from the one follow loop, `rankwise.trainer.follow.Follower`.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from rankwise.trainer.follow import Follower

from .panel import plain_line, render
from .runview import RunView, read_log_tail

LOG_TAIL_S = 2.0  # how often the panel re-reads train.log's last lines (while no `log` events come)


class Keys:
    """`q` to detach, read from stdin in cbreak mode (only when stdin is a terminal)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stdin is not None and sys.stdin.isatty()
        self._saved = None

    def __enter__(self):
        if self.enabled:
            import termios
            import tty

            fd = sys.stdin.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)  # keys arrive one by one; Ctrl-C still raises KeyboardInterrupt
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)
        return False

    def quit_pressed(self) -> bool:
        if not self.enabled:
            return False
        import select

        while select.select([sys.stdin], [], [], 0)[0]:
            ch = os.read(sys.stdin.fileno(), 1)
            if not ch:
                return False
            if ch in (b"q", b"Q"):
                return True
        return False


def follow(run_dir: Path, console: Console | None = None, json_events: bool = False,
           proc=None, detach_keys: bool = False, interval: float = 0.25, offset: int = 0) -> dict | None:
    """Show a run until it ends. Returns its `end` event (as its JSON dict), or None when the
    worker (`proc`, or the pid of its start event) exited without one, or the user detached
    (`q`/Ctrl-C with `detach_keys`). Without `detach_keys`, KeyboardInterrupt propagates.
    `offset`: a resumed run shows only what this session appends (the old `end` is history)."""
    run_dir = Path(run_dir)
    console = console or Console()
    follower = Follower(run_dir, from_offset=offset, proc=proc, poll=interval)
    view = RunView(run_dir=run_dir)
    live_mode = console.is_terminal and not json_events
    out = console.file

    def show(e) -> None:
        line = json.dumps(e.to_dict()) if json_events else None if live_mode else plain_line(e)
        if line is not None:
            out.write(line + "\n")
            out.flush()

    live = None
    tail_read = 0.0
    try:
        with Keys(detach_keys) as keys:
            if live_mode:
                from rich.live import Live

                live = Live(render(view), console=console, refresh_per_second=4, transient=False)
                live.start()
            for events in follower:
                for e in events:
                    view.update(e)
                    show(e)
                if live is not None and not view.logs and time.monotonic() - tail_read >= LOG_TAIL_S:
                    tail_read = time.monotonic()
                    view.log_tail = read_log_tail(run_dir / "train.log")
                if live is not None:
                    live.update(render(view))
                if keys.quit_pressed():
                    return None
            if follower.gone:
                view.worker_gone()
                if live is not None:
                    live.update(render(view))
            return follower.end.to_dict() if follower.end is not None else None
    except KeyboardInterrupt:
        if detach_keys:
            return None
        raise
    finally:
        if live is not None:
            live.stop()
