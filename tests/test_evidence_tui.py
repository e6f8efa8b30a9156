"""Issue 18 on the Advice screen: the focused value's reason shows the sources it cites."""
from __future__ import annotations

import pytest
from textual.widgets import Input, Select, Static

from rankwise.tui.app import build_app
from tui_support import L4, NOW, SMALL_CATALOG, gpu_presets, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_the_focused_reason_shows_its_sources(tmp_path):
    from rankwise.advisor.evidence import names
    from rankwise.advisor.model import load_model
    from rankwise.advisor.recommend import advise
    from rankwise.tui.screens.advice_form import wid

    app = build_app(hardware=L4, runs_dir=tmp_path / "runs", catalog=SMALL_CATALOG, clock=lambda: NOW,
                    presets=gpu_presets())
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press(*"llama-3.1-8b")
        pilot.app.screen.query_one("#task", Select).value = "chat"
        await pilot.press("ctrl+n")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        screen = pilot.app.screen
        expected = advise(load_model("llama-3.1-8b"), L4, "chat")
        for key in ("lora.alpha", "lora.target_modules"):
            screen.query_one(f"#{wid(key)}", Input).focus()
            await pilot.pause()
            shown = " ".join(text_of(screen.query_one("#reason", Static)).split())
            assert expected.reasons[key][:30] in shown
            assert f"sources: {names(expected.citations[key])}"[:60] in shown, shown
        screen.query_one(f"#{wid('train.micro_batch')}", Input).focus()  # derived: no sources line
        await pilot.pause()
        assert "sources:" not in text_of(screen.query_one("#reason", Static))
