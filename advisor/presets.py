"""Finding presets: a shipped name (`demo-cpu`) or a YAML file path."""
from __future__ import annotations

import re
from pathlib import Path

from .errors import RankwiseError, closest

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"  # the repo/installed rankwise.presets folder
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def presets_dir() -> Path:
    try:
        from importlib.resources import files

        return Path(str(files("rankwise.presets")))
    except (ModuleNotFoundError, TypeError):
        return PRESETS_DIR


def shipped() -> dict[str, Path]:
    """Shipped preset name → file, sorted by name."""
    return {p.stem: p for p in sorted(presets_dir().glob("*.yaml"))}


def resolve_preset(ref: str) -> Path:
    """`--preset NAME|FILE` → the YAML file. Names cannot escape the presets folder."""
    ref = str(ref).strip()
    if not ref:
        raise RankwiseError("--preset: empty name", "give a preset name (see `rankwise presets`) or a YAML file")
    looks_like_file = ref.endswith((".yaml", ".yml")) or "/" in ref or ref.startswith(("~", "."))
    if looks_like_file:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise RankwiseError(f"preset file not found: {ref}",
                                "check the path, or give a shipped preset name (see `rankwise presets`)")
        return path
    names = shipped()
    if not _NAME.match(ref) or ref not in names:
        near = closest(ref, names)
        hint = (f"did you mean {', '.join(near)}? " if near else "") + f"shipped presets: {', '.join(names)}"
        raise RankwiseError(f"unknown preset {ref!r}", hint)
    return names[ref]
