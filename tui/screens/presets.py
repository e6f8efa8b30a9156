"""Presets: every preset with its fit on this machine and its red flags; one key launches.

Enter launches the selection, 1–9 the first nine, `e` opens one in Advice. Each row comes
from the same `describe()` as `rankwise presets`, computed in a worker.
"""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ..bindings import GO_RUNS
from ..style import FIT_LABEL, fit_style, message_style, severity_style

COLUMNS = ("#", "preset", "method", "peak", "fit", "flags")


class PresetRows(Message):
    def __init__(self, rows: list[dict]) -> None:
        super().__init__()
        self.rows = rows


def describe_all(presets: dict[str, Path], hw, overrides: list[str] | tuple = ()) -> list[dict]:
    """One row per preset, with its red-flag codes (a preset that does not load says why)."""
    from rankwise.advisor.loader import load_config
    from rankwise.advisor.errors import RankwiseError
    from rankwise.advisor.model import load_model
    from rankwise.advisor.redflags import check
    from rankwise.tui.commands.presets import describe

    rows = []
    for name, path in presets.items():
        row = describe(name, path, hw, overrides=overrides)
        row["codes"] = []
        if not row["error"]:
            try:
                cfg = load_config(path, list(overrides))
                row["codes"] = [(f.severity, f.code) for f in check(cfg, load_model(cfg.model.name), hw, row["method"])]
            except RankwiseError as e:
                row["error"] = e.message.splitlines()[0]
        rows.append(row)
    return rows


def flags_cell(row: dict) -> Text:
    counts: dict[str, int] = {}
    for sev, _code in row.get("codes", []):
        counts[sev] = counts.get(sev, 0) + 1
    if not counts:
        return Text("none", style="dim")
    out = Text()
    for sev in ("error", "warning", "info"):
        if sev in counts:
            out.append(f"{counts[sev]}{sev[0]} ", style=severity_style(sev))
    return out


class PresetsScreen(Screen):
    BINDINGS = [
        Binding("enter", "launch_selected", "Launch", priority=True, key_display="⏎/1-9", id="presets.launch"),
        *(Binding(str(i + 1), f"launch_nth({i})", f"Launch #{i + 1}", show=False, id=f"presets.launch_{i + 1}")
          for i in range(9)),
        Binding("e", "edit", "Edit", id="presets.edit"),
        Binding("s", "sweep_selected", "Sweep", id="presets.sweep"),
        # F2: screen/tmux pass it at once; a lone Esc they may hold
        Binding("escape,f2", "back", "Back", key_display="esc/F2", id="presets.back"),
        GO_RUNS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="presets", cursor_type="row", zebra_stripes=True)
        yield Static(Text("estimating every preset…", style="dim"), id="preset-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        from ..overrides import said

        self.sub_title = "presets" + (f" · {said(self.app.ctx.overrides)}" if self.app.ctx.overrides else "")
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.focus()
        self.app.hold_keys("presets")  # a digit typed ahead launches a row: wait for the rows
        self.load()

    def on_unmount(self) -> None:
        self.app.release_keys("presets")

    def on_screen_resume(self) -> None:
        if self.rows:  # back from Advice or a run: a preset may have been saved since
            self.load()

    @work(thread=True, exclusive=True, group="presets", exit_on_error=False)
    def load(self) -> None:
        ctx = self.app.ctx
        hw = ctx.planned or ctx.hardware
        if hw is None:
            from rankwise.advisor.hardware import probe

            hw = ctx.hardware = probe()
        try:
            self.post_message(PresetRows(describe_all(self.app.presets(), hw, ctx.overrides)))
        finally:  # after the rows are queued: typed-ahead keys reach them (app.py's key queue)
            self.app.call_from_thread(self.app.release_keys, "presets")

    def on_preset_rows(self, message: PresetRows) -> None:
        keep = self.selected()  # back from Advice, a run or a sweep: the cursor stays on its preset
        self.rows = message.rows
        table = self.query_one(DataTable)
        table.clear()
        for i, r in enumerate(self.rows, 1):
            num = str(i) if i <= 9 else ""
            if r["error"]:
                table.add_row(num, r["name"], Text("error", style=severity_style("error")), "", "", "", key=r["name"])
                continue
            method = f"{r['method']} r{r['rank']}"
            fit = Text(FIT_LABEL.get(r["fit"], str(r["fit"])), style=fit_style(r["fit"]))
            table.add_row(num, r["name"], method, f"{r['peak_gib']:.1f}G", fit, flags_cell(r), key=r["name"])
        names = [r["name"] for r in self.rows]
        if keep is not None and keep["name"] in names:
            table.move_cursor(row=names.index(keep["name"]))
        self.show_detail()

    @on(DataTable.RowHighlighted)
    def show_detail(self) -> None:
        row = self.selected()
        detail = Text()
        if row is None:
            detail.append("no presets found" if not self.rows else "", style="dim")
        elif row["error"]:
            detail.append(row["error"], style=message_style("error"))
        else:
            detail.append(row["description"] or "(no description)")
            model = row["model"] or "?"
            if Path(model).is_absolute():  # a local folder: its name (the path alone filled the line at 80×24)
                model = f"{Path(model).name} (local folder)"
            detail.append(f"\nmodel: {model}", style="dim")
            for sev, code in row["codes"]:
                detail.append(f"\n{sev}: {code}", style=severity_style(sev))
        self.query_one("#preset-detail", Static).update(detail)

    def selected(self) -> dict | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def _launch(self, row: dict | None, sweep: bool = False) -> None:
        if row is None:
            return
        if row["error"]:
            self.notify(f"{row['name']}: {row['error']}", severity="error")
            return
        (self.app.sweep if sweep else self.app.launch)(Path(row["path"]), tuple(self.app.ctx.overrides))

    def action_sweep_selected(self) -> None:
        self._launch(self.selected(), sweep=True)

    def action_launch_selected(self) -> None:
        self._launch(self.selected())

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_launch_selected()

    def action_launch_nth(self, i: int) -> None:
        if i < len(self.rows):
            self.query_one(DataTable).move_cursor(row=i)
            self._launch(self.rows[i])

    def action_edit(self) -> None:
        row = self.selected()
        if row is None:
            return
        from rankwise.advisor.loader import load_config
        from rankwise.advisor.errors import RankwiseError

        try:
            cfg = load_config(row["path"], list(self.app.ctx.overrides))
        except RankwiseError as e:
            self.notify(e.message, severity="error")
            return
        self.app.open_advice(cfg=cfg)

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
