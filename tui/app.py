"""The Textual app: a router of screens and keys over the advisor and the runs directory.

`build_app()` is the one factory for the real run, the Pilot tests and the snapshots: fake
hardware, a catalog, preset files and a clock come in as data. The app holds no estimation
or training logic; screens call the advisor and read runs' event logs, doing anything slow
(model reading, dataset scans, log tailing, launching) in workers. torch is never imported
in this process: training runs in its own process, started by `rankwise train --detach`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from textual.app import App
from textual.binding import Binding
from textual.worker import WorkerState

from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.presets import shipped

from .context import SAVED_PRESETS, Context
from .launch import launch
from .screens.advice import AdviceScreen
from .screens.presets import PresetsScreen
from .screens.run import RunScreen
from .screens.runs import RunsScreen
from .screens.setup import SetupScreen
from .screens.sweep import SweepScreen, launch_sweep
from .style import css_variables


class RankwiseApp(App):
    CSS_PATH = "rankwise.tcss"
    TITLE = "rankwise"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+p", "presets", "Presets"),
        Binding("ctrl+r", "runs", "Runs"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        self._exit_when_ready = os.environ.get("RANKWISE_EXIT_WHEN_READY") == "1"

    def get_css_variables(self) -> dict[str, str]:
        """The theme's, plus the one style table's colours ($severity-error, $status-failed, ...)."""
        return {**super().get_css_variables(), **css_variables()}

    async def on_mount(self) -> None:
        await self.push_screen(SetupScreen())
        if self._exit_when_ready:  # bench/tui_startup.py: the first screen is ready
            self.call_after_refresh(self.exit)

    def on_worker_state_changed(self, event) -> None:
        """The one place a failed worker is shown (workers run with exit_on_error=False)."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{event.worker.group}: {type(error).__name__}: {error}", severity="error", timeout=10)

    # ---- routing
    def _show(self, screen_type, factory) -> None:
        """Go to the screen of this type if it is on the stack, else push a new one."""
        for i, s in enumerate(self.screen_stack):
            if isinstance(s, screen_type):
                while self.screen is not s:
                    self.pop_screen()
                return
        self.push_screen(factory())

    def action_presets(self) -> None:
        self._show(PresetsScreen, PresetsScreen)

    def action_runs(self) -> None:
        self._show(RunsScreen, RunsScreen)

    def open_advice(self, request=None, cfg=None) -> None:
        self.push_screen(AdviceScreen(request=request, cfg=cfg))

    def attach(self, run_dir: Path) -> None:
        self.push_screen(RunScreen(Path(run_dir)))

    def launch(self, preset: Path) -> None:
        """Start a detached run of this preset file in a worker, then attach to it."""
        self.notify(f"starting {preset.stem}…", timeout=3)
        self.run_worker(lambda: self._launch(preset), thread=True, group="launch", exclusive=True,
                        exit_on_error=False)

    def _launch(self, preset: Path) -> None:
        try:
            run_dir = launch(preset, self.ctx.runs_dir)
        except RankwiseError as e:
            self.call_from_thread(self.notify, e.render() if hasattr(e, "render") else str(e),
                                  severity="error", timeout=10)
            return
        self.call_from_thread(self.attach, run_dir)

    def sweep(self, preset: Path) -> None:
        """Start a background rank sweep of this preset file, then show its Sweep screen."""
        self.notify(f"starting a rank sweep of {preset.stem}…", timeout=3)
        self.run_worker(lambda: self._sweep(preset), thread=True, group="launch", exclusive=True,
                        exit_on_error=False)

    def _sweep(self, preset: Path) -> None:
        try:
            sweep_dir = launch_sweep(preset, self.ctx.runs_dir)  # checks input, then `rankwise sweep` in its own session
        except RankwiseError as e:
            self.call_from_thread(self.notify, e.render(), severity="error", timeout=10)
            return
        self.call_from_thread(self.push_screen, SweepScreen(sweep_dir))

    def presets(self) -> dict[str, Path]:
        """The presets given to build_app, or the shipped ones plus those saved from Advice."""
        if self.ctx.presets is not None:
            return self.ctx.presets
        saved = sorted((self.ctx.runs_dir / SAVED_PRESETS).glob("*.yaml"))
        return {**shipped(), **{f"{SAVED_PRESETS}/{p.stem}": p for p in saved}}


def build_app(hardware=None, runs_dir: str | Path = "runs", catalog: dict | None = None,
              presets: dict[str, Path] | None = None, clock: Callable[[], float] | None = None,
              probe: bool = True) -> RankwiseApp:
    """The one factory. `hardware=None` probes the machine in a worker (unless `probe=False`)."""
    if catalog is None:
        from rankwise.advisor.catalog import CATALOG

        catalog = CATALOG
    ctx = Context(hardware=hardware, runs_dir=Path(runs_dir), catalog=dict(catalog), presets=presets,
                  clock=clock or time.time, probe=probe)
    return RankwiseApp(ctx)


def run_app(args) -> int:
    """`rankwise` with no command (tui/cli.py calls this)."""
    runs_dir = getattr(args, "runs_dir", None) or "runs"
    app = build_app(runs_dir=runs_dir)
    app.ctx.overrides = list(getattr(args, "overrides", None) or [])
    app.run()
    return int(app.return_code or 0)
