"""Shared by the training tests: run `rankwise train` on the shipped tiny model, read its run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "rankwise.tui.cli"]
# few steps, tiny batches, a checkpoint every 4 steps: each run takes a few seconds on 2 cores
QUICK = ["--set", "train.max_steps=12", "--set", "train.micro_batch=4", "--set", "train.save_steps=4",
         "--set", "train.logging_steps=1", "--set", "train.save_total_limit=5"]


def env(**extra) -> dict:
    e = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    e.pop("RANKWISE_TEST_OOM_AT_STEPS", None)
    e.update(extra)
    return e


def train(runs: Path, *args, preset: str | None = "demo-cpu", timeout: float = 300, extra_env: dict | None = None,
          quick: bool = True) -> subprocess.CompletedProcess:
    cmd = CLI + ["train", *(["--preset", preset] if preset else []), "--runs-dir", str(runs),
                 *(QUICK if quick else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env(**(extra_env or {})),
                          stdin=subprocess.DEVNULL)


def only_run(runs: Path) -> Path:
    dirs = [p for p in runs.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def events(run_dir: Path) -> list[dict]:
    from rankwise.trainer.events import read_events

    return read_events(run_dir / "events.jsonl")


def of_type(evs: list[dict], t: str) -> list[dict]:
    return [e for e in evs if e["type"] == t]


def wait_for(run_dir: Path, pred, timeout: float = 180) -> list[dict]:
    """Poll the event log until pred(events) is true."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        evs = events(run_dir) if (run_dir / "events.jsonl").exists() else []
        if pred(evs):
            return evs
        time.sleep(0.05)
    raise AssertionError(f"timed out; events: {[e['type'] for e in evs]}; log: {tail_log(run_dir)}")


def wait_for_run_dir(runs: Path, timeout: float = 60) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if runs.is_dir():
            dirs = [p for p in runs.iterdir() if p.is_dir()]
            if dirs:
                return dirs[0]
        time.sleep(0.05)
    raise AssertionError("no run dir appeared")


def tail_log(run_dir: Path, n: int = 30) -> str:
    try:
        return "\n".join((run_dir / "train.log").read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def adapter_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def has_control_chars(text: str) -> bool:
    return any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in text)


def bench_module(name: str):
    """A bench/ script imported as a module (bench/ is a folder of scripts, not a package), without leaving
    bench/ on sys.path."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


RANK_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR")


def fsdp_env(layer_cls: str | None) -> dict:
    """What `accelerate launch` gives each worker for rankwise's FSDP config (trainer/launch.py accelerate_config;
    accelerate utils/launch.py prepare_multi_gpu_env: FSDP_<KEY> for each fsdp_<key>), for the CPU: there
    accelerate refuses sync_module_states ("not supported on cpu"), and cpu_ram_efficient_loading needs it, so
    both are off (each rank loads the whole model, as a GPU run's rank 0 does)."""
    from rankwise.trainer.launch import Launch, accelerate_config

    fsdp = accelerate_config(Launch("fsdp", processes=2, mixed_precision="no", layer_cls=layer_cls))["fsdp_config"]
    out = {"ACCELERATE_USE_FSDP": "true", "ACCELERATE_MIXED_PRECISION": "no"}
    for key, value in fsdp.items():
        name = "TRANSFORMER_CLS_TO_WRAP" if key == "fsdp_transformer_layer_cls_to_wrap" else key.removeprefix("fsdp_").upper()
        out[f"FSDP_{name}"] = str(value).lower() if isinstance(value, bool) else str(value)
    out.update(FSDP_CPU_RAM_EFFICIENT_LOADING="false", FSDP_SYNC_MODULE_STATES="false")
    return out


def run_ranks(runs: Path, preset: str, launch_env: dict, n: int = 2, timeout: float = 600) -> tuple[subprocess.CompletedProcess, Path]:
    """A run of `preset` (QUICK) trained by `n` worker ranks that torch.distributed.run starts, as accelerate's
    launcher does on a GPU machine, with `launch_env` (what accelerate launch would set for the strategy)."""
    from rankwise.advisor.loader import load_config
    from rankwise.advisor.presets import resolve_preset
    from rankwise.trainer import rundir
    from rankwise.trainer.launch import free_port

    cfg = load_config(resolve_preset(preset), [QUICK[i + 1] for i in range(0, len(QUICK), 2)])
    run = rundir.create(runs, preset, cfg)
    e = {k: v for k, v in env(**launch_env).items() if k not in RANK_VARS}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_port",
                        str(free_port()), "-m", "rankwise.trainer.worker", str(run)],
                       capture_output=True, text=True, env=e, timeout=timeout, stdin=subprocess.DEVNULL)
    return p, run


def adapter_shapes(run_dir: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    with safe_open(str(run_dir / "adapter" / "adapter_model.safetensors"), "pt") as f:
        return {k: tuple(f.get_tensor(k).shape) for k in f.keys()}
