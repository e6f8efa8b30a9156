"""A braille loss plot: train loss as a line of dots, eval loss as heavier marks, over steps."""
from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

# braille dot bits: (column, row) within a 2×4 cell
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


def plot(train: list[tuple[int, float]], evals: list[tuple[int, float]], width: int, height: int) -> Text:
    """Text of `height` lines: a y-axis label column, then a braille canvas `width` cells wide."""
    points = train + evals
    if not points:
        return Text("no loss yet", style="dim")
    label_w = 7
    cols = max(4, width - label_w)
    rows = max(2, height - 1)
    xs = [s for s, _ in points]
    ys = [v for _, v in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    grid = [[0] * cols for _ in range(rows)]
    evalcells: set[tuple[int, int]] = set()

    def place(step: float, value: float) -> tuple[int, int, int, int]:
        px = 0 if x1 == x0 else round((step - x0) / (x1 - x0) * (cols * 2 - 1))
        py = round((y1 - value) / (y1 - y0) * (rows * 4 - 1))
        return px // 2, py // 4, px % 2, py % 4

    def dot(px: int, py: int) -> None:
        grid[py // 4][px // 2] |= _DOTS[px % 2][py % 4]

    prev = None
    for s, v in sorted(train):
        cx, cy, dx, dy = place(s, v)
        px, py = cx * 2 + dx, cy * 4 + dy
        if prev is None:
            dot(px, py)
        else:  # join to the previous point so the curve reads as a line
            n = max(abs(px - prev[0]), abs(py - prev[1]), 1)
            for k in range(1, n + 1):
                dot(round(prev[0] + (px - prev[0]) * k / n), round(prev[1] + (py - prev[1]) * k / n))
        prev = (px, py)
    for s, v in evals:
        cx, cy, _dx, _dy = place(s, v)
        evalcells.add((cy, cx))
    out = Text()
    for r in range(rows):
        label = f"{y1:.3g}" if r == 0 else f"{y0:.3g}" if r == rows - 1 else ""
        out.append(f"{label:>{label_w - 1}} ", style="dim")
        for c in range(cols):
            if (r, c) in evalcells:
                out.append("◆", style="bold yellow")
            elif grid[r][c]:
                out.append(chr(0x2800 + grid[r][c]), style="cyan")
            else:
                out.append(" ")
        out.append("\n")
    foot = Text(f"{'':>{label_w}}step {x0}", style="dim")
    right = f"step {x1}"
    foot.append(" " * max(1, cols - len(foot.plain) + label_w - len(right)) + right, style="dim")
    out.append_text(foot)
    out.append("\n")
    key = Text(f"{'':>{label_w}}")
    key.append("⣀ train", style="cyan")
    key.append("  ")
    key.append("◆ eval", style="bold yellow")
    out.append_text(key)
    return out


class LossPlot(Widget):
    """Set `points` (train, eval) and the plot redraws at its current size."""

    points: reactive[tuple[tuple, tuple]] = reactive(((), ()), layout=False)

    def render(self) -> Text:
        train, evals = self.points
        return plot(list(train), list(evals), self.size.width, max(3, self.size.height - 1))
