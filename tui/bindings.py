"""Bindings several screens share. A screen's footer shows where it can go: the app's own ^o/^r
bindings are hidden (not every footer has room), so a screen with room lists these (same ids, so
a keymap moves both)."""
from __future__ import annotations

from textual.binding import Binding

GO_PRESETS = Binding("ctrl+o", "app.presets", "Presets", id="app.presets")
GO_RUNS = Binding("ctrl+r", "app.runs", "Runs", id="app.runs")
