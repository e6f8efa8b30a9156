"""Shared inputs for the TUI tests: fixed hardware, catalog, presets and clock, passed as data."""
from __future__ import annotations

import json
from pathlib import Path

from rankwise.advisor.catalog import CATALOG
from rankwise.advisor.hardware import Gpu, Hardware, Host, planned
from rankwise.advisor.presets import shipped
from rankwise.trainer.events import EventSink

GIB = 1024 ** 3
HOST = Host(cpu_cores=16, ram_total_bytes=64 * GIB, ram_available_bytes=48 * GIB, disk_free_bytes=None,
            disk_path="/data")
L4 = Hardware(gpus=(Gpu(0, "NVIDIA L4", 22 * GIB, free_bytes=20 * GIB, used_bytes=2 * GIB),), host=HOST)
NO_GPU = Hardware(gpus=(), host=HOST, notes=("no NVIDIA driver found",))
A100 = planned(gpu="A100-80GB", host=HOST)
SMALL_CATALOG = {k: CATALOG[k] for k in ("llama-3.2-1b", "llama-3.1-8b", "mistral-7b", "qwen2.5-7b", "gemma-2-2b")}
NOW = 1_800_000_000.0


def gpu_presets() -> dict[str, Path]:
    """The shipped GPU presets (fixed set, whatever else lands in presets/)."""
    return {k: v for k, v in shipped().items() if not k.startswith("demo")}


def app_for(tmp_path: Path, hardware=L4, **kw):
    """The app over a small catalog, the shipped GPU presets and a fixed clock, with runs in tmp_path/runs."""
    from rankwise.tui.app import build_app

    kw.setdefault("presets", gpu_presets())
    return build_app(hardware=hardware, runs_dir=tmp_path / "runs", catalog=SMALL_CATALOG, clock=lambda: NOW, **kw)


async def settle(pilot) -> None:
    """Until the app's workers are done and the messages they posted are handled. A worker cancelled on the way
    is done too: an exclusive worker (the Sweep screen's `load`) is cancelled when a newer one of its group
    starts, and textual's wait_for_complete raises for it (a CI run caught the stop landing during a load)."""
    from textual.worker import WorkerCancelled

    for worker in list(pilot.app.workers):
        try:
            await worker.wait()
        except WorkerCancelled:
            pass
    await pilot.pause()


def text_of(widget) -> str:
    content = widget.content
    return getattr(content, "plain", None) or str(content)


def fake_run(runs_dir: Path, run_id: str, steps: int = 5, finished: bool = True, t0: float = NOW - 600) -> Path:
    """A run directory written through the real event-log contract (as a finished worker leaves it)."""
    d = runs_dir / run_id
    d.mkdir(parents=True)
    (d / "config.yaml").write_text("name: demo-cpu\n")
    sink = EventSink(d / "events.jsonl")
    events = [dict(type_="start", run_id=run_id, pid=999_999, model="tiny-llama", method="lora", device="cpu",
                   max_steps=steps, estimate_peak_gib=0.05, time=t0)]
    for s in range(1, steps + 1):
        events.append(dict(type_="step", step=s, max_steps=steps, loss=3.0 - 0.3 * s, lr=1e-4, grad_norm=1.0,
                           time=t0 + 10 * s))
    events.append(dict(type_="eval", step=steps, eval_loss=2.2, time=t0 + 10 * steps + 1))
    if finished:
        events.append(dict(type_="end", status="finished", step=steps, final_loss=3.0 - 0.3 * steps,
                           best_eval_loss=2.2, time=t0 + 10 * steps + 2))
    for e in events:
        sink.emit(e.pop("type_"), **e)
    sink.close()
    if finished:
        (d / "summary.json").write_text(json.dumps({"final_loss": 3.0 - 0.3 * steps, "best_eval_loss": 2.2,
                                                    "train_seconds": 52, "peak_mem_bytes": int(0.06 * GIB),
                                                    "estimate_peak_gib": 0.05}))
    return d
