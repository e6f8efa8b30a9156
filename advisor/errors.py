"""The one family of errors a user can cause.

Every user mistake (bad flag, bad preset, missing model, bad data row) is raised as a
`RankwiseError` with a message that names what and where, and a hint that says how to
fix it. The CLI maps the family to exit code 2 and prints it to stderr without a
traceback; anything else reaching the top is a bug in rankwise.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable


class RankwiseError(Exception):
    """A problem the user can fix. `hint` says how."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


@dataclass(frozen=True)
class Problem:
    """One validation problem, located as precisely as we can."""

    where: str  # "preset.yaml:12", "--set lora.r", "data.jsonl row 7"
    message: str
    hint: str | None = None

    def render(self) -> str:
        text = f"{self.where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


@dataclass
class ConfigError(RankwiseError):
    """Every problem found in one config, collected before reporting."""

    problems: list[Problem] = field(default_factory=list)
    source: str = "config"

    def __post_init__(self):
        n = len(self.problems)
        head = f"{self.source}: {n} problem{'s' if n != 1 else ''}"
        body = "\n".join("  - " + p.render() for p in self.problems)
        RankwiseError.__init__(self, f"{head}\n{body}", None)

    def __str__(self) -> str:
        return self.message


class UserInterrupt(Exception):
    """Ctrl-C: the CLI exits 130 without a traceback."""


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The nearest valid spellings of `word`, best first."""
    choices = list(choices)
    found = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if not found:
        lowered = {c.lower(): c for c in choices}
        found = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.4)]
    return found


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    found = closest(word, choices)
    return f"did you mean {' or '.join(repr(f) for f in found)}?" if found else None
