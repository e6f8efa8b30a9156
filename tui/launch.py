"""Start a training run from the TUI: checked and started by trainer/start.py, trained elsewhere.

`trainer.start` checks the preset and starts the worker in its own process session (the same
call `rankwise train --detach` makes); the TUI then tails the run's `events.jsonl`. The model
is never trained in the TUI's process: quitting the TUI or losing the SSH session never stops
the run.
"""
from __future__ import annotations

import os
import time
from pathlib import Path


def launch(preset: Path, runs_dir: Path, overrides: tuple[str, ...] = ()) -> Path:
    """Start a detached run of this preset file (with `rankwise --set` values); returns its directory.
    Bad input raises RankwiseError (shown as a notification) before anything is written."""
    from rankwise.trainer import start

    return start.start(start.prepare(preset, list(overrides), runs_dir=runs_dir)).run_dir


def write_preset(cfg, path: Path) -> Path:
    """Write `cfg` as a preset YAML (atomically: nothing half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"# written by the rankwise TUI at {time.strftime('%Y-%m-%d %H:%M')}\n"
                   f"# run it: rankwise train --preset {path}\n" + cfg.to_yaml(), encoding="utf-8")
    os.replace(tmp, path)
    return path
