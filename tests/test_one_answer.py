"""One answer everywhere: every shipped preset, judged on four machines, gets the same peak and
verdict from `estimate --json`, `check --json`, `presets --json`, the Presets screen and the
Advice screen — they all ask advisor.fit."""
from __future__ import annotations

import contextlib
import io
import json

import pytest
from textual.widgets import DataTable

from rankwise.advisor.catalog import CATALOG
from rankwise.advisor.hardware import Hardware, planned
from rankwise.advisor.presets import shipped
from rankwise.tui import cli
from rankwise.tui.app import build_app
from tui_support import HOST, NOW

pytestmark = pytest.mark.slow  # ~60 CLI calls and 4 Textual apps

# name → (planning flags for the CLI, the same machine as data for the TUI)
MACHINES = {
    "no-gpu": (["--gpus", "0"], Hardware(gpus=(), host=HOST, source="declared")),
    "rtx4090": (["--gpu", "RTX4090"], planned(gpu="RTX4090", host=HOST)),
    "a100": (["--gpu", "A100-80GB"], planned(gpu="A100-80GB", host=HOST)),
    "4xa100": (["--gpu", "A100-80GB", "--gpus", "4"], planned(gpu="A100-80GB", gpus=4, host=HOST)),
}
PRESETS = sorted(shipped())


def _cli(*args) -> dict | list:
    """The CLI's own `main` in this process (the parsing, commands and exit codes a shell gets; one
    subprocess per call cost ~1.4 s of start-up each, ~90 s for the ~60 calls here)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main([*args, "--json"])
    assert rc in (0, 3), err.getvalue()  # 3: check found error-level flags (e.g. won't fit)
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def cli_answers() -> dict:
    """(machine, preset) → {surface: (peak_gib, verdict, strategy, gpus)} from the three read commands."""
    answers: dict = {}
    for machine, (flags, _) in MACHINES.items():
        for row in _cli("presets", *flags):
            answers.setdefault((machine, row["name"]), {})["presets"] = (row["peak_gib"], row["fit"])
        for name in PRESETS:
            est = _cli("estimate", "--preset", name, *flags)
            chk = _cli("check", name, *flags)
            got = answers[(machine, name)]
            got["estimate"] = (est["peak_gib"], est["fit"])  # every --json surface gives the peak to 3 decimals
            got["check"] = (chk["estimate"]["peak_gib"], chk["fit"])
            got["strategy"] = (est["strategy"], chk["estimate"]["strategy"], est["gpus"], chk["estimate"]["gpus"])
    return answers


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("name", PRESETS)
def test_cli_surfaces_agree(cli_answers, machine, name):
    got = cli_answers[(machine, name)]
    assert got["estimate"] == got["check"] == got["presets"], got
    est_strategy, chk_strategy, est_gpus, chk_gpus = got["strategy"]
    assert (est_strategy, est_gpus) == (chk_strategy, chk_gpus)
    if machine == "no-gpu":
        assert got["estimate"][1] == "no-gpu"


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


async def _screens(machine: str, tmp_path) -> dict:
    """preset → ((peak, verdict) on the Presets screen, (peak, verdict) on Advice after `e`)."""
    hw = MACHINES[machine][1]
    app = build_app(hardware=hw, runs_dir=tmp_path / machine, catalog=dict(CATALOG), presets=shipped(),
                    clock=lambda: NOW)
    out = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+o")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        presets = pilot.app.screen
        for i, row in enumerate(presets.rows):
            presets.query_one(DataTable).move_cursor(row=i)
            await pilot.press("e")
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            advice = pilot.app.screen
            assert type(advice).__name__ == "AdviceScreen"
            f = advice.judged[advice.chosen]
            out[row["name"]] = ((row["peak_gib"], row["fit"]), (round(f.peak_gib, 3), f.verdict))
            await pilot.press("escape")
            await pilot.pause()
            assert pilot.app.screen is presets
    return out


@pytest.mark.anyio
@pytest.mark.parametrize("machine", MACHINES)
async def test_screens_agree_with_the_cli(cli_answers, machine, tmp_path):
    screens = await _screens(machine, tmp_path)
    assert set(screens) == set(PRESETS)
    for name, (presets_row, advice) in screens.items():
        assert presets_row == advice == cli_answers[(machine, name)]["presets"], name
