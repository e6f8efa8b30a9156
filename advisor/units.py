"""Parsing and printing of sizes and counts: `24GiB`, `80GB`, `10M`, `1.5B`."""
from __future__ import annotations

import math
import re

from .errors import RankwiseError

GIB = 1024**3

_BYTES = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
    "g": GIB, "gb": 1000**3, "gib": GIB,  # a bare "24G" means GiB, as GPU vendors' "24 GB" cards are
    "t": 1024**4, "tb": 1000**4, "tib": 1024**4,
}
_COUNT = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
_NUM = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(text: str | int | float, what: str = "size") -> int:
    """`24GiB` → bytes. A bare number is GiB (`--gpu-mem 24`)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(_finite_positive(text, text, what) * GIB)
    m = _NUM.match(str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _BYTES:
        raise RankwiseError(f"{what}: cannot read {text!r} as a memory size",
                            "write it like 24GiB, 80GB or 24 (GiB)")
    value = _finite_positive(float(m.group(1)), text, what)
    return int(value * (GIB if unit == "" else _BYTES[unit]))


def _finite_positive(value: float | int, text, what: str) -> float:
    value = float(value) if abs(value) < 1e300 else math.inf  # a 400-digit int does not fit a float
    if not math.isfinite(value) or value > 1e30:  # 1e999 reads as inf; nothing real is 10^30 bytes or more
        raise RankwiseError(f"{what}: {text!r} is not a usable number", "write it like 24GiB, 10M or 1.5B")
    if value <= 0:
        raise RankwiseError(f"{what}: {text!r} must be more than zero")
    return value


def parse_count(text: str | int, what: str = "count") -> int:
    """`10M` → 10_000_000."""
    if isinstance(text, int) and not isinstance(text, bool):
        _finite_positive(text, text, what)
        return text
    m = _NUM.match(str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _COUNT:
        raise RankwiseError(f"{what}: cannot read {text!r} as a number", "write it like 10M, 500k or 1.5B")
    return int(_finite_positive(float(m.group(1)) * _COUNT[unit], text, what))


def gib(n_bytes: float) -> float:
    return n_bytes / GIB


def human_count(n: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"
