"""Starting a run: `prepare` checks everything, `start` creates the run dir and starts the worker.

The CLI (`rankwise train`), the TUI (a launch from Presets or Advice) and the rank sweep (one
trial each) all start runs through these two functions, in their own process:

- `prepare(...)` reads the preset (or takes a config), then checks everything a user can get
  wrong — preset, --set, model weights, data rows, error-level red flags, the runs dir, the
  process flags (--gpus/--processes/--nodes) — and returns a `Prepared`. It writes nothing:
  bad input raises RankwiseError (exit 2) and leaves nothing behind.
- `start(prepared)` claims `<runs_dir>/<run-id>/` (a resumed run keeps its own), writes the
  resolved config and starts the worker in its own process session (`start_new_session`),
  with its output on train.log: closing the terminal, quitting the TUI or losing SSH does not
  stop it. Whether the caller then follows it (foreground) or lets it go (detached) is the
  caller's choice; the process is the same.

The worker command line is built here and only here (`worker_command`): one process runs
`python -m rankwise.trainer.worker RUN_DIR`, several go through `accelerate launch`
(trainer/launch.py). Nothing here prints: a TUI is on the terminal.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError

from . import launch as launching
from . import rundir
from .events import EVENTS_FILE


@dataclass(frozen=True)
class LaunchFlags:
    """--gpus/--processes/--nodes and friends; None: not given (the preset's `distributed` group decides)."""

    gpus: int | None = None
    processes: int | None = None
    nodes: int | None = None
    node_rank: int | None = None
    main_addr: str | None = None
    main_port: int | None = None

    @classmethod
    def from_args(cls, args) -> "LaunchFlags":
        return cls(**{f.name: getattr(args, f.name, None) for f in fields(cls)})

    def given(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class Prepared:
    """A run that passed every check. Nothing is written yet (a resumed run's dir exists already)."""

    cfg: RunConfig
    root: Path  # the runs dir
    name: str  # the run name (its id adds a timestamp)
    launch: launching.Launch | None  # None: one plain worker process
    run_dir: Path | None = None  # the run to resume; None: start() creates a new one
    force: bool = False
    checkpoint: int | None = None  # resume: the step of its last complete checkpoint (None: from the start)

    @property
    def resume(self) -> bool:
        return self.run_dir is not None


@dataclass
class Started:
    run_dir: Path
    proc: subprocess.Popen  # the worker (or `accelerate launch`), in its own session
    offset: int = 0  # bytes of events.jsonl before this start: a resumed run's old events are history

    @property
    def pid(self) -> int:
        return self.proc.pid


# ------------------------------------------------------------------------ prepare: every check, no writes


def prepare(preset: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), *,
            cfg: RunConfig | None = None, resume: str | None = None, runs_dir: str | Path | None = None,
            force: bool = False, flags: LaunchFlags = LaunchFlags()) -> Prepared:
    """A new run of `preset` (a shipped name or a YAML file, with `overrides` as --set) or of
    `cfg` (a config built in code, e.g. a sweep trial), or `resume` (a run id, prefix or dir)."""
    if resume:
        if preset or overrides or cfg is not None:
            raise RankwiseError("--resume continues a run with its own config.yaml: drop --preset/--set",
                                "to change settings, start a new run with `rankwise train --preset ...`")
        return _prepare_resume(resume, runs_dir, force, flags)
    ref = None
    if cfg is None:
        from rankwise.advisor.loader import load_config
        from rankwise.advisor.presets import resolve_preset

        if not preset:
            raise RankwiseError("train needs --preset NAME|FILE (or --resume RUN)",
                                "e.g. rankwise train --preset demo-cpu; `rankwise presets` lists the shipped ones")
        ref = resolve_preset(preset)
        cfg = load_config(ref, list(overrides))
    check_inputs(cfg, force=force)
    plan = plan_launch(cfg, flags)
    root = rundir.runs_root(cfg, str(runs_dir) if runs_dir else None)
    rundir.check_writable(root)
    return Prepared(cfg=cfg, root=root, name=rundir.run_name(cfg, ref), launch=plan, force=force)


def _prepare_resume(ref: str, runs_dir, force: bool, flags: LaunchFlags) -> Prepared:
    from .runs import find_run, run_info

    run_dir = find_run(Path(runs_dir or rundir.DEFAULT_RUNS_DIR), ref)
    info = run_info(run_dir)
    if info.status == "running":
        raise RankwiseError(f"run {info.id} is still running (pid {info.pid})",
                            f"`rankwise attach {info.id}` follows it; `rankwise stop {info.id}` stops it")
    if info.status == "finished":
        raise RankwiseError(f"run {info.id} already finished (step {info.step})",
                            "start a new run with `rankwise train --preset ...` (or raise max_steps in a new preset)")
    cfg = rundir.load_config(run_dir)
    check_inputs(cfg, force=force)
    plan = plan_launch(cfg, flags, run_dir)
    rundir.check_writable(run_dir)
    latest = rundir.latest_checkpoint(run_dir)
    return Prepared(cfg=cfg, root=run_dir.parent, name=run_dir.name, launch=plan, run_dir=run_dir, force=force,
                    checkpoint=latest[0] if latest else None)


def check_inputs(cfg: RunConfig, force: bool = False) -> None:
    """Model weights, data files and the advisor's error-level red flags, before anything is written."""
    from rankwise.advisor import hardware, redflags
    from rankwise.advisor.model import load_model

    from .loading import weights_dir

    spec = load_model(cfg.model.name)
    folder = Path(weights_dir(spec, cfg))
    weights = list(folder.glob("*.safetensors")) or list(folder.glob("*.safetensors.index.json"))
    if not weights:
        pickled = list(folder.glob("*.bin"))
        if not pickled:
            raise RankwiseError(f"{folder} has no model weights (*.safetensors)",
                                "point model.name at a folder with the weights, not just config.json")
        if not cfg.model.allow_unsafe_weights:
            raise RankwiseError(f"{folder} has only pickled .bin weights (pickle can run code)",
                                "convert them to safetensors, or set model.allow_unsafe_weights: true if you trust them")
    from rankwise.advisor.chat_templates import template_text

    template_text(cfg.model.chat_template)  # a file that cannot be read or a template that does not parse: exit 2
    for key, path in (("data.path", cfg.data.path), ("data.val_path", cfg.data.val_path)):
        if key == "data.path" and not path:
            raise RankwiseError("no training data: data.path is not set", "set data.path in the preset or --set data.path=FILE")
        if path and not Path(path).exists():
            raise RankwiseError(f"{key} not found: {path}", "relative paths in a preset are resolved against its folder, with --set against the current directory")
        fmt = check_rows(key, path, cfg) if path else None
        if fmt in ("chat", "sharegpt") and not cfg.model.chat_template:
            from rankwise.advisor.chat_templates import folder_has_template

            if not folder_has_template(folder):  # a base model's tokenizer: said before the run dir exists
                from .data import no_template

                raise no_template(path, fmt)
    if cfg.train.report_to == "tensorboard" and not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        raise RankwiseError("train.report_to: tensorboard, but tensorboard is not installed",
                            "pip install tensorboard, or set train.report_to: none (events.jsonl has every metric)")
    hw = hardware.probe()
    if cfg.train.precision == "fp16" and not hw.has_gpu:
        raise RankwiseError("train.precision fp16 needs a GPU (none found)", "set train.precision: auto (fp32 on CPU)")
    from .loading import kernel_options  # the worker's own check (attention kernel, Liger), before a run dir exists
    kernel_options(cfg, "cuda" if hw.has_gpu else "cpu", spec.config.get("model_type"))
    from rankwise.advisor import adapter_from
    from rankwise.advisor.methods import METHODS

    method = METHODS.get(cfg.method)
    adapter_from.check(cfg, spec, dora=method is not None and method.dora)  # a trained adapter to start from
    from .adapter_init import check_options  # lora.init / LoRA+ (the worker checks again with the resolved method)
    check_options(cfg, "cuda" if hw.has_gpu else "cpu",
                  cfg.distributed.strategy in ("fsdp", "deepspeed") and cfg.distributed.gpus != 1)
    from rankwise.advisor.forecast import data_lengths

    # warnings: the worker logs them as events; the fit at the data's longest row, as the collator pads each batch
    findings = redflags.check(cfg, spec, hw, lengths=data_lengths(cfg, spec))
    errors = [f for f in findings if f.severity == "error"]
    for f in errors:  # the launcher has no such combination: --force cannot start it either
        if f.code in redflags.UNFORCEABLE:
            raise RankwiseError(f.message, f.fix)
    if errors and not force:
        raise RankwiseError(f"{len(errors)} error-level red flag{'s' if len(errors) > 1 else ''}: {errors[0].message}",
                            f"{errors[0].fix}; or train anyway with --force")


def check_rows(key: str, path: str, cfg: RunConfig) -> str:
    """Read every row once (no tokenizer, no torch) so a bad row stops us before the run dir exists; the rows'
    format. Rows that only tokenizing can reject (a response truncated away) are still caught by the worker."""
    from rankwise.advisor.dataset import preference_error, unknown_format

    from .data_cache import scan_once  # remembered by content: a re-run or sweep trial does not read it again

    found = scan_once(path, cfg.data.format, cfg.data.columns)
    if found.rows == 0:
        raise RankwiseError(f"{key}: {path} holds no rows", "point it at a file with training examples")
    if found.format is None:
        raise unknown_format(path, list(found.fields))
    if found.format == "preference":
        raise preference_error(path, dict.fromkeys(found.fields))
    if found.bad_rows and not cfg.data.skip_bad_rows:
        more = (f" (and {found.bad_rows - 1} more bad row{'s' if found.bad_rows > 2 else ''}: "
                + "; ".join(found.first_problems[1:3]) + (", ..." if found.bad_rows > 3 else "") + ")"
                if found.bad_rows > 1 else "")
        raise RankwiseError(f"{found.first_problems[0]}{more}",
                            "fix the rows, or set data.skip_bad_rows: true to skip and count bad rows")
    if found.bad_rows == found.rows:
        raise RankwiseError(f"{key}: every row of {path} is bad, e.g. {found.first_problems[0]}",
                            "check the file's format (data.format) and fields")
    return found.format


def plan_launch(cfg: RunConfig, flags: LaunchFlags = LaunchFlags(), resumed: Path | None = None):
    """The process flags (over the preset's `distributed` group) → a trainer.launch.Launch, or None
    for one plain worker process. Bad flags are input errors, raised before the run dir exists.
    A resumed run without flags keeps its processes (sharded checkpoints need the same count)."""
    given = flags.given()
    if resumed is not None and not given:
        given = launching.previous_flags(resumed)
    if not given and cfg.distributed.gpus == 1:
        launching.one_process(cfg)  # offload / FSDP sharding / fp32 master need a sharded launch: exit 2
        return None
    from rankwise.advisor import hardware
    from rankwise.advisor.model import load_model

    return launching.plan(cfg, load_model(cfg.model.name), hardware.probe(), **given)


# ------------------------------------------------------------------------ start: the run dir and the worker


def worker_command(run_dir: Path, resume: bool = False, force: bool = False,
                   plan: launching.Launch | None = None, env: dict | None = None) -> tuple[list[str], dict | None]:
    """The one place the worker's command line is built: (argv, environment; None = this one's).
    With a launch plan (several processes), `accelerate launch` starts the workers; rank 0 writes the events."""
    if plan is None:
        return [sys.executable, "-m", launching.WORKER, *launching.worker_args(run_dir, resume, force)], env
    config = launching.write_config(plan, run_dir)
    return launching.command(plan, config, run_dir, resume, force), launching.environment(plan, env)


def create(prepared: Prepared) -> Path:
    """The run dir with its config.yaml (a resumed run's own dir)."""
    if prepared.run_dir is not None:
        return prepared.run_dir
    return rundir.create(prepared.root, prepared.name, prepared.cfg)


def start(prepared: Prepared, env: dict | None = None) -> Started:
    """Create the run dir (a new run) and start its worker in its own process session, output on
    train.log. `env`: the worker's environment (default this process's), e.g. one GPU of a sweep."""
    run_dir = create(prepared)
    events = run_dir / EVENTS_FILE
    offset = events.stat().st_size if events.exists() else 0
    cmd, env = worker_command(run_dir, prepared.resume, prepared.force, prepared.launch, env)
    with open(run_dir / rundir.LOG, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, close_fds=True)
    # until the worker's start event (after libraries, data and model: minutes for a big model) this
    # is the only record of its pid; `rankwise stop` and the TUI read it (runs.run_info)
    (run_dir / rundir.PID).write_text(f"{proc.pid}\n")
    return Started(run_dir=run_dir, proc=proc, offset=offset)


def printable_launch(prepared: Prepared, rank_var: str | None = "NODE_RANK") -> tuple[Path, str]:
    """Create the run (and its accelerate.yaml) without starting it; the `accelerate launch` line
    for a cluster scheduler. Needs a launch plan (several processes)."""
    if prepared.launch is None:
        raise RankwiseError("--print-launch is for runs of several processes",
                            "add --gpus N, --processes N or --nodes N (one process: rankwise train --preset ...)")
    run_dir = create(prepared)
    config = launching.write_config(prepared.launch, run_dir)
    return run_dir, launching.printable(prepared.launch, config, run_dir, prepared.resume, prepared.force, rank_var)
