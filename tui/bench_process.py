"""A `rankwise` command that does model work for a screen (chat --serve, compare --json), in its own
process and process session: the TUI never imports torch.

`BenchProcess(args)` starts `python -m rankwise.tui.cli ARGS`; `send(obj)` writes a JSON line to its
stdin; `replies()` yields its stdout's JSON lines (other lines skipped) until it ends; stderr is read
by a thread of its own (so a chatty library never blocks the pipe), its JSON lines handed to
`on_stderr_json`, the rest kept as `said()`, the last lines for an error message. `stop()` kills
the whole process group and reaps it: a screen that closes leaves nothing behind.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from typing import Callable, Iterator

STDERR_KEPT = 40  # lines of stderr kept for the message when the process dies


class BenchProcess:
    def __init__(self, args: list[str], on_stderr_json: Callable[[dict], None] | None = None):
        self.args = args
        self.on_stderr_json = on_stderr_json
        self.proc: subprocess.Popen | None = None
        self._stderr: deque[str] = deque(maxlen=STDERR_KEPT)
        self._stderr_thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "rankwise.tui.cli", *self.args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                     encoding="utf-8", errors="replace", env=env, start_new_session=True)
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True, name="bench-stderr")
        self._stderr_thread.start()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            if line.startswith("{") and self.on_stderr_json is not None:
                try:
                    obj = json.loads(line)
                except ValueError:
                    obj = None
                if isinstance(obj, dict):
                    self.on_stderr_json(obj)
                    continue
            if line.strip():
                self._stderr.append(line)
        self.proc.stderr.close()

    def send(self, obj: dict) -> bool:
        """Write one request line; False when the process is gone."""
        with self._lock:
            if self.proc is None or self.proc.poll() is not None or self.proc.stdin is None:
                return False
            try:
                self.proc.stdin.write(json.dumps(obj) + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return False
        return True

    def close_input(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def replies(self) -> Iterator[dict]:
        """Its stdout's JSON objects, one a line, until it closes stdout (ends or is killed)."""
        assert self.proc is not None and self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                if not line.startswith("{"):
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    yield obj
        finally:
            self.proc.stdout.close()

    def wait(self) -> int:
        """The exit code, once stderr has been read to its end."""
        assert self.proc is not None
        code = self.proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)
        return code

    def said(self) -> str:
        """Its last stderr line that says something: the CLI's `error: ...` when it exited 2."""
        lines = [l.strip() for l in self._stderr if l.strip()]
        errors = [l for l in lines if l.startswith("error:")]
        line = errors[-1] if errors else lines[-1] if lines else ""
        return line.removeprefix("error:").strip()

    def stop(self) -> None:
        """Kill it and everything it started (its own process group), and reap it."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            if proc is not None:
                proc.wait()
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
