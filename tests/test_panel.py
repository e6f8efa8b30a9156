"""The progress panel: folding events, rendering at 80/120 columns, plain lines, following a log."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time

import pytest
from rich.console import Console

from rankwise.trainer.events import EventSink
from rankwise.tui.panel import RunView, follow, plain_line, render, sparkline

GIB = 1024 ** 3
T0 = 1_800_000_000.0


def recorded_events() -> list[dict]:
    """A run as a worker writes it: start, steps with a falling loss, eval, checkpoint, retry, log, end."""
    ev = [{"type": "start", "time": T0, "run_id": "chat-qlora-20261129-0200", "pid": 4242, "model": "llama-3.1-8b",
           "method": "qlora", "device": "cuda:0 NVIDIA L4", "device_total_bytes": 24 * GIB, "max_steps": 200,
           "epochs": 1, "micro_batch": 2, "grad_accum": 8, "estimate_peak_gib": 11.5, "resumed_from_step": 0}]
    for i in range(1, 51):
        ev.append({"type": "step", "time": T0 + 2 * i, "step": i, "max_steps": 200, "epoch": i / 100,
                   "loss": 2.0 - i * 0.02, "lr": 1.5e-4, "grad_norm": 0.731, "tokens_per_s": 2345.6,
                   "mem_bytes": 10 * GIB, "peak_mem_bytes": 12 * GIB, "eta_s": 300.0})
    ev += [
        {"type": "eval", "time": T0 + 101, "step": 50, "eval_loss": 1.3125},
        {"type": "checkpoint", "time": T0 + 102, "step": 50, "path": "runs/chat/checkpoints/checkpoint-50"},
        {"type": "retry", "time": T0 + 103, "attempt": 1, "reason": "CUDA out of memory", "micro_batch": 1,
         "grad_accum": 16, "from_step": 50},
        {"type": "log", "time": T0 + 104, "level": "warning", "message": "12 rows truncated to max_seq_len"},
    ]
    return ev


END = {"type": "end", "time": T0 + 500, "status": "finished", "step": 200, "final_loss": 0.8123,
       "best_eval_loss": 1.1, "peak_mem_bytes": 13 * GIB, "adapter_path": "runs/chat/adapter", "exit_code": 0}


def folded(events) -> RunView:
    view = RunView()
    for e in events:
        view.update(e)
    return view


def test_runview_folds_a_recorded_run():
    view = folded(recorded_events())
    assert (view.run_id, view.status, view.step, view.max_steps) == ("chat-qlora-20261129-0200", "running", 50, 200)
    assert view.loss == pytest.approx(1.0)
    assert len(view.losses) == 50 and view.losses[0] == pytest.approx(1.98)
    assert view.eval_loss == 1.3125 and view.gap == pytest.approx(0.3125)
    assert view.last_checkpoint.endswith("checkpoint-50") and len(view.retries) == 1
    assert view.logs[-1] == ("warning", "12 rows truncated to max_seq_len")
    assert view.peak_mem_bytes == 12 * GIB and view.pid == 4242
    view.update(END)
    assert view.status == "finished" and view.step == 200 and view.peak_mem_bytes == 13 * GIB


def test_resumed_run_clears_the_old_end():
    view = folded([*recorded_events(), {**END, "status": "interrupted", "step": 50}])
    assert view.status == "interrupted"
    view.update({**recorded_events()[0], "pid": 5555, "resumed_from_step": 50})
    assert view.status == "running" and view.end is None and view.pid == 5555


def text_at(view: RunView, width: int) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(render(view))
    return console.export_text()


@pytest.mark.parametrize("width", [80, 120])
def test_render_shows_key_fields_within_the_width(width):
    view = folded(recorded_events())
    text = text_at(view, width)
    for needle in ("chat-qlora-20261129-0200", "running", "50/200", "25%", "ETA 5m00s", "epoch 0.50",
                   "1.0000", "1.3125", "gap +0.3125", "1.50e-04", "0.731", "2,346 tokens/s",
                   "10.0 GiB", "peak 12.0 GiB", "of 24.0 GiB", "est. 11.5 GiB", "checkpoint-50",
                   "CUDA out of memory", "12 rows truncated"):
        assert needle in text, f"{needle!r} missing at width {width}:\n{text}"
    assert any(ch in text for ch in "▁▂▃▄▅▆▇█")
    assert max(len(line) for line in text.splitlines()) <= width


def test_render_finished_and_failed():
    view = folded([*recorded_events(), END])
    text = text_at(view, 80)
    assert "finished" in text and "final loss 0.8123" in text and "runs/chat/adapter" in text
    assert "ETA" not in text  # a finished run has no ETA
    failed = folded([recorded_events()[0], {"type": "error", "time": T0 + 5, "message": "data.jsonl row 7: no text",
                                            "hint": "fix the row"}, {**END, "status": "failed", "step": 0}])
    text = text_at(failed, 80)
    assert "failed" in text and "data.jsonl row 7: no text" in text and "hint: fix the row" in text


def test_log_content_cannot_inject_markup_or_escapes():
    view = folded([{"type": "log", "time": T0, "level": "info", "message": "[bold red]boom[/] \x1b[2J\rx"}])
    text = text_at(view, 80)
    assert "[bold red]boom[/]" in text and "\x1b" not in text and "\r" not in text


def test_sparkline_scales_to_blocks():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([2.0, 2.0]) == "▁▁" and sparkline([]) == ""
    assert len(sparkline(range(100), width=30)) == 30


def test_plain_lines_have_no_control_characters():
    events = [*recorded_events(), {"type": "log", "time": T0, "level": "warning", "message": "bad\x1b[31m\rrow"}, END]
    lines = [plain_line(e) for e in events]
    shown = [l for l in lines if l is not None]
    assert all("\x1b" not in l and "\r" not in l and "\n" not in l for l in shown)
    by_type = {e["type"]: l for e, l in zip(events, lines)}
    assert by_type["step"].startswith("step 50/200") and "loss 1.0000" in by_type["step"]
    assert by_type["eval"] == "eval step 50 eval_loss 1.3125"
    assert by_type["checkpoint"] == "checkpoint step 50 runs/chat/checkpoints/checkpoint-50"
    assert "CUDA out of memory" in by_type["retry"] and "micro_batch 1" in by_type["retry"]
    assert by_type["end"].startswith("end finished step 200 final_loss 0.8123")
    assert plain_line({"type": "log", "time": T0, "level": "info", "message": "x"}) is None


@pytest.fixture
def worker_pid():
    """A live process that counts as a rankwise worker (its command line says so)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "rankwise-test-worker"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _writer(path, events, delay=0.02):
    def run():
        sink = EventSink(path)
        for e in events:
            fields = {k: v for k, v in e.items() if k not in ("type", "time")}
            sink.emit(e["type"], **fields)
            time.sleep(delay)
        sink.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_follow_non_tty_prints_plain_lines_until_end(tmp_path, worker_pid):
    events = [{**recorded_events()[0], "pid": worker_pid}, *recorded_events()[1:6], END]
    writer = _writer(tmp_path / "events.jsonl", events)
    out = io.StringIO()
    end = follow(tmp_path, console=Console(file=out), interval=0.01)
    writer.join()
    assert end is not None and end["status"] == "finished" and end["final_loss"] == 0.8123
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("start chat-qlora") and lines[-1].startswith("end finished")
    assert sum(l.startswith("step ") for l in lines) == 5
    assert "\x1b" not in out.getvalue()


def test_follow_json_events_echoes_each_event(tmp_path, worker_pid):
    events = [{**recorded_events()[0], "pid": worker_pid}, *recorded_events()[1:3], END]
    writer = _writer(tmp_path / "events.jsonl", events)
    out = io.StringIO()
    end = follow(tmp_path, console=Console(file=out), json_events=True, interval=0.01)
    writer.join()
    echoed = [json.loads(l) for l in out.getvalue().splitlines()]
    assert [e["type"] for e in echoed] == ["start", "step", "step", "end"] and end == echoed[-1]


def test_follow_returns_none_when_the_process_dies_without_end(tmp_path):
    (tmp_path / "events.jsonl").write_text(json.dumps(recorded_events()[0]) + "\n")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    out = io.StringIO()
    assert follow(tmp_path, console=Console(file=out), proc=proc, interval=0.01) is None
    assert out.getvalue().startswith("start ")


def test_follow_returns_end_written_just_before_exit(tmp_path):
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(e) for e in [recorded_events()[0], END]) + "\n")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert follow(tmp_path, console=Console(file=io.StringIO()), proc=proc)["status"] == "finished"


def test_follow_without_proc_stops_when_the_start_pid_is_gone(tmp_path):
    """attach on a run whose worker was killed: no end event will ever come."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "events.jsonl").write_text(json.dumps({**recorded_events()[0], "pid": dead.pid}) + "\n")
    assert follow(tmp_path, console=Console(file=io.StringIO()), interval=0.01) is None


def test_follow_in_a_terminal_draws_the_live_panel(tmp_path, worker_pid):
    events = [{**recorded_events()[0], "pid": worker_pid}, *recorded_events()[1:8], END]
    writer = _writer(tmp_path / "events.jsonl", events)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, color_system=None)
    end = follow(tmp_path, console=console, interval=0.01)
    writer.join()
    assert end["status"] == "finished"
    text = out.getvalue()
    assert "chat-qlora-20261129-0200" in text and "finished" in text and "final loss 0.8123" in text
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
def test_attach_detaches_on_q_and_ctrl_c_and_leaves_the_run_running(tmp_path, worker_pid, rankwise_cmd, keys):
    import termios

    run = tmp_path / "runs" / "live-1"
    run.mkdir(parents=True)
    (run / "events.jsonl").write_text(
        "\n".join(json.dumps(e) for e in [{**recorded_events()[0], "pid": worker_pid}, *recorded_events()[1:5]])
        + "\n")
    rc, out, attrs = _attach_in_pty(rankwise_cmd, tmp_path / "runs", "live", keys)
    assert rc == 0, out
    assert "detached from live-1" in out and "keeps running" in out
    assert attrs is not None and attrs[3] & termios.ICANON and attrs[3] & termios.ECHO  # terminal restored
    os_kill_ok = subprocess.run(["kill", "-0", str(worker_pid)]).returncode == 0
    assert os_kill_ok  # detaching never stops the run


def test_eta_from_the_step_rate_when_the_worker_gives_none():
    view = folded([{"type": "start", "time": T0, "max_steps": 200, "resumed_from_step": 40},
                   {"type": "step", "time": T0 + 100, "step": 90, "max_steps": 200, "loss": 1.0}])
    assert view.eta() == pytest.approx(100 / 50 * 110)  # 50 steps since the (resumed) start took 100 s
    assert "ETA 3m40s" in text_at(view, 80)


def test_train_log_tail_keeps_the_last_clean_lines(tmp_path):
    from rankwise.tui.panel import read_log_tail

    log = tmp_path / "train.log"
    log.write_text("a\nb\n\nloading 10%\rloading 50%\rloading 100%\n\x1b[31mred\x1b[0m\nlast\n")
    assert read_log_tail(log, n=3) == ["loading 100%", "red", "last"]
    assert read_log_tail(tmp_path / "missing.log") == []


def test_paths_inside_the_run_dir_are_shown_relative(tmp_path):
    view = RunView(run_dir=tmp_path / "r-1")
    for e in [{**recorded_events()[0], "model": "/abs/presets/assets/tiny-llama"},
              {"type": "checkpoint", "time": T0, "step": 20, "path": str(tmp_path / "r-1/checkpoints/checkpoint-20")},
              {**END, "adapter_path": str(tmp_path / "r-1/adapter")}]:
        view.update(e)
    text = text_at(view, 80)
    assert "step 20: checkpoints/checkpoint-20" in text and "adapter: adapter" in text
    assert "tiny-llama · qlora" in text and "/abs/" not in text and str(tmp_path) not in text


def test_a_rising_eval_loss_is_called_out():
    base = recorded_events()[:3]
    view = folded([*base, {"type": "eval", "time": T0, "step": 2, "eval_loss": 1.2}])
    assert not view.eval_rising and "rising" not in text_at(view, 80)
    view.update({"type": "eval", "time": T0, "step": 4, "eval_loss": 1.5})
    assert view.eval_rising and "rising (best 1.2000)" in text_at(view, 80)
    view.update({"type": "eval", "time": T0, "step": 6, "eval_loss": 1.1})
    assert not view.eval_rising and view.best_eval_loss == 1.1


def test_wrong_typed_numbers_in_a_hand_edited_log_do_not_crash_the_viewers(tmp_path):
    from rich.console import Console

    from rankwise.trainer.events import read_events
    from rankwise.tui.panel import RunView, plain_line, render

    log = tmp_path / "events.jsonl"
    log.write_text('{"type": "start", "time": "noon", "pid": "x", "max_steps": [3]}\n'
                   '{"type": "step", "time": 1.0, "step": "two", "loss": "x", "lr": null, "eta_s": NaN}\n'
                   '{"type": "eval", "time": 2.0, "step": 2, "eval_loss": {"a": 1}}\n'
                   '{"type": 7}\n{"type": "end", "time": 3.0, "status": "finished", "final_loss": true}\n')
    events = read_events(log)
    assert [e["type"] for e in events] == ["start", "step", "eval", "end"]
    assert "loss" not in events[1] and "step" not in events[1] and "eta_s" not in events[1]
    view = RunView()
    for e in events:
        view.update(e)
        plain_line(e)
    Console(width=80, record=True, file=open(tmp_path / "out.txt", "w")).print(render(view))
