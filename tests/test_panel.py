"""The progress panel: folding a real run's events, rendering at 80/120 columns, plain lines,
following a log as it grows (headless, attach)."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from rankwise.trainer.events import (Checkpoint, End, Error, Eval, EventSink, Log, Retry, Start, Step, read_events,
                                     typed)
from rankwise.tui.formatting import sparkline
from rankwise.tui.panel import RunView, plain_line, render
from rankwise.tui.terminal import follow

GIB = 1024 ** 3
T0 = 1_800_000_000.0


def recorded(run_dir: Path) -> list:
    """The run's events as the viewers get them: typed."""
    return [typed(e) for e in read_events(run_dir / "events.jsonl")]


def of(events, cls) -> list:
    return [e for e in events if isinstance(e, cls)]


def folded(events, run_dir=None) -> RunView:
    view = RunView(run_dir=run_dir)
    for e in events:
        view.update(e)
    return view


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> Path:
    """A real run that fails: out of memory at micro-batch 1, where halving cannot help."""
    from train_helpers import only_run, train

    runs = tmp_path_factory.mktemp("failed-run") / "runs"
    out = train(runs, "--set", "train.micro_batch=1", extra_env={"RANKWISE_TEST_OOM_AT_STEPS": "2"})
    assert out.returncode == 1, out.stderr[-3000:]
    return only_run(runs)


def test_the_real_run_has_every_kind_of_event(demo_run):
    kinds = {type(e) for e in recorded(demo_run)}
    assert {Start, Step, Eval, Checkpoint, Retry, Log, End} <= kinds


def test_runview_folds_a_real_run(demo_run):
    events = recorded(demo_run)
    start, steps, evals, end = of(events, Start)[-1], of(events, Step), of(events, Eval), of(events, End)[-1]
    running = folded(events[:-1], demo_run)
    assert (running.run_id, running.status, running.step) == (demo_run.name, "running", steps[-1].step)
    assert running.max_steps == start.max_steps == steps[-1].max_steps and running.start.pid == start.pid
    assert running.loss == steps[-1].loss and running.losses[-1] == steps[-1].loss
    assert [s for s, _ in running.train_curve] == [s.step for s in steps]  # the retried steps twice, as trained
    assert running.last_eval == (evals[-1].step, evals[-1].eval_loss)
    assert running.gap == pytest.approx(evals[-1].eval_loss - steps[-1].loss)
    assert running.checkpoint == of(events, Checkpoint)[-1] and running.retries == of(events, Retry)
    first = of(events, Log)[0]  # its level as the worker wrote it (the demo raises no warning since issue 18)
    assert (first.level, first.message) in running.logs
    assert running.peak_mem_bytes == max(s.peak_mem_bytes for s in steps)
    view = folded(events, demo_run)
    assert view.status == end.status == "finished" and view.end == end and view.peak_mem_bytes == end.peak_mem_bytes
    assert view.best_eval_loss == end.best_eval_loss == min(e.eval_loss for e in evals)


def test_resumed_run_clears_the_old_end(demo_run):
    events = recorded(demo_run)
    view = folded([*events[:-1], replace(events[-1], status="interrupted")])
    assert view.status == "interrupted"
    again = replace(of(events, Start)[0], pid=5555, resumed_from_step=8)
    view.update(again)
    assert view.status == "running" and view.end is None and view.start.pid == 5555


def test_a_step_without_a_field_keeps_the_last_value():
    view = folded([Step(step=1, lr=1e-4, tokens_per_s=100.0, loss=2.0), Step(step=2, lr=None, loss=1.5)])
    assert view.last_step.lr == 1e-4 and view.last_step.tokens_per_s == 100.0 and view.train_curve == [(1, 2.0), (2, 1.5)]


def text_at(view: RunView, width: int) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(render(view))
    return console.export_text()


@pytest.mark.parametrize("width", [80, 120])
def test_render_shows_key_fields_within_the_width(demo_run, width):
    events = recorded(demo_run)
    start, last, ev = of(events, Start)[-1], of(events, Step)[-2], of(events, Eval)[-2]
    upto = events.index(last) + 1
    view = folded([e for e in events[:upto]], demo_run)
    text = text_at(view, width)
    for needle in (demo_run.name, "running", f"{last.step}/{start.max_steps}",
                   f"{100 * last.step / start.max_steps:.0f}%", "ETA", f"epoch {last.epoch:.2f}",
                   f"{last.loss:.4f}", f"{ev.eval_loss:.4f} (step {ev.step})", f"{last.lr:.2e}",
                   f"{last.grad_norm:.3f}", f"{last.tokens_per_s:,.0f} tokens/s", "RSS",
                   f"est. {start.estimate_peak_gib:.1f} GiB", "checkpoints/checkpoint-", "CUDA out of memory",
                   of(events, Log)[0].message[:20],
                   f"{Path(start.model).name} · {start.method} · {start.device}"):
        assert needle in text, f"{needle!r} missing at width {width}:\n{text}"
    assert any(ch in text for ch in "▁▂▃▄▅▆▇█")
    assert max(len(line) for line in text.splitlines()) <= width


def test_render_finished_and_failed(demo_run, failed_run):
    events = recorded(demo_run)
    end = of(events, End)[-1]
    text = text_at(folded(events, demo_run), 80)
    assert "finished" in text and f"final loss {end.final_loss:.4f}" in text and "adapter: adapter" in text
    assert "ETA" not in text  # a finished run has no ETA
    failed = recorded(failed_run)
    error = of(failed, Error)[-1]
    text = text_at(folded(failed, failed_run), 80)
    assert of(failed, End)[-1].status == "failed"
    assert "failed" in text and "out of memory" in text and error.message.startswith("out of memory")
    assert error.hint and "hint:" in text


def test_log_content_cannot_inject_markup_or_escapes():
    view = folded([Log(time=T0, level="info", message="[bold red]boom[/] \x1b[2J\rx")])
    text = text_at(view, 80)
    assert "[bold red]boom[/]" in text and "\x1b" not in text and "\r" not in text


def test_sparkline_scales_to_blocks():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([2.0, 2.0]) == "▁▁" and sparkline([]) == ""
    assert len(sparkline(range(100), width=30)) == 30


def test_plain_lines_of_a_real_run(demo_run):
    events = [*recorded(demo_run), Log(time=T0, level="warning", message="bad\x1b[31m\rrow")]
    lines = [plain_line(e) for e in events]
    shown = [l for l in lines if l is not None]
    assert all("\x1b" not in l and "\r" not in l and "\n" not in l for l in shown)
    for e, line in zip(events, lines):
        if isinstance(e, Step):
            assert line.startswith(f"step {e.step}/{e.max_steps} epoch {e.epoch:.2f} loss {e.loss:.4f}")
        elif isinstance(e, Eval):
            assert line == f"eval step {e.step} eval_loss {e.eval_loss:.4f}"
        elif isinstance(e, Checkpoint):
            assert line == f"checkpoint step {e.step} {e.path}"
        elif isinstance(e, Retry):
            assert e.reason in line and f"micro_batch {e.micro_batch}" in line
        elif isinstance(e, End):
            assert line.startswith(f"end finished step {e.step} final_loss {e.final_loss:.4f}")
        elif isinstance(e, Log):
            assert (line is None) == (e.level == "info")
    assert plain_line(Log(time=T0, level="info", message="x")) is None


@pytest.fixture
def worker_pid():
    """A live process that counts as a rankwise worker (its command line says so)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "rankwise-test-worker"])
    yield proc.pid
    proc.kill()
    proc.wait()


def replayed(run_dir: Path, pid: int) -> list:
    """The real run's events, its start's pid swapped for a live process."""
    return [replace(e, pid=pid) if isinstance(e, Start) else e for e in recorded(run_dir)]


def _writer(path, events, delay=0.01):
    def run():
        sink = EventSink(path)
        for e in events:
            sink.emit(e.type, **{k: v for k, v in e.to_dict().items() if k != "type" and v is not None})
            time.sleep(delay)
        sink.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_follow_non_tty_prints_plain_lines_until_end(tmp_path, demo_run, worker_pid):
    events = replayed(demo_run, worker_pid)
    writer = _writer(tmp_path / "events.jsonl", events)
    out = io.StringIO()
    end = follow(tmp_path, console=Console(file=out), interval=0.01)
    writer.join()
    assert end == events[-1].to_dict() and end["status"] == "finished"
    lines = out.getvalue().splitlines()
    assert lines == [l for l in map(plain_line, events) if l is not None]


def test_follow_json_events_echoes_each_event(tmp_path, demo_run, worker_pid):
    events = replayed(demo_run, worker_pid)
    writer = _writer(tmp_path / "events.jsonl", events)
    out = io.StringIO()
    end = follow(tmp_path, console=Console(file=out), json_events=True, interval=0.01)
    writer.join()
    echoed = [json.loads(l) for l in out.getvalue().splitlines()]
    assert [e["type"] for e in echoed] == [e.type for e in events] and end == echoed[-1]
    assert [typed(e) for e in echoed] == [typed(e) for e in read_events(tmp_path / "events.jsonl")]


def test_follow_returns_none_when_the_process_dies_without_end(tmp_path, demo_run):
    start = of(recorded(demo_run), Start)[0]
    (tmp_path / "events.jsonl").write_text(json.dumps(start.to_dict()) + "\n")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    out = io.StringIO()
    assert follow(tmp_path, console=Console(file=out), proc=proc, interval=0.01) is None
    assert out.getvalue() == plain_line(start) + "\n"


def test_follow_returns_end_written_just_before_exit(tmp_path, demo_run):
    (tmp_path / "events.jsonl").write_text((demo_run / "events.jsonl").read_text())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert follow(tmp_path, console=Console(file=io.StringIO()), proc=proc)["status"] == "finished"


def test_follow_without_proc_stops_when_the_start_pid_is_gone(tmp_path, demo_run):
    """attach on a run whose worker was killed: no end event will ever come."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    events = [e for e in replayed(demo_run, dead.pid) if not isinstance(e, End)]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))
    assert follow(tmp_path, console=Console(file=io.StringIO()), interval=0.01) is None


def test_follow_from_an_offset_shows_only_the_resumed_part(tmp_path, demo_run, worker_pid):
    """A resumed run: the old end is history; the panel follows what the new process appends."""
    old = (demo_run / "events.jsonl").read_bytes()
    (tmp_path / "events.jsonl").write_bytes(old)
    writer = _writer(tmp_path / "events.jsonl", replayed(demo_run, worker_pid))
    out = io.StringIO()
    end = follow(tmp_path, console=Console(file=out), interval=0.01, offset=len(old))
    writer.join()
    assert end["status"] == "finished"
    assert out.getvalue().count("end finished") == 1 and out.getvalue().count("start ") == 1


def test_follow_in_a_terminal_draws_the_live_panel(tmp_path, demo_run, worker_pid):
    writer = _writer(tmp_path / "events.jsonl", replayed(demo_run, worker_pid))
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, color_system=None)
    end = follow(tmp_path, console=console, interval=0.01)
    writer.join()
    assert end["status"] == "finished"
    text = out.getvalue()
    assert demo_run.name in text and "finished" in text and f"final loss {end['final_loss']:.4f}" in text
    assert "╭" in text  # the panel, not plain lines
    assert "end finished" not in text


def _attach_in_pty(rankwise_cmd, runs, rid, keys: bytes):
    """Run `rankwise attach` with a pseudo-terminal as stdin/stdout; press `keys` once the panel shows."""
    import os
    import pty
    import select
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # child: the CLI as a user runs it in a terminal
        os.environ["COLUMNS"], os.environ["LINES"] = "80", "30"
        os.execv(rankwise_cmd[0], [*rankwise_cmd, "attach", rid, "--runs-dir", str(runs)])
    out = b""
    deadline = time.monotonic() + 60
    sent = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        if not sent and b"train loss" in out:
            os.write(fd, keys)
            sent = True
    attrs = termios.tcgetattr(fd) if sent else None
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode("utf-8", "replace"))
    return os.waitstatus_to_exitcode(status), text, attrs


@pytest.mark.parametrize("keys", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_attach_detaches_on_q_and_ctrl_c_and_leaves_the_run_running(tmp_path, demo_run, worker_pid, rankwise_cmd,
                                                                    keys):
    import termios

    run = tmp_path / "runs" / "live-1"
    run.mkdir(parents=True)
    events = [e for e in replayed(demo_run, worker_pid) if not isinstance(e, End)]
    (run / "events.jsonl").write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))
    rc, out, attrs = _attach_in_pty(rankwise_cmd, tmp_path / "runs", "live", keys)
    assert rc == 0, out
    assert "detached from live-1" in out and "keeps running" in out
    assert attrs is not None and attrs[3] & termios.ICANON and attrs[3] & termios.ECHO  # terminal restored
    os_kill_ok = subprocess.run(["kill", "-0", str(worker_pid)]).returncode == 0
    assert os_kill_ok  # detaching never stops the run


def test_eta_from_the_step_rate_when_the_worker_gives_none():
    view = folded([Start(time=T0, max_steps=200, resumed_from_step=40),
                   Step(time=T0 + 100, step=90, max_steps=200, loss=1.0)])
    assert view.eta() == pytest.approx(100 / 50 * 110)  # 50 steps since the (resumed) start took 100 s
    assert "ETA 3m40s" in text_at(view, 80)


def test_train_log_tail_keeps_the_last_clean_lines(tmp_path):
    from rankwise.tui.runview import read_log_tail

    log = tmp_path / "train.log"
    log.write_text("a\nb\n\nloading 10%\rloading 50%\rloading 100%\n\x1b[31mred\x1b[0m\nlast\n")
    assert read_log_tail(log, n=3) == ["loading 100%", "red", "last"]
    assert read_log_tail(tmp_path / "missing.log") == []


def test_paths_inside_the_run_dir_are_shown_relative(demo_run):
    events = recorded(demo_run)
    text = text_at(folded(events, demo_run), 80)
    step = of(events, Checkpoint)[-1].step
    assert f"step {step}: checkpoints/checkpoint-{step}" in text and "adapter: adapter" in text
    assert "tiny-llama · lora" in text and str(demo_run) not in text
    assert Path(of(events, Start)[0].model).is_absolute() and "/presets/" not in text


def test_a_rising_eval_loss_is_called_out():
    view = folded([Step(step=1, loss=1.0), Eval(time=T0, step=2, eval_loss=1.2)])
    assert not view.eval_rising and "rising" not in text_at(view, 80)
    view.update(Eval(time=T0, step=4, eval_loss=1.5))
    assert view.eval_rising and "rising (best 1.2000)" in text_at(view, 80)
    view.update(Eval(time=T0, step=6, eval_loss=1.1))
    assert not view.eval_rising and view.best_eval_loss == 1.1


def test_wrong_typed_numbers_in_a_hand_edited_log_do_not_crash_the_viewers(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_text('{"type": "start", "time": "noon", "pid": "x", "max_steps": [3]}\n'
                   '{"type": "step", "time": 1.0, "step": "two", "loss": "x", "lr": null, "eta_s": NaN}\n'
                   '{"type": "eval", "time": 2.0, "step": 2, "eval_loss": {"a": 1}}\n'
                   '{"type": 7}\n{"type": "end", "time": 3.0, "status": "finished", "final_loss": true}\n')
    events = read_events(log)
    assert [e["type"] for e in events] == ["start", "step", "eval", "end"]
    assert "loss" not in events[1] and "step" not in events[1] and "eta_s" not in events[1]
    view = RunView()
    for e in map(typed, events):
        view.update(e)
        plain_line(e)
    Console(width=80, record=True, file=open(tmp_path / "out.txt", "w")).print(render(view))
