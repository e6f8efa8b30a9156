"""The Sweep screen, the Textual way: a results.json written by the sweep's own writer, read in a worker."""
from __future__ import annotations

import subprocess
import sys

import pytest
from textual.app import App

from rankwise.advisor import knee
from rankwise.tui.screens.sweep import SweepScreen
from tui_support import text_of


SIZE = (100, 40)


@pytest.fixture
def anyio_backend():
    return "asyncio"


def plan(tmp_path):
    from rankwise.advisor.loader import load_config
    from rankwise.advisor.presets import resolve_preset
    from rankwise.trainer.sweep import SweepPlan

    preset = resolve_preset("demo-cpu")
    return SweepPlan(preset=preset, cfg=load_config(preset), name="demo-cpu", ranks=[4, 8, 16, 32], skipped={},
                     steps=20, minutes=None, alpha_ratio=2.0, sweep_dir=tmp_path / "sweep", runs_dir=tmp_path / "runs",
                     storage="sqlite://", study_name="demo-cpu-test")


def curve(rank, final, status="complete"):
    return knee.Curve(rank, status, tuple((s, 3.0 - s * 0.05) for s in range(1, 21)),
                      tuple((s, final + (20 - s) * 0.01) for s in (5, 10, 15, 20)))


class Host(App):
    def __init__(self, sweep_dir):
        super().__init__()
        self.sweep_dir = sweep_dir

    def on_mount(self):
        self.push_screen(SweepScreen(self.sweep_dir))


@pytest.mark.anyio
async def test_sweep_screen_waits_then_shows_table_plot_and_recommendation(tmp_path):
    from rankwise.trainer.sweep import write_results

    p = plan(tmp_path)
    app = Host(p.sweep_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        screen = pilot.app.screen
        assert "waiting for the first trial" in text_of(screen.query_one("#sweep-state"))

        running = [curve(32, 1.69), curve(16, 1.70), knee.Curve(8, "running"), knee.Curve(4, "waiting")]
        write_results(p, knee.analyse(running), {}, "running")
        await pilot.press("r")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert "running · 2/4 trials" in text_of(screen.query_one("#sweep-state"))
        assert "(so far)" in text_of(screen.query_one("#sweep-reason"))

        done = [curve(32, 1.69), curve(16, 1.70), curve(8, 1.80), curve(4, 2.0)]
        write_results(p, knee.analyse(done), {}, "done")
        await pilot.press("r")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        reason = text_of(screen.query_one("#sweep-reason"))
        assert "recommended rank r=16 — r=16 is the knee" in reason and "recommended.yaml" in reason
        assert "rank (log2 axis)" in text_of(screen.query_one("#sweep-plot"))
        assert "done · 4/4 trials" in text_of(screen.query_one("#sweep-state"))
        await pilot.press("escape")
        assert not isinstance(pilot.app.screen, SweepScreen)


def test_the_sweep_screen_keeps_torch_and_optuna_out_of_the_tui():
    code = ("import sys, rankwise.tui.screens.sweep, rankwise.tui.sweep_view; "
            "print(sorted(m for m in ('torch', 'optuna', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_launch_sweep_refuses_bad_input_before_starting_anything(tmp_path):
    from rankwise.advisor.errors import RankwiseError
    from rankwise.tui.screens.sweep import launch_sweep

    with pytest.raises(RankwiseError, match="has no weights on this machine"):
        launch_sweep("llama3.1-8b-instruct-lora-80gb", tmp_path / "runs")
    with pytest.raises(RankwiseError, match="--ranks"):
        launch_sweep("demo-cpu", tmp_path / "runs", ranks="4,x")
    assert not (tmp_path / "runs").exists()
