"""Snapshots of every screen at 80×24 and 120×40, from fixed hardware, catalog, presets and clock.

Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the report.
"""
from __future__ import annotations

import pytest

from rankwise.tui.app import build_app
from tui_support import L4, NO_GPU, NOW, SMALL_CATALOG, fake_run, settle

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.usefixtures("steady_cursor")]
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
SMALL = [*SIZES, pytest.param((60, 20), id="60x20")]  # the screens issue 16 fixed for small terminals

PRESET = """\
name: {name}
description: {desc}
model:
  name: {model}
task: chat
method: {method}
lora:
  r: {r}
train:
  max_seq_len: 2048
"""


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    """The machine's own Hugging Face cache must not change what Setup lists."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A working directory with a runs dir holding one finished and one live-looking run, and two presets."""
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path / "runs", "demo-cpu-20270115-080000", steps=6)
    presets = {}
    for name, desc, model, method, r in (("chat-8b-qlora", "8B chat on a 24 GB card", "llama-3.1-8b", "qlora", 16),
                                         ("qwen-7b-lora", "7B LoRA that needs a big GPU", "qwen2.5-7b", "lora", 64)):
        p = tmp_path / f"{name}.yaml"
        p.write_text(PRESET.format(name=name, desc=desc, model=model, method=method, r=r))
        presets[name] = p
    return presets


def make(presets, hardware=L4):
    return build_app(hardware=hardware, runs_dir="runs", catalog=SMALL_CATALOG, presets=presets, clock=lambda: NOW)


async def settle_tables(pilot) -> None:
    """tui_support.settle (workers done, messages handled), then until every DataTable has measured its
    column widths. A DataTable measures them on its own idle event, which `pilot.pause()` (a wait for the
    CPU to go idle) does not wait for: on a busy machine a dialog opened over a table drew the table with
    its widths not yet measured."""
    from textual.widgets import DataTable

    await settle(pilot)
    for _ in range(100):  # bounded; each round hands the tables' message pumps a turn
        tables = [t for screen in pilot.app.screen_stack for t in screen.query(DataTable)]
        if not any(t._require_update_dimensions or t._updated_cells for t in tables):
            return
        await pilot.pause()


def steps(*keys):
    async def run_before(pilot):
        for key in keys:
            if key == "wait":
                await settle_tables(pilot)
            else:
                await pilot.press(key)
        await settle_tables(pilot)
    return run_before


@pytest.mark.parametrize("size", SMALL)
def test_setup(snap_compare, place, size):
    assert snap_compare(make(place), terminal_size=size, run_before=steps())


@pytest.mark.parametrize("size", SMALL)
def test_setup_no_gpu(snap_compare, place, size):
    assert snap_compare(make(place, NO_GPU), terminal_size=size, run_before=steps())


@pytest.mark.parametrize("size", SMALL)
def test_advice(snap_compare, place, size):
    keys = (*"llama-3.1-8b", "ctrl+n", "wait")
    assert snap_compare(make(place), terminal_size=size, run_before=steps(*keys))


@pytest.mark.parametrize("size", SMALL)
def test_presets(snap_compare, place, size):
    assert snap_compare(make(place), terminal_size=size, run_before=steps("ctrl+o", "wait"))


@pytest.mark.parametrize("size", SMALL)
def test_runs(snap_compare, place, size):
    assert snap_compare(make(place), terminal_size=size, run_before=steps("ctrl+r", "wait"))


@pytest.mark.parametrize("size", SMALL)
def test_run(snap_compare, place, size):
    assert snap_compare(make(place), terminal_size=size, run_before=steps("ctrl+r", "wait", "enter", "wait"))


@pytest.mark.parametrize("size", SIZES)
def test_run_with_diagnoses(snap_compare, place, size):
    """The Run screen with the run doctor's diagnoses (newest first, each with its fix)."""
    from rankwise.trainer.events import EventSink

    sink = EventSink("runs/demo-cpu-20270115-080000/events.jsonl")  # what the worker's checkup writes
    sink.emit("diagnosis", time=NOW - 530, code="gap-widening", severity="info", step=4,
              message="the eval-train gap grew from 0.0756 to 0.397 over 3 evaluations",
              fix="watch the eval loss; more dropout, a lower rank or fewer epochs if it turns up")
    sink.emit("diagnosis", time=NOW - 529, code="overfitting", severity="warning", step=6,
              message="eval loss up 2x in a row to 1.5 (best 1.36 at step 4) while the train loss fell to 0.704",
              fix="keep the checkpoint at step 4 (train.stop_on: [overfitting] does it), add dropout, lower "
                  "lora.r or train fewer epochs")
    sink.close()
    assert snap_compare(make(place), terminal_size=size, run_before=steps("ctrl+r", "wait", "enter", "wait"))


@pytest.mark.parametrize("size", SMALL)
def test_sweep_confirmation(snap_compare, place, size):
    """`s` on Presets: the sweep's trials, ranks and planned time in one line before anything starts."""
    from rankwise.advisor.presets import shipped

    app = make({"demo-cpu": shipped()["demo-cpu"]}, NO_GPU)
    assert snap_compare(app, terminal_size=size, run_before=steps("ctrl+o", "wait", "s", "wait"))


@pytest.mark.parametrize("size", SMALL)
def test_sweep(snap_compare, place, size):
    """The Sweep screen of a running sweep: its table, plot and recommendation so far; x stops it."""
    from pathlib import Path

    from rankwise.advisor import knee
    from rankwise.advisor.loader import load_config
    from rankwise.advisor.presets import resolve_preset
    from rankwise.trainer.sweep import SweepPlan, write_results
    from rankwise.tui.screens.sweep import SweepScreen

    preset = resolve_preset("demo-cpu")
    p = SweepPlan(preset=preset, cfg=load_config(preset), name="demo-cpu", ranks=[4, 8, 16, 32], skipped={},
                  steps=20, minutes=None, alpha_ratio=2.0, sweep_dir=Path("sweeps/demo-cpu-snap"),
                  runs_dir=Path("runs"), storage="trials.json", study_name="demo-cpu-snap")  # relative: the cwd is tmp

    def curve(rank, final):
        return knee.Curve(rank, "complete", tuple((s, 3.0 - s * 0.05) for s in range(1, 21)),
                          tuple((s, final + (20 - s) * 0.01) for s in (5, 10, 15, 20)))

    write_results(p, knee.analyse([curve(32, 1.69), curve(16, 1.70), knee.Curve(8, "running"),
                                   knee.Curve(4, "waiting")]), {}, "running")

    async def run_before(pilot):
        await pilot.app.workers.wait_for_complete()
        await pilot.app.push_screen(SweepScreen(p.sweep_dir))
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(make(place), terminal_size=size, run_before=run_before)
