"""Snapshots of every screen at 80×24 and 120×40, from fixed hardware, catalog, presets and clock.

Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the report.
"""
from __future__ import annotations

import pytest

from rankwise.tui.app import build_app
from tui_support import L4, NO_GPU, NOW, SMALL_CATALOG, fake_run

pytestmark = pytest.mark.filterwarnings("ignore")
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


def steps(*keys):
    async def run_before(pilot):
        for key in keys:
            if key == "wait":
                await pilot.app.workers.wait_for_complete()
                await pilot.pause()
            else:
                await pilot.press(key)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
    return run_before


@pytest.mark.parametrize("size", SMALL)
def test_setup(snap_compare, place, size):
    assert snap_compare(make(place), terminal_size=size, run_before=steps())


@pytest.mark.parametrize("size", SIZES)
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


@pytest.mark.parametrize("size", SIZES)
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
