"""Issue 16, keys that work everywhere: the command palette on ^p (Presets on ^o), binding ids and
the user's keymap, `rankwise --set` with the TUI, Setup's first focus and GPU confirmation, Esc on
Setup, ↑/↓ in the Advice form, footers that keep their keys at 80×24."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from textual.binding import Binding
from textual.widgets import DataTable, Input, OptionList, Select, Static

from tui_support import A100, L4, NO_GPU, app_for, settle, text_of

SIZE = (80, 24)
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))


def values(screen) -> dict[str, str]:
    return {w.id: w.value for w in screen.query(Input)}


# ---- binding ids, keymap, palette


def owners():
    from rankwise.tui.app import RankwiseApp
    from rankwise.tui.screens import advice, chat, compare, dialogs, presets, run, runs, setup, sweep

    return [RankwiseApp, setup.SetupScreen, advice.AdviceScreen, presets.PresetsScreen, runs.RunsScreen,
            run.RunScreen, sweep.SweepScreen, dialogs.ConfirmScreen, dialogs.PathScreen, chat.ChatScreen,
            compare.CompareScreen]


def test_every_binding_of_the_app_and_its_screens_has_an_id():
    missing = [f"{o.__name__}: {b.key} -> {b.action}" for o in owners() for b in o.BINDINGS
               if isinstance(b, Binding) and not b.id]
    assert missing == []
    seen: dict[str, tuple] = {}
    for o in owners():
        for b in o.BINDINGS:
            first = seen.setdefault(b.id, (b.key, b.action.removeprefix("app.")))
            assert first == (b.key, b.action.removeprefix("app.")), f"id {b.id} names two different bindings"


def test_the_readme_lists_every_binding_id():
    from pathlib import Path

    from rankwise.tui.app import binding_ids

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    listed = {i for i in binding_ids() if f"`{i}`" in readme}
    shown_as_range = {f"presets.launch_{i}" for i in range(2, 9)}  # `presets.launch_1`…`presets.launch_9`
    assert set(binding_ids()) - listed - shown_as_range == set()


async def test_ctrl_p_is_the_command_palette_and_it_runs_screen_actions_by_name(tmp_path):
    from textual.command import CommandPalette

    from rankwise.tui.screens.runs import RunsScreen

    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(pilot.app.screen, CommandPalette)
        await pilot.press(*"Runs")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, RunsScreen)


async def test_ctrl_o_is_presets_and_the_keymap_in_the_user_config_moves_it(tmp_path):
    from rankwise.tui.app import binding_ids
    from rankwise.tui.keys import user_keymap
    from rankwise.tui.screens.presets import PresetsScreen
    from rankwise.tui.screens.setup import SetupScreen

    config = tmp_path / "config.yaml"
    config.write_text("prices: {L4: 0.7}\nkeys:\n  app.presets: f3\n  setup.advice: ctrl+t\n")
    keymap = user_keymap(binding_ids(), config)
    assert keymap == {"app.presets": "f3", "setup.advice": "ctrl+t"}
    async with app_for(tmp_path, keymap=keymap).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+o")  # remapped away
        await settle(pilot)
        assert isinstance(pilot.app.screen, SetupScreen)
        footer = " ".join(str(k.render()) for k in pilot.app.screen.query("FooterKey"))
        assert "F3" in footer.upper() and "^t" in footer  # the footer says the user's keys
        await pilot.press("f3")
        await settle(pilot)
        assert isinstance(pilot.app.screen, PresetsScreen)


def test_a_bad_keymap_exits_2_naming_the_file_and_the_closest_id(tmp_path):
    config = tmp_path / "rankwise" / "config.yaml"
    config.parent.mkdir()
    config.write_text("keys:\n  app.preset: f3\n")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "rankwise.tui.cli", "--runs-dir", str(tmp_path / "runs")],
                         capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    said = " ".join(out.stderr.split())
    assert out.returncode == 2, out.stderr
    assert "keys.app.preset: no such binding id" in said and "app.presets" in said and "Traceback" not in said


# ---- `rankwise --set` with the TUI


def test_a_bad_set_with_the_tui_exits_2_before_it_opens(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rankwise.tui.cli", "--set", "lora.rank=8",
                          "--runs-dir", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    said = " ".join(out.stderr.split())
    assert out.returncode == 2 and "lora.rank" in said and "lora.r" in said and "Traceback" not in said, said


async def test_set_with_the_tui_applies_to_presets_and_advice(tmp_path):
    from rankwise.tui.screens.advice import AdviceScreen

    async with app_for(tmp_path, overrides=["lora.r=48"]).run_test(size=SIZE) as pilot:
        await settle(pilot)
        said = [n.message for n in pilot.app._notifications]
        assert any("--set lora.r=48" in m for m in said), said
        await pilot.press(*"llama-3.1-8b", "ctrl+n")
        await settle(pilot)
        advice = pilot.app.screen
        assert isinstance(advice, AdviceScreen)
        assert advice.query_one("#f-lora--r", Input).value == "48" and advice.cfg.lora.r == 48  # in the form
        await pilot.press("ctrl+o")
        await settle(pilot)
        presets = pilot.app.screen
        assert "--set lora.r=48" in presets.sub_title
        assert presets.rows and all(r["rank"] == 48 for r in presets.rows if not r["error"])
        assert all("r48" in str(presets.query_one(DataTable).get_row_at(i)[2]) for i in range(len(presets.rows))
                   if not presets.rows[i]["error"])
        await pilot.press("e")
        await settle(pilot)
        assert pilot.app.screen.query_one("#f-lora--r", Input).value == "48"


def test_tui_launches_hand_the_overrides_to_the_trainer(tmp_path, monkeypatch):
    """What Presets launches is the preset with --set applied: the same prepare() `train --set` uses."""
    from rankwise.advisor.presets import shipped
    from rankwise.trainer import start
    from rankwise.tui import launch

    seen = {}

    def started(prepared):
        seen["r"] = prepared.cfg.lora.r
        raise SystemExit  # stop before a process starts

    monkeypatch.setattr(start, "start", started)
    with pytest.raises(SystemExit):
        launch.launch(shipped()["demo-cpu"], tmp_path / "runs", ("lora.r=24",))
    assert seen == {"r": 24}


# ---- Setup


async def test_setup_focus_starts_where_the_screen_asks_first(tmp_path):
    async with app_for(tmp_path, hardware=NO_GPU).run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert pilot.app.screen.focused.id == "gpu-mem"  # "No GPU found: plan for one below"
        await pilot.press(*"24GiB", "enter")
        await pilot.pause()
        assert pilot.app.screen.focused.id == "model"  # Enter in the GPU row goes on to the model
    async with app_for(tmp_path, hardware=L4).run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert pilot.app.screen.focused.id == "model"


async def test_setup_confirms_the_gpu_probed_or_declared(tmp_path):
    async with app_for(tmp_path, hardware=L4).run_test(size=SIZE) as pilot:
        await settle(pilot)
        note = lambda: " ".join(text_of(pilot.app.screen.query_one("#plan-note", Static)).split())  # noqa: E731
        assert note() == "advice for: NVIDIA L4 22.0 GiB (probed here)"
        pilot.app.screen.query_one("#gpu-name", Input).focus()
        await pilot.press(*"A100-80GB")
        await pilot.pause()
        assert note().startswith("advice for: A100-80GB") and "(declared, not this machine's)" in note()
        pilot.app.screen.query_one("#gpus", Input).focus()
        await pilot.press("2")
        await pilot.pause()
        assert note().startswith("advice for: 2× A100-80GB")
    async with app_for(tmp_path, hardware=NO_GPU).run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "no GPU found on this machine" in text_of(pilot.app.screen.query_one("#plan-note", Static))


async def test_esc_on_setup_leaves_the_field_and_typing_goes_back_into_it(tmp_path):
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l", "l", "escape")
        await pilot.pause()
        assert pilot.app.screen.focused is None
        await pilot.press("a", "m", "a")
        await pilot.pause()
        assert values(pilot.app.screen)["model"] == "llama"  # nothing lost, nothing typed over
        assert pilot.app.screen.focused.id == "model"


# ---- Advice: ↑/↓ between fields


async def test_up_and_down_move_between_advice_fields_and_leave_the_flags_list_alone(tmp_path):
    from rankwise.tui.screens.advice_form import FIELDS, wid

    async with app_for(tmp_path, hardware=A100).run_test(size=SIZE) as pilot:
        await pilot.press(*"llama-3.1-8b", "ctrl+n")
        await settle(pilot)
        screen = pilot.app.screen
        order = [wid(k) for k, *_ in FIELDS]
        assert screen.focused.id == wid("lora.r")
        await pilot.press("down", "down")
        await pilot.pause()
        assert screen.focused.id == order[order.index(wid("lora.r")) + 2]
        await pilot.press("up")
        await pilot.pause()
        assert screen.focused.id == order[order.index(wid("lora.r")) + 1]
        screen.query_one(f"#{wid('method')}", Select).focus()  # a closed Select: ↓ moves on, it does not open
        await pilot.pause()
        await pilot.press("down")
        await pilot.pause()
        assert not screen.query_one(f"#{wid('method')}", Select).expanded
        assert screen.focused.id == order[order.index(wid("method")) + 1]
        flags = screen.query_one("#flags", OptionList)
        if flags.option_count > 1:  # the flags list keeps ↑/↓ for its own rows
            flags.focus()
            flags.highlighted = 0
            await pilot.pause()
            await pilot.press("down")
            await pilot.pause()
            assert screen.focused is flags and flags.highlighted == 1


# ---- footers: every screen's main keys, nothing cut at 80×24


async def footer_keys(pilot) -> list[tuple[str, int]]:
    await pilot.pause()
    keys = pilot.app.screen.query("FooterKey")
    return [(" ".join(str(k.render()).split()), k.region.right) for k in keys if k.region.width]


async def test_footers_keep_their_main_keys_whole_at_80x24(tmp_path):
    from rankwise.advisor.presets import shipped

    presets = {"demo-cpu": shipped()["demo-cpu"]}
    async with app_for(tmp_path, presets=presets).run_test(size=SIZE) as pilot:
        await settle(pilot)
        expect = {
            "setup": ["Field", "Advice", "Presets", "Runs", "Quit", "Keys", "Palette"],
            "presets": ["Launch", "Edit", "Sweep", "Back", "Runs", "Keys", "Palette"],
            "runs": ["Attach", "Stop run", "Back", "Keys", "Palette"],
            "advice": ["Field", "Fix", "Save", "Launch", "Sweep", "Back", "Keys"],
        }
        for name, keys in (("setup", ()), ("presets", ("ctrl+o",)), ("runs", ("ctrl+r",)),
                           ("advice", ("f2", "f2", *"llama-3.1-8b", "ctrl+n"))):
            await pilot.press(*keys)
            await settle(pilot)
            shown = await footer_keys(pilot)
            text = " ".join(t for t, _ in shown)
            for want in expect[name]:
                assert want in text, (name, text)
            assert all(right <= SIZE[0] for _, right in shown), (name, shown)


async def test_setup_footer_keeps_quit_whole_at_60_columns(tmp_path):
    """At 60 columns the palette key, docked right, covered the setup footer's "^q Quit" (its tab key read
    "Next field"); now it reads "Field" and Quit ends before the palette key starts."""
    async with app_for(tmp_path).run_test(size=(60, 24)) as pilot:
        await settle(pilot)
        await pilot.pause()
        keys = {" ".join(str(k.render()).split()): k.region for k in pilot.app.screen.query("FooterKey")
                if k.region.width}
        palette = next(r for t, r in keys.items() if t.endswith("Palette"))
        quit_ = next(r for t, r in keys.items() if t.endswith("Quit"))
        assert quit_.right <= palette.x, keys


async def test_presets_keep_the_cursor_on_its_preset_when_the_list_reloads(tmp_path):
    """Back on Presets (from a run, a sweep or Advice) the rows are re-read: `s` or Enter then must act
    on the preset the cursor was on, not on the first row (a second sweep started that way)."""
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await settle(pilot)
        screen = pilot.app.screen
        await pilot.press("down", "down")
        picked = screen.selected()["name"]
        assert picked != screen.rows[0]["name"]
        screen.load()  # what coming back to the screen does
        await settle(pilot)
        assert screen.selected()["name"] == picked
