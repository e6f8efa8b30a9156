"""The worker's process plumbing (trainer/process.py) on its own: a full disk recognised through
torch's wrapping, the half-written checkpoints it leaves dropped, a torn event line ended, the process group
destroyed before exit, one rank's exit past the C++ teardown, a crash's stacks kept in train.log.
The whole worker under these faults is tests/faults/test_process_faults.py."""
import errno
import json

from rankwise.trainer import rundir
from rankwise.trainer.events import read_events
from rankwise.trainer.process import (disk_full, disk_full_message, drop_kernels_line, end_torn_line,
                                      leave_process_group)


def _wrapped(inner: BaseException) -> RuntimeError:
    try:
        try:
            raise inner
        except OSError as e:
            raise RuntimeError("[enforce fail at inline_container.cc] . unexpected pos 128") from e
    except RuntimeError as e:
        return e


def test_disk_full_is_found_anywhere_in_the_chain():
    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_full(_wrapped(OSError(errno.EDQUOT, "Disk quota exceeded")))
    assert disk_full(RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"))
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))
    looped = ValueError("a")
    looped.__context__ = ValueError("b")
    looped.__context__.__context__ = looped  # a cycle in the chain ends the walk
    assert not disk_full(looped)


def test_disk_full_drops_unmarked_checkpoints_and_says_where_resume_starts(tmp_path):
    run = tmp_path / "demo-20260101-000000"
    done, torn = run / rundir.CHECKPOINTS / "checkpoint-4", run / rundir.CHECKPOINTS / "checkpoint-8"
    done.mkdir(parents=True)
    torn.mkdir()
    rundir.mark_complete(done)
    message, hint = disk_full_message(run, OSError(errno.ENOSPC, "No space left on device"))
    assert done.is_dir() and not torn.exists()
    assert message.startswith("disk full") and f"--resume {run.name}` continues from checkpoint 4" in hint


def test_a_torn_last_line_is_ended_so_the_next_event_parses(tmp_path):
    log = tmp_path / "events.jsonl"
    end_torn_line(log)  # no log yet: nothing to do
    assert not log.exists()
    log.write_text(json.dumps({"type": "step", "step": 1}) + '\n{"type": "st')
    end_torn_line(log)
    end_torn_line(log)  # ended once, not twice
    with open(log, "a") as fh:
        fh.write(json.dumps({"type": "end", "status": "finished"}) + "\n")
    assert [e["type"] for e in read_events(log)] == ["step", "end"]
    assert log.read_text().count("\n") == 3


def test_the_kernels_notice_is_dropped_from_train_log():
    import logging

    record = lambda msg: logging.LogRecord("bitsandbytes", logging.WARNING, __file__, 1, msg, None, None)
    assert not drop_kernels_line(record("kernels package not found: falling back"))
    assert drop_kernels_line(record("loading the model"))


def test_the_process_group_is_destroyed_before_exit_and_leaving_twice_is_harmless(tmp_path):
    """A real gloo group (one rank, a file store): left to interpreter finalisation, gloo's threads can abort a process
    whose run had finished (a CI run of the two-rank test died so)."""
    import torch.distributed as dist

    leave_process_group()  # no group yet: nothing to do
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    leave_process_group()
    assert not dist.is_initialized()
    leave_process_group()


def _python(code: str, tmp_path, **env) -> "subprocess.CompletedProcess":
    import os
    import subprocess
    import sys

    e = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**e, **env},
                          cwd=tmp_path, timeout=120)


EXIT = """
import atexit, sys
from pathlib import Path
from rankwise.trainer.process import exit_process
atexit.register(lambda: Path('atexit-ran').write_text('yes'))
class Teardown:  # what the interpreter's teardown of __main__ runs, and os._exit does not
    def __del__(self, write=Path.write_text, path=Path('teardown-ran')):
        write(path, 'yes')
kept = Teardown()
sys.stdout.write('buffered, no newline')
exit_process(3)
print('not reached')
"""


def test_one_rank_of_several_exits_with_its_code_after_the_atexit_handlers_and_a_flush(tmp_path):
    """A rank skips the C++ teardown where gloo aborted finished runs, not what Python's shutdown does first."""
    p = _python(EXIT, tmp_path, WORLD_SIZE="2", RANK="1")
    assert p.returncode == 3, p.stderr
    assert p.stdout == "buffered, no newline"
    assert (tmp_path / "atexit-ran").read_text() == "yes"
    assert not (tmp_path / "teardown-ran").exists()


def test_a_single_process_skips_the_teardown_after_the_atexit_handlers_and_a_flush(tmp_path):
    """The ~2 s teardown of torch's, transformers' and peft's modules after a run's end event is skipped, and nothing
    Python's shutdown does first is: the atexit handlers run, the output is flushed, the exit code is kept."""
    p = _python(EXIT, tmp_path, WORLD_SIZE="1")
    assert p.returncode == 3, p.stderr
    assert p.stdout == "buffered, no newline" and (tmp_path / "atexit-ran").exists()
    assert not (tmp_path / "teardown-ran").exists()
    # the same script with the last line run as usual: the teardown does run there (the check above can fail)
    (tmp_path / "usual").mkdir()
    usual = _python(EXIT.replace("exit_process(3)", "sys.exit(3)"), tmp_path / "usual")
    assert usual.returncode == 3 and (tmp_path / "usual" / "teardown-ran").read_text() == "yes"


def test_a_single_process_with_a_thread_still_running_waits_for_it(tmp_path):
    """sys.exit waits for a thread that is not a daemon; skipping the teardown must not cut it short."""
    import subprocess
    import sys

    code = ("import sys, threading\nfrom pathlib import Path\nfrom rankwise.trainer.process import exit_process\n"
            "def finish():\n    sys.stdin.read()\n    Path('thread-done').write_text('yes')\n"
            "threading.Thread(target=finish).start()\nprint('exiting', flush=True)\nexit_process(4)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    assert proc.stdout.readline() == "exiting\n"  # the main thread is at its exit; the thread waits for its input
    proc.stdin.close()
    assert proc.wait(timeout=120) == 4
    assert (tmp_path / "thread-done").read_text() == "yes"


def test_a_crash_in_c_code_leaves_every_threads_stack_in_train_log(tmp_path):
    """train.log is where a user looks when a worker dies: a SIGABRT or SIGSEGV there names the Python frames."""
    code = ("from pathlib import Path\nfrom rankwise.trainer.process import output_to_log\n"
            "output_to_log(Path('train.log'))\n"
            "def deep_in_training():\n    import os; os.abort()\n"
            "deep_in_training()\n")
    p = _python(code, tmp_path)
    assert p.returncode < 0  # killed by the signal
    log = (tmp_path / "train.log").read_text()
    assert "Fatal Python error: Aborted" in log and "deep_in_training" in log


def test_the_cli_skips_the_teardown_once_a_command_loaded_torch(tmp_path):
    """`rankwise merge`, `export` and a chat load the model in the CLI's own process; the CLI exits after its output
    as a worker does. A command that did not load torch exits as usual."""
    script = EXIT.replace("exit_process(3)\n", "from rankwise.tui import cli\nsys.argv = ['rankwise', 'presets']\n"
                          "cli.entry()\n")
    loaded = _python("import torch\n" + script, tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert "demo-cpu" in loaded.stdout and (tmp_path / "atexit-ran").exists()
    assert not (tmp_path / "teardown-ran").exists()
    (tmp_path / "light").mkdir()
    light = _python(script, tmp_path / "light")
    assert light.returncode == 0 and "demo-cpu" in light.stdout
    assert (tmp_path / "light" / "teardown-ran").exists()
