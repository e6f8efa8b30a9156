"""A small scatter plot in text: the sweep's validation loss against rank (log2 axis) and the
SVD spectrum, the same in the headless output and the TUI. Pure; no rich, no textual."""
from __future__ import annotations

import math


def plot(points: list[tuple[float, float]], width: int = 56, height: int = 10, log2x: bool = False,
         logy: bool = False, x_label: str = "", y_label: str = "", marks: dict[float, str] | None = None,
         ticks: list[float] | None = None) -> list[str]:
    """Lines of text: y axis with 3 labels, one marker per point (`marks` may give a point its own
    character), x ticks under the axis (every point's x, or `ticks`)."""
    pts = [(x, y) for x, y in points if y is not None and math.isfinite(y) and (not log2x or x > 0)
           and (not logy or y > 0)]
    if not pts:
        return ["(nothing to plot)"]
    fx = (lambda x: math.log2(x)) if log2x else (lambda x: x)
    fy = (lambda y: math.log10(y)) if logy else (lambda y: y)
    xs, ys = [fx(x) for x, _ in pts], [fy(y) for _, y in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5 * (abs(y0) or 1), y1 + 0.5 * (abs(y1) or 1)
    grid = [[" "] * width for _ in range(height)]

    def col(x: float) -> int:
        return round((fx(x) - x0) / (x1 - x0) * (width - 1))

    for (x, y), ly in zip(pts, ys):
        row = height - 1 - round((ly - y0) / (y1 - y0) * (height - 1))
        grid[row][col(x)] = (marks or {}).get(x, "●")

    def ylab(v: float) -> str:
        v = 10 ** v if logy else v
        return f"{v:.3g}"

    labels = {0: ylab(y1), height // 2: ylab((y0 + y1) / 2), height - 1: ylab(y0)}
    lw = max(len(s) for s in labels.values())
    lines = [f"{y_label}"] if y_label else []
    for i, row in enumerate(grid):
        lines.append(f"{labels.get(i, ''):>{lw}} ┤" + "".join(row).rstrip())
    lines.append(" " * lw + " └" + "─" * width)
    tick_row = [" "] * (width + 8)
    for x in (ticks if ticks is not None else sorted({x for x, _ in pts})):
        if log2x and x <= 0:
            continue
        c = col(x)
        text = f"{x:g}"
        start = max(0, min(c - len(text) // 2, width + 8 - len(text)))
        if all(ch == " " for ch in tick_row[max(0, start - 1):start + len(text) + 1]):
            tick_row[start:start + len(text)] = list(text)
    lines.append(" " * (lw + 2) + "".join(tick_row).rstrip())
    if x_label:
        lines.append(" " * (lw + 2) + x_label)
    return lines
