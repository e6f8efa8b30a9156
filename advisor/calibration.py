"""What this machine's finished runs teach the time planner.

A run directory (`<runs>/<run-id>/`, written by trainer/worker.py) holds its resolved
`config.yaml`, `events.jsonl` (one JSON object a line) and `summary.json`. They are read here
as plain files — the advisor imports nothing from the trainer — into `Calibration` points:
the seconds per optimizer step the run measured (between its first and last step events) and
what advisor/time.py plans for that same config on the device it ran on. `plan_time` then
scales its step time by the similar runs' measured/planned ratio and says which runs it used.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import RankwiseError
from .hardware import Gpu, Hardware, Host, speed_of
from .lengths import data_lengths
from .speeds import Device
from .time import Calibration, DataShape, plan_time

NEWEST = 20  # runs read at most (newest first): planning stays well under a second
MIN_STEPS = 4  # a run must have measured at least this many steps between two step events
# rows of a run's data scanned for its length profile: the scan a new plan makes, of fewer rows than its
# dataset.SCAN_ROWS (a point per finished run); the longest row is the whole data's either way, where it can be searched
SCAN_ROWS = 5000


def _events(path: Path) -> list[dict]:
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if isinstance(ev, dict):
                    out.append(ev)
    except OSError:
        return []
    return out


def _hardware(device_name: str, host: Host | None) -> Hardware:
    if device_name == "cpu":
        return Hardware(gpus=(), host=host, source="declared")
    name, _ = speed_of(device_name)
    return Hardware(gpus=(Gpu(0, name or device_name, 80 << 30),), host=host, source="declared")


def scan_for(cfg, limit: int = SCAN_ROWS, spec=None, count_all: bool = True):
    """advisor/dataset.scan of cfg's training data, or None when it cannot be read; counted in
    `spec`'s tokens when its tokenizer is on this machine (advisor/tokens.py). `count_all` off: the length
    profile only, the rest of a bigger file not counted (a calibration point plans a step, not the run)."""
    from .dataset import scan_for_model

    if not cfg.data.path:
        return None
    try:
        return scan_for_model(cfg.data.path, spec, limit=limit, declared=cfg.data.format, columns=cfg.data.columns,
                              count_all=count_all)
    except (RankwiseError, OSError):
        return None


def point(run_dir: Path, host: Host | None = None) -> Calibration | None:
    """A finished run → its calibration point; None when it cannot teach anything."""
    from .fit import assess
    from .loader import load_config
    from .model import load_model

    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("status") != "finished":
        return None
    events = _events(run_dir / "events.jsonl")
    steps = [e for e in events if e.get("type") == "step" and isinstance(e.get("step"), int)
             and isinstance(e.get("time"), (int, float))]
    starts = [e for e in events if e.get("type") == "start"]
    if len(steps) < 2 or not starts or steps[-1]["step"] - steps[0]["step"] < MIN_STEPS:
        return None
    start = starts[-1]
    if start.get("resumed_from_step") or len(starts) > 1:
        return None  # a resumed or restarted run's clock mixes two processes
    first, last = steps[0]["step"], steps[-1]["step"]
    # evaluations between the two step events are planned apart (time.plan_time's eval_s): their seconds left out
    t0, t1 = steps[0]["time"], steps[-1]["time"]
    evaluating = sum(e["runtime_s"] for e in events
                     if e.get("type") == "eval" and isinstance(e.get("time"), (int, float)) and t0 < e["time"] <= t1
                     and isinstance(e.get("runtime_s"), (int, float)))
    measured = max(t1 - t0 - evaluating, 0.0) / (last - first)
    if measured <= 0:
        return None
    device = "cpu" if summary.get("device") == "cpu" else (start.get("device_name") or "")
    if not device:
        return None  # a GPU run from before runs recorded the GPU's name
    try:
        cfg = load_config(run_dir / "config.yaml")
        spec = load_model(cfg.model.name)
        hw = _hardware(device, host)
        scan = scan_for(cfg, spec=spec, count_all=False)
        lengths = data_lengths(cfg, spec, scan)  # at the length plans are made at, as they judge it (fit.assess)
        fit = assess(spec, cfg, hw, method=summary.get("method") or None, lengths=lengths)
        micro, accum = summary.get("micro_batch"), summary.get("grad_accum")
        if isinstance(micro, int) and isinstance(accum, int):  # after an OOM retry: what really ran
            from .config import with_values

            cfg = with_values(cfg, {"train.micro_batch": micro, "train.grad_accum": accum})
            fit = assess(spec, cfg, hw, method=fit.method, lengths=lengths)
        data = DataShape.from_scan(scan, cfg, spec) if scan is not None and scan.rows else None
        planned = plan_time(spec, cfg, fit, hw, data)
    except (RankwiseError, ValueError, OSError):
        return None
    runtime = summary.get("runtime_s")
    n = summary.get("step") or steps[-1]["step"]
    setup = runtime - n * measured if isinstance(runtime, (int, float)) and runtime > n * measured else None
    return Calibration(run_id=run_dir.name, device=Device.of(hw).name, method=fit.method, params=spec.total_params,
                       seq_len=fit.estimate.plan.seq_len, measured_step_s=measured, planned_step_s=planned.step_s,
                       setup_s=setup)


_SEEN: dict[tuple, Calibration | None] = {}  # (run dir, summary mtime, host) → its point: `presets` plans many configs


def from_runs(runs_dir: str | Path, host: Host | None = None, newest: int = NEWEST) -> list[Calibration]:
    """Calibration points of the newest finished runs under `runs_dir` (missing folder: none)."""
    root = Path(runs_dir)
    try:
        dirs = [(d, (d / "summary.json").stat().st_mtime) for d in root.iterdir() if (d / "summary.json").is_file()]
    except OSError:
        return []
    dirs.sort(key=lambda dm: dm[1], reverse=True)
    out = []
    for d, mtime in dirs[:newest]:
        key = (str(d.resolve()), mtime, host)
        if key not in _SEEN:
            _SEEN[key] = point(d, host)
        if _SEEN[key] is not None:
            out.append(_SEEN[key])
    return out
