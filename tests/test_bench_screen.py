"""The TUI's chat and compare screens (issue 14, item 4) on the session's real demo run: the model
works in `rankwise chat --serve` / `rankwise compare --json --progress` subprocesses, the screens
stream and show what they say, and leaving a screen leaves no process behind."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Static

from rankwise.tui.app import build_app
from rankwise.tui.cli import main
from tui_support import L4, NOW, SMALL_CATALOG, fake_run, text_of

SIZE = (80, 24)
QUESTION = "What is the capital of Canada?"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"  # Textual runs on asyncio


def app_for(runs_dir):
    return build_app(hardware=L4, runs_dir=runs_dir, catalog=SMALL_CATALOG, presets={}, clock=lambda: NOW)


async def until(pilot, pred, what: str, limit_s: float = 300.0) -> None:
    """Let the app run until pred() holds (the subprocess's replies are events the app handles)."""
    end = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > end:
            screen = pilot.app.screen
            seen = [text_of(w) for w in screen.query(Static)]
            proc = getattr(screen, "proc", None)
            raise AssertionError(f"never happened: {what}; on screen: {seen}; "
                                 f"process said: {proc.said() if proc else None}")
        await pilot.pause(0.05)


async def to_runs(pilot) -> None:
    await pilot.press("ctrl+r")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def ask(pilot, screen, text: str) -> None:
    """Type a line and wait until its turn is over (keys reach the screen in order, a little later)."""
    before = screen.turns_over
    await pilot.press(*text, "enter")
    await until(pilot, lambda: screen.turns_over > before or screen.ended, f"the answer to {text!r}")
    assert not screen.ended, text_of(screen.query_one("#chat-status", Static))


def cli_answer(capsys, run_dir, *args) -> str:
    """What `rankwise chat RUN --prompt QUESTION` answers, with the chat's default settings."""
    code = main(["chat", run_dir.name, "--runs-dir", str(run_dir.parent), "--prompt", QUESTION, *args])
    out = capsys.readouterr().out
    assert code == 0
    line = next(l for l in out.splitlines() if "> " in l)
    return line.split("> ", 1)[1].strip()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
async def test_chat_streams_the_adapter_then_the_toggle_asks_the_base_then_both(demo_run, capsys):
    want_adapter = cli_answer(capsys, demo_run)
    want_base = cli_answer(capsys, demo_run, "--base")
    assert want_adapter != want_base  # the trained adapter changed the answer: the toggle can be seen
    async with app_for(demo_run.parent).run_test(size=SIZE) as pilot:
        await to_runs(pilot)
        await pilot.press("c")
        screen = pilot.app.screen
        assert type(screen).__name__ == "ChatScreen"
        await ask(pilot, screen, QUESTION)
        assert screen.chunks["adapter"] > 1  # streamed: many token lines before the whole answer
        answers = [text_of(w) for w in screen.query(".chat-answer")]
        assert answers == [f"adapter> {want_adapter}"]

        await pilot.press("ctrl+t")
        assert "the base answers" in text_of(screen.query_one("#chat-status", Static))
        await ask(pilot, screen, "/reset")  # the same question without the first turn's history
        await ask(pilot, screen, QUESTION)
        assert [text_of(w) for w in screen.query(".chat-answer")] == [f"base> {want_base}"]

        await pilot.press("ctrl+t")  # both, side by side at 80 columns
        await ask(pilot, screen, "/reset")
        await ask(pilot, screen, QUESTION)
        both = screen.query(".chat-both").last()
        assert isinstance(both, Horizontal)
        assert [text_of(w) for w in both.query(".chat-answer")] == [f"base> {want_base}", f"adapter> {want_adapter}"]

        pid = screen.proc.pid
        await pilot.press("escape")
        await pilot.pause()
        assert type(pilot.app.screen).__name__ == "RunsScreen"
        assert gone(pid)  # killed and reaped


@pytest.mark.slow
async def test_leaving_while_it_generates_kills_the_process(demo_run):
    async with app_for(demo_run.parent).run_test(size=SIZE) as pilot:
        await to_runs(pilot)
        await pilot.press("c")
        screen = pilot.app.screen
        await pilot.press(*QUESTION, "enter")
        await until(pilot, lambda: screen.chunks.get("adapter", 0) > 0, "the first streamed text")
        assert screen.outstanding  # still generating
        pid = screen.proc.pid
        await pilot.press("f2")
        await pilot.pause()
        assert type(pilot.app.screen).__name__ == "RunsScreen"
        assert gone(pid)


@pytest.mark.slow
async def test_a_model_process_that_dies_is_said_and_nothing_crashes(demo_run):
    async with app_for(demo_run.parent).run_test(size=SIZE) as pilot:
        await to_runs(pilot)
        await pilot.press("c")
        screen = pilot.app.screen
        await until(pilot, lambda: screen.loaded, "the model loaded")
        os.killpg(screen.proc.pid, signal.SIGKILL)  # as the OOM killer would
        await until(pilot, lambda: screen.ended, "the screen seeing it end")
        status = text_of(screen.query_one("#chat-status", Static))
        assert "the model process ended (exit -9)" in status and "esc/F2 goes back" in status
        assert screen.query_one(Input).disabled
        await pilot.press("escape")
        await pilot.pause()
        assert type(pilot.app.screen).__name__ == "RunsScreen"


@pytest.mark.slow
async def test_compare_view_says_what_compare_json_says(demo_run):
    from rankwise.trainer.compare import summary

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["compare", demo_run.name, "--runs-dir", str(demo_run.parent), "--json"]) == 0
    cli = json.loads(buf.getvalue())
    async with app_for(demo_run.parent).run_test(size=SIZE) as pilot:
        await to_runs(pilot)
        await pilot.press("v")
        screen = pilot.app.screen
        assert type(screen).__name__ == "CompareScreen"
        await until(pilot, lambda: screen.result is not None, "the comparison")
        shown = text_of(screen.query_one("#compare-summary", Static))
        assert shown == summary(cli)
        assert shown.startswith(f"the adapter lowers response perplexity from ")
        assert f"on {cli['rows_with_loss']} held-out rows" in shown
        assert screen.result["base_loss"] == cli["base_loss"] and screen.result["adapter_loss"] == cli["adapter_loss"]
        table = screen.query_one(DataTable)
        assert table.row_count == len(cli["rows"])
        first = [str(c) for c in table.get_row_at(0)]
        assert first == ["1", cli["rows"][0]["prompt"], f"{cli['rows'][0]['base_loss']:.3f}",
                         f"{cli['rows'][0]['adapter_loss']:.3f}"]
        detail = text_of(screen.query_one("#compare-detail", Static))
        assert f"reference: {cli['rows'][0]['reference']}" in detail
        assert f"adapter: {' '.join(cli['rows'][0]['adapter'].split())}" in detail
        pid = screen.proc.pid
        await pilot.press("escape")
        await pilot.pause()
        assert gone(pid)


async def test_a_run_without_an_adapter_says_so_and_opens_nothing(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "demo-cpu-20260101-000000", steps=5)  # a log, no adapter, no checkpoint
    async with app_for(runs).run_test(size=SIZE) as pilot:
        await to_runs(pilot)
        for key, what in (("c", "no chat"), ("v", "no compare")):
            await pilot.press(key)
            await pilot.pause()
            assert type(pilot.app.screen).__name__ == "RunsScreen"
            said = [n for n in pilot.app._notifications if n.title == what]
            assert said and "has no" in said[-1].message and "adapter" in said[-1].message


async def test_the_chat_screen_of_a_run_without_an_adapter_says_why_without_a_process(tmp_path):
    from rankwise.tui.screens.chat import ChatScreen

    run = fake_run(tmp_path / "runs", "r1", finished=False)
    async with app_for(tmp_path / "runs").run_test(size=SIZE) as pilot:
        await pilot.app.push_screen(ChatScreen(run))
        await pilot.pause()
        screen = pilot.app.screen
        assert screen.proc is None and screen.ended
        assert "r1 has no adapter yet" in text_of(screen.query_one("#chat-status", Static))
        assert screen.query_one(Input).disabled


@pytest.mark.slow
async def test_a_failing_compare_is_said(tmp_path):
    """A run whose config cannot be read: `rankwise compare` exits 2 and the view shows its message."""
    from rankwise.tui.screens.compare import CompareScreen

    run = fake_run(tmp_path / "runs", "r1")
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text("{}")
    async with app_for(tmp_path / "runs").run_test(size=SIZE) as pilot:
        await pilot.app.push_screen(CompareScreen(run))
        screen = pilot.app.screen
        await until(pilot, lambda: "compare ended" in text_of(screen.query_one("#compare-summary", Static)),
                    "the failure", 120)
        assert "exit 2" in text_of(screen.query_one("#compare-summary", Static))
        assert screen.proc.proc.poll() == 2


@pytest.mark.slow
def test_serve_lines_answer_and_bad_requests_do_not_end_it(demo_run, rankwise_cmd):
    requests = ["not json", json.dumps({"prompt": "", "who": "adapter"}), json.dumps({"prompt": QUESTION, "who": "both"})]
    out = subprocess.run(rankwise_cmd + ["chat", demo_run.name, "--runs-dir", str(demo_run.parent), "--serve",
                                         "--temperature", "0", "--max-new-tokens", "12"],
                         input="\n".join(requests) + "\n", capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    replies = [json.loads(l) for l in out.stdout.splitlines()]  # nothing but JSON lines on stdout
    kinds = [r["type"] for r in replies]
    assert kinds[:3] == ["ready", "error", "error"] and kinds[-1] == "ready"
    done = [r for r in replies if r["type"] == "done"]
    assert [d["who"] for d in done] == ["base", "adapter"]
    for d in done:
        streamed = "".join(r["text"] for r in replies if r["type"] == "token" and r["who"] == d["who"])
        assert streamed.strip() == d["text"].strip() != ""


@pytest.mark.slow
def test_the_chat_screen_keeps_the_tui_process_torch_free(demo_run):
    code = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
        from tui_support import L4, SMALL_CATALOG
        from rankwise.tui.app import build_app
        async def main():
            app = build_app(hardware=L4, runs_dir={str(demo_run.parent)!r}, catalog=SMALL_CATALOG, presets={{}})
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press("ctrl+r"); await app.workers.wait_for_complete(); await pilot.pause()
                await pilot.press("c")
                screen = app.screen
                await pilot.press(*"hello", "enter")
                while not screen.turns_over:
                    await pilot.pause(0.05)
                print("ANSWER", [w.content.plain for w in screen.query(".chat-answer")])
        asyncio.run(main())
        print("HEAVY", sorted(m for m in ("torch", "transformers", "peft") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ANSWER ['adapter> " in out.stdout and "HEAVY []" in out.stdout


@pytest.mark.filterwarnings("ignore")
def test_snapshot_chat_without_an_adapter(snap_compare, tmp_path, monkeypatch, steady_cursor):
    """The chat screen's layout at 80×24: status, transcript, input line, footer with ^t and esc/F2."""
    from rankwise.tui.screens.chat import ChatScreen

    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path / "runs", "demo-cpu-20270115-080000", steps=6)

    async def run_before(pilot):
        await pilot.app.push_screen(ChatScreen(tmp_path / "runs" / "demo-cpu-20270115-080000"))
        await pilot.pause()

    assert snap_compare(app_for("runs"), terminal_size=SIZE, run_before=run_before)
