"""Run: the live progress panel (the headless run's renderable) and a loss plot.

A worker follows the run's `events.jsonl` (trainer/follow.py), folds events into a `RunView`
and posts snapshots; snapshots replace each other in the queue, so a slow link shows the
newest state, not a backlog. `d` leaves the run going; `x` asks it to checkpoint and stop (after confirming).
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import get_current_worker

from ..widgets.lossplot import LossPlot

POLL_S = 0.25
LOG_TAIL_S = 2.0  # how often train.log's last lines are re-read while no `log` events come


class RunSnapshot(Message):
    """The newest folded state of the run; a newer one replaces an older one still queued."""

    def __init__(self, view) -> None:
        super().__init__()
        self.view = view

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunSnapshot)


PLOT_POINTS = 1000  # a curve keeps at most about this many points for the plot (braille: 2 a column)


def thin(curve: list, keep_last: int) -> list:
    """Every k-th point of a long curve, then its last `keep_last` points whole (the sparkline's)."""
    head, tail = curve[:-keep_last], curve[-keep_last:]
    k = max(1, len(head) // PLOT_POINTS)
    return head[::k] + tail


def snapshot(view):
    """The view as the screen gets it: its own copies of what the worker goes on changing, with
    the curves thinned (a deep copy of 60,000 points four times a second cost most of a core)."""
    from ..runview import SPARK_POINTS

    snap = copy.copy(view)
    snap.train_curve = thin(view.train_curve, SPARK_POINTS)
    snap.eval_curve = thin(view.eval_curve, SPARK_POINTS)
    snap.retries, snap.log_tail, snap.samples = list(view.retries), list(view.log_tail), list(view.samples)
    snap.logs, snap.diagnoses = copy.copy(view.logs), dict(view.diagnoses)
    return snap


def stop_run(screen, run_dir: Path) -> None:
    """Ask the run's worker to checkpoint and stop (SIGTERM), and say what happened."""
    from rankwise.advisor.errors import RankwiseError
    from rankwise.trainer.runs import request_stop

    try:
        pid = request_stop(run_dir)
    except RankwiseError as e:
        screen.notify(e.message, severity="warning")
        return
    screen.notify(f"asked pid {pid} to checkpoint and stop")


class RunScreen(Screen):
    BINDINGS = [
        Binding("d", "detach", "Detach", tooltip="Leave this screen; the run goes on", id="run.detach"),
        Binding("x", "stop", "Stop", tooltip="Stop after the next checkpoint (then --resume continues)", id="run.stop"),
        Binding("escape,f2", "detach", "Back", key_display="esc/F2", tooltip="Leave this screen; the run goes on",
                id="run.back"),
    ]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.view = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Container(id="run-body"):
            yield Static("waiting for the first event…", id="panel")
            yield LossPlot(id="plot")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"run {self.run_dir.name}"
        self.set_class(self.app.size.width >= 120, "-wide")
        self.tail()

    def on_resize(self) -> None:
        self.set_class(self.app.size.width >= 120, "-wide")

    @work(thread=True, exclusive=True, group="tail", exit_on_error=False)
    def tail(self) -> None:
        from rankwise.trainer.follow import Follower
        from rankwise.trainer.runs import run_info

        from ..runview import RunView, read_log_tail

        worker = get_current_worker()
        view = RunView(run_dir=self.run_dir)
        follower = Follower(self.run_dir, poll=POLL_S)
        tail_read = 0.0
        first = True
        for events in follower:
            if worker.is_cancelled:
                return
            for e in events:
                view.update(e)
            if not events and not view.logs and time.monotonic() - tail_read >= LOG_TAIL_S:
                tail_read = time.monotonic()
                lines = read_log_tail(self.run_dir / "train.log")
                if lines != view.log_tail:
                    view.log_tail = lines
                    events = [None]  # a redraw
            if events or first:
                self.post_message(RunSnapshot(snapshot(view)))
                first = False
        if follower.gone:
            info = run_info(self.run_dir)
            view.worker_gone(info.note or info.error)
            self.post_message(RunSnapshot(snapshot(view)))

    def on_run_snapshot(self, message: RunSnapshot) -> None:
        from ..panel import render

        self.view = message.view
        self.query_one("#panel", Static).update(render(message.view))
        self.query_one(LossPlot).points = (tuple(message.view.train_curve), tuple(message.view.eval_curve))

    def action_detach(self) -> None:
        self.app.pop_screen()

    def action_stop(self) -> None:
        from .dialogs import ConfirmScreen

        def answer(yes: bool | None) -> None:
            if yes:
                stop_run(self, self.run_dir)

        self.app.push_screen(ConfirmScreen(f"Stop run {self.run_dir.name}?\nIt saves a checkpoint first; "
                                           f"`rankwise train --resume {self.run_dir.name}` continues it."), answer)
