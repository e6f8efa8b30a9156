"""`rankwise --set KEY=VALUE` with the TUI: applied to every config it shows and launches.

Checked before the TUI opens (a wrong key or value: exit 2 with the problem, as `train --set`).
The Presets screen lists, edits, launches and sweeps each preset with them (its peak, fit and
flags are those of the overridden config); Advice puts them in its form, so what is on screen is
what runs.
"""
from __future__ import annotations

from pathlib import Path


def with_overrides(cfg, overrides: list[str] | tuple[str, ...]):
    """`cfg` with the --set values applied, validated (ConfigError naming `--set` on a bad value);
    relative paths given with --set are anchored to the current directory, as `train --set` does."""
    if not overrides:
        return cfg
    from rankwise.advisor.config import written
    from rankwise.advisor.loader import anchor_paths, apply_overrides, validate

    return validate(anchor_paths(apply_overrides(written(cfg), list(overrides)), Path.cwd()), "--set")


def check_overrides(overrides: list[str] | tuple[str, ...]) -> list[str]:
    """The overrides, once their keys and values pass on the shipped CPU demo preset (exit 2 if not)."""
    overrides = list(overrides)
    if overrides:
        from rankwise.advisor.loader import load_config
        from rankwise.advisor.presets import shipped

        with_overrides(load_config(shipped()["demo-cpu"]), overrides)
    return overrides


def said(overrides: list[str] | tuple[str, ...]) -> str:
    return " ".join(f"--set {o}" for o in overrides)
