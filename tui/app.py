"""The Textual app: a router of screens and keys over the advisor and the runs directory.

`build_app()` is the one factory for the real run, the Pilot tests and the snapshots: fake
hardware, a catalog, preset files and a clock come in as data. The app holds no estimation
or training logic; screens call the advisor and read runs' event logs, doing anything slow
(model reading, dataset scans, log tailing, launching) in workers. torch is never imported
in this process: training runs in its own process, started by `rankwise train --detach`.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from pathlib import Path
from typing import Callable

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.worker import WorkerState

from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.presets import shipped

from .context import LAUNCHED_PRESETS, SAVED_PRESETS, Context
from .launch import launch
from .screens.advice import AdviceScreen
from .screens.presets import PresetsScreen
from .screens.run import RunScreen
from .screens.runs import RunsScreen
from .screens.setup import SetupScreen
from .screens.dialogs import ConfirmScreen
from .screens.sweep import SweepScreen, plan_sweep, start_sweep
from .style import css_variables


def said(e: RankwiseError) -> str:
    """An error for a notification: the message, then its hint once (no CLI `error:` prefix)."""
    hint = (e.hint or "").strip().removeprefix("hint:").strip()
    return e.message + (f"\nhint: {hint}" if hint else "")


class RankwiseApp(App):
    CSS_PATH = "rankwise.tcss"
    TITLE = "rankwise"
    # Every binding has an id: `keys:` in the user config remaps it (tui/keys.py, binding_ids below).
    # ctrl+p is Textual's command palette (every screen's actions by name); Presets is ^o.
    # ^o/^r work everywhere; a screen shows them in its footer where there is room (their GO_KEYS).
    BINDINGS = [
        Binding("ctrl+o", "presets", "Presets", id="app.presets", show=False),
        Binding("ctrl+r", "runs", "Runs", id="app.runs", show=False),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("f1", "toggle_help", "Keys", key_display="F1", id="app.keys"),
        Binding("ctrl+p", "command_palette", "Palette", id="app.palette", priority=True, show=False),
    ]

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        self._exit_when_ready = os.environ.get("RANKWISE_EXIT_WHEN_READY") == "1"
        self._keys: deque[events.Key] = deque()  # typed ahead, not yet handed on
        self._key_feeder: asyncio.Task | None = None
        self._released: set[int] = set()  # ids of keys handed on by the feeder
        self._in_flight: events.Key | None = None  # the key handed on last, until it is handled
        self._holds: set[str] = set()  # while not empty, typed keys wait (a screen is not ready yet)

    # ---- type-ahead: keys are handled one at a time, in order, by the widget focused then
    # Textual hands a key to the focused widget's queue and runs non-priority bindings (Tab,
    # ^n, ^s...) only when the key has bubbled back up to the app, while the app already hands
    # the next keys to the same widget: over SSH a burst `C-u 512 Tab Tab Tab 0.3` put every
    # letter into the rank. Here the app hands a key on only when the previous one has been
    # handled through (its bubbling, its binding, the messages and screen changes it caused)
    # and no screen holds the keys (Advice until its form is filled; a launch until its screen).
    KEY_SETTLE_MAX_S = 0.1  # never hold a key longer for a pump that stays busy (a live log)...
    KEY_SETTLE_MIN_TURNS = 200  # ...once the loop has had this many turns to drain it (a starved
    # CPU stretches 0.1 s over a handful of turns, so time alone can hand a key on before the
    # Enter that moves the focus is handled: the likely cause of `8b` missing the model filter in
    # one busy CI run of tests/test_tui_pty.py, not reproduced here under load)
    KEY_IN_FLIGHT_MAX_S = 2.0  # ...nor for a key that never comes back (its widget went away)
    KEY_HOLD_MAX_S = 15.0  # nor for a screen that never says it is ready

    def hold_keys(self, name: str) -> None:
        self._holds.add(name)

    def release_keys(self, name: str) -> None:
        self._holds.discard(name)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            if not event.is_forwarded and id(event) not in self._released:
                self._keys.append(event)
                if self._key_feeder is None or self._key_feeder.done():
                    self._key_feeder = asyncio.create_task(self._feed_keys())
                return
            handed_on = id(event) in self._released  # else: bubbled back up to the app
            self._released.discard(id(event))
            await super().on_event(event)
            if event is self._in_flight and (not handed_on or not event.is_forwarded):
                self._in_flight = None  # its bindings have run here, or a priority binding took it
            return
        await super().on_event(event)

    def _busy(self) -> bool:
        pumps = [self, *self.screen_stack, *self.screen.walk_children()]
        return any(p.message_queue_size for p in pumps)

    async def _settle(self) -> None:
        """Until the key in flight is handled (taken by a widget, or bubbled back to the app where
        the bindings run), every message queue of the app and its screens stays empty for a few
        turns of the loop (what the key caused: a Submitted, a focus change, a screen's mount)
        and no screen holds the keys."""
        start = held_since = time.monotonic()
        quiet = busy_turns = 0
        while quiet < 3:
            await asyncio.sleep(0)
            if self._holds:
                if time.monotonic() - held_since < self.KEY_HOLD_MAX_S:
                    await asyncio.sleep(0.01)
                    quiet, start = 0, time.monotonic()  # the limits below count from the release
                    continue
                self._holds.clear()
            key = self._in_flight
            if key is not None and not key._stop_propagation:
                if time.monotonic() - start < self.KEY_IN_FLIGHT_MAX_S:
                    quiet = 0
                    continue
                self._in_flight = None
            if self._busy():
                quiet = 0
                busy_turns += 1
                if time.monotonic() - start > self.KEY_SETTLE_MAX_S and busy_turns > self.KEY_SETTLE_MIN_TURNS:
                    return
                continue
            quiet += 1

    async def _feed_keys(self) -> None:
        while self._keys:
            await self._settle()
            event = self._keys.popleft()
            self._released.add(id(event))
            self._in_flight = event
            self.post_message(event)

    def get_css_variables(self) -> dict[str, str]:
        """The theme's, plus the one style table's colours ($severity-error, $status-failed, ...)."""
        return {**super().get_css_variables(), **css_variables()}

    async def on_mount(self) -> None:
        await self.push_screen(SetupScreen())
        if self.ctx.overrides:
            from .overrides import said as set_words

            self.notify(f"{set_words(self.ctx.overrides)}: applied to every preset, Advice form, launch and sweep",
                        timeout=8)
        if self._exit_when_ready:  # bench/tui_startup.py: the first screen is ready
            self.call_after_refresh(self.exit)

    def on_worker_state_changed(self, event) -> None:
        """The one place a failed worker is shown (workers run with exit_on_error=False)."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{event.worker.group}: {type(error).__name__}: {error}", severity="error", timeout=10)

    def get_system_commands(self, screen):
        """The command palette (^p): this screen's and the app's actions by name, then Textual's own."""
        from functools import partial

        from textual.app import SystemCommand

        seen = set()
        for key, (node, binding, enabled, tooltip) in screen.active_bindings.items():
            if not enabled or not binding.description or binding.action in seen or binding.id in (None, "app.palette"):
                continue
            seen.add(binding.action)
            yield SystemCommand(binding.description, f"{self.get_key_display(binding)} · {tooltip or binding.id}",
                                partial(self.call_later, self.run_action, binding.action, node))
        yield from super().get_system_commands(screen)

    def action_toggle_help(self) -> None:
        """F1: Textual's key panel (every binding of the focused widget and its screen), again hides it."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

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
        self.hold_keys("advice")  # until its form is filled (AdviceScreen releases it)
        self.push_screen(AdviceScreen(request=request, cfg=cfg))

    def attach(self, run_dir: Path) -> None:
        self.push_screen(RunScreen(Path(run_dir)))

    def launch(self, preset: Path, overrides: tuple[str, ...] = ()) -> None:
        """Start a detached run of this preset file (with these --set values) in a worker, then attach to it."""
        self.notify(f"starting {preset.stem}…", timeout=3)
        self.hold_keys("launch")  # keys typed now are for the Run screen (or the error)
        self.run_worker(lambda: self._launch(preset, tuple(overrides)), thread=True, group="launch", exclusive=True,
                        exit_on_error=False)

    def _launch(self, preset: Path, overrides: tuple[str, ...] = ()) -> None:
        try:
            run_dir = launch(preset, self.ctx.runs_dir, overrides)
        except RankwiseError as e:
            self._discard(preset)
            self.call_from_thread(self.notify, said(e), title="not started", severity="error", timeout=10)
            self.call_from_thread(self.release_keys, "launch")
            return
        except BaseException:
            self.call_from_thread(self.release_keys, "launch")
            raise
        self.call_from_thread(self.attach, run_dir)
        self.call_from_thread(self.release_keys, "launch")

    def sweep(self, preset: Path, overrides: tuple[str, ...] = (), ranks: str | None = None,
              lrs: str | None = None) -> None:
        """Check and size a rank sweep of this preset (in a worker), confirm it in one line (trials,
        ranks, planned time), then start it and show its Sweep screen. A sweep of the same plan that
        already runs is shown, not started twice. `ranks`/`lrs` as `rankwise sweep` takes them (the
        Advice screen passes the advice's first sweep); None: the sweep's defaults."""
        self.notify(f"sizing a rank sweep of {preset.stem}…", timeout=3)
        self.hold_keys("sweep")  # keys typed now are for the confirmation (or the error)
        self.run_worker(lambda: self._plan_sweep(preset, tuple(overrides), ranks, lrs), thread=True, group="launch",
                        exclusive=True, exit_on_error=False)

    def _discard(self, preset: Path) -> None:
        if preset.parent == self.ctx.runs_dir / LAUNCHED_PRESETS:
            preset.unlink(missing_ok=True)  # a launch that did not start leaves nothing behind

    def _plan_sweep(self, preset: Path, overrides: tuple[str, ...], ranks: str | None = None,
                    lrs: str | None = None) -> None:
        try:
            self._size_sweep(preset, overrides, ranks, lrs)
        finally:
            self.call_from_thread(self.release_keys, "sweep")

    def _size_sweep(self, preset: Path, overrides: tuple[str, ...], ranks: str | None = None,
                    lrs: str | None = None) -> None:
        from rankwise.trainer.sweep_driver import is_running

        try:
            start = plan_sweep(preset, self.ctx.runs_dir, ranks, overrides=overrides, hw=self.ctx.hardware, lrs=lrs)
        except RankwiseError as e:
            self._discard(preset)
            self.call_from_thread(self.notify, said(e), title="not started", severity="error", timeout=10)
            return
        if is_running(start.plan.sweep_dir):
            self._discard(preset)
            self.call_from_thread(self.notify, f"this sweep already runs: {start.plan.sweep_dir.name}", timeout=5)
            self.call_from_thread(self.push_screen, SweepScreen(start.plan.sweep_dir))
            return
        self.call_from_thread(self._confirm_sweep, preset, start)

    def _confirm_sweep(self, preset: Path, start) -> None:
        def answer(yes: bool | None) -> None:
            if not yes:
                self._discard(preset)
                return
            self.run_worker(lambda: self._start_sweep(preset, start), thread=True, group="launch", exclusive=True,
                            exit_on_error=False)

        self.clear_notifications()  # "sizing a rank sweep…" is answered by the question
        self.push_screen(ConfirmScreen(start.question()), answer)

    def _start_sweep(self, preset: Path, start) -> None:
        try:
            sweep_dir = start_sweep(start)  # `rankwise sweep` in its own session: it outlives the TUI
        except OSError as e:
            self._discard(preset)
            self.call_from_thread(self.notify, f"could not start the sweep: {e}", title="not started",
                                  severity="error", timeout=10)
            return
        self.call_from_thread(self.push_screen, SweepScreen(sweep_dir))

    def presets(self) -> dict[str, Path]:
        """The presets given to build_app, or the shipped ones plus those saved from Advice."""
        if self.ctx.presets is not None:
            return self.ctx.presets
        saved = sorted((self.ctx.runs_dir / SAVED_PRESETS).glob("*.yaml"))
        return {**shipped(), **{f"{SAVED_PRESETS}/{p.stem}": p for p in saved}}


def binding_ids() -> dict[str, str]:
    """Every binding id of the app and its screens -> its default keys (what `keys:` may name)."""
    from .screens import chat, compare, dialogs

    owners = [RankwiseApp, SetupScreen, AdviceScreen, PresetsScreen, RunsScreen, RunScreen, SweepScreen,
              dialogs.ConfirmScreen, dialogs.PathScreen, chat.ChatScreen, compare.CompareScreen]
    ids: dict[str, str] = {}
    for owner in owners:
        for b in owner.BINDINGS:
            if isinstance(b, Binding) and b.id:
                ids.setdefault(b.id, b.key)
    return ids


def build_app(hardware=None, runs_dir: str | Path = "runs", catalog: dict | None = None,
              presets: dict[str, Path] | None = None, clock: Callable[[], float] | None = None,
              probe: bool = True, keymap: dict[str, str] | None = None,
              overrides: list[str] | tuple[str, ...] = ()) -> RankwiseApp:
    """The one factory. `hardware=None` probes the machine in a worker (unless `probe=False`)."""
    if catalog is None:
        from rankwise.advisor.catalog import CATALOG

        catalog = CATALOG
    ctx = Context(hardware=hardware, runs_dir=Path(runs_dir), catalog=dict(catalog), presets=presets,
                  clock=clock or time.time, probe=probe, overrides=list(overrides))
    app = RankwiseApp(ctx)
    if keymap:
        app.set_keymap(keymap)  # `keys:` of the user config (tui/keys.py)
    return app


def run_app(args) -> int:
    """`rankwise` with no command (tui/cli.py calls this)."""
    from .keys import user_keymap
    from .overrides import check_overrides

    runs_dir = getattr(args, "runs_dir", None) or "runs"
    overrides = check_overrides(getattr(args, "overrides", None) or [])  # bad --set: exit 2 before the TUI opens
    app = build_app(runs_dir=runs_dir, keymap=user_keymap(binding_ids()), overrides=overrides)
    app.run()
    return int(app.return_code or 0)
