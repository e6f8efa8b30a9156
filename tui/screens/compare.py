"""Compare: the run's adapter against its base on the rows training held out, opened from Runs with `v`.

`rankwise compare RUN --json --progress` runs in its own process (killed if the screen closes
first); its progress lines say how far it is, then the summary line ("the adapter lowers response
perplexity from X to Y on N held-out rows", trainer/compare.summary: the text form's own words)
leads, over a table of the rows with their losses; the highlighted row's prompt, reference and
both answers show below it.
"""
from __future__ import annotations

import json
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ..style import message_style


class CompareProgress(Message):
    def __init__(self, stage: str, done: int, total: int) -> None:
        super().__init__()
        self.stage, self.done, self.total = stage, done, total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CompareProgress)


class CompareDone(Message):
    def __init__(self, result: dict | None, error: str | None = None) -> None:
        super().__init__()
        self.result, self.error = result, error


def loss_cell(v) -> str:
    return "-" if v is None else f"{v:.3f}"


class CompareScreen(Screen):
    BINDINGS = [Binding("escape,f2", "back", "Back", key_display="esc/F2", id="compare.back")]

    def __init__(self, run_dir: Path, extra_args: list[str] | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.extra_args = list(extra_args or [])  # flags of `rankwise compare` (--n, --max-new-tokens)
        self.proc = None
        self.result: dict | None = None
        self.closed = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("starting the comparison in its own process…", style="dim"), id="compare-summary")
        yield DataTable(id="compare-rows", cursor_type="row", zebra_stripes=True)
        yield Static(id="compare-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        from ..bench_process import BenchProcess

        self.sub_title = f"{self.run_dir.name}: adapter vs base on held-out rows"
        self.query_one(DataTable).focus()
        self.proc = BenchProcess(["compare", self.run_dir.name, "--runs-dir", str(self.run_dir.parent), "--json",
                                  "--progress", *self.extra_args],
                                 on_stderr_json=self._progress)
        self.proc.start()
        self.run_compare()

    def _progress(self, obj: dict) -> None:  # the stderr thread's
        p = obj.get("progress")
        if isinstance(p, dict):
            self.post_message(CompareProgress(str(p.get("stage")), int(p.get("done") or 0), int(p.get("total") or 0)))

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def run_compare(self) -> None:
        proc = self.proc
        out = proc.proc.stdout.read()
        proc.proc.stdout.close()
        code = proc.wait()
        if code == 0:
            try:
                self.post_message(CompareDone(json.loads(out)))
                return
            except ValueError:
                pass
        said = proc.said()
        self.post_message(CompareDone(None, f"compare ended (exit {code})" + (f": {said}" if said else "")))

    def on_unmount(self) -> None:
        self.closed = True
        if self.proc is not None:
            self.proc.stop()  # leaving before it is done: nothing left running

    def on_compare_progress(self, message: CompareProgress) -> None:
        if self.result is not None:
            return
        if message.stage == "load":
            said = "loading the base and the adapter…"
        else:
            said = f"{message.stage}: {message.done}/{message.total} rows (loss, then its answer)"
        self.query_one("#compare-summary", Static).update(Text(f"comparing on held-out rows — {said}", style="dim"))

    def on_compare_done(self, message: CompareDone) -> None:
        box = self.query_one("#compare-summary", Static)
        if message.result is None:
            t = Text(message.error or "compare failed", style=message_style("error"))
            t.append("\nesc/F2 goes back", style="dim")
            box.update(t)
            return
        from rankwise.trainer.compare import summary

        self.result = r = message.result
        box.update(Text(summary(r), style="bold"))
        names = ["base", "adapter"] + (["against"] if "against" in r else [])
        table = self.query_one(DataTable)
        table.add_column("#", key="n")
        table.add_column("prompt", key="prompt", width=max(12, self.size.width - 12 * len(names) - 8))
        for name in names:
            table.add_column(f"{r['against'] if name == 'against' else name} loss", key=name)
        for k, row in enumerate(r["rows"]):
            table.add_row(str(k + 1), Text(" ".join(row["prompt"].split())),
                          *(loss_cell(row.get(f"{name}_loss")) for name in names), key=str(k))
        self.show_row()

    @on(DataTable.RowHighlighted)
    def show_row(self) -> None:
        r = self.result
        table = self.query_one(DataTable)
        if r is None or not r["rows"] or table.cursor_row is None:
            return
        row = r["rows"][min(table.cursor_row, len(r["rows"]) - 1)]
        t = Text()
        for name, label in (("prompt", "prompt"), ("reference", "reference"), ("base", "base"),
                            ("adapter", "adapter"), ("against", r.get("against", "against"))):
            if name in row and row[name] is not None:
                t.append(f"{label}: ", style="bold")
                t.append(" ".join(str(row[name]).split()) + "\n")  # Text: data, never markup
        t.rstrip()
        self.query_one("#compare-detail", Static).update(t)

    def action_back(self) -> None:
        self.app.pop_screen()
