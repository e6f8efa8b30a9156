"""Runs: every run in the runs directory with status, step, loss and when it started; Enter attaches, `c` chats
with the selected run's adapter (screens/chat.py), `v` compares it with its base (screens/compare.py).

The list is re-read in a worker every few seconds; the selected finished run shows its
summary (final and best loss, time, peak memory against the estimate).
"""
from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ..style import message_style, status_style

REFRESH_S = 2.0


class RunList(Message):
    def __init__(self, runs: list) -> None:
        super().__init__()
        self.runs = runs

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunList)


def age(seconds: float | None) -> str:
    from ..formatting import fmt_age

    return "?" if seconds is None else f"{fmt_age(seconds)} ago"


def summary_text(info) -> Text:
    from pathlib import Path

    from ..formatting import fmt_duration

    t = Text(f"{info.id}", style="bold")
    model = Path(info.model).name if info.model and Path(info.model).is_absolute() else info.model
    t.append(f"  {model or '?'} · {info.method or '?'}", style="dim")
    s = info.summary or {}
    if info.status == "running" or not s:
        if info.note or info.error:
            t.append("\n" + (info.error or info.note), style=message_style("error" if info.status == "failed" else "warning"))
        return t
    parts = []
    if s.get("final_loss") is not None:
        parts.append(f"final loss {s['final_loss']:.4f}")
    if s.get("best_eval_loss") is not None:
        parts.append(f"best eval {s['best_eval_loss']:.4f}")
    secs = s.get("train_seconds", s.get("elapsed_s", s.get("runtime_s")))
    if secs is not None:
        parts.append(f"time {fmt_duration(secs)}")
    t.append("\n" + ("  ".join(parts) or info.status))
    if info.status != "finished":
        t.append(f"  ({info.status})", style=status_style(info.status))
    peak = s.get("peak_mem_bytes", s.get("peak_memory_bytes"))
    est = s.get("estimate_peak_gib")
    if peak is not None or est is not None:
        mem = Text("\npeak memory ")
        mem.append(f"{peak / 1024 ** 3:.2f} GiB" if peak is not None else "?")
        if s.get("peak_mem_kind"):
            mem.append(f" ({s['peak_mem_kind']})", style="dim")
        if est is not None:
            mem.append(f" vs estimate {est:.2f} GiB")
        t.append_text(mem)
    if s.get("adapter") or s.get("adapter_path"):
        t.append(f"\nadapter: {s.get('adapter_path') or s.get('adapter')}", style="dim")
    return t


class RunsScreen(Screen):
    BINDINGS = [
        Binding("enter", "attach", "Attach", priority=True, id="runs.attach"),
        Binding("x", "stop", "Stop run", id="runs.stop"),
        Binding("c", "chat", "Chat", id="runs.chat"),
        Binding("v", "compare", "vs base", id="runs.compare"),
        Binding("escape,f2", "back", "Back", key_display="esc/F2", id="runs.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list = []
        self.watch = None  # trainer.runs.RunsWatch: each log read on from its offset, ended runs not re-read
        self.renders = 0  # times the table was rebuilt (only when a row changed)
        self._rows: list = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(Text("reading runs…", style="dim"), id="run-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"runs in {self.app.ctx.runs_dir}"
        table = self.query_one(DataTable)
        table.add_column("run", key="run")
        table.add_column("status", key="status")
        table.add_column("step", key="step")
        table.add_column("loss", key="loss")
        table.add_column("started", key="started")  # since the run started, as `rankwise runs` says
        table.focus()
        self.reload()
        self.set_interval(REFRESH_S, self.reload)

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def reload(self) -> None:
        from rankwise.trainer.runs import RunsWatch

        if self.watch is None:
            self.watch = RunsWatch(self.app.ctx.runs_dir)
        self.post_message(RunList(self.watch.list()))

    def on_run_list(self, message: RunList) -> None:
        now = self.app.ctx.clock()
        rows = []
        for r in message.runs:
            step = f"{r.step if r.step is not None else '-'}/{r.max_steps or '?'}"
            loss = "-" if r.loss is None else f"{r.loss:.4f}"
            rows.append((r.id, r.status, step, loss, age(now - r.started if r.started else None)))
        if rows == self._rows and self.renders:
            self.runs = message.runs
            return  # nothing on screen changed: no repaint
        table = self.query_one(DataTable)
        keep = self.selected()
        self.runs, self._rows = message.runs, rows
        self.renders += 1
        table.clear()
        for run_id, status, step, loss, when in rows:
            table.add_row(run_id, Text(status, style=status_style(status)), step, loss, when, key=run_id)
        if keep is not None:
            ids = [r.id for r in self.runs]
            if keep.id in ids:
                table.move_cursor(row=ids.index(keep.id))
        self.show_detail()

    @on(DataTable.RowHighlighted)
    def show_detail(self) -> None:
        info = self.selected()
        detail = self.query_one("#run-detail", Static)
        if info is None:
            detail.update(Text(f"no runs in {self.app.ctx.runs_dir} yet: launch one from Presets (^o)", style="dim"))
        else:
            text = summary_text(info)
            if info.status == "running" and info.updated:  # liveness: the column says when it started
                text.append(f"\nlast event {age(self.app.ctx.clock() - info.updated)}", style="dim")
            detail.update(text)

    def selected(self):
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row is None or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_attach()

    def action_attach(self) -> None:
        info = self.selected()
        if info is not None:
            from pathlib import Path

            self.app.attach(Path(info.dir))

    def action_stop(self) -> None:
        info = self.selected()
        if info is None or info.status != "running":
            self.notify("only a running run can be stopped", severity="warning")
            return
        from pathlib import Path

        from rankwise.trainer.sweep_driver import sweep_of

        from .dialogs import ConfirmScreen
        from .run import stop_run

        sweep_dir = sweep_of(info.dir, self.app.ctx.runs_dir)
        if sweep_dir is not None:  # stopping the trial alone: its sweep would start the next one
            def stop_sweep(yes: bool | None) -> None:
                if yes:
                    from .sweep import SweepScreen

                    self.app.push_screen(SweepScreen(sweep_dir, stop=True))

            self.app.push_screen(ConfirmScreen(f"Run {info.id} is a trial of the running sweep {sweep_dir.name}: "
                                               "stopped alone, the sweep starts its next trial. Stop the whole "
                                               "sweep?"), stop_sweep)
            return

        def answer(yes: bool | None) -> None:
            if yes:
                stop_run(self, Path(info.dir))

        self.app.push_screen(ConfirmScreen(f"Stop run {info.id}?\nIt saves a checkpoint first; "
                                           f"`rankwise train --resume {info.id}` continues it."), answer)

    def action_chat(self) -> None:
        """Chat with the selected run's adapter (its latest checkpoint's while it has no final one)."""
        self._bench("chat")

    def action_compare(self) -> None:
        """The selected run's adapter against its base on the held-out rows."""
        self._bench("compare")

    def _bench(self, what: str) -> None:
        from pathlib import Path

        from rankwise.advisor.errors import RankwiseError
        from rankwise.trainer.chat import adapter_dir, latest_adapter

        info = self.selected()
        if info is None:
            self.notify("no run selected", severity="warning")
            return
        try:  # before a process starts: a run with nothing to load says why at once
            latest_adapter(Path(info.dir)) if what == "chat" else adapter_dir(Path(info.dir))
        except RankwiseError as e:
            hint = (e.hint or "").strip().removeprefix("hint:").strip()
            self.notify(e.message + (f"\nhint: {hint}" if hint else ""), title=f"no {what}", severity="warning",
                        timeout=8)
            return
        if what == "chat":
            from .chat import ChatScreen

            self.app.push_screen(ChatScreen(Path(info.dir)))
        else:
            from .compare import CompareScreen

            self.app.push_screen(CompareScreen(Path(info.dir)))

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
