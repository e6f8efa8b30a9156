"""Issue 16, stoppable work: `s` says the sweep's size and planned time before anything starts, and
the Sweep screen stops the whole sweep (its process, its trial's run; nothing is left running)."""
from __future__ import annotations

import json
import time

import pytest

from rankwise.advisor.presets import shipped
from rankwise.tui.app import build_app
from tui_support import NO_GPU, NOW, SMALL_CATALOG, settle

SIZE = (80, 24)
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))


def demo_app(tmp_path):
    return build_app(hardware=NO_GPU, runs_dir=tmp_path / "runs", catalog=SMALL_CATALOG, clock=lambda: NOW,
                     presets={"demo-cpu": shipped()["demo-cpu"]})


async def until(pilot, condition, what: str, timeout: float = 240.0):
    """Wait for something the sweep's processes write (a file's content), not for a time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await pilot.pause(0.2)


async def test_s_confirms_the_sweeps_size_and_planned_time_and_no_starts_nothing(tmp_path):
    from rankwise.tui.screens.dialogs import ConfirmScreen
    from rankwise.tui.screens.presets import PresetsScreen

    async with demo_app(tmp_path).run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        dialog = pilot.app.screen
        assert isinstance(dialog, ConfirmScreen)
        q = dialog.question
        assert "\n" not in q
        assert "4 trials (r=4, 8, 16, 32)" in q and "steps each" in q  # r=64: above the 64-wide demo's half width
        assert "of training in all (planned)" in q  # advisor/time.py's total, as `rankwise sweep` prints it
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(pilot.app.screen, PresetsScreen)
        assert not (tmp_path / "runs" / "sweeps").exists()  # refused: no folder, no process


def _results(runs):
    found = list(runs.glob("sweeps/*/results.json"))
    return json.loads(found[0].read_text()) if found else {}


def _trials(runs):
    found = list(runs.glob("sweeps/*/trials.json"))
    return json.loads(found[0].read_text()).get("trials", {}) if found else {}


def _trial_stepping(runs) -> bool:
    """A trial's worker is training (its run logged a step): the sweep and a run are both alive."""
    from pathlib import Path

    from rankwise.trainer.events import read_events

    return any(t.get("status") == "running" and t.get("run_dir")
               and any(e.get("type") == "step" for e in read_events(Path(t["run_dir"]) / "events.jsonl"))
               for t in _trials(runs).values())


def _trial_started(runs) -> bool:
    """A trial's run folder is recorded: its worker is loading (no step yet, usually no start event)."""
    return any(t.get("status") == "running" and t.get("run_dir") for t in _trials(runs).values())


@pytest.mark.slow
@pytest.mark.parametrize("when", ["training", "starting"])
async def test_the_sweep_screen_stops_the_whole_sweep_and_leaves_nothing_running(tmp_path, when, monkeypatch):
    """Stopped while its trial trains, or while the trial's worker is still loading (a stop then
    used to miss the worker: no pid in its log yet, so the trial trained to its end)."""
    if when == "training":  # the trial holds after its 2nd step until a signal: a 15-step demo trial
        monkeypatch.setenv("RANKWISE_TEST_HOLD_IN", "training:2")  # could otherwise end before the stop lands
    from rankwise.trainer.runs import list_runs
    from rankwise.trainer.sweep_driver import is_running, processes
    from rankwise.tui.screens.sweep import SweepScreen

    runs = tmp_path / "runs"
    async with demo_app(tmp_path).run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, SweepScreen)
        sweep_dir = screen.sweep_dir
        await until(pilot, lambda: (sweep_dir / "driver.json").is_file(), "the sweep process to record itself")
        await until(pilot, lambda: _trial_stepping(runs) if when == "training" else _trial_started(runs),
                    f"the first trial {when}")
        assert processes(sweep_dir)
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)  # the stop worker waits for the sweep process and the trial's run to end
        assert not is_running(sweep_dir)
        assert not processes(sweep_dir)
        assert [r.id for r in list_runs(runs) if r.status == "running"] == []
        trial_runs = [r for r in list_runs(runs) if "-sweep-r" in r.id]
        assert trial_runs and all(r.status != "finished" for r in trial_runs), [(r.id, r.status) for r in trial_runs]
        assert _results(runs).get("state") == "interrupted"
        statuses = sorted(t["status"] for t in _trials(runs).values())
        assert "running" not in statuses and "queued" in statuses  # the stopped trial waits to be continued
        said = [n.message for n in pilot.app._notifications]
        assert any("stopped" in m and "still running" not in m for m in said), said


@pytest.mark.slow
async def test_x_on_runs_for_a_sweeps_trial_offers_to_stop_the_whole_sweep(tmp_path):
    """Stopping a trial alone let its sweep start the next one: Runs says so and stops the sweep."""
    from rankwise.trainer.runs import list_runs
    from rankwise.trainer.sweep_driver import is_running
    from rankwise.tui.screens.dialogs import ConfirmScreen
    from rankwise.tui.screens.sweep import SweepScreen

    runs = tmp_path / "runs"
    async with demo_app(tmp_path).run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        sweep_dir = pilot.app.screen.sweep_dir
        await until(pilot, lambda: _trial_started(runs) and (sweep_dir / "driver.json").is_file(), "a trial to start")
        await pilot.press("ctrl+r")
        await settle(pilot)
        await until(pilot, lambda: any("-sweep-r" in r.id for r in pilot.app.screen.runs), "the trial on Runs")
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmScreen)
        assert "trial of the running sweep" in pilot.app.screen.question
        await pilot.press("y")
        await settle(pilot)
        assert isinstance(pilot.app.screen, SweepScreen) and pilot.app.screen.sweep_dir == sweep_dir
        assert not is_running(sweep_dir)
        assert [r.id for r in list_runs(runs) if r.status == "running"] == []
