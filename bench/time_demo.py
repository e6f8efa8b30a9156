"""After one demo run, does the planner predict the next one's wall time? (issue 15: within 25%)

    python3 bench/time_demo.py [--preset demo-cpu] [--runs-dir DIR] [--runs 2]

Trains the preset once in a fresh runs directory (unless DIR already holds a finished run),
then, for each next run: the planner's calibrated total (advisor/forecast.py, reading the runs
before it) against the run's measured runtime (summary.json `runtime_s`: from building the model
to the end; the process's torch import before that is not part of a run's plan) and the
process wall time. A bench script, not a test: the figures move with the machine's load.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rankwise.advisor import hardware
from rankwise.advisor.fit import assess
from rankwise.advisor.forecast import forecast
from rankwise.advisor.loader import load_config
from rankwise.advisor.model import load_model
from rankwise.advisor.presets import resolve_preset


def train(preset: str, runs: Path) -> tuple[dict, float]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "rankwise.tui.cli", "train", "--preset", preset, "--runs-dir", str(runs)],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        sys.exit(f"training failed ({p.returncode}):\n{p.stderr[-2000:]}")
    newest = max(runs.iterdir(), key=lambda d: d.stat().st_mtime)
    return json.loads((newest / "summary.json").read_text()), wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo-cpu")
    ap.add_argument("--runs-dir", help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--runs", type=int, default=2, help="runs to predict after the first (default 2)")
    args = ap.parse_args(argv)
    runs = Path(args.runs_dir or tempfile.mkdtemp(prefix="rankwise-time-demo-"))
    runs.mkdir(parents=True, exist_ok=True)
    cfg = load_config(resolve_preset(args.preset))
    spec = load_model(cfg.model.name)
    hw = hardware.probe(str(runs))
    judged = assess(spec, cfg, hw)
    if not any((d / "summary.json").is_file() for d in runs.iterdir()):
        before = forecast(spec, cfg, judged, hw, runs_dir=runs)
        summary, wall = train(args.preset, runs)
        print(f"first run (uncalibrated plan): planned {before.time.total_s:.1f} s, "
              f"measured runtime {summary['runtime_s']:.1f} s, process wall {wall:.1f} s")
    errors = []
    for i in range(args.runs):
        ahead = forecast(spec, cfg, judged, hw, runs_dir=runs)
        summary, wall = train(args.preset, runs)
        err = (ahead.time.total_s - summary["runtime_s"]) / summary["runtime_s"]
        errors.append(abs(err))
        print(f"run {i + 2}: planned {ahead.time.total_s:.1f} s (calibrated from {len(ahead.time.calibrated_from)} "
              f"run(s)), measured runtime {summary['runtime_s']:.1f} s, error {err:+.1%}; process wall {wall:.1f} s")
    worst = max(errors)
    print(f"worst |error| {worst:.1%} (target ≤ 25%); runs in {runs}")
    return 0 if worst <= 0.25 else 1


if __name__ == "__main__":
    sys.exit(main())
