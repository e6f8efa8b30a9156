"""Sweep: one rank sweep's results — the table, validation loss against rank, the recommendation.

It only reads `<sweep_dir>/results.json` (written by `rankwise sweep` after every trial), in
a worker, every few seconds while the sweep runs; no torch in this process.
`launch_sweep` starts `rankwise sweep` in its own process session (like a training run, it
outlives the TUI) and returns the folder to show.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from rankwise.advisor.coupling import lrs_text

from ..style import GOOD, message_style, status_style

REFRESH_S = 2.0
LOG = "sweep.log"


class SweepData(Message):
    def __init__(self, data: dict | None, error: str | None = None) -> None:
        super().__init__()
        self.data = data
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SweepData)


class SweepStopped(Message):
    def __init__(self, words: str, left: bool) -> None:
        super().__init__()
        self.words, self.left = words, left


def read(sweep_dir: Path) -> tuple[dict | None, str | None]:
    path = Path(sweep_dir) / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, f"cannot read {path}: {e}"
    return (data, None) if isinstance(data, dict) else (None, f"{path}: not a results object")


@dataclass
class SweepStart:
    """A checked sweep, not started yet: what `s` confirms in one line before anything runs."""

    plan: object  # trainer.sweep.SweepPlan
    preset: str
    runs_dir: Path
    ranks: list[int]
    steps: int | None
    overrides: tuple[str, ...]
    todo: list[int]  # ranks with no finished trial yet (at some rate of the grid)
    trials: int  # trials to run: the ranks and rates of the grid with no finished trial
    planned: str | None  # "plan: 5 trials, ~3m 10s of training in all" (advisor/time.py), None when unknown

    @property
    def lrs(self) -> list[float]:
        """The plan's learning-rate grid (--lrs) where it has one; empty: the preset's rate."""
        return list(self.plan.lrs) if len(self.plan.lrs) > 1 else []

    def question(self) -> str:
        p = self.plan
        each = f"{p.steps} steps each" if p.steps else "each by its preset's length"
        done = sorted(set(p.ranks) - set(self.todo))
        again = f" (r={', '.join(map(str, done))} already done)" if done else ""
        # planned_words: "plan: N trials, ~T of training in all[, cost ~C]"; the count is said here already
        plan = self.planned.split(", ", 1)[-1] + " (planned)" if self.planned else "time unknown (not plannable)"
        rates = f" × lr {lrs_text(self.lrs)}" if self.lrs else ""
        return (f"Start a rank sweep of {p.name}: {self.trials} trials (r={', '.join(map(str, self.todo))}{rates})"
                f"{again}, {each}, {plan}?")


def plan_sweep(preset: str | Path, runs_dir: str | Path, ranks: str | None = None, steps: int | None = None,
               overrides: tuple[str, ...] = (), hw=None, lrs: str | None = None) -> SweepStart:
    """Check a sweep of this preset and size it (trials, ranks, planned time); starts nothing. `ranks` and `lrs`
    as `rankwise sweep --ranks/--lrs` takes them (None: its defaults). Bad input raises RankwiseError."""
    from rankwise.trainer import sweep
    from rankwise.trainer.start import check_inputs
    from rankwise.trainer.sweep_trials import Ledger

    from ..commands.sweep import planned_words

    if hw is None:
        from rankwise.advisor.hardware import probe

        hw = probe()
    plan = sweep.plan(str(preset), list(overrides), sweep.parse_ranks(ranks) if ranks else None, steps, None, hw,
                      None, str(runs_dir), None, lrs=sweep.parse_lrs(lrs))
    rank_list = sorted(set(plan.ranks) | set(plan.skipped))  # the grid as planned: the started command's --ranks
    for r in (min(plan.ranks), max(plan.ranks)):  # weights, data, error-level red flags: said now, not in a log
        check_inputs(sweep.trial_config(plan, r))
    ledger = Ledger(plan.sweep_dir)
    left = []  # a rank for each trial not finished: one trial per rank and rate of the grid
    for phase in plan.phases():
        finished = {t["rank"] for t in ledger.trials(phase) if t.get("status") in ("complete", "pruned", "failed")}
        left += [r for r in plan.ranks if r not in finished]
    return SweepStart(plan, str(preset), Path(runs_dir), rank_list, steps, tuple(overrides), sorted(set(left)),
                      len(left), planned_words(plan, left, hw))


def start_sweep(s: SweepStart) -> Path:
    """Start `rankwise sweep` in the background (own session, output in <sweep_dir>/sweep.log);
    returns its sweep folder."""
    s.plan.sweep_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "rankwise.tui.cli", "sweep", "--preset", s.preset, "--runs-dir", str(s.runs_dir),
           "--sweep-dir", str(s.plan.sweep_dir), "--ranks", ",".join(map(str, s.ranks))]
    cmd += ["--steps", str(s.steps)] if s.steps else []
    cmd += ["--lrs", lrs_text(s.lrs, ",")] if s.lrs else []
    for o in s.overrides:
        cmd += ["--set", o]
    with open(s.plan.sweep_dir / LOG, "ab") as log:
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True)
    return s.plan.sweep_dir


def launch_sweep(preset: str | Path, runs_dir: str | Path, ranks: str | None = None, steps: int | None = None,
                 overrides: tuple[str, ...] = ()) -> Path:
    """Check, then start, a sweep without asking (the headless twin of `s` on Presets)."""
    return start_sweep(plan_sweep(preset, runs_dir, ranks, steps, overrides))


class SweepScreen(Screen):
    """`SweepScreen(sweep_dir)`: push it after `launch_sweep`, or on any finished sweep folder."""

    BINDINGS = [
        Binding("x", "stop", "Stop sweep", id="sweep.stop"),
        Binding("r", "reload", "Reload", id="sweep.reload"),
        Binding("escape,f2", "app.pop_screen", "Back", key_display="esc/F2", id="sweep.back"),
    ]
    DEFAULT_CSS = """
    SweepScreen #sweep-body { padding: 0 1; }
    SweepScreen #sweep-state { color: $text-muted; }
    SweepScreen #sweep-plot { margin: 1 0; }
    """

    def __init__(self, sweep_dir: Path, stop: bool = False) -> None:
        super().__init__()
        self.sweep_dir = Path(sweep_dir)
        self._stop_at_mount = stop  # asked already (Runs, for one of its trials)
        self.data: dict | None = None
        self.stopping = False

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="sweep-body"):
            yield Static(Text(f"reading {self.sweep_dir}…", style="dim"), id="sweep-state")
            yield Static(id="sweep-table")
            yield Static(id="sweep-plot")
            yield Static(id="sweep-reason")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"sweep {self.sweep_dir.name}"
        self.action_reload()
        self._timer = self.set_interval(REFRESH_S, self.action_reload)
        if self._stop_at_mount:
            self.stop_now()

    def action_reload(self) -> None:
        self.load()

    def action_stop(self) -> None:
        """Stop the whole sweep (after asking): the sweep process stops its trial with a checkpoint and
        queues it again, no further trial starts, and any trial run left is stopped (trainer/sweep_driver.py)."""
        from rankwise.trainer.sweep_driver import is_running

        from .dialogs import ConfirmScreen

        if self.stopping:
            return
        if not is_running(self.sweep_dir):
            self.notify("nothing of this sweep is running", severity="warning")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.stop_now()

        self.app.push_screen(ConfirmScreen(f"Stop the sweep {self.sweep_dir.name}? The running trial stops after a "
                                           "checkpoint and no other trial starts (re-running it continues)."), answer)

    def stop_now(self) -> None:
        """Stop the sweep without asking (the question was asked: here, or on Runs for one of its trials)."""
        self.stopping = True
        self.query_one("#sweep-state", Static).update(
            Text("stopping the sweep: its running trial saves a checkpoint, then stops…", style=message_style("warning")))
        self.stop_sweep()

    @work(thread=True, exclusive=True, group="sweep-stop", exit_on_error=False)
    def stop_sweep(self) -> None:
        from rankwise.trainer.sweep_driver import stop

        try:
            done = stop(self.sweep_dir)
        finally:
            self.app.call_from_thread(setattr, self, "stopping", False)
        self.post_message(SweepStopped(done.words(), bool(done.left)))

    def on_sweep_stopped(self, message: "SweepStopped") -> None:
        self.notify(f"sweep {self.sweep_dir.name}: {message.words}", severity="warning" if message.left else "information",
                    timeout=10)
        self.action_reload()

    @work(thread=True, exclusive=True, group="sweep", exit_on_error=False)
    def load(self) -> None:
        self.post_message(SweepData(*read(self.sweep_dir)))

    def on_sweep_data(self, message: SweepData) -> None:
        from rankwise.tui.sweep_view import plot_lines, table

        state = self.query_one("#sweep-state", Static)
        if message.error:
            state.update(Text(message.error, style=message_style("error")))
            return
        data = message.data
        if data is None:
            log = self.sweep_dir / LOG
            tail = ""
            if log.is_file():
                lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
                tail = "\n" + "\n".join(lines[-5:])
            state.update(Text(f"waiting for the first trial of {self.sweep_dir.name}…{tail}", style="dim"))
            return
        self.data = data
        done = sum(1 for t in data.get("trials", []) if t.get("status") in ("complete", "pruned", "failed", "skipped"))
        state.update(Text(("stopping… · " if self.stopping else "") + f"{data.get('state', '?')} · {done}/{len(data.get('trials', []))} trials · "
                          f"{data.get('steps') or '?'} steps each · {self.sweep_dir}"))
        self.query_one("#sweep-table", Static).update(table(data))
        self.query_one("#sweep-plot", Static).update(Text("\n".join(plot_lines(data))))
        self.query_one("#sweep-reason", Static).update(self._words(data))
        if data.get("state") in ("done", "interrupted"):
            self._timer.pause()

    @staticmethod
    def _words(data: dict) -> Text:
        t = Text()
        rec = data.get("recommended_rank")
        if rec is not None:
            t.append(f"recommended rank r={rec}" + (" (so far)" if data.get("state") != "done" else ""),
                     style="bold " + GOOD)
            t.append(f" — {data.get('reason', '')}")
        else:
            t.append(data.get("reason") or "no trial finished yet", style="dim")
        for note in data.get("notes", []):
            t.append(f"\n· {note}", style="dim")
        if data.get("recommended_preset"):
            t.append(f"\npreset: {data['recommended_preset']}  ·  rankwise train --preset {data['recommended_preset']}")
        if data.get("state") == "interrupted":
            t.append(f"\ninterrupted: `rankwise sweep --preset ... --sweep-dir {data.get('sweep_dir')}` continues it",
                     style=status_style("interrupted"))
        return t
