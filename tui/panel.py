"""The live progress panel of one run, drawn from its `RunView`.

One panel for every face: the headless `rankwise train`, `rankwise attach` (both through
`tui/terminal.py`) and the TUI's Run screen. `render(view)` draws it (legible at 80 columns);
`plain_line(event)` is the non-TTY twin, one clean line per event. Every value is a Text, so
log content can never inject markup.

A new field in the panel: declare it on its event class (trainer/events.py), emit it, and show
it here (`view.last_step.<field>` / `view.start.<field>`).
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from rankwise.advisor.time import rate
from rankwise.trainer.events import Checkpoint, Data, Diagnosis, End, Error, Eval, Event, Log, Retry, Sample, Start, Step

from .formatting import GIB, clean, fmt_duration, fmt_gib, fmt_num, sparkline
from .runview import RunView, data_text
from .style import SEVERITY_MARK, message_style, severity_style, status_style

__all__ = ["RunView", "render", "plain_line", "memory_text", "end_text", "retry_text"]


def retry_text(e: Retry) -> str:
    return clean(f"retry {_q(e.attempt)}: {_q(e.reason)} → micro_batch {_q(e.micro_batch)}, "
                 f"grad_accum {_q(e.grad_accum)}, from step {_q(e.from_step)}")


def _q(v) -> str:
    return "?" if v is None else str(v)


def render(view: RunView) -> RenderableType:
    """The panel."""
    grid = Table.grid(padding=(0, 1), expand=False)
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    last = view.last_step or Step()
    start = view.start or Start()

    total = view.max_steps or 0
    bar = ProgressBar(total=total or 1, completed=min(view.step, total) if total else 0, width=20,
                      pulse=not total and view.status == "running")
    frac = f" {100 * view.step / total:.0f}%" if total else ""
    steps = Text(f"{view.step}/{total or '?'}{frac}")
    eta = view.eta()
    if view.status == "running" and eta is not None:
        steps.append(f"  ETA {fmt_duration(eta)}" + (" (planned)" if view.eta_planned else ""))
    if last.epoch is not None:
        steps.append(f"  epoch {last.epoch:.2f}")
    prog = Table.grid(padding=(0, 1))
    prog.add_row(bar, steps)
    grid.add_row("step", prog)

    loss = Text(fmt_num(view.loss))
    spark = sparkline(view.losses)
    if spark:
        loss.append("  " + spark, style="cyan")
    grid.add_row("train loss", loss)
    if view.last_eval is not None:
        ev_step, ev_loss = view.last_eval
        ev = Text(f"{ev_loss:.4f} (step {ev_step})")
        if view.gap is not None:
            ev.append(f"  gap {view.gap:+.4f}")
        if view.eval_rising:
            ev.append(f"  rising (best {view.best_eval_loss:.4f})", style=message_style("warning"))
        grid.add_row("eval loss", ev)
    grid.add_row("lr / grad norm", Text(f"{fmt_num(last.lr, '.2e')} / {fmt_num(last.grad_norm, '.3f')}"))
    if last.tokens_per_s is not None:
        grid.add_row("throughput", Text(f"{last.tokens_per_s:,.0f} tokens/s"))
    grid.add_row("memory", memory_text(view))
    if view.checkpoint is not None:
        grid.add_row("checkpoint", Text(clean(f"step {_q(view.checkpoint.step)}: "
                                              f"{_rel(view, view.checkpoint.path)}")))
    if view.retries:
        r = view.retries[-1]
        grid.add_row("retries", Text(clean(f"{len(view.retries)}, last: {_q(r.reason)} → micro_batch "
                                           f"{_q(r.micro_batch)}, grad_accum {_q(r.grad_accum)}"),
                                     style=message_style("warning")))
    if view.error:
        err = Text(clean(view.error), style=message_style("error"))
        if view.error_hint:
            err.append("\nhint: " + clean(view.error_hint), style=message_style("warning"))
        grid.add_row("error", err)
    if view.end is not None:
        grid.add_row("result", end_text(view.end, _rel(view, view.end.adapter_path)))

    parts: list[RenderableType] = [grid]
    if view.diagnoses:
        parts.append(Text("diagnoses (rankwise doctor)", style="dim underline"))
        parts.append(diagnoses_text(view.current_diagnoses[:MAX_DIAGNOSES]))
    if view.samples:
        parts.append(Text(f"samples at step {_q(view.samples[-1].step)}", style="dim underline"))
        parts.append(samples_text(view.samples[:MAX_SAMPLES]))
    shown = list(view.logs) or [("info", line) for line in view.log_tail]
    if shown:
        logs = Text()
        for level, msg in shown:
            logs.append(("\n" if logs else "") + msg, style=message_style(level))
        parts.append(Text("recent log", style="dim underline"))
        parts.append(logs)

    title = Text(view.run_id or "run", style="bold")
    title.append("  ")
    title.append(view.status, style=status_style(view.status))
    model = Path(start.model).name if start.model and Path(start.model).is_absolute() else start.model
    what = " · ".join(clean(x) for x in (model, start.method, start.device) if x)
    return Panel(Group(*parts), title=title, title_align="left", subtitle=Text(what) if what else None,
                 subtitle_align="right", border_style=(status_style(view.status) or "white").split()[-1])


MAX_DIAGNOSES = 4  # the newest; `rankwise doctor RUN` lists them all
MAX_SAMPLES = 3  # the newest step's first few; events.jsonl keeps them all
SAMPLE_CHARS = 160  # a sample's prompt and answer each kept to one or two lines at 80 columns


def _short(text: str | None) -> str:
    text = " ".join(clean(text or "").split())
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def samples_text(samples: list[Sample]) -> Text:
    """Each sample's prompt, then what the model answers now."""
    out = Text()
    for s in samples:
        out.append(("\n" if out else "") + "› " + _short(s.prompt), style="dim")
        out.append("\n  " + _short(s.text))
    return out


def diagnoses_text(diagnoses: list[Diagnosis]) -> Text:
    """One diagnosis a line (newest first), its fix under it."""
    t = Text()
    for d in diagnoses:
        sev = d.severity if d.severity in SEVERITY_MARK else "warning"
        t.append(("\n" if t else "") + f"{SEVERITY_MARK[sev]} {clean(d.code or '?')}", style=severity_style(sev))
        t.append(clean(f" (step {_q(d.step)}): {d.message or ''}"))
        if d.fix:
            t.append("\n  fix: " + clean(d.fix), style="dim")
    return t


def _rel(view: RunView, path: str | None) -> str | None:
    """A path inside the run dir, shown relative to it (the panel's title names the run)."""
    if not path or view.run_dir is None:
        return path
    try:
        return str(Path(path).resolve().relative_to(Path(view.run_dir).resolve()))
    except (ValueError, OSError):
        return path


def memory_text(view: RunView) -> Text:
    """Used and peak against the device total (on CPU the worker reports process RSS)."""
    last = view.last_step or Step()
    start = view.start or Start()
    total = start.device_total_bytes
    if last.mem_bytes is None and view.peak_mem_bytes is None:
        text = Text("?")
    else:
        where = "" if total else " RSS"
        text = Text(f"{fmt_gib(last.mem_bytes)}{where}, peak {fmt_gib(view.peak_mem_bytes)}")
        if total:
            text.append(f" of {fmt_gib(total)}")
            if view.peak_mem_bytes:
                share = view.peak_mem_bytes / total
                text.append(f" ({100 * share:.0f}%)", style=message_style("error") if share > 0.95 else "")
    if start.estimate_peak_gib is not None:
        text.append(f"  est. {start.estimate_peak_gib:.1f} GiB")
        if view.peak_mem_bytes and start.estimate_peak_gib > 0:
            text.append(f" (measured {view.peak_mem_bytes / GIB / start.estimate_peak_gib:.2f}×)", style="dim")
    if last.gpu_mem_bytes and len(last.gpu_mem_bytes) > 1:
        text.append("\nper GPU " + " · ".join(f"{i}: {fmt_gib(b)}" for i, b in enumerate(last.gpu_mem_bytes)))
    return text


def end_text(e: End, adapter_path: str | None = None) -> Text:
    """The result line; `adapter_path` as shown (relative to the run dir), else the event's."""
    status = e.status or "?"
    t = Text(status, style=status_style(status))
    if e.final_loss is not None:
        t.append(f"  final loss {e.final_loss:.4f}")
    if e.best_eval_loss is not None:
        t.append(f"  best eval {e.best_eval_loss:.4f}")
    adapter = adapter_path or e.adapter_path
    if adapter:
        t.append("\nadapter: " + clean(adapter))
    return t


def plain_line(e: Event) -> str | None:
    """One clean line for a non-terminal (logs, CI): no colour, no escapes, no carriage returns."""
    if isinstance(e, Start):
        resumed = f" resumed from step {e.resumed_from_step}" if e.resumed_from_step else ""
        # "steps planned": the training steps alone; the plan line's time also counts loading, data and evaluations
        line = (f"start {e.run_id or ''} model {_q(e.model)} method {_q(e.method)} "
                f"device {_q(e.device)} max_steps {_q(e.max_steps)}{resumed}"
                + (f" steps planned {fmt_duration(e.planned_s)}" if e.planned_s is not None else ""))
    elif isinstance(e, Step):
        parts = [f"step {_q(e.step)}/{e.max_steps or '?'}"]
        if e.epoch is not None:
            parts.append(f"epoch {e.epoch:.2f}")
        parts.append(f"loss {fmt_num(e.loss)}")
        if e.lr is not None:
            parts.append(f"lr {e.lr:.2e}")
        if e.grad_norm is not None:
            parts.append(f"grad_norm {e.grad_norm:.3f}")
        if e.tokens_per_s is not None:
            parts.append(rate(e.tokens_per_s))
        if e.mem_bytes is not None:
            parts.append(f"mem {fmt_gib(e.mem_bytes)}")
        if e.eta_s is not None:
            parts.append(f"eta {fmt_duration(e.eta_s)}")
        line = " ".join(parts)
    elif isinstance(e, Eval):
        line = f"eval step {_q(e.step)} eval_loss {fmt_num(e.eval_loss)}"
    elif isinstance(e, Checkpoint):
        line = f"checkpoint step {_q(e.step)} {e.path or ''}"
    elif isinstance(e, Retry):
        line = retry_text(e)
    elif isinstance(e, Error):
        line = f"error: {e.message or ''}" + (f" (hint: {e.hint})" if e.hint else "")
    elif isinstance(e, Diagnosis):
        line = f"diagnosis {_q(e.severity)} {_q(e.code)} at step {_q(e.step)}: {e.message or ''}"
        if e.fix:
            line += f" (fix: {e.fix})"
    elif isinstance(e, Sample):
        line = f"sample step {_q(e.step)}: {_short(e.prompt)} → {_short(e.text)}"
    elif isinstance(e, Data):
        line = data_text(e)
    elif isinstance(e, Log) and e.level in ("warning", "error"):
        line = f"{e.level}: {e.message or ''}"
    elif isinstance(e, End):
        line = f"end {_q(e.status)} step {_q(e.step)}"
        if e.final_loss is not None:
            line += f" final_loss {e.final_loss:.4f}"
        if e.best_eval_loss is not None:
            line += f" best_eval_loss {e.best_eval_loss:.4f}"
        if e.adapter_path:
            line += f" adapter {e.adapter_path}"
    else:
        return None
    return clean(line)
