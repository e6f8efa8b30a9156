"""Run: the live progress panel (the headless run's renderable) and a loss plot.

A worker tails the run's `events.jsonl`, folds events into a `RunView` and posts snapshots;
snapshots replace each other in the queue, so a slow link shows the newest state, not a
backlog. `d` leaves the run going; `x` asks it to checkpoint and stop (after confirming).
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
CHECK_ALIVE_S = 2.0


class RunSnapshot(Message):
    """The newest folded state of the run; a newer one replaces an older one still queued."""

    def __init__(self, view, train: tuple, evals: tuple) -> None:
        super().__init__()
        self.view, self.train, self.evals = view, train, evals

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunSnapshot)


def fold(view, e: dict, train: list, evals: list) -> None:
    view.update(e)
    t = e.get("type")
    if t == "step" and isinstance(e.get("loss"), (int, float)):
        train.append((e.get("step", 0), e["loss"]))
    elif t == "eval" and isinstance(e.get("eval_loss"), (int, float)):
        evals.append((e.get("step", 0), e["eval_loss"]))


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
        Binding("d", "detach", "Detach (run goes on)"),
        Binding("x", "stop", "Stop after checkpoint"),
        Binding("escape", "detach", "Back", show=False),
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
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"run {self.run_dir.name}"
        self.set_class(self.app.size.width >= 120, "-wide")
        self.tail()

    def on_resize(self) -> None:
        self.set_class(self.app.size.width >= 120, "-wide")

    @work(thread=True, exclusive=True, group="tail", exit_on_error=False)
    def tail(self) -> None:
        from rankwise.trainer.events import EVENTS_FILE, Tail
        from rankwise.trainer.runs import run_info

        from ..panel import RunView, read_log_tail

        worker = get_current_worker()
        view = RunView(run_dir=self.run_dir)
        log = Tail(self.run_dir / EVENTS_FILE)
        train: list = []
        evals: list = []
        last_check = 0.0
        first = True
        while not worker.is_cancelled:
            events = log.poll()
            for e in events:
                fold(view, e, train, evals)
            now = time.monotonic()
            if not events and now - last_check > CHECK_ALIVE_S and view.end is None:
                last_check = now
                if not view.logs:
                    view.log_tail = read_log_tail(self.run_dir / "train.log")
                info = run_info(self.run_dir)
                if info.status == "failed" and view.status not in ("finished", "failed", "interrupted"):
                    view.status = "failed"
                    view.error = view.error or info.note or info.error
                events = [None]  # something changed enough to redraw
            if events or first:
                self.post_message(RunSnapshot(copy.deepcopy(view), tuple(train), tuple(evals)))
                first = False
            if view.end is not None or view.status == "failed" and view.pid is not None:
                break
            time.sleep(POLL_S)

    def on_run_snapshot(self, message: RunSnapshot) -> None:
        from ..panel import render

        self.view = message.view
        self.query_one("#panel", Static).update(render(message.view))
        self.query_one(LossPlot).points = (message.train, message.evals)

    def action_detach(self) -> None:
        self.app.pop_screen()

    def action_stop(self) -> None:
        from .dialogs import ConfirmScreen

        def answer(yes: bool | None) -> None:
            if yes:
                stop_run(self, self.run_dir)

        self.app.push_screen(ConfirmScreen(f"Stop run {self.run_dir.name}?\nIt saves a checkpoint first; "
                                           f"`rankwise train --resume {self.run_dir.name}` continues it."), answer)
