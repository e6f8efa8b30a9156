"""Start a training run from the TUI: never in-process.

`rankwise train --preset FILE --detach` starts the worker in its own process session and
prints the run id alone on its last line, then exits; the TUI then tails the run's
`events.jsonl`. Quitting the TUI or losing the SSH session never stops the run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rankwise.advisor.errors import RankwiseError


def train_command(preset: Path, runs_dir: Path) -> list[str]:
    return [sys.executable, "-m", "rankwise.tui.cli", "train", "--preset", str(preset), "--detach",
            "--runs-dir", str(runs_dir)]


def launch(preset: Path, runs_dir: Path, timeout: float = 120.0) -> Path:
    """Start the detached run; returns its directory. Failures become a RankwiseError to show."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(train_command(preset, runs_dir), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        err = [ln for ln in proc.stderr.splitlines() if ln.strip() and "kernels" not in ln]
        raise RankwiseError(f"could not start {preset.name}: " + (err[0] if err else f"exit {proc.returncode}"),
                            " ".join(err[1:3]) or None)
    return runs_dir / lines[-1]


def write_preset(cfg, path: Path) -> Path:
    """Write `cfg` as a preset YAML (atomically: nothing half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"# written by the rankwise TUI at {time.strftime('%Y-%m-%d %H:%M')}\n"
                   f"# run it: rankwise train --preset {path}\n" + cfg.to_yaml(), encoding="utf-8")
    os.replace(tmp, path)
    return path
