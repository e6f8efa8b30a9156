"""The live progress panel of one run: a rich renderable folded from its event log.

One panel for every face: the headless `rankwise train`, `rankwise attach` and the TUI's
run screen. `RunView.update(event)` folds events into state; `render(view)` draws it
(legible at 80 columns); `plain_line(event)` is the non-TTY twin, one clean line per
event; `follow(run_dir)` tails `events.jsonl` and shows it until the run ends.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from rankwise.trainer.events import EVENTS_FILE, Tail

SPARK = "▁▂▃▄▅▆▇█"
GIB = 1024 ** 3
STATUS_STYLE = {"running": "bold cyan", "starting": "cyan", "finished": "bold green",
                "interrupted": "bold yellow", "failed": "bold red", "detached": "yellow"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # colour and cursor sequences, dropped whole
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(value) -> str:
    """A string from a log, safe to print: escape sequences go, other control characters (\\r) become spaces."""
    return _CONTROL.sub(" ", _ANSI.sub("", str(value)))


def sparkline(values, width: int = 30) -> str:
    vals = [v for v in list(values)[-width:] if isinstance(v, (int, float))]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo
    top = len(SPARK) - 1
    return "".join(SPARK[0 if span == 0 else round((v - lo) / span * top)] for v in vals)


def fmt_age(seconds: float | None) -> str:
    """How long ago, in the largest whole unit: 45s, 12m, 3h, 2d."""
    if seconds is None:
        return "?"
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def fmt_duration(seconds) -> str:
    if seconds is None or seconds < 0:
        return "?"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def fmt_gib(b) -> str:
    return "?" if b is None else f"{b / GIB:.1f} GiB"


def _num(v, spec: str = ".4f") -> str:
    return "?" if v is None else format(v, spec)


@dataclass
class RunView:
    """What the panel shows, folded from events. `update` is the only writer."""

    run_dir: Path | None = None
    run_id: str = ""
    status: str = "starting"
    model: str | None = None
    method: str | None = None
    device: str | None = None
    device_total_bytes: int | None = None
    estimate_peak_gib: float | None = None
    step: int = 0
    max_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    losses: deque = field(default_factory=lambda: deque(maxlen=60))
    eval_loss: float | None = None
    eval_step: int | None = None
    best_eval_loss: float | None = None
    eval_rising: bool = False  # the last eval is above the best so far: the usual first sign of overfitting
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    mem_bytes: int | None = None
    peak_mem_bytes: int | None = None
    gpu_mem_bytes: list | None = None  # multi-GPU runs: memory in use on each local GPU (rank 0 reads NVML)
    eta_s: float | None = None
    started: float | None = None
    updated: float | None = None
    resumed_from_step: int | None = None
    last_checkpoint: str | None = None
    last_checkpoint_step: int | None = None
    retries: list = field(default_factory=list)
    logs: deque = field(default_factory=lambda: deque(maxlen=4))  # from `log` events
    log_tail: list = field(default_factory=list)  # last lines of train.log, when no `log` events come
    error: str | None = None
    error_hint: str | None = None
    end: dict | None = None
    pid: int | None = None

    def __post_init__(self):
        if self.run_dir is not None and not self.run_id:
            self.run_id = Path(self.run_dir).name

    def update(self, e: dict) -> None:
        t = e.get("type")
        self.updated = e.get("time", self.updated)
        if t == "start":
            self.status = "running"
            self.end = None
            self.run_id = e.get("run_id") or self.run_id
            self.pid = e.get("pid")
            for k in ("model", "method", "device", "device_total_bytes", "estimate_peak_gib", "resumed_from_step"):
                setattr(self, k, e.get(k, getattr(self, k)))
            self.max_steps = e.get("max_steps") or self.max_steps
            self.started = e.get("time", self.started)  # the latest start: ETA counts from it (with resumed_from_step)
        elif t == "step":
            self.status = "running"
            self.step = e.get("step", self.step)
            self.max_steps = e.get("max_steps") or self.max_steps
            for k in ("epoch", "lr", "grad_norm", "tokens_per_s", "mem_bytes", "eta_s"):
                if e.get(k) is not None:
                    setattr(self, k, e[k])
            if e.get("peak_mem_bytes") is not None:
                self.peak_mem_bytes = max(self.peak_mem_bytes or 0, e["peak_mem_bytes"])
            if isinstance(e.get("gpu_mem_bytes"), list):
                self.gpu_mem_bytes = e["gpu_mem_bytes"]
            if e.get("loss") is not None:
                self.loss = e["loss"]
                self.losses.append(e["loss"])
        elif t == "eval":
            self.eval_loss, self.eval_step = e.get("eval_loss"), e.get("step")
            if self.eval_loss is not None:
                self.eval_rising = self.best_eval_loss is not None and self.eval_loss > self.best_eval_loss
                self.best_eval_loss = min(self.best_eval_loss or self.eval_loss, self.eval_loss)
        elif t == "checkpoint":
            self.last_checkpoint, self.last_checkpoint_step = e.get("path"), e.get("step")
        elif t == "retry":
            self.retries.append(e)
        elif t == "log":
            self.logs.append((e.get("level", "info"), clean(e.get("message", ""))))
        elif t == "error":
            self.error, self.error_hint = e.get("message"), e.get("hint")
        elif t == "end":
            self.end = e
            self.status = e.get("status", "failed")
            self.step = e.get("step", self.step) or self.step
            if e.get("peak_mem_bytes") is not None:
                self.peak_mem_bytes = e["peak_mem_bytes"]
            if e.get("best_eval_loss") is not None:
                self.best_eval_loss = e["best_eval_loss"]

    @property
    def gap(self) -> float | None:
        """Validation minus train loss: growing means overfitting."""
        if self.eval_loss is None or self.loss is None:
            return None
        return self.eval_loss - self.loss

    def eta(self) -> float | None:
        if self.eta_s is not None:
            return self.eta_s
        if self.started and self.updated and self.step and self.max_steps:
            done = self.step - (self.resumed_from_step or 0)
            if done > 0:
                return (self.updated - self.started) / done * (self.max_steps - self.step)
        return None


def retry_text(e: dict) -> str:
    return clean(f"retry {e.get('attempt', '?')}: {e.get('reason', '?')} → micro_batch {e.get('micro_batch', '?')}, "
                 f"grad_accum {e.get('grad_accum', '?')}, from step {e.get('from_step', '?')}")


def render(view: RunView) -> RenderableType:
    """The panel. Every value is a Text, so log content can never inject markup."""
    grid = Table.grid(padding=(0, 1), expand=False)
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")

    total = view.max_steps or 0
    bar = ProgressBar(total=total or 1, completed=min(view.step, total) if total else 0, width=20,
                      pulse=not total and view.status == "running")
    frac = f" {100 * view.step / total:.0f}%" if total else ""
    steps = Text(f"{view.step}/{total or '?'}{frac}")
    eta = view.eta()
    if view.status == "running" and eta is not None:
        steps.append(f"  ETA {fmt_duration(eta)}")
    if view.epoch is not None:
        steps.append(f"  epoch {view.epoch:.2f}")
    prog = Table.grid(padding=(0, 1))
    prog.add_row(bar, steps)
    grid.add_row("step", prog)

    loss = Text(_num(view.loss))
    spark = sparkline(view.losses)
    if spark:
        loss.append("  " + spark, style="cyan")
    grid.add_row("train loss", loss)
    if view.eval_loss is not None:
        ev = Text(f"{view.eval_loss:.4f} (step {view.eval_step})")
        if view.gap is not None:
            ev.append(f"  gap {view.gap:+.4f}")
        if view.eval_rising:
            ev.append(f"  rising (best {view.best_eval_loss:.4f})", style="yellow")
        grid.add_row("eval loss", ev)
    grid.add_row("lr / grad norm", Text(f"{_num(view.lr, '.2e')} / {_num(view.grad_norm, '.3f')}"))
    if view.tokens_per_s is not None:
        grid.add_row("throughput", Text(f"{view.tokens_per_s:,.0f} tokens/s"))
    grid.add_row("memory", memory_text(view))
    if view.last_checkpoint:
        grid.add_row("checkpoint", Text(clean(f"step {view.last_checkpoint_step}: {_rel(view, view.last_checkpoint)}")))
    if view.retries:
        last = view.retries[-1]
        grid.add_row("retries", Text(clean(f"{len(view.retries)}, last: {last.get('reason', '?')} → micro_batch "
                                           f"{last.get('micro_batch', '?')}, grad_accum {last.get('grad_accum', '?')}"),
                                     style="yellow"))
    if view.error:
        err = Text(clean(view.error), style="red")
        if view.error_hint:
            err.append("\nhint: " + clean(view.error_hint), style="yellow")
        grid.add_row("error", err)
    if view.end is not None:
        grid.add_row("result", end_text({**view.end, "adapter_path": _rel(view, view.end.get("adapter_path"))}))

    parts: list[RenderableType] = [grid]
    shown = list(view.logs) or [("info", line) for line in view.log_tail]
    if shown:
        logs = Text()
        for level, msg in shown:
            style = {"warning": "yellow", "error": "red"}.get(level, "dim")
            logs.append(("\n" if logs else "") + msg, style=style)
        parts.append(Text("recent log", style="dim underline"))
        parts.append(logs)

    title = Text(view.run_id or "run", style="bold")
    title.append("  ")
    title.append(view.status, style=STATUS_STYLE.get(view.status, ""))
    model = Path(view.model).name if view.model and Path(view.model).is_absolute() else view.model
    what = " · ".join(clean(x) for x in (model, view.method, view.device) if x)
    return Panel(Group(*parts), title=title, title_align="left", subtitle=Text(what) if what else None,
                 subtitle_align="right", border_style=STATUS_STYLE.get(view.status, "white").split()[-1])


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
    if view.mem_bytes is None and view.peak_mem_bytes is None:
        text = Text("?")
    else:
        where = "" if view.device_total_bytes else " RSS"
        text = Text(f"{fmt_gib(view.mem_bytes)}{where}, peak {fmt_gib(view.peak_mem_bytes)}")
        if view.device_total_bytes:
            text.append(f" of {fmt_gib(view.device_total_bytes)}")
            if view.peak_mem_bytes:
                share = view.peak_mem_bytes / view.device_total_bytes
                text.append(f" ({100 * share:.0f}%)", style="red" if share > 0.95 else "")
    if view.estimate_peak_gib is not None:
        text.append(f"  est. {view.estimate_peak_gib:.1f} GiB")
        if view.peak_mem_bytes:
            text.append(f" (measured {view.peak_mem_bytes / GIB / view.estimate_peak_gib:.2f}×)", style="dim")
    if view.gpu_mem_bytes and len(view.gpu_mem_bytes) > 1:
        text.append("\nper GPU " + " · ".join(f"{i}: {fmt_gib(b)}" for i, b in enumerate(view.gpu_mem_bytes)))
    return text


def end_text(e: dict) -> Text:
    status = e.get("status", "?")
    t = Text(status, style=STATUS_STYLE.get(status, ""))
    if e.get("final_loss") is not None:
        t.append(f"  final loss {e['final_loss']:.4f}")
    if e.get("best_eval_loss") is not None:
        t.append(f"  best eval {e['best_eval_loss']:.4f}")
    if e.get("adapter_path"):
        t.append("\nadapter: " + clean(e["adapter_path"]))
    return t


def plain_line(e: dict) -> str | None:
    """One clean line for a non-terminal (logs, CI): no colour, no escapes, no carriage returns."""
    t = e.get("type")
    if t == "start":
        resumed = f" resumed from step {e['resumed_from_step']}" if e.get("resumed_from_step") else ""
        line = (f"start {e.get('run_id', '')} model {e.get('model', '?')} method {e.get('method', '?')} "
                f"device {e.get('device', '?')} max_steps {e.get('max_steps', '?')}{resumed}")
    elif t == "step":
        parts = [f"step {e.get('step', '?')}/{e.get('max_steps') or '?'}"]
        if e.get("epoch") is not None:
            parts.append(f"epoch {e['epoch']:.2f}")
        parts.append(f"loss {_num(e.get('loss'))}")
        if e.get("lr") is not None:
            parts.append(f"lr {e['lr']:.2e}")
        if e.get("grad_norm") is not None:
            parts.append(f"grad_norm {e['grad_norm']:.3f}")
        if e.get("tokens_per_s") is not None:
            parts.append(f"{e['tokens_per_s']:.0f} tok/s")
        if e.get("mem_bytes") is not None:
            parts.append(f"mem {fmt_gib(e['mem_bytes'])}")
        if e.get("eta_s") is not None:
            parts.append(f"eta {fmt_duration(e['eta_s'])}")
        line = " ".join(parts)
    elif t == "eval":
        line = f"eval step {e.get('step', '?')} eval_loss {_num(e.get('eval_loss'))}"
    elif t == "checkpoint":
        line = f"checkpoint step {e.get('step', '?')} {e.get('path', '')}"
    elif t == "retry":
        line = retry_text(e)
    elif t == "error":
        line = f"error: {e.get('message', '')}" + (f" (hint: {e['hint']})" if e.get("hint") else "")
    elif t == "log" and e.get("level") in ("warning", "error"):
        line = f"{e['level']}: {e.get('message', '')}"
    elif t == "end":
        line = f"end {e.get('status', '?')} step {e.get('step', '?')}"
        if e.get("final_loss") is not None:
            line += f" final_loss {e['final_loss']:.4f}"
        if e.get("best_eval_loss") is not None:
            line += f" best_eval_loss {e['best_eval_loss']:.4f}"
        if e.get("adapter_path"):
            line += f" adapter {e['adapter_path']}"
    else:
        return None
    return clean(line)


# ---------------------------------------------------------------- following a run


class _Keys:
    """`q` to detach, read from stdin in cbreak mode (only when stdin is a terminal)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stdin is not None and sys.stdin.isatty()
        self._saved = None

    def __enter__(self):
        if self.enabled:
            import termios
            import tty

            fd = sys.stdin.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)  # keys arrive one by one; Ctrl-C still raises KeyboardInterrupt
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)
        return False

    def quit_pressed(self) -> bool:
        if not self.enabled:
            return False
        import select

        while select.select([sys.stdin], [], [], 0)[0]:
            ch = os.read(sys.stdin.fileno(), 1)
            if not ch:
                return False
            if ch in (b"q", b"Q"):
                return True
        return False


def read_log_tail(path: Path, n: int = 4, max_bytes: int = 8192) -> list[str]:
    """The last `n` non-empty lines of a log file, cleaned (progress bars' \r and escapes removed)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [clean(l.split("\r")[-1]).strip() for l in data.splitlines()]
    return [l for l in lines if l][-n:]


def _worker_gone(view: RunView, run_dir: Path) -> bool:
    """The run's worker is no longer alive (its start event's pid, or the run's status before one)."""
    from rankwise.trainer.runs import is_our_worker, run_info

    if view.pid is None:  # no start event yet: a fresh dir is starting, a stale one never started
        return run_info(run_dir).status != "running"
    return not is_our_worker(view.pid, run_dir)


def follow(run_dir: Path, console: Console | None = None, json_events: bool = False,
           proc=None, detach_keys: bool = False, interval: float = 0.25, offset: int = 0) -> dict | None:
    """Show a run until it ends. Returns its `end` event, or None when the worker (`proc`, or
    the pid of its start event) exited without one, or the user detached (`q`/Ctrl-C with
    `detach_keys`). Without `detach_keys`, KeyboardInterrupt propagates to the caller."""
    run_dir = Path(run_dir)
    console = console or Console()
    tail = Tail(run_dir / EVENTS_FILE)
    tail._pos = offset  # a resumed run: show only what this session appends (the old `end` is history)
    view = RunView(run_dir=run_dir)
    live_mode = console.is_terminal and not json_events
    out = console.file

    def emit(e: dict) -> None:
        if json_events:
            out.write(json.dumps(e) + "\n")
            out.flush()
        elif not live_mode:
            line = plain_line(e)
            if line is not None:
                out.write(line + "\n")
                out.flush()

    def step() -> tuple[bool, dict | None]:
        """Poll once: (done, end event)."""
        for e in tail.poll():
            view.update(e)
            emit(e)
            if e.get("type") == "end":
                return True, e
        return False, None

    def dead() -> bool:
        if proc is not None:
            return proc.poll() is not None
        return _worker_gone(view, run_dir)

    live = None
    last_check = 0.0
    try:
        with _Keys(detach_keys) as keys:
            if live_mode:
                from rich.live import Live

                live = Live(render(view), console=console, refresh_per_second=4, transient=False)
                live.start()
            while True:
                done, end = step()
                if live is not None:
                    live.update(render(view))
                if done:
                    return end
                now = time.monotonic()
                if now - last_check >= (0.5 if proc is not None else 2.0):
                    last_check = now
                    if live is not None and not view.logs:
                        view.log_tail = read_log_tail(run_dir / "train.log")
                    if dead():
                        done, end = step()  # the end event may have landed just before it exited
                        if not done:
                            view.status = "failed"
                            view.logs.append(("error", "the worker exited without an end event"))
                        if live is not None:
                            live.update(render(view))
                        return end if done else None
                if keys.quit_pressed():
                    return None
                time.sleep(interval)
    except KeyboardInterrupt:
        if detach_keys:
            return None
        raise
    finally:
        if live is not None:
            live.stop()
