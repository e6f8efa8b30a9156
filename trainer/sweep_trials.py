"""A rank sweep's record: one small JSON file of trials beside the trials' own run directories.

`<sweep_dir>/trials.json` holds one entry per (phase, rank): its status (queued, running,
complete, pruned, failed), the run directory it trains in, who runs it (host, pid, a claim
token and a heartbeat time), its curves and a note. Everything else about a trial is in its
run directory (config, event log, checkpoints). No optuna, no torch, no database.

Every change is made under an exclusive lock (`flock` on `<sweep_dir>/.lock`) as
read → change → write through a temporary file and a rename, so readers without the lock
always see a whole file. Several sweep processes — threads of one process (one per GPU),
other processes, other machines that mount the sweep folder (NFS and the usual cluster
filesystems carry `flock` between machines) — share one sweep that way:

- `claim` hands each queued trial to exactly one of them;
- the owner writes a heartbeat every few seconds while it follows the run; a running
  trial whose owner stopped beating for `GRACE_S` (or, on the same machine, whose sweep
  process is gone) is claimed again, with its run directory: a finished or still running
  run is taken over, an interrupted one continues from its checkpoint;
- finished, pruned and failed trials are never run again.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from .sweep_plan import TRIALS

HEARTBEAT_S = 5
GRACE_S = 30  # a running trial without a heartbeat for this long belongs to a dead sweep process
STATUSES = ("queued", "running", "complete", "pruned", "failed")
DONE = ("complete", "pruned", "failed")


def key(phase: str, rank: int) -> str:
    return f"{phase}-r{rank}"


class Ledger:
    """The trials of one sweep folder."""

    def __init__(self, sweep_dir: Path):
        self.dir = Path(sweep_dir)
        self.path = self.dir / TRIALS

    # -------------------------------------------------------------- reading (no lock: whole files only)

    def read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            from rankwise.advisor.errors import RankwiseError

            raise RankwiseError(f"cannot read the sweep's record {self.path}: {e}",
                                "move the sweep folder aside (or pass another --sweep-dir) to start the sweep afresh") from None
        trials = data.get("trials") if isinstance(data, dict) else None
        return {k: v for k, v in (trials or {}).items() if isinstance(v, dict)}

    def trials(self, phase: str | None = None) -> list[dict]:
        """The trials (of one phase), in queue order."""
        out = [t for t in self.read().values() if phase is None or t.get("phase") == phase]
        return sorted(out, key=lambda t: t.get("seq", 0))

    # -------------------------------------------------------------- changing (under the lock)

    @contextmanager
    def _change(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                trials = self.read()
                yield trials
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"trials": trials}, indent=1) + "\n", encoding="utf-8")
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def enqueue(self, phase: str, ranks: list[int]) -> list[int]:
        """Queue the ranks that have no trial in this phase yet (in any status); largest first, as
        it sets the bar the pruner measures the others by. Returns the ranks queued."""
        with self._change() as trials:
            new = [r for r in sorted(set(ranks), reverse=True) if key(phase, r) not in trials]
            seq = max((t.get("seq", 0) for t in trials.values()), default=0)
            for i, r in enumerate(new, 1):
                trials[key(phase, r)] = {"phase": phase, "rank": r, "seq": seq + i, "status": "queued"}
        return sorted(new)

    def claim(self, phase: str) -> dict | None:
        """Take the next queued trial of this phase, or a running one whose owner is gone; None when
        there is none. The returned copy carries the claim `token` the other calls check."""
        me = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex, "beat": time.time()}
        with self._change() as trials:
            mine = [t for t in trials.values() if t.get("phase") == phase]
            pick = next((t for t in sorted(mine, key=lambda t: t.get("seq", 0))
                         if t.get("status") == "queued" or (t.get("status") == "running" and is_stale(t))), None)
            if pick is None:
                return None
            pick["taken_over"] = pick.get("status") == "running"
            pick.update(status="running", **me)
            return dict(pick)

    def update(self, trial: dict, **fields) -> bool:
        """Change this claimed trial (and beat); False when it is no longer ours (someone took it over)."""
        with self._change() as trials:
            t = trials.get(key(trial["phase"], trial["rank"]))
            if t is None or t.get("token") != trial.get("token"):
                return False
            t.update(fields, beat=time.time())
            return True

    @contextmanager
    def beating(self, trial: dict):
        """A heartbeat for this claimed trial every HEARTBEAT_S while the block runs (starting the
        run, which may scan a large dataset, included); yields an Event set when the trial is lost."""
        lost, done = threading.Event(), threading.Event()

        def beat() -> None:
            while not done.wait(HEARTBEAT_S):
                if not self.update(trial):
                    lost.set()
                    return

        thread = threading.Thread(target=beat, daemon=True, name=f"beat-{key(trial['phase'], trial['rank'])}")
        thread.start()
        try:
            yield lost
        finally:
            done.set()
            thread.join()

    def requeue(self, trial: dict, **fields) -> None:
        """Give a claimed trial back to the queue (Ctrl-C), keeping its run directory."""
        self.update(trial, status="queued", token=None, pid=None, **fields)

    def waiting(self, phase: str) -> list[dict]:
        """Trials of this phase still to finish: queued, or running here or elsewhere."""
        return [t for t in self.trials(phase) if t.get("status") in ("queued", "running")]


def is_stale(t: dict) -> bool:
    """Its owner stopped beating, or (same machine) its sweep process is gone."""
    if time.time() - float(t.get("beat") or 0) > GRACE_S:
        return True
    if t.get("host") == socket.gethostname() and isinstance(t.get("pid"), int):
        from .runs import pid_alive

        return not pid_alive(t["pid"])
    return False
