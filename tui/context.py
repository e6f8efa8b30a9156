"""What every screen reads: the machine, where runs live, the model catalog, the presets.

The app owns one `Context` (built by `app.build_app`); screens reach it as `self.app.ctx`.
It lives apart from the app so that a screen can name it, and the folders below, without
importing the app that imports every screen.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rankwise.advisor.hardware import Hardware

SAVED_PRESETS = "presets"  # under the runs dir: presets saved from the Advice screen
LAUNCHED_PRESETS = ".launched"  # under the runs dir: the edited config each Advice launch ran


@dataclass
class Context:
    hardware: Hardware | None  # None until probed
    runs_dir: Path
    catalog: dict
    presets: dict[str, Path] | None = None  # None: the shipped ones, read when first needed
    clock: Callable[[], float] = time.time
    probe: bool = True  # probe the machine when hardware is None
    planned: Hardware | None = None  # the GPU planned on Setup, when one was
    overrides: list[str] = field(default_factory=list)
