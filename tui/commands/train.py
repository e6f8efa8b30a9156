"""`rankwise train --preset NAME|FILE`: check everything, create the run dir, start the worker.

Everything a user can get wrong (preset, --set, model path, data path, runs dir, error-level
red flags) is checked here BEFORE the run directory exists: bad input exits 2 and leaves
nothing behind. The worker (`python -m rankwise.trainer.worker RUN_DIR`) always runs in its
own process session with its output on train.log, so closing the terminal or losing SSH
does not stop it. In the foreground this command follows the run's event log with the
panel; Ctrl-C asks the worker to checkpoint and stop, and keeps following until its `end`.
Exit codes: 0 finished, 1 failed, 2 bad input, 130 interrupted.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

from rankwise.advisor.errors import RankwiseError

EXIT = {"finished": 0, "interrupted": 130}


def register(sub) -> None:
    p = sub.add_parser("train", help="train a preset (headless; follows the run with a progress panel)",
                       description="Train a LoRA/QLoRA adapter from a preset. The run goes on in its own "
                                   "process: --detach returns at once, `rankwise attach RUN` shows it later.")
    p.add_argument("--preset", default=argparse.SUPPRESS, metavar="NAME|FILE",
                   help="a shipped preset name (see `rankwise presets`) or a YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=argparse.SUPPRESS, metavar="KEY=VALUE",
                   help="override a preset key, e.g. --set lora.r=32 (repeatable)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN (id, prefix or dir) from its last complete checkpoint")
    p.add_argument("--detach", action="store_true", help="start the run in the background and print its id")
    p.add_argument("--force", action="store_true", help="train even when the config has error-level red flags")
    p.add_argument("--runs-dir", default=argparse.SUPPRESS, help="where runs are kept (default: output.dir, ./runs)")
    p.add_argument("--json-events", action="store_true", help="print each event as a JSON line instead of the panel")
    d = p.add_argument_group("several GPUs, CPU processes or machines (through accelerate launch)")
    d.add_argument("--gpus", type=int, metavar="N", help="train on N GPUs of this machine (default: distributed.gpus)")
    d.add_argument("--processes", type=int, metavar="N", help="N CPU processes (gloo): the multi-process path anywhere")
    d.add_argument("--nodes", type=int, metavar="N", help="machines in the run; start the same command on each")
    d.add_argument("--node-rank", dest="node_rank", type=int, metavar="K", help="this machine's rank, 0 to N-1 (0: main)")
    d.add_argument("--main-addr", dest="main_addr", metavar="HOST", help="address of the machine with --node-rank 0")
    d.add_argument("--main-port", dest="main_port", type=int, metavar="P", help="its rendezvous port (default 29500)")
    d.add_argument("--print-launch", dest="print_launch", action="store_true",
                   help="create the run, print its `accelerate launch` command (for a cluster scheduler), start nothing")
    p.set_defaults(func=run)


def run_from_root(args) -> int:
    """`rankwise --preset NAME [--set k=v]` with no command: the same headless run."""
    return run(args)


def run(args) -> int:
    resume = getattr(args, "resume", None)
    run_dir = _prepare_resume(args) if resume else _prepare_new(args)
    events = run_dir / "events.jsonl"
    offset = events.stat().st_size if events.exists() else 0  # a resumed run's old events are history
    plan = getattr(args, "launch_plan", None)
    if getattr(args, "print_launch", False):
        return _print_launch(run_dir, plan, bool(resume), getattr(args, "force", False))
    proc = start_worker(run_dir, resume=bool(resume), force=getattr(args, "force", False), plan=plan)
    if plan is not None and plan.node_rank > 0:  # rank 0 (on the main machine) writes the events
        print(f"node {plan.node_rank} of {plan.nodes}: {run_dir.name} started (pid {proc.pid}); the event log and "
              f"the panel are on the main machine (--node-rank 0); output here: {run_dir / 'train.log'}", file=sys.stderr)
        return 0 if getattr(args, "detach", False) else (1 if proc.wait() else 0)
    if getattr(args, "detach", False):
        print(f"started {run_dir} (pid {proc.pid}); `rankwise attach {run_dir.name}` follows it", file=sys.stderr)
        print(run_dir.name)
        return 0
    return _follow(run_dir, proc, getattr(args, "json_events", False), offset)


# ------------------------------------------------------------------------ checking input


def _prepare_new(args) -> Path:
    from rankwise.advisor.config import load_config
    from rankwise.advisor.presets import resolve_preset
    from rankwise.trainer import rundir

    ref = getattr(args, "preset", None)
    if not ref:
        raise RankwiseError("train needs --preset NAME|FILE (or --resume RUN)",
                            "e.g. rankwise train --preset demo-cpu; `rankwise presets` lists the shipped ones")
    preset = resolve_preset(ref)
    cfg = load_config(preset, getattr(args, "overrides", None) or [])
    check_inputs(cfg, force=getattr(args, "force", False))
    args.launch_plan = plan_launch(args, cfg)
    root = rundir.runs_root(cfg, getattr(args, "runs_dir", None))
    rundir.check_writable(root)
    return rundir.create(root, rundir.run_name(cfg, preset), cfg)


def _prepare_resume(args) -> Path:
    from rankwise.trainer import rundir
    from rankwise.trainer.runs import find_run, run_info

    if getattr(args, "preset", None) or getattr(args, "overrides", None):
        raise RankwiseError("--resume continues a run with its own config.yaml: drop --preset/--set",
                            "to change settings, start a new run with `rankwise train --preset ...`")
    run_dir = find_run(Path(getattr(args, "runs_dir", None) or rundir.DEFAULT_RUNS_DIR), args.resume)
    info = run_info(run_dir)
    if info.status == "running":
        raise RankwiseError(f"run {info.id} is still running (pid {info.pid})",
                            f"`rankwise attach {info.id}` follows it; `rankwise stop {info.id}` stops it")
    if info.status == "finished":
        raise RankwiseError(f"run {info.id} already finished (step {info.step})",
                            "start a new run with `rankwise train --preset ...` (or raise max_steps in a new preset)")
    cfg = rundir.load_config(run_dir)
    check_inputs(cfg, force=getattr(args, "force", False))
    args.launch_plan = plan_launch(args, cfg, run_dir)
    rundir.check_writable(run_dir)
    latest = rundir.latest_checkpoint(run_dir)
    print(f"resuming {info.id} from " + (f"checkpoint {latest[0]}" if latest else "the start (no complete checkpoint)"),
          file=sys.stderr)
    return run_dir


def check_inputs(cfg, force: bool = False) -> None:
    """Model weights, data files and the advisor's error-level red flags, before anything is written."""
    from rankwise.advisor import hardware, redflags
    from rankwise.advisor.model import load_model
    from rankwise.trainer.worker import CATALOG_ONLY

    spec = load_model(cfg.model.name)
    if spec.source == "catalog" or not spec.path:
        raise RankwiseError(f"model.name {cfg.model.name!r} is a catalog entry: {CATALOG_ONLY}",
                            "e.g. model.name: /models/Llama-3.1-8B or a model id already in ~/.cache/huggingface")
    folder = Path(spec.path)
    weights = list(folder.glob("*.safetensors")) or list(folder.glob("*.safetensors.index.json"))
    if not weights:
        pickled = list(folder.glob("*.bin"))
        if not pickled:
            raise RankwiseError(f"{folder} has no model weights (*.safetensors)",
                                "point model.name at a folder with the weights, not just config.json")
        if not cfg.model.allow_unsafe_weights:
            raise RankwiseError(f"{folder} has only pickled .bin weights (pickle can run code)",
                                "convert them to safetensors, or set model.allow_unsafe_weights: true if you trust them")
    for key, path in (("data.path", cfg.data.path), ("data.val_path", cfg.data.val_path)):
        if key == "data.path" and not path:
            raise RankwiseError("no training data: data.path is not set", "set data.path in the preset or --set data.path=FILE")
        if path and not Path(path).exists():
            raise RankwiseError(f"{key} not found: {path}", "relative paths in a preset are resolved against its folder, with --set against the current directory")
        if path:
            _check_rows(key, path, cfg)
    if cfg.train.report_to == "tensorboard" and not any(map(_installed, ("tensorboard", "tensorboardX"))):
        raise RankwiseError("train.report_to: tensorboard, but tensorboard is not installed",
                            "pip install tensorboard, or set train.report_to: none (events.jsonl has every metric)")
    hw = hardware.probe()
    if cfg.train.precision == "fp16" and not hw.has_gpu:
        raise RankwiseError("train.precision fp16 needs a GPU (none found)", "set train.precision: auto (fp32 on CPU)")
    findings = redflags.check(cfg, spec, hw)  # warnings: the worker logs them as events
    errors = [f for f in findings if f.severity == "error"]
    if errors and not force:
        raise RankwiseError(f"{len(errors)} error-level red flag{'s' if len(errors) > 1 else ''}: {errors[0].message}",
                            f"{errors[0].fix}; or train anyway with --force")


def _check_rows(key: str, path: str, cfg) -> None:
    """Read every row once (no tokenizer, no torch) so a bad row stops us before the run dir exists.
    Rows that only tokenizing can reject (a response truncated away) are still caught by the worker."""
    from rankwise.advisor.dataset import scan, unknown_format

    found = scan(path, declared=cfg.data.format)
    if found.rows == 0:
        raise RankwiseError(f"{key}: {path} holds no rows", "point it at a file with training examples")
    if found.format is None:
        raise unknown_format(path, list(found.fields))
    if found.bad_rows and not cfg.data.skip_bad_rows:
        more = f" (and {found.bad_rows - 1} more bad row{'s' if found.bad_rows > 2 else ''})" if found.bad_rows > 1 else ""
        raise RankwiseError(f"{found.first_problems[0]}{more}",
                            "fix the row, or set data.skip_bad_rows: true to skip and count bad rows")
    if found.bad_rows == found.rows:
        raise RankwiseError(f"{key}: every row of {path} is bad, e.g. {found.first_problems[0]}",
                            "check the file's format (data.format) and fields")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ------------------------------------------------------------------------ the worker


def worker_command(run_dir: Path, resume: bool = False, force: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "rankwise.trainer.worker", str(run_dir.resolve())]
    return cmd + (["--resume"] if resume else []) + (["--force"] if force else [])


def plan_launch(args, cfg, resumed: Path | None = None):
    """--gpus/--processes/--nodes (over the preset's `distributed` group) → a trainer.launch.Launch,
    or None for one plain worker process. Bad flags are input errors, raised before the run dir exists.
    A resumed run without flags keeps its processes (sharded checkpoints need the same count)."""
    from rankwise.trainer import launch

    flags = {k: getattr(args, k, None) for k in ("gpus", "processes", "nodes", "node_rank", "main_addr", "main_port")}
    if resumed is not None and all(v is None for v in flags.values()):
        flags.update(launch.previous_flags(resumed))
    if all(v is None for v in flags.values()) and cfg.distributed.gpus == 1:
        plan = None
    else:
        from rankwise.advisor import hardware
        from rankwise.advisor.model import load_model

        plan = launch.plan(cfg, load_model(cfg.model.name), hardware.probe(), **flags)
    if plan is None and getattr(args, "print_launch", False):
        raise RankwiseError("--print-launch is for runs of several processes",
                            "add --gpus N, --processes N or --nodes N (one process: rankwise train --preset ...)")
    return plan


def _print_launch(run_dir: Path, plan, resume: bool, force: bool) -> int:
    from rankwise.trainer import launch

    config = launch.write_config(plan, run_dir)
    print(f"run {run_dir.name} created; start this on every machine (NODE_RANK 0 to {plan.nodes - 1}, with the run "
          "dir on a shared filesystem), e.g. NODE_RANK=$SLURM_NODEID:" if plan.nodes > 1 else
          f"run {run_dir.name} created; start it with:", file=sys.stderr)
    print(launch.printable(plan, config, run_dir, resume, force))
    return 0


def start_worker(run_dir: Path, resume: bool = False, force: bool = False, plan=None) -> subprocess.Popen:
    """The worker in its own session (an SSH drop or Ctrl-C in this terminal does not reach it).
    With a launch plan (several processes), `accelerate launch` starts the workers; rank 0 writes the events."""
    from rankwise.trainer.rundir import LOG

    cmd, env = worker_command(run_dir, resume, force), None
    if plan is not None:
        from rankwise.trainer import launch

        cmd = launch.command(plan, launch.write_config(plan, run_dir), run_dir, resume, force)
        env = launch.environment(plan)
    with open(run_dir / LOG, "ab") as log:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, env=env,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)


def _follow(run_dir: Path, proc: subprocess.Popen, json_events: bool, offset: int = 0) -> int:
    from rich.console import Console

    from rankwise.tui.panel import follow

    console = Console()

    def say(msg: str) -> None:
        if json_events or not console.is_terminal:
            print(msg, file=sys.stderr, flush=True)
        else:
            console.print(msg, highlight=False, markup=False)

    def forward(signum, frame):  # Ctrl-C here: the worker checkpoints and ends; we keep following
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            say(f"stopping {run_dir.name}: finishing the step and saving a checkpoint…")

    old = signal.signal(signal.SIGINT, forward)
    try:
        end = follow(run_dir, console=console, json_events=json_events, proc=proc, offset=offset)
    finally:
        signal.signal(signal.SIGINT, old)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    if end is None:
        say(f"{run_dir.name}: the worker exited without an end event (exit {proc.poll()}); see {run_dir / 'train.log'}")
        return 1
    status = end.get("status")
    if status == "finished":
        say(f"adapter: {end.get('adapter_path')}  ·  merge it: rankwise merge {run_dir.name}")
    elif status == "interrupted":
        say(f"{run_dir.name} stopped at step {end.get('step')}; `rankwise train --resume {run_dir.name}` continues it")
    return EXIT.get(status, end.get("exit_code") or 1)
