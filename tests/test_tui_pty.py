"""The TUI in a real terminal (tmux at 80×24): keys typed in one burst, as SSH delivers them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def pane(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, predicate, what: str, limit_s: float = 60.0) -> str:
    """Poll the pane until `predicate(text)` (the wait is on what the screen shows, with a limit)."""
    deadline = time.monotonic() + limit_s
    while True:
        text = pane(session)
        if predicate(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}:\n{text}")
        time.sleep(0.1)


@pytest.fixture
def session(tmp_path):
    name = f"rankwise-test-{os.getpid()}"
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "TERM": "xterm-256color"}
    cmd = " ".join(f"{k}={v}" for k, v in env.items()) + \
        f" {sys.executable} -m rankwise.tui.cli --runs-dir {tmp_path / 'runs'}"
    tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", "-c", str(tmp_path), cmd)
    try:
        yield name
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def test_a_burst_through_a_real_pty_lands_field_by_field(session, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "hi", "output": "there"}\n')
    text = wait_for(session, lambda t: "Plan GPU" in t and "advice for:" in t and "once probed" not in t,
                    "the Setup screen with the machine probed")
    # no GPU here: the focus starts in the GPU row its banner asks for, and Enter there goes on to the model
    first = ["Enter"] if "No GPU found" in text else []
    # one send-keys: tmux writes the whole string to the pty at once
    tmux("send-keys", "-t", session, *first, "8b", "Enter", "Tab", "d.jsonl", "Tab", "10M")
    text = wait_for(session, lambda t: "10M" in t and "rows" in t, "the budget typed and the data scanned")
    lines = text.splitlines()
    model = next(line for line in lines if "Model: " in line)
    assert "llama-3.1-8b" in model  # the filter `8b` picked it; nothing else went into the filter
    assert not any("8bd.jsonl" in line or "8b10M" in line for line in lines), text
    assert any("d.jsonl" in line for line in lines) and "1 rows" in text, text  # the path in the dataset field
