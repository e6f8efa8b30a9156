"""The one style table: what colour a run status, a fit verdict and a severity get, everywhere.

The rich output of the CLI (`runs`, `advise`, `check`, `presets`, `estimate`, the run panel)
and the Textual screens read these; `tui/rankwise.tcss` reads the same colours through the CSS
variables of `css_variables()` (`$severity-error`, ...). Styles are rich style strings; the
words differ as well as the colours, so nothing depends on colour alone (NO_COLOR).
"""
from __future__ import annotations

# a run (trainer/runs.py, the panel) and a sweep trial (trainer/sweep.py)
STATUS_STYLE = {
    "starting": "cyan", "running": "bold cyan", "detached": "yellow",
    "finished": "bold green", "complete": "bold green",
    "interrupted": "bold yellow", "pruned": "yellow",
    "failed": "bold red",
    "skipped": "dim", "waiting": "dim",
}

# advisor/fit.py's verdicts
FIT_LABEL = {"fits": "fits", "tight": "tight", "wont-fit": "won't fit", "no-gpu": "no GPU"}
FIT_STYLE = {"fits": "bold green", "tight": "bold yellow", "wont-fit": "bold red", "no-gpu": "dim"}

# red-flag findings and log lines: the severity word or mark, and a message of that severity
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
SEVERITY_MARK = {"error": "✖", "warning": "▲", "info": "●"}
MESSAGE_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}

GOOD = "green"  # "no red flags", an applicable fix, a recommendation


def status_style(status: str | None) -> str:
    return STATUS_STYLE.get(status or "", "")


def fit_style(verdict: str | None) -> str:
    return FIT_STYLE.get(verdict or "", "")


def severity_style(severity: str | None) -> str:
    return SEVERITY_STYLE.get(severity or "", "dim")


def message_style(severity: str | None) -> str:
    return MESSAGE_STYLE.get(severity or "", "dim")


def css_variables() -> dict[str, str]:
    """The same colours for Textual CSS: `$severity-error`, `$fit-wont-fit`, `$status-failed`, ...
    (a style without a colour of its own, like "dim", has no variable)."""
    out = {}
    for prefix, table in (("status", STATUS_STYLE), ("fit", FIT_STYLE), ("severity", SEVERITY_STYLE),
                          ("message", MESSAGE_STYLE)):
        for key, style in table.items():
            colours = [w for w in style.split() if w not in ("bold", "dim", "italic", "underline")]
            if colours:  # "dim" alone has no colour of its own
                out[f"{prefix}-{key}"] = colours[-1]
    return out
