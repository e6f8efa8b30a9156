"""Numbers, durations and log text as the run panel, the runs lists and the plain lines show them."""
from __future__ import annotations

import re

GIB = 1024 ** 3
SPARK = "▁▂▃▄▅▆▇█"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # colour and cursor sequences, dropped whole
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(value) -> str:
    """A string from a log, safe to print: escape sequences go, other control characters (\\r) become spaces."""
    return _CONTROL.sub(" ", _ANSI.sub("", str(value)))


def sparkline(values, width: int = 30) -> str:
    vals = [v for v in list(values)[-width:] if isinstance(v, (int, float))]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo
    top = len(SPARK) - 1
    return "".join(SPARK[0 if span == 0 else round((v - lo) / span * top)] for v in vals)


def fmt_age(seconds: float | None) -> str:
    """How long ago, in the largest whole unit: 45s, 12m, 3h, 2d."""
    if seconds is None:
        return "?"
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def fmt_duration(seconds) -> str:
    if seconds is None or seconds < 0:
        return "?"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def fmt_gib(b) -> str:
    return "?" if b is None else f"{b / GIB:.1f} GiB"


def fmt_num(v, spec: str = ".4f") -> str:
    return "?" if v is None else format(v, spec)
