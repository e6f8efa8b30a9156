import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A background job of a non-interactive shell (`pytest &`, a CI step put in the background) starts
# with SIGINT ignored, and every process a test starts would inherit that: the Ctrl-C tests (attach,
# train, sweep) then saw their signal ignored. Tests run with Ctrl-C handled, as in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# One intra-op thread for torch here and in every process a test starts: the tests train models of a
# few hundred thousand parameters, where a second OpenMP thread only spins, and on a busy 2-core
# machine a spinning thread waits for a core (tests/test_resume.py's SIGKILL test: 37 s at 1 thread,
# 64 s at 2, on this machine under load). Both cores are used by running two test processes instead.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# tokenized datasets of the test runs go to a folder of this session, not the user's cache; the process that made
# the folder removes it when it exits (each xdist worker makes its own: ~5 MB a session was left in /tmp before)
if "RANKWISE_DATA_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["RANKWISE_DATA_CACHE"] = tempfile.mkdtemp(prefix="rankwise-test-data-cache-")
    atexit.register(shutil.rmtree, os.environ["RANKWISE_DATA_CACHE"], ignore_errors=True)


def pytest_sessionstart(session):
    """The process-fault figures (tests/faults/figures.json) are this session's: the controller (or a
    run without xdist) clears the last session's file; the workers then merge their shares into it.
    The controller also byte-compiles rankwise once for the processes the tests start (compile_rankwise)."""
    if not hasattr(session.config, "workerinput"):
        (Path(__file__).parent / "faults" / "figures.json").unlink(missing_ok=True)
        compile_rankwise()


def compile_rankwise() -> None:
    """Write rankwise's bytecode cache once. With PYTHONDONTWRITEBYTECODE set (this machine and CI
    have it) no process writes it, so each of the suite's many `python -m rankwise...` processes compiled
    the modules it imports from source: ~0.3 s a process, a quarter of test_check_cli.py's time (100 s
    without the cache, 75 s with it). A module edited after this is compiled from source as before
    (Python checks the source's mtime against the cache's), so a stale cache is never used."""
    import compileall

    for folder in ("advisor", "trainer", "tui", "presets"):
        compileall.compile_dir(ROOT / folder, quiet=2, workers=1)


@pytest.fixture
def steady_cursor(monkeypatch):
    """An Input's cursor stays shown instead of blinking on a 0.5 s timer: a snapshot taken on a busy
    machine caught it on or off by chance (CI: test_advice[120x40] differed by the rank field's cursor)."""
    from textual.widgets import Input

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture
def rankwise_cmd():
    """The CLI as a user runs it, in a subprocess."""
    return [sys.executable, "-m", "rankwise.tui.cli"]


@pytest.fixture(scope="session")
def demo_training(tmp_path_factory):
    """One real demo-cpu run (a few seconds on the tiny model), as the worker writes it: log,
    start, steps, evals, checkpoints, an OOM retry (the CPU's stand-in for CUDA OOM) and end.
    (run folder, the finished `rankwise train` process): 12 steps at micro_batch 4, grad_accum 1,
    a checkpoint and an evaluation every 4 steps, an OOM as step 6 begins."""
    from train_helpers import only_run, tail_log, train

    runs = tmp_path_factory.mktemp("demo-run") / "runs"
    out = train(runs, "--set", "train.eval_steps=4", "--set", "train.grad_accum=1",
                extra_env={"RANKWISE_TEST_OOM_AT_STEPS": "6"})
    assert out.returncode == 0, out.stderr[-3000:]
    run = only_run(runs)
    assert (run / "events.jsonl").is_file(), tail_log(run)
    return run, out


@pytest.fixture(scope="session")
def demo_run(demo_training) -> Path:
    """The session's demo run folder (read-only: a test that changes a run copies it first)."""
    return demo_training[0]


@pytest.fixture(scope="session")
def lora_run(tmp_path_factory):
    """One real demo-cpu LoRA run of 16 steps at micro_batch 8 (one evaluation batch holds all 6 held-out
    rows), a checkpoint and an evaluation every 8 steps, a step event every step, with what each adapted
    layer's base really was (RANKWISE_TEST_LAYERS_TO): (run folder, the finished `rankwise train` process,
    {layer: class, weight, quant_type, dtype})."""
    import json

    from train_helpers import only_run, tail_log, train

    runs = tmp_path_factory.mktemp("lora-run") / "runs"
    layers = runs.parent / "layers.json"
    out = train(runs, "--set", "train.max_steps=16", "--set", "train.micro_batch=8", "--set", "train.save_steps=8",
                "--set", "train.eval_steps=8", extra_env={"RANKWISE_TEST_LAYERS_TO": str(layers)})
    run = only_run(runs)
    assert out.returncode == 0, out.stderr[-3000:] + tail_log(run)
    return run, out, json.loads(layers.read_text())


@pytest.fixture(scope="session")
def qlora_run(tmp_path_factory):
    """One real demo-cpu-qlora run at the preset's own settings (40 steps, micro_batch 8, a step event
    every 2 steps), with what each adapted layer's base really was (RANKWISE_TEST_LAYERS_TO):
    (run folder, the finished `rankwise train` process, {layer: class, weight, quant_type, dtype})."""
    import json

    from train_helpers import only_run, tail_log, train

    runs = tmp_path_factory.mktemp("qlora-run") / "runs"
    layers = runs.parent / "layers.json"
    out = train(runs, preset="demo-cpu-qlora", quick=False, extra_env={"RANKWISE_TEST_LAYERS_TO": str(layers)})
    run = only_run(runs)
    assert out.returncode == 0, out.stderr[-3000:] + tail_log(run)
    return run, out, json.loads(layers.read_text())
