"""How much of a core the TUI spends on live views over long histories (issue 16's budgets:
under 10% of a core, key latency under 100 ms).

  python bench/tui_live.py [--seconds 10]

1. Runs: 20 runs × 20,000 events each (finished and one live), the Runs screen open.
2. Run: one run with 60,000 steps logged, a writer process appending 50 steps/s, its Run screen open.
CPU share = the TUI process's CPU time over wall time while the screen sits open (the writer is
another process); key latency = a key press until the screen has handled it (Pilot, headless).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tui_support import L4, NOW, SMALL_CATALOG  # noqa: E402

from rankwise.trainer.events import EventSink  # noqa: E402
from rankwise.tui.app import build_app  # noqa: E402


def write_run(runs: Path, run_id: str, steps: int, finished: bool, t0: float) -> Path:
    d = runs / run_id
    d.mkdir(parents=True)
    (d / "config.yaml").write_text("name: bench\n")
    sink = EventSink(d / "events.jsonl")
    sink.emit("start", run_id=run_id, pid=999_999, model="tiny", method="lora", device="cpu", max_steps=steps * 2,
              time=t0)
    for s in range(1, steps + 1):
        sink.emit("step", step=s, max_steps=steps * 2, loss=3.0 - s * 1e-5, lr=1e-4, grad_norm=1.0, time=t0 + s * 0.02)
    if finished:
        sink.emit("end", status="finished", step=steps, final_loss=2.0, time=t0 + steps * 0.02 + 1)
        (d / "summary.json").write_text(json.dumps({"final_loss": 2.0}))
    sink.close()
    return d


WRITER = textwrap.dedent("""
    import os, sys, time
    from rankwise.trainer.events import EventSink
    sink = EventSink(sys.argv[1]); step = int(sys.argv[2]); rate = float(sys.argv[3])
    # a resumed run's start, with this (live) process as the worker the Run screen follows
    sink.emit("start", run_id="live", pid=os.getpid(), model="tiny", method="lora", device="cpu",
              max_steps=10**6, time=time.time())
    while True:
        step += 1
        sink.emit("step", step=step, max_steps=10**6, loss=2.0, lr=1e-4, grad_norm=1.0, time=time.time())
        time.sleep(1 / rate)
""")


async def measure(app, open_keys: list[str], seconds: float, probe_key: str, ready) -> tuple[float, float]:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*open_keys)
        while not ready(app):
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.5)  # past the first full read
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        lat = []
        for _ in range(5):
            t = time.monotonic()
            await pilot.press(probe_key)
            lat.append(time.monotonic() - t)
            await asyncio.sleep(0.3)
        return share, sorted(lat)[len(lat) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--events", type=int, default=20_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        for i in range(args.runs):
            write_run(runs, f"run-{i:02d}", args.events, finished=i > 0, t0=NOW - 3600 + i)
        app = build_app(hardware=L4, runs_dir=runs, catalog=SMALL_CATALOG, clock=lambda: NOW, presets={})
        share, lat = asyncio.run(measure(app, ["ctrl+r"], args.seconds, "down",
                                         lambda a: type(a.screen).__name__ == "RunsScreen" and a.screen.renders))
        print(f"Runs screen, {args.runs} runs x {args.events:,} events: {share:.1%} of a core, "
              f"key latency {lat * 1000:.0f} ms (median of 5)")

        live = write_run(Path(tmp) / "one", "live", 60_000, finished=False, t0=time.time() - 1200)
        log = live / "events.jsonl"
        size = log.stat().st_size
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), "60000", "50"])
        try:
            while log.stat().st_size == size:  # its start event is written
                time.sleep(0.05)
            app = build_app(hardware=L4, runs_dir=Path(tmp) / "one", catalog=SMALL_CATALOG, presets={})

            async def run_screen():
                async with app.run_test(size=(80, 24)) as pilot:
                    app.attach(live)
                    while type(app.screen).__name__ != "RunScreen" or app.screen.view is None:
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(2.5)
                    step0 = app.screen.view.step
                    cpu0, wall0 = time.process_time(), time.monotonic()
                    await asyncio.sleep(args.seconds)
                    share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
                    print(f"(the Run screen went from step {step0} to {app.screen.view.step})")
                    lat = []
                    for _ in range(5):
                        t = time.monotonic()
                        await pilot.press("f12")  # a key nothing binds: the cost of getting through
                        lat.append(time.monotonic() - t)
                    return share, sorted(lat)[2]

            share, lat = asyncio.run(run_screen())
        finally:
            writer.kill()
        print(f"Run screen, 60,000 steps logged + 50 steps/s: {share:.1%} of a core, key latency {lat * 1000:.0f} ms")


if __name__ == "__main__":
    main()
