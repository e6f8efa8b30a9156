"""Run directories seen from outside: list them, find one by id, read its status, stop it.

A run directory `<runs_dir>/<run-id>/` holds config.yaml, events.jsonl, train.log,
checkpoints/, adapter/ and summary.json (see `trainer/events.py` for the log). Everything
here is read from those files and the process table; no torch.

Status comes from the event log:
- an `end` event → its status (finished | interrupted | failed);
- no `end`, and the latest `start` event's pid is alive and really our worker (its
  command line mentions the run dir, the run id or rankwise, so a recycled pid does not
  count) → running;
- no `end`, and that process is gone → failed, with a note. Not "interrupted": a worker
  that is asked to stop (SIGTERM/SIGINT, `rankwise stop`) always writes its own `end`
  event, so a missing one means it was killed (OOM killer, SIGKILL, a reboot) — a crash.
  Its last complete checkpoint is intact, and the note says how to resume;
- no `start` event yet: running ("starting") while the directory is fresh (the worker is
  still importing torch), failed after that.
"""
from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rankwise.advisor.errors import RankwiseError, closest

from .events import EVENTS_FILE, Tail, read_events
from .rundir import PID as PID_FILE, latest_checkpoint

STATUSES = ("running", "finished", "failed", "interrupted")
STARTING_GRACE_S = 120  # a run dir without a start event counts as starting this long (torch import + model load)
DIED_NOTE = "process died without an end event; `rankwise train --resume {id}` continues from its last checkpoint"


@dataclass
class RunInfo:
    id: str
    dir: str
    name: str
    status: str
    step: int | None = None
    max_steps: int | None = None
    loss: float | None = None
    eval_loss: float | None = None
    started: float | None = None
    updated: float | None = None
    pid: int | None = None
    summary: dict | None = None
    model: str | None = None
    method: str | None = None
    note: str | None = None
    error: str | None = None
    last_checkpoint: str | None = None  # the latest complete checkpoint (what --resume continues from)
    checkpoint_step: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        d.update(self.extra)
        return d


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / EVENTS_FILE).is_file() or (path / "config.yaml").is_file())


def pid_alive(pid: int | None) -> bool:
    """The process exists and is not a zombie."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:  # a damaged log's "pid"
        return False
    import psutil  # light, and only needed here

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError):
        return False
    except psutil.AccessDenied:
        return True


def is_our_worker(pid: int | None, run_dir: Path) -> bool:
    """Alive, and its command line names this run (or rankwise): a recycled pid is not ours."""
    if not pid_alive(pid):
        return False
    import psutil

    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    run_dir = Path(run_dir)
    marks = {str(run_dir), str(run_dir.resolve()), run_dir.name, "rankwise"}
    return any(m and m in cmdline for m in marks)


def _started_pid(run_dir: Path) -> int | None:
    """The pid trainer/start.py recorded for this run, if that process is still this run's worker."""
    try:
        pid = int((run_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_our_worker(pid, run_dir) else None


def _ended_since(run_dir: Path) -> bool:
    """Does the event log end the run now? Asked of a run found gone without an end event read: a
    worker writes its end event before it exits, so a read after the process check cannot miss it
    (without it, `stop --wait` on a busy machine reported a run that ended `interrupted` as failed)."""
    fold = _fresh_fold(run_dir)
    fold.add(read_events(run_dir / EVENTS_FILE))
    return fold.end is not None


def _load_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _config_name(run_dir: Path) -> str | None:
    import yaml

    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError, yaml.YAMLError):  # a damaged config.yaml: the dir name will do
        return None
    if not isinstance(cfg, dict):
        return None
    out = cfg.get("output") if isinstance(cfg.get("output"), dict) else {}
    return out.get("name") or cfg.get("name")


@dataclass
class _Fold:
    """What a run's events said so far: run_info's fold, kept between looks by `RunsWatch`."""

    info: RunInfo
    start: dict | None = None
    end: dict | None = None
    last_time: float | None = None

    def add(self, events: list[dict]) -> None:
        info = self.info
        for e in events:
            t = e.get("type")
            if t == "start":
                self.start, self.end = e, None  # a resumed run appends a new start; an older end no longer counts
                info.pid = e.get("pid")
                info.started = info.started or e.get("time")
                info.model, info.method = e.get("model"), e.get("method")
                info.max_steps = e.get("max_steps", info.max_steps)
            elif t == "step":
                info.step, info.loss = e.get("step", info.step), e.get("loss", info.loss)
                info.max_steps = e.get("max_steps") or info.max_steps
            elif t == "eval":
                info.eval_loss = e.get("eval_loss")
            elif t == "error":
                info.error = e.get("message")
            elif t == "end":
                self.end = e
        if events:
            self.last_time = events[-1].get("time")


def _fresh_fold(run_dir: Path) -> _Fold:
    return _Fold(RunInfo(id=run_dir.name, dir=str(run_dir), name=_config_name(run_dir) or run_dir.name,
                         status="running"))


def run_info(run_dir: str | Path, fold: _Fold | None = None) -> RunInfo:
    """Everything `rankwise runs` shows about one run, from its files and the process table.
    `fold`: the events already folded (RunsWatch); none: the whole log is read."""
    run_dir = Path(run_dir)
    if fold is None:
        fold = _fresh_fold(run_dir)
        fold.add(read_events(run_dir / EVENTS_FILE))  # fields of the wrong type (a hand edit, damage) already dropped
    info = replace(fold.info, extra=dict(fold.info.extra))
    end, start = fold.end, fold.start
    info.updated = fold.last_time
    if info.updated is None or info.started is None:
        try:
            mtime = max(p.stat().st_mtime for p in [run_dir, *run_dir.iterdir()])
        except (OSError, ValueError):
            mtime = None
        info.updated = info.updated or mtime
        info.started = info.started or mtime
    info.summary = _load_json(run_dir / "summary.json")

    if end is not None:
        info.status = end.get("status") if end.get("status") in STATUSES else "failed"
        info.step = end.get("step", info.step)
        info.loss = end.get("final_loss", info.loss) if end.get("final_loss") is not None else info.loss
    elif start is None:
        loading = _started_pid(run_dir)
        fresh = info.updated is not None and time.time() - info.updated < STARTING_GRACE_S
        if loading is not None:  # its process is alive: loading libraries, data or the model
            info.pid = loading
        info.status = "running" if loading is not None or fresh else "failed"
        info.note = ("starting (no start event yet)" if info.status == "running" else
                     "no start event: the worker never started; see train.log")
    elif is_our_worker(info.pid, run_dir):
        info.status = "running"
    else:
        info.status = "failed"
        info.note = DIED_NOTE.format(id=info.id)
    if end is None and info.status == "failed" and _ended_since(run_dir):
        return run_info(run_dir)  # the events were read, then the worker wrote its end and exited
    latest = latest_checkpoint(run_dir)  # only complete (marked) checkpoints count
    info.last_checkpoint = str(latest[1]) if latest else None
    info.checkpoint_step = latest[0] if latest else None
    if info.status == "failed" and info.note == DIED_NOTE.format(id=info.id) and latest is None:
        info.note = "process died without an end event and left no complete checkpoint; start it again"
    return info


def list_runs(runs_dir: str | Path) -> list[RunInfo]:
    """Every run under `runs_dir`, newest first. Other folders and files are skipped."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    root = runs_dir.resolve()
    infos = [run_info(p) for p in runs_dir.iterdir() if _inside(p, root) and is_run_dir(p)]
    return sorted(infos, key=lambda i: (i.started or 0.0, i.id), reverse=True)


class RunsWatch:
    """`list_runs` for a screen that looks every few seconds: each run's events.jsonl is read on
    from where the last look stopped (offsets kept, events folded once), and a run that has
    ended (end event and summary.json seen) is not looked at again until its log grows (--resume)."""

    def __init__(self, runs_dir: str | Path):
        self.runs_dir = Path(runs_dir)
        self._folds: dict[Path, tuple[_Fold, Tail]] = {}
        self._done: dict[Path, tuple[RunInfo, int]] = {}  # an ended run, and its log's size then

    def list(self) -> list[RunInfo]:
        if not self.runs_dir.is_dir():
            return []
        root = self.runs_dir.resolve()
        infos = []
        for p in self.runs_dir.iterdir():
            if p in self._done:
                info, size = self._done[p]
                if _size(p / EVENTS_FILE) == size:
                    infos.append(info)
                    continue
                del self._done[p]
            if not (_inside(p, root) and is_run_dir(p)):
                continue
            if p not in self._folds:
                self._folds[p] = (_fresh_fold(p), Tail(p / EVENTS_FILE))
            fold, tail = self._folds[p]
            fold.add(tail.poll())
            info = run_info(p, fold)
            if fold.end is not None and info.summary is not None:
                self._done[p] = (info, _size(p / EVENTS_FILE))
            infos.append(info)
        return sorted(infos, key=lambda i: (i.started or 0.0, i.id), reverse=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _inside(path: Path, root: Path) -> bool:
    """`path` (symlinks followed) is a direct child of `root`."""
    try:
        return path.resolve().parent == root
    except OSError:
        return False


def find_run(runs_dir: str | Path, ref: str) -> Path:
    """`ref` → a run directory: exact id, unique id prefix, or a path to a run dir inside `runs_dir`."""
    runs_dir = Path(runs_dir)
    ref = str(ref).strip()
    if not ref:
        raise RankwiseError("empty run id", "give a run id or prefix (see `rankwise runs`)")
    root = runs_dir.resolve()
    looks_like_path = os.sep in ref or "/" in ref or ref.startswith((".", "~"))
    if looks_like_path:
        path = Path(ref).expanduser()
        if not _inside(path, root):
            elsewhere = is_run_dir(path)  # a run kept in another runs dir: name that dir
            raise RankwiseError(f"{ref}: not a run directory inside the runs dir {runs_dir}",
                                f"pass --runs-dir {path.resolve().parent} (the runs dir that holds it)" if elsewhere
                                else "give a run id (see `rankwise runs`), or pass --runs-dir for runs kept elsewhere")
        if not is_run_dir(path):
            raise RankwiseError(f"{ref}: not a run directory (no events.jsonl or config.yaml)",
                                "see `rankwise runs` for the runs there")
        return path
    if not runs_dir.is_dir():
        raise RankwiseError(f"no runs directory at {runs_dir}", "start a run with `rankwise train`, or pass --runs-dir")
    exact = runs_dir / ref
    if exact.is_dir() and _inside(exact, root) and is_run_dir(exact):
        return exact
    ids = sorted(p.name for p in runs_dir.iterdir() if _inside(p, root) and is_run_dir(p))
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return runs_dir / matches[0]
    if matches:
        raise RankwiseError(f"run id prefix {ref!r} is ambiguous: {', '.join(matches)}",
                            "give more of the id")
    near = closest(ref, ids)
    hint = (f"did you mean {', '.join(near)}? " if near else "") + "see `rankwise runs`" + (
        "" if ids else f" (no runs in {runs_dir})")
    raise RankwiseError(f"no run {ref!r} in {runs_dir}", hint)


def request_stop(run_dir: str | Path) -> int:
    """Ask a running worker to checkpoint and stop (SIGTERM). Returns the pid signalled."""
    run_dir = Path(run_dir)
    info = run_info(run_dir)
    if info.status != "running" or not is_our_worker(info.pid, run_dir):
        raise RankwiseError(f"run {info.id} is not running (status: {info.status})",
                            info.note or "only a running run can be stopped; see `rankwise runs`")
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        raise RankwiseError(f"run {info.id} is not running (its process just exited)", None) from None
    except PermissionError:
        raise RankwiseError(f"run {info.id}: not allowed to signal pid {info.pid}",
                            "stop it as the user that started it") from None
    return info.pid
