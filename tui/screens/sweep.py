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
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

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


def read(sweep_dir: Path) -> tuple[dict | None, str | None]:
    path = Path(sweep_dir) / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, f"cannot read {path}: {e}"
    return (data, None) if isinstance(data, dict) else (None, f"{path}: not a results object")


def launch_sweep(preset: str | Path, runs_dir: str | Path, ranks: str | None = None, steps: int | None = None,
                 overrides: tuple[str, ...] = ()) -> Path:
    """Start `rankwise sweep` in the background (own session, output in <sweep_dir>/sweep.log);
    returns its sweep folder. Bad input raises RankwiseError before anything starts."""
    from rankwise.advisor.hardware import probe
    from rankwise.trainer import sweep

    rank_list = sweep.parse_ranks(ranks or "4,8,16,32,64")
    plan = sweep.plan(str(preset), list(overrides), rank_list, steps, None, probe(), None, str(runs_dir), None)
    from rankwise.trainer.start import check_inputs

    for r in (min(plan.ranks), max(plan.ranks)):  # weights, data, error-level red flags: said now, not in a log
        check_inputs(sweep.trial_config(plan, r))
    plan.sweep_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "rankwise.tui.cli", "sweep", "--preset", str(preset), "--runs-dir", str(runs_dir),
           "--sweep-dir", str(plan.sweep_dir), "--ranks", ",".join(map(str, rank_list))]
    cmd += ["--steps", str(steps)] if steps else []
    for o in overrides:
        cmd += ["--set", o]
    with open(plan.sweep_dir / LOG, "ab") as log:
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True)
    return plan.sweep_dir


class SweepScreen(Screen):
    """`SweepScreen(sweep_dir)`: push it after `launch_sweep`, or on any finished sweep folder."""

    BINDINGS = [Binding("escape,f2", "app.pop_screen", "Back", key_display="esc/F2"), Binding("r", "reload", "Reload")]
    DEFAULT_CSS = """
    SweepScreen #sweep-body { padding: 0 1; }
    SweepScreen #sweep-state { color: $text-muted; }
    SweepScreen #sweep-plot { margin: 1 0; }
    """

    def __init__(self, sweep_dir: Path) -> None:
        super().__init__()
        self.sweep_dir = Path(sweep_dir)
        self.data: dict | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="sweep-body"):
            yield Static(Text(f"reading {self.sweep_dir}…", style="dim"), id="sweep-state")
            yield Static(id="sweep-table")
            yield Static(id="sweep-plot")
            yield Static(id="sweep-reason")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"sweep {self.sweep_dir.name}"
        self.action_reload()
        self._timer = self.set_interval(REFRESH_S, self.action_reload)

    def action_reload(self) -> None:
        self.load()

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
        state.update(Text(f"{data.get('state', '?')} · {done}/{len(data.get('trials', []))} trials · "
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
