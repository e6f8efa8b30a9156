"""Shared pieces of the fault and bad-input suite (tests/faults).

`generated_figures` counts every generated bad input per family and how many ended cleanly
(a valid result or a RankwiseError / exit 0, 2 or 3 with a message); the counts are printed
at the end of the session, for the closing note.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict

import pytest

_FIGURES: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # family -> [tried, clean]


class Figures:
    def tried(self, family: str, clean: bool) -> None:
        row = _FIGURES[family]
        row[0] += 1
        row[1] += bool(clean)

    @property
    def table(self) -> dict[str, tuple[int, int]]:
        return {k: (v[0], v[1]) for k, v in sorted(_FIGURES.items())}


@pytest.fixture(scope="session")
def generated_figures() -> Figures:
    return Figures()


@pytest.fixture(scope="session")
def fault_tmp(tmp_path_factory):
    """A session-wide scratch folder (hypothesis tests cannot use function-scoped tmp_path)."""
    return tmp_path_factory.mktemp("faults")


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    if os.environ.get("RANKWISE_FAULT_FIGURES"):  # bench/fault_figures.py reads them from here
        with open(os.environ["RANKWISE_FAULT_FIGURES"], "w") as fh:
            json.dump({k: {"tried": v[0], "clean": v[1]} for k, v in sorted(_FIGURES.items())}, fh, indent=1)
    tr = terminalreporter
    tr.section("generated bad input")
    total = [0, 0]
    for family, (tried, clean) in sorted(_FIGURES.items()):
        tr.write_line(f"{family:28} {tried:5} tried, {clean:5} ended cleanly")
        total[0] += tried
        total[1] += clean
    tr.write_line(f"{'total':28} {total[0]:5} tried, {total[1]:5} ended cleanly")
