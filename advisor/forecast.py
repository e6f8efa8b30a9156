"""Time, cost, host RAM and disk for one config on one machine: what `estimate`, `advise`,
`presets`, the Advice screen and `rankwise train`'s pre-launch line show beside memory.

The edges live here (scanning the data, reading this machine's finished runs, the user's
prices); the arithmetic is in time.py (time), host_plan.py (RAM, disk) and pricing.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import lengths
from .calibration import from_runs, scan_for
from .compare_plan import ComparePlan, plan_compare
from .dataset import SCAN_ROWS
from .hardware import Hardware
from .host_plan import HostPlan, plan_host
from .pricing import price_for
from .time import DataShape, TimePlan, duration, per_step, plan_time, rate
from .units import gib

if TYPE_CHECKING:
    from .config import RunConfig
    from .fit import Fit
    from .lengths import DataLengths
    from .model import ModelSpec


@dataclass(frozen=True)
class Forecast:
    time: TimePlan
    host: HostPlan
    price_source: str
    compare: ComparePlan | None = None  # trying the trained run: `rankwise compare` (compare_plan.py)

    def to_dict(self) -> dict:
        t = self.time.to_dict()
        if t["cost"] is not None:
            t["cost"]["source"] = self.price_source
        out = {"time": t, "host": self.host.to_dict()}
        if self.compare is not None:
            out["compare"] = self.compare.to_dict()
        return out

    def line(self) -> str:
        """One line: time · cost · host RAM · disk."""
        t, h = self.time, self.host
        cal = ", calibrated" if t.calibrated_from else ""
        if t.total_s is None:
            parts = [f"time {per_step(t.step_s)} ({rate(t.tokens_per_s)}{cal}; "
                     "steps unknown: no data, no max_steps)"]
        else:
            evals = f" + {t.evaluations:,} evaluation{'s' if t.evaluations > 1 else ''}" if t.evaluations else ""
            parts = [f"time ~{duration(t.total_s)} ({t.steps:,} steps{evals}, {rate(t.tokens_per_s)}{cal})"]
        if t.cost is not None:
            parts.append(f"cost ~{t.cost:,.2f} ({t.price_per_gpu_hour:g}/GPU-h × {t.gpus})")
        ram = f"host RAM {gib(h.ram_bytes):.1f} GiB"
        if h.ram_available is not None:
            ram += f" of {gib(h.ram_available):.0f}"
        disk = f"disk {gib(h.disk_bytes):.1f} GiB"
        if h.disk_free is not None:
            disk += f" of {gib(h.disk_free):.0f} free"
        return " · ".join(parts + [ram, disk])


_SCANNED: dict[tuple, object] = {}  # (data file state, format, columns, tokenizer folder) → its scan, once a process


def data_scan(cfg: "RunConfig", spec: "ModelSpec"):
    """The scan of cfg's training data every plan reads (its first dataset.SCAN_ROWS rows), or None: one limit for every
    surface, so a screen that scans once and the commands plan the same steps. Read once a process while the file is
    unchanged: `train` judges the fit and plans the time from the same scan."""
    path = cfg.data.path
    try:
        st = Path(path).stat() if path else None
    except OSError:
        st = None
    if st is None:
        return scan_for(cfg, SCAN_ROWS, spec)  # not there (or no data): scan_for says None
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, cfg.data.format,
           tuple(sorted((cfg.data.columns or {}).items())), getattr(spec, "path", None))
    if key not in _SCANNED:
        _SCANNED[key] = scan_for(cfg, SCAN_ROWS, spec)
    return _SCANNED[key]


def data_lengths(cfg: "RunConfig", spec: "ModelSpec", scan=None) -> "DataLengths | None":
    """The lengths of cfg's own training data (data.path, as data_scan reads it) for advisor.fit: the peak at its
    longest row where that is shorter than max_seq_len, as the collator pads each batch. None without data on this
    machine. A scan that read the first SCAN_ROWS rows lets them stand for the rest, as the time plan does (the longest row
    is the whole data's where the rest can be searched: longest.longest_rows)."""
    return lengths.data_lengths(cfg, spec, scan if scan is not None else data_scan(cfg, spec))


def forecast(spec: "ModelSpec", cfg: "RunConfig", fit: "Fit", hw: Hardware | None, price: float | None = None,
             runs_dir: str | Path | None = None, scan=None, calibrate: bool = True,
             rows: int | None = None, points: list | None = None) -> Forecast:
    """`cfg` as `fit` resolved it on `hw`: the time plan (data scanned, calibrated from the finished
    runs under `runs_dir`, default cfg.output.dir), its cost, and the host plan. `rows`: a row
    count without the data (`advise --samples`): each row then counts as a full max_seq_len.
    `points`: calibration points already read (a screen that re-plans on every edit reads them once)."""
    if scan is None:
        scan = data_scan(cfg, spec)
    data = DataShape.from_scan(scan, cfg, spec) if scan is not None and scan.rows else None
    if data is None and rows:
        L = cfg.train.max_seq_len
        data = DataShape(rows, L, L, "assumed")
    host = hw.host if hw is not None else None
    if points is None:
        points = from_runs(runs_dir or cfg.output.dir, host) if calibrate else []
    t = plan_time(spec, cfg, fit, hw, data, points)
    per_hour, source = price_for(t.device, price)
    if per_hour is not None and hw is not None and hw.has_gpu:
        t = plan_time(spec, cfg, fit, hw, data, points, price=per_hour)
    if scan is not None and not scan.complete and scan.total_rows:
        t = _noted(t, f"data: {scan.total_rows:,} rows counted, the first {scan.rows:,} scanned (their lengths and "
                      "bad rows stand for the rest)")
    elif scan is not None and not scan.complete:
        t = _noted(t, f"data: the first {scan.rows:,} rows scanned; the file holds more (steps are a lower bound)")
    return Forecast(t, plan_host(spec, cfg, fit, hw), source, plan_compare(spec, fit, hw, data))


def _noted(t: TimePlan, note: str) -> TimePlan:
    from dataclasses import replace

    return replace(t, assumptions=t.assumptions + (note,))


def sweep_cost(forecasts: list[Forecast]) -> dict:
    """A planned sweep: its trials' seconds and cost summed (cost None when any trial has no price)."""
    total_s = sum(f.time.total_s or 0.0 for f in forecasts)
    costs = [f.time.cost for f in forecasts]
    return {"trials": len(forecasts), "total_s": round(total_s, 1),
            "cost": None if not costs or any(c is None for c in costs) else round(sum(costs), 2)}
