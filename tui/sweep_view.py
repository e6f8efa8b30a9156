"""A sweep's results (its results.json) as rich renderables: the table, the plot of validation
loss against rank, the recommendation in words. Shared by `rankwise sweep` and the Sweep
screen. No torch: it only reads the dict."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text

from rankwise.advisor.textplot import plot

from .style import GOOD, message_style, status_style


def _f(v, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table(data: dict) -> Table:
    rec = data.get("recommended_rank")
    t = Table(title=f"rank sweep {data.get('sweep_id', '')}"
              + (f" · compared at step {data['common_step']}" if data.get("common_step") else ""),
              title_justify="left")
    for col, just in (("rank", "right"), ("status", "left"), ("val loss", "right"), ("best val", "right"),
                      ("train loss", "right"), ("gap", "right"), ("stability", "left")):
        t.add_column(col, justify=just)
    for r in data.get("trials", []):
        gap = "-" if r.get("gap_end") is None else f"{r['gap_end']:+.3f}" + (" ↑" if r.get("gap_growing") else "")
        if r.get("status") == "skipped":
            stab = r.get("note") or ""
        elif r.get("roughness") is None:
            stab = "-"
        else:
            stab = ("stable" if r.get("stable") else "unstable") + (f", {r['spikes']} spike(s)" if r.get("spikes") else "")
        rank = f"{r['rank']} ◀" if r["rank"] == rec else str(r["rank"])
        t.add_row(rank, Text(r.get("status", "?"), style=status_style(r.get("status"))), _f(r.get("val_loss")),
                  _f(r.get("best_val_loss")), _f(r.get("train_loss")), gap, stab)
    return t


def plot_lines(data: dict, width: int = 56, height: int = 10) -> list[str]:
    pts = [(r["rank"], r["val_loss"]) for r in data.get("trials", [])
           if r.get("val_loss") is not None and r.get("status") in ("complete", "pruned", "running")]
    marks = {r["rank"]: "○" for r in data.get("trials", []) if r.get("status") in ("pruned", "running")}
    if data.get("recommended_rank") is not None:
        marks[data["recommended_rank"]] = "◆"
    return plot(pts, width=width, height=height, log2x=True, marks=marks,
                x_label="rank (log2 axis)  ● finished  ○ pruned/running  ◆ recommended",
                y_label="validation loss")


def render(data: dict) -> list:
    out = [table(data), Text("\n".join(plot_lines(data)))]
    rec = data.get("recommended_rank")
    if rec is not None:
        words = Text()
        words.append(f"recommended rank: r={rec}", style="bold " + GOOD)
        words.append(f" — {data.get('reason', '')}")
        out.append(words)
    else:
        out.append(Text(f"no recommendation: {data.get('reason', '')}", style=message_style("error")))
    for note in data.get("notes", []):
        out.append(Text(f"· {note}", style="dim"))
    if data.get("recommended_preset"):
        out.append(Text(f"preset with r={rec}: {data['recommended_preset']}\n"
                        f"  train it: rankwise train --preset {data['recommended_preset']}"))
    return out
