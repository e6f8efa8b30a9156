"""A sweep's processes: the one that drives it, recorded in its folder, and stopping them all.

`rankwise sweep` records itself in `<sweep_dir>/driver.json` (pid, host) and turns SIGTERM into
the same stop as Ctrl-C: the trial it follows is stopped (a checkpoint, then `interrupted`),
queued again, and the sweep ends `interrupted`. `stop()` is what the TUI's Sweep screen calls:
it signals the driver and every process on this machine that holds a trial (trials.json names
them), waits until they are gone, then stops any trial run still running (`request_stop`, as
`rankwise stop` does) and waits for it to end. Nothing of the sweep is left running here; a
trial held by a process on another machine is named, not touched.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from rankwise.advisor.errors import RankwiseError

from .events import EVENTS_FILE, read_events
from .sweep_trials import Ledger

DRIVER = "driver.json"


def record(sweep_dir: Path) -> None:
    """This process drives the sweep in `sweep_dir` (written atomically; the last starter wins)."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    tmp = sweep_dir / f".{DRIVER}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
    os.replace(tmp, sweep_dir / DRIVER)


def stop_on_sigterm() -> None:
    """SIGTERM (`kill`, the TUI's stop) stops the sweep the way Ctrl-C does. Main thread only."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _is_sweep_process(pid: int) -> bool:
    """Alive and a `rankwise ... sweep` command line: a recycled pid is left alone."""
    from .runs import pid_alive

    if not pid_alive(pid):
        return False
    import psutil

    try:
        cmdline = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return "sweep" in cmdline and any("rankwise" in part for part in cmdline)


def processes(sweep_dir: Path) -> list[int]:
    """The sweep's processes alive on this machine: its driver and every holder of a running trial."""
    sweep_dir, me = Path(sweep_dir), socket.gethostname()
    pids = []
    try:
        driver = json.loads((sweep_dir / DRIVER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        driver = {}
    if isinstance(driver, dict) and driver.get("host") == me and isinstance(driver.get("pid"), int):
        pids.append(driver["pid"])
    for t in Ledger(sweep_dir).trials():
        if t.get("status") == "running" and t.get("host") == me and isinstance(t.get("pid"), int):
            pids.append(t["pid"])
    return [p for p in dict.fromkeys(pids) if p != os.getpid() and _is_sweep_process(p)]


def running_trials(sweep_dir: Path) -> list[Path]:
    """Run folders of the sweep's trials whose worker still runs (its pid from the event log, or from
    worker.pid while it is still loading: runs.run_info)."""
    from .runs import is_our_worker, run_info

    out: list[Path] = []
    for t in Ledger(Path(sweep_dir)).trials():
        run_dir = Path(t["run_dir"]) if t.get("run_dir") else None
        if run_dir is None or not run_dir.is_dir():
            continue
        info = run_info(run_dir)
        if info.status == "running" and is_our_worker(info.pid, run_dir):
            out.append(run_dir)
    return out


def sweep_of(run_dir: str | Path, runs_dir: str | Path) -> Path | None:
    """The sweep folder (under <runs_dir>/sweeps, where sweeps go by default) whose trials name this
    run, while that sweep still runs; None otherwise."""
    run_dir = Path(run_dir).resolve()
    for trials in sorted(Path(runs_dir).glob("sweeps/*/trials.json")):
        try:
            named = {Path(t["run_dir"]).resolve() for t in Ledger(trials.parent).trials() if t.get("run_dir")}
        except RankwiseError:
            continue  # a damaged record: not this run's sweep to judge
        if run_dir in named and processes(trials.parent):
            return trials.parent
    return None


def is_running(sweep_dir: Path) -> bool:
    return bool(processes(sweep_dir) or running_trials(sweep_dir))


@dataclass
class Stopped:
    processes: list[int] = field(default_factory=list)  # sweep processes signalled
    runs: list[str] = field(default_factory=list)  # trial runs stopped after their sweep process was gone
    left: list[str] = field(default_factory=list)  # what is still running (a timeout, another machine)

    def words(self) -> str:
        parts = []
        if self.processes:
            parts.append(f"sweep process{'es' if len(self.processes) > 1 else ''} "
                         f"{', '.join(map(str, self.processes))} stopped")
        if self.runs:
            parts.append(f"trial run{'s' if len(self.runs) > 1 else ''} {', '.join(self.runs)} stopped")
        if not parts:
            parts.append("nothing of this sweep was running")
        if self.left:
            parts.append("still running: " + "; ".join(self.left))
        return "; ".join(parts)


def _wait(until, timeout: float, poll: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until():
            return True
        time.sleep(poll)
    return until()


def stop(sweep_dir: str | Path, timeout: float = 180.0) -> Stopped:
    """Stop the whole sweep: its processes (each stops its trial's run with a checkpoint and queues
    the trial again), then any trial run still running. Waits up to `timeout` s for each stage."""
    from .runs import request_stop
    from .sweep import _ended, record_stopped

    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / DRIVER).is_file() and not (sweep_dir / "trials.json").is_file():
        raise RankwiseError(f"{sweep_dir} is not a sweep folder", "a sweep folder holds trials.json")
    done = Stopped()
    for pid in processes(sweep_dir):
        try:
            os.kill(pid, signal.SIGTERM)
            done.processes.append(pid)
        except ProcessLookupError:
            pass
        except PermissionError:
            done.left.append(f"pid {pid} (not allowed to signal it: stop it as the user that started it)")
    _wait(lambda: not any(_is_sweep_process(p) for p in done.processes), timeout)
    done.left += [f"sweep process {p}" for p in done.processes if _is_sweep_process(p)]
    stopped, loading = [], []
    for run_dir in running_trials(sweep_dir):  # a sweep killed hard, or one that could not stop its trial
        events = read_events(run_dir / EVENTS_FILE)
        try:
            request_stop(run_dir)  # a worker still loading ends `interrupted` at once
            stopped.append(run_dir)
            if not any(e.get("type") == "start" for e in events):
                loading.append(run_dir)
        except (RankwiseError, ProcessLookupError):
            pass  # ended meanwhile
    _wait(lambda: all(_ended(d) or d not in running_trials(sweep_dir) for d in stopped), timeout)

    still = running_trials(sweep_dir)
    for run_dir in loading:  # killed before it could write its end: say it for it
        if not _ended(run_dir) and run_dir not in still:
            record_stopped(run_dir, None)
    done.runs = [d.name for d in stopped]
    done.left += [f"trial run {d.name}" for d in still]
    me = socket.gethostname()
    done.left += [f"r={t['rank']} on {t.get('host')} (another machine's sweep process)"
                  for t in Ledger(sweep_dir).trials() if t.get("status") == "running" and t.get("host") not in (None, me)]
    return done
