"""How long `rankwise` (the TUI) takes to show its first screen, beside a minimal Textual app.

Both run in fresh subprocesses on a pseudo-terminal of 80×24 and exit themselves once their
first screen has been drawn (`RANKWISE_EXIT_WHEN_READY=1` makes the rankwise app call
`exit` after the first refresh of the Setup screen; the reference app does the same after
its own first refresh). The time is from process start to process exit, so interpreter
start-up, imports, CSS parsing, mounting and the first paint all count, the same for both.
Prints the median of N repeats for each and the ratio. Target: rankwise under 1 s.

    python3 bench/tui_startup.py [REPEATS]
"""
from __future__ import annotations

import fcntl
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time

REFERENCE = """
from textual.app import App
from textual.widgets import Footer, Header, Static

class Minimal(App):
    def compose(self):
        yield Header()
        yield Static("hello")
        yield Footer()

    def on_mount(self):
        self.call_after_refresh(self.exit)

Minimal().run()
"""


def timed_on_pty(cmd: list[str], env: dict, cwd: str, limit: float = 60.0) -> float:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    while True:  # drain the terminal output so the app never blocks on a full pty
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                os.read(master, 65536)
            except OSError:
                pass
        if proc.poll() is not None:
            break
        if time.perf_counter() - t0 > limit:
            proc.kill()
            sys.exit(f"{' '.join(cmd)} did not exit within {limit:.0f} s")
    elapsed = time.perf_counter() - t0
    os.close(master)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}")
    return elapsed


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    env = {**os.environ, "TERM": "xterm-256color", "RANKWISE_EXIT_WHEN_READY": "1"}
    env.pop("NO_COLOR", None)
    with tempfile.TemporaryDirectory() as cwd:  # an empty runs dir, like a first start
        cases = {
            "minimal Textual app": [sys.executable, "-c", REFERENCE],
            "rankwise (Setup screen)": [sys.executable, "-m", "rankwise.tui.cli"],
        }
        results = {}
        for name, cmd in cases.items():
            timed_on_pty(cmd, env, cwd)  # warm the file cache
            results[name] = statistics.median(timed_on_pty(cmd, env, cwd) for _ in range(repeats))
    ref = results["minimal Textual app"]
    for name, secs in results.items():
        print(f"{name:<26} {secs * 1000:7.0f} ms   ×{secs / ref:.2f}")
    verdict = "under" if results["rankwise (Setup screen)"] < 1.0 else "OVER"
    print(f"median of {repeats}; rankwise first screen {verdict} the 1 s target")


if __name__ == "__main__":
    main()
