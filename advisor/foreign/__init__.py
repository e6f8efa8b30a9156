"""Other tools' configs → RunConfig, so `rankwise check` and `rankwise import` can read them.

One module per foreign tool, holding its keys and its own defaults (with their sources):
`axolotl.py`, `llamafactory.py` (both layouts), `trl.py` (TRL's CLI configs and the recipes built on them). Shared: `mapping.py` (a tool's description,
mappers, peft's target-module rules, the reverse map), `reading.py` (detection, reading a file
into a `Reading`, `--set` with the file's own keys), `language.py` (findings in the file's
language), `known_keys.py` (every key each tool accepts, generated from its source).
"""
from __future__ import annotations

from .axolotl import TABLE as AXOLOTL
from .llamafactory import FLAT as LLAMAFACTORY, V1 as LLAMAFACTORY_V1
from .reading import Reading, detect, detect_tool, load_any, read, resolve_targets
from .trl import TABLE as TRL

KINDS = {"axolotl": AXOLOTL, "llama-factory": LLAMAFACTORY, "trl": TRL}

__all__ = ["AXOLOTL", "LLAMAFACTORY", "LLAMAFACTORY_V1", "TRL", "KINDS", "Reading", "detect", "detect_tool", "load_any",
           "read", "resolve_targets"]
