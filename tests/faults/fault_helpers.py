"""Shared by tests/faults/test_process_faults.py: real `rankwise` processes started detached, in
the foreground, in a pseudo-terminal, signalled and killed; and the figures they add up to.

Figures are collected in FIGURES and written to tests/faults/figures.json (and printed) when the
module's tests end, for the issue's closing note.
"""
from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import subprocess
import termios
import threading
import time
from pathlib import Path

from train_helpers import CLI, env, events

FIGURES: dict = {}
FIGURES_FILE = Path(__file__).with_name("figures.json")
ROOT = Path(__file__).resolve().parents[2]
DEMO_DATA = ROOT / "presets" / "assets" / "demo-chat.jsonl"


def record(key: str, value) -> None:
    FIGURES[key] = value


def write_figures() -> None:
    """Merge this process's figures into figures.json: under pytest-xdist each worker runs some of the
    module's tests and writes its own share, under a lock, so the file ends with all of them."""
    if not FIGURES:
        return
    with open(FIGURES_FILE.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            merged = json.loads(FIGURES_FILE.read_text()) if FIGURES_FILE.exists() else {}
        except ValueError:  # a file torn by an older, unlocked writer: start again
            merged = {}
        merged = merged if isinstance(merged, dict) else {}
        for key, value in FIGURES.items():  # one level deep: the SIGKILL chains of two workers sit side by side
            old = merged.get(key)
            merged[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
        FIGURES_FILE.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    print("\nprocess-fault figures:\n" + json.dumps(FIGURES, indent=2, sort_keys=True))


def steps_args(max_steps: int = 12, save_steps: int = 4, micro: int = 4, limit: int = 10) -> list[str]:
    return ["--set", f"train.max_steps={max_steps}", "--set", f"train.save_steps={save_steps}",
            "--set", f"train.micro_batch={micro}", "--set", "train.logging_steps=1",
            "--set", f"train.save_total_limit={limit}"]


def popen(runs: Path, *args, extra_env: dict | None = None, preset: str | None = "demo-cpu",
          **kw) -> subprocess.Popen:
    cmd = CLI + ["train", *(["--preset", preset] if preset else []), "--runs-dir", str(runs), *args]
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(cmd, text=True, env=env(**(extra_env or {})), stdin=subprocess.DEVNULL, **kw)


def detached(runs: Path, *args, extra_env: dict | None = None, preset: str | None = "demo-cpu") -> tuple[str, int]:
    """`rankwise train ... --detach`: (run id, worker pid)."""
    p = popen(runs, *args, "--detach", extra_env=extra_env, preset=preset)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    pid = int(re.search(r"\(pid (\d+)\)", err).group(1))
    return out.strip().splitlines()[-1], pid


def alive(pid: int) -> bool:
    from rankwise.trainer.runs import pid_alive

    return pid_alive(pid)


def wait_gone(pid: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < end, f"pid {pid} still alive"
        time.sleep(0.02)


def events_since(run_dir: Path, n0: int) -> list[dict]:
    return events(run_dir)[n0:] if (run_dir / "events.jsonl").exists() else []


def n_events(run_dir: Path) -> int:
    return len(events(run_dir)) if (run_dir / "events.jsonl").exists() else 0


def poll(pred, timeout: float = 120, every: float = 0.02, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def log_has(run_dir: Path, text: str) -> bool:
    try:
        return text in (run_dir / "train.log").read_text(errors="replace")
    except OSError:
        return False


def big_chat_data(path: Path, rows: int) -> Path:
    """The demo conversations repeated: data preparation that takes seconds, not milliseconds."""
    lines = DEMO_DATA.read_text().splitlines()
    with open(path, "w") as fh:
        for i in range(rows):
            fh.write(lines[i % len(lines)] + "\n")
    return path


# CSI (ESC [ ... final byte), OSC (ESC ] ... BEL or ESC \), and the two-byte ESC sequences
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78DEHM]")


class PtyProc:
    """A command in its own session with a pseudo-terminal as its controlling terminal (what a
    terminal emulator or sshd gives a shell); the output is drained so the child never blocks."""

    def __init__(self, cmd: list[str], extra_env: dict | None = None, cwd: Path | None = None):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, b"\x18\x00\x50\x00\x00\x00\x00\x00")  # 24 x 80
        e = env(TERM="xterm-256color", **(extra_env or {}))
        e.pop("NO_COLOR", None)

        def ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            # a terminal's shell starts with SIGHUP at its default; a runner under nohup would pass
            # SIG_IGN on, and the TUI then outlived its closed terminal (seen in a nohup'd CI run)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)

        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=e, cwd=cwd,
                                     start_new_session=True, preexec_fn=ctty, close_fds=True)
        os.close(slave)
        self.out = bytearray()
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.out += data

    def text(self) -> str:
        """What the terminal was sent, without its escape sequences (colours, cursor moves, modes)."""
        return _ESCAPES.sub("", bytes(self.out).decode("utf-8", errors="replace"))

    def hangup(self) -> None:
        """What a terminal does when its window closes or the SSH link drops: SIGHUP to the
        session's foreground process group; the master side then goes away too."""
        os.killpg(self.proc.pid, signal.SIGHUP)
        os.close(self.master)

    def wait(self, timeout: float = 20) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def adapter_close(a: dict, b: dict, atol: float = 1e-5) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=1e-4) for k in a)
