"""`rankwise train --preset NAME|FILE`: arguments in, trainer/start.py does the rest, the panel follows.

trainer/start.py checks everything a user can get wrong (preset, --set, model path, data
path, runs dir, error-level red flags, process flags) BEFORE the run directory exists: bad
input exits 2 and leaves nothing behind. It starts the worker in its own process session
with its output on train.log, so closing the terminal or losing SSH does not stop it. In
the foreground this command follows the run's event log with the panel; Ctrl-C asks the
worker to checkpoint and stop, and keeps following until its `end`.
Exit codes: 0 finished, 1 failed, 2 bad input, 130 interrupted.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

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
    p.add_argument("--price", type=float, metavar="PER_GPU_HOUR", help="price of one GPU-hour for the pre-launch cost "
                   "figure (default: the user config's prices:, else a list price per named GPU)")
    d = p.add_argument_group("several GPUs, CPU processes or machines (through accelerate launch)")
    d.add_argument("--gpus", type=int, metavar="N", help="train on N GPUs of this machine (default: distributed.gpus)")
    d.add_argument("--processes", type=int, metavar="N", help="N CPU processes (gloo): the multi-process path anywhere")
    d.add_argument("--nodes", type=int, metavar="N", help="machines in the run; start the same command on each")
    d.add_argument("--node-rank", dest="node_rank", type=int, metavar="K", help="this machine's rank, 0 to N-1 (0: main)")
    d.add_argument("--main-addr", dest="main_addr", metavar="HOST", help="address of the machine with --node-rank 0")
    d.add_argument("--main-port", dest="main_port", type=int, metavar="P", help="its rendezvous port (default 29500)")
    d.add_argument("--print-launch", dest="print_launch", action="store_true",
                   help="create the run, print its `accelerate launch` command (for a cluster scheduler), start nothing")
    p.set_defaults(func=run, preset_key="preset", set_key="overrides")


def run_from_root(args) -> int:
    """`rankwise --preset NAME [--set k=v]` with no command: the same headless run."""
    return run(args)


def run(args) -> int:
    from rankwise.trainer import start

    resume = getattr(args, "resume", None)
    prepared = start.prepare(getattr(args, "preset", None), getattr(args, "overrides", None) or [], resume=resume,
                             runs_dir=getattr(args, "runs_dir", None), force=getattr(args, "force", False),
                             flags=start.LaunchFlags.from_args(args))
    if resume:
        print(f"resuming {prepared.name} from " + (f"checkpoint {prepared.checkpoint}" if prepared.checkpoint is not None
                                                   else "the start (no complete checkpoint)"), file=sys.stderr)
    if getattr(args, "print_launch", False):
        return _print_launch(prepared)
    if not resume:
        _plan_line(prepared.cfg, prepared.root, getattr(args, "price", None))
    started = start.start(prepared)
    run_dir, plan, proc = started.run_dir, prepared.launch, started.proc
    if plan is not None and plan.node_rank > 0:  # rank 0 (on the main machine) writes the events
        print(f"node {plan.node_rank} of {plan.nodes}: {run_dir.name} started (pid {proc.pid}); the event log and "
              f"the panel are on the main machine (--node-rank 0); output here: {run_dir / 'train.log'}", file=sys.stderr)
        return 0 if getattr(args, "detach", False) else (1 if proc.wait() else 0)
    if getattr(args, "detach", False):
        print(f"started {run_dir} (pid {proc.pid}); `rankwise attach {run_dir.name}` follows it", file=sys.stderr)
        print(run_dir.name)
        return 0
    return _follow(run_dir, proc, getattr(args, "json_events", False), started.offset)


def _plan_line(cfg, runs_dir, price=None) -> None:
    """The pre-launch summary on stderr: peak memory, time, cost, host RAM and disk (advisor/forecast.py)."""
    from rankwise.advisor import hardware
    from rankwise.advisor.errors import RankwiseError
    from rankwise.advisor.fit import assess
    from rankwise.advisor.forecast import data_lengths, forecast
    from rankwise.advisor.model import load_model

    try:
        spec = load_model(cfg.model.name)
        where = Path(runs_dir).resolve()
        while not where.exists() and where != where.parent:  # the runs dir is created at start
            where = where.parent
        hw = hardware.probe(str(where))
        judged = assess(spec, cfg, hw, lengths=data_lengths(cfg, spec))  # as check_inputs judged the fit
        ahead = forecast(spec, cfg, judged, hw, price=price, runs_dir=runs_dir)
    except (RankwiseError, OSError):
        return  # the worker's own checks say what is wrong
    at = f", at the data's longest row ~{judged.lengths.longest:,} tokens" if judged.at_data else ""
    print(f"plan: peak ~{judged.peak_gib:.1f} GiB per GPU ({judged.method}{at}) · {ahead.line()}", file=sys.stderr)


def _print_launch(prepared) -> int:
    from rankwise.trainer import start

    run_dir, line = start.printable_launch(prepared)
    nodes = prepared.launch.nodes
    print(f"run {run_dir.name} created; start this on every machine (NODE_RANK 0 to {nodes - 1}, with the run "
          "dir on a shared filesystem), e.g. NODE_RANK=$SLURM_NODEID:" if nodes > 1 else
          f"run {run_dir.name} created; start it with:", file=sys.stderr)
    print(line)
    return 0


def _follow(run_dir: Path, proc: subprocess.Popen, json_events: bool, offset: int = 0) -> int:
    from rich.console import Console

    from rankwise.tui.terminal import follow

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
