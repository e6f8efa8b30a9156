"""The worker process's plumbing, apart from the training recipe in worker.py.

Where its output goes (train.log, never a download), how a signal stops it (a checkpoint
when training, at once before), which rank writes the event log and how the ranks of an
`accelerate launch` run agree (one all-reduce a step, a barrier per save), and how a write
that failed for want of space is recognised and cleaned up after. No torch at import: the
worker redirects its output before it loads anything heavy.
"""
from __future__ import annotations

import atexit
import errno
import faulthandler
import logging
import os
import shutil
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from . import rundir
from .events import EventSink
from .launch import is_main_process, launched_with, world_size

log = logging.getLogger("rankwise.worker")  # the worker's name in train.log, as before the split

# ------------------------------------------------------------------------- output


def output_to_log(path: Path) -> None:
    """Everything this process prints (Python, C libraries, warnings) goes to train.log."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)
    faulthandler.enable(all_threads=True)  # a crash in C code (SIGSEGV, SIGABRT) leaves every thread's stack here
    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing is ever downloaded
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rank = f"rank {os.environ.get('RANK', '0')} " if world_size() > 1 else ""  # ranks share train.log
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {rank}%(name)s: %(message)s"))
    handler.addFilter(drop_kernels_line)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)


def drop_kernels_line(record: logging.LogRecord) -> bool:
    """bitsandbytes on CPU logs that its Hub kernel could not be loaded (the optional `kernels` package
    missing, or offline), and that package logs a skipped trust check: harmless noise."""
    return "kernels" not in str(record.msg)


def end_torn_line(path: Path) -> None:
    """A worker killed mid-write may leave half a line: end it, so our first event parses."""
    try:
        with open(path, "rb+") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() and (fh.seek(-1, os.SEEK_END), fh.read(1))[1] != b"\n":
                fh.write(b"\n")
    except FileNotFoundError:
        pass


# ------------------------------------------------------------------------- signals


class Stop:
    armed = False  # the Trainer is running: a signal asks for a checkpoint and a stop
    requested = False
    signal = None
    # importing the libraries: a KeyboardInterrupt raised there can land in a C++ module initialiser, which
    # cannot pass it on (torch's pybind11 code calls std::terminate: the process aborts, and the run ends with
    # no end event), so a signal is only noted and acted on when the imports are done
    deferred = False
    # a signal was raised as KeyboardInterrupt. Where it lands is chance, and two landings lose it: library
    # code that re-raises it as its own exception (transformers' lazy imports turn a failed import into
    # ModuleNotFoundError; CI saw exit 1 and a traceback for a Ctrl-C in data preparation), and a finaliser
    # or weakref callback, where Python reports it and goes on (a run so interrupted trained to its end and
    # exited 0). So the worker reads this flag: an exception after it is the interrupt, and training never
    # starts after it (arm)
    raised = False

    @contextmanager
    def deferring(self):
        """A section a signal must not cut: a stop asked for in it interrupts as the section ends."""
        self.deferred = True
        try:
            yield
        finally:
            self.deferred = False
        if self.requested and not self.armed:
            self.interrupt()

    def interrupt(self):
        self.raised = True
        raise KeyboardInterrupt

    def check(self):
        """Between phases: a KeyboardInterrupt that was raised and lost (see `raised`) stops the run here."""
        if self.raised and not self.armed:
            raise KeyboardInterrupt

    def arm(self):
        """The Trainer is about to run: from now on a signal asks for a checkpoint and a stop."""
        self.check()
        self.armed = True


def install_signal_handlers() -> Stop:
    """SIGINT/SIGTERM: while training, set the stop flag (the step finishes, a checkpoint is
    saved); while the libraries load, note it and interrupt once they are loaded; otherwise
    interrupt at once."""
    stop = Stop()

    def handler(signum, frame):
        if stop.armed:
            if not stop.requested:
                log.warning("%s: finishing this step, saving a checkpoint, then stopping",
                            signal.Signals(signum).name)
            stop.requested, stop.signal = True, signum
        elif stop.deferred:
            if not stop.requested:
                log.warning("%s: stopping once the libraries are loaded", signal.Signals(signum).name)
            stop.requested, stop.signal = True, signum
        else:
            stop.interrupt()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    default = sys.unraisablehook

    def unraisable(u):  # a KeyboardInterrupt Python cannot raise (it landed in a finaliser): one line, no traceback
        if u.exc_type is not None and issubclass(u.exc_type, KeyboardInterrupt):
            log.warning("the signal landed where it cannot stop the run (%s): stopping before the next phase",
                        getattr(u.object, "__qualname__", None) or type(u.object).__name__)
            return
        default(u)

    sys.unraisablehook = unraisable
    return stop


# ------------------------------------------------------------------------- ranks


class RankSink:
    """The event log, written by rank 0 only: the other ranks of an `accelerate launch` run
    emit into nothing, so the log has one `start`, rank 0's steps and one `end`. On several
    GPUs, rank 0's step events also carry `gpu_mem_bytes`: memory in use on each local GPU."""

    def __init__(self, path: Path):
        self.sink = EventSink(path) if is_main_process() else None
        self.per_gpu = world_size() > 1

    def emit(self, type_: str, **fields) -> dict:
        if self.sink is None:
            return {"type": type_, **fields}
        if type_ == "step" and self.per_gpu and "gpu_mem_bytes" not in fields:
            used = _gpu_mem_bytes()
            if used:
                fields["gpu_mem_bytes"] = used
        return self.sink.emit(type_, **fields)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()


def _gpu_mem_bytes() -> list[int] | None:
    """Memory in use on each GPU this run sees (NVML: every process's share, not just rank 0's)."""
    from rankwise.advisor.hardware import probe_gpus

    gpus = probe_gpus()[0]
    if not gpus:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        try:
            wanted = [int(i) for i in visible.split(",")]
            gpus = tuple(g for g in gpus if g.index in wanted)
        except ValueError:
            pass  # UUIDs: report every GPU
    return [g.used_bytes for g in gpus]


def synced(flag: bool) -> bool:
    """True on every rank when it is True on any (one all-reduce per step; only with several processes)."""
    if world_size() == 1:
        return flag
    import torch  # deferred: only a multi-process run gets here, after the worker loaded it
    import torch.distributed as dist

    if not dist.is_initialized():
        return flag
    dev = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([1.0 if flag else 0.0], device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    if world_size() > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()


def leave_process_group() -> None:
    """Destroy the process group before the interpreter exits. Left to finalisation, gloo's worker threads can still
    hold tensors when Python is torn down, and the process dies with SIGABRT ("terminate called without an active
    exception") after a run that finished: pytorch/pytorch#190489, and #179291 on why torch does not do it itself."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    try:
        dist.destroy_process_group()
    except Exception as e:  # noqa: BLE001 - the run's outcome is already recorded; a failed teardown must not change it
        log.warning("could not destroy the process group at exit: %s", e)


def gloo_for_deepspeed_on_cpu(device: str) -> None:
    """DeepSpeed on the CPU compiles its shared-memory all-reduce (deepspeed_shm_comm: C++ built with ninja, about a
    minute of two cores on a fresh machine, and a compiler needed) when it first starts its process group. gloo does
    the same all-reduce: mark the op not compatible, and DeepSpeed's TorchBackend leaves collectives to
    torch.distributed (deepspeed/comm/torch.py build_shm_op returns None for an op not compatible; deepspeed.ops keeps
    one __compatible_ops__ dict, "so edits to it persist"). A GPU run never builds it: nothing to do there."""
    if device != "cpu" or not launched_with("DEEPSPEED"):
        return
    import deepspeed.ops  # deferred: only a DeepSpeed run has it

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def exit_process(code: int) -> NoReturn:
    """End the worker with `code`, without Python's interpreter teardown (end_without_teardown). One rank of several
    always skips it: there, at exit(), a thread of torch's distributed stack (gloo) can still be joinable, and the
    process dies with SIGABRT ("terminate called without an active exception", no Python frame left) after a run that
    finished and recorded its end, so the launcher reports a failure. Destroying the process group first does not
    prevent it (a two-rank gloo script that does it aborted in 3 of 20 runs; with this exit, in none of 40). A process
    of its own skips it too unless a Python thread other than the main one is still running, which sys.exit waits for."""
    if world_size() > 1:
        _exit_now(code)
    end_without_teardown(code)


def end_without_teardown(code: int) -> NoReturn:
    """Exit with `code` once the atexit handlers (logging's flush among them) have run and stdout/stderr are flushed,
    skipping the teardown of the interpreter's modules: with torch, transformers and peft loaded it takes ~1.9 s
    (measured here: a process that imports them exits 0.07 s after its last line with os._exit, 1.9 s after it
    without), and the terminal that started a run, or a test, waits for that exit after the run's `end` event. Where a
    thread other than the main one is still running and not a daemon, exits as usual (sys.exit waits for it)."""
    import threading

    if any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    atexit._run_exitfuncs()  # noqa: SLF001 - what interpreter shutdown would run first, run here
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def rank_callbacks():
    """The stop flag and checkpoint marker, made safe for several ranks. Built on call:
    trainer/callbacks.py imports transformers, which the worker loads only once its output
    goes to train.log."""
    from .callbacks import Checkpoints, StopFlag

    class SyncedStop(StopFlag):
        """A stop asked of any rank (`rankwise stop` signals rank 0) stops every rank at the same step."""

        def on_step_end(self, args, state, control, **kw):
            if synced(bool(self.stop.requested)):
                self.stop.requested = True
                super().on_step_end(args, state, control, **kw)

    class RankZeroCheckpoints(Checkpoints):
        """Marks a checkpoint complete once every rank has written its part; rank 0 marks it."""

        def on_save(self, args, state, control, **kw):
            barrier()
            if is_main_process():
                super().on_save(args, state, control, **kw)

    return SyncedStop, RankZeroCheckpoints


# ------------------------------------------------------------------------- a full disk

_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def disk_full(e: BaseException) -> bool:
    """A write that failed for want of space, wherever it sits in the chain: torch's serializer
    wraps the OSError in a RuntimeError ("unexpected pos ...", "file write failed")."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _DISK_ERRNOS:
            return True
        if isinstance(e, RuntimeError) and any(m in str(e) for m in ("unexpected pos", "file write failed")):
            return True
        e = e.__cause__ or e.__context__
    return False


def disk_full_message(run_dir: Path, e: BaseException) -> tuple[str, str]:
    """Drop the half-written checkpoints (no completion marker) so the last good one is what
    --resume finds, and say what happened and what to do."""
    latest = rundir.latest_checkpoint(run_dir)
    for folder in (run_dir / rundir.CHECKPOINTS).glob("checkpoint-*"):
        if not (folder / rundir.MARKER).exists():
            shutil.rmtree(folder, ignore_errors=True)
    where = f"continues from checkpoint {latest[0]}" if latest else "starts over (no complete checkpoint yet)"
    return (f"disk full while writing in {run_dir} ({type(e).__name__}: {e})",
            f"free space, then `rankwise train --resume {run_dir.name}` {where}")
