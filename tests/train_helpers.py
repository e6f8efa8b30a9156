"""Shared by the training tests: run `rankwise train` on the shipped tiny model, read its run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "rankwise.tui.cli"]
# few steps, tiny batches, a checkpoint every 4 steps: each run takes a few seconds on 2 cores
QUICK = ["--set", "train.max_steps=12", "--set", "train.micro_batch=4", "--set", "train.save_steps=4",
         "--set", "train.logging_steps=1", "--set", "train.save_total_limit=5"]


def env(**extra) -> dict:
    e = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    e.pop("RANKWISE_TEST_OOM_AT_STEPS", None)
    e.update(extra)
    return e


def train(runs: Path, *args, preset: str | None = "demo-cpu", timeout: float = 300, extra_env: dict | None = None,
          quick: bool = True) -> subprocess.CompletedProcess:
    cmd = CLI + ["train", *(["--preset", preset] if preset else []), "--runs-dir", str(runs),
                 *(QUICK if quick else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env(**(extra_env or {})),
                          stdin=subprocess.DEVNULL)


def only_run(runs: Path) -> Path:
    dirs = [p for p in runs.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def events(run_dir: Path) -> list[dict]:
    from rankwise.trainer.events import read_events

    return read_events(run_dir / "events.jsonl")


def of_type(evs: list[dict], t: str) -> list[dict]:
    return [e for e in evs if e["type"] == t]


def wait_for(run_dir: Path, pred, timeout: float = 180) -> list[dict]:
    """Poll the event log until pred(events) is true."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        evs = events(run_dir) if (run_dir / "events.jsonl").exists() else []
        if pred(evs):
            return evs
        time.sleep(0.05)
    raise AssertionError(f"timed out; events: {[e['type'] for e in evs]}; log: {tail_log(run_dir)}")


def wait_for_run_dir(runs: Path, timeout: float = 60) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if runs.is_dir():
            dirs = [p for p in runs.iterdir() if p.is_dir()]
            if dirs:
                return dirs[0]
        time.sleep(0.05)
    raise AssertionError("no run dir appeared")


def tail_log(run_dir: Path, n: int = 30) -> str:
    try:
        return "\n".join((run_dir / "train.log").read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def adapter_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def has_control_chars(text: str) -> bool:
    return any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in text)


def bench_module(name: str):
    """A bench/ script imported as a module (bench/ is a folder of scripts, not a package), without leaving
    bench/ on sys.path."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)
