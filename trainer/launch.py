"""Launching a run on several processes: the `accelerate launch` command line and its config.

One process (the default) runs `python -m rankwise.trainer.worker RUN_DIR` as before. More
than one — `--gpus N`, `--processes N` (CPU), `--nodes N` — goes through `accelerate launch`
with a config YAML written into the run directory (`accelerate.yaml`), so the standard engine
(torchrun underneath, DDP / FSDP / DeepSpeed inside the HF Trainer) does the distribution:

- DDP: `distributed_type: MULTI_GPU`, a full copy per GPU.
- FSDP: `distributed_type: FSDP` with the options the PEFT(+QLoRA) recipe needs (peft docs,
  accelerate/fsdp.md, "Use PEFT QLoRA and FSDP"; accelerate 1.15 `accelerate launch --help`,
  FSDP arguments): FSDP v1 (`fsdp_use_orig_params` and `fsdp_sharding_strategy` are v1 options;
  transformers 5's PEFT integration updates the v1 plugin: `update_fsdp_plugin_peft`),
  TRANSFORMER_BASED_WRAP on the model's decoder layer class, FULL_SHARD, SHARDED_STATE_DICT,
  `use_orig_params: false` (needed for PEFT's memory savings), `cpu_ram_efficient_loading:
  true` with `sync_module_states: true` (accelerate requires the pair), no CPU offload.
- DeepSpeed ZeRO-3: `distributed_type: DEEPSPEED`, `zero_stage: 3` (only when `deepspeed` is
  importable).
- CPU processes: accelerate's `--cpu` flag alone starts ONE process (its simple launcher needs
  mpirun for more); the multi-process (torchrun) launcher with `use_cpu: true` starts N
  processes that meet over gloo, so that is what `--processes N` writes. CUDA is hidden from
  them (`CUDA_VISIBLE_DEVICES=""`) so they train on the CPU even on a GPU machine.
- Several machines: `num_machines`, `machine_rank`, `main_process_ip`, `main_process_port`.

No torch here: the CLI builds and prints commands without loading it.
"""
from __future__ import annotations

import importlib.util
import os
import shlex
import socket
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from rankwise.advisor import fit, sharding
from rankwise.advisor import config
from rankwise.advisor.config import with_values
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.plan import Plan

CONFIG_FILE = "accelerate.yaml"
DEFAULT_PORT = 29500  # torchrun's default rendezvous port
STRATEGIES = (*config.STRATEGIES, "cpu")  # the schema's strategies, and CPU processes (gloo)
WORKER = "rankwise.trainer.worker"
# distributed.fsdp_sharding -> FSDP v1 ShardingStrategy names (accelerate's fsdp_sharding_strategy)
FSDP_SHARDING = {"full": "FULL_SHARD", "shard_grad_op": "SHARD_GRAD_OP", "hybrid": "HYBRID_SHARD",
                 "no_shard": "NO_SHARD"}


@dataclass(frozen=True)
class Launch:
    """How many processes, where, and which strategy. `processes` is per machine."""

    strategy: str  # ddp | fsdp | deepspeed | cpu
    processes: int
    nodes: int = 1
    node_rank: int = 0
    main_addr: str | None = None
    main_port: int = DEFAULT_PORT
    mixed_precision: str = "bf16"  # bf16 | fp16 | no
    layer_cls: str | None = None  # the decoder layer class FSDP wraps, e.g. LlamaDecoderLayer
    offload: str = "none"  # distributed.offload: none | params | params_and_optimizer (advisor/sharding.py)
    sharding: str = "full"  # distributed.fsdp_sharding: full | shard_grad_op | hybrid | no_shard
    ds_config: str | None = None  # distributed.deepspeed_config: a DeepSpeed JSON passed to accelerate as it is

    @property
    def total_processes(self) -> int:
        return self.processes * self.nodes

    @property
    def distributed(self) -> bool:
        return self.total_processes > 1


def check(launch: Launch) -> None:
    """Impossible launches, as user errors naming the flag."""
    if launch.strategy not in STRATEGIES:
        raise RankwiseError(f"unknown strategy {launch.strategy!r}", f"use one of {', '.join(config.STRATEGIES)}")
    if launch.processes < 1:
        raise RankwiseError(f"--gpus/--processes: {launch.processes} is not a process count", "give 1 or more")
    if launch.nodes < 1:
        raise RankwiseError(f"--nodes: {launch.nodes} is not a machine count", "give 1 or more")
    if not 0 <= launch.node_rank < launch.nodes:
        raise RankwiseError(f"--node-rank {launch.node_rank} is outside 0..{launch.nodes - 1}",
                            "number the machines 0 (the main one) to --nodes minus 1")
    if launch.nodes > 1 and not launch.main_addr:
        raise RankwiseError("--nodes > 1 needs --main-addr HOST (the address of the machine with --node-rank 0)",
                            "e.g. --main-addr 10.0.0.1 --main-port 29500 on every machine")
    if not 1 <= launch.main_port <= 65535:
        raise RankwiseError(f"--main-port {launch.main_port} is not a TCP port", "e.g. --main-port 29500")
    if launch.strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise RankwiseError("distributed.strategy deepspeed, but deepspeed is not installed",
                            "pip install 'rankwise[deepspeed]' (or pip install deepspeed), or use distributed.strategy: fsdp")


def decoder_layer_class(model_config: dict) -> str | None:
    """The transformers class of one decoder layer (`LlamaForCausalLM` → `LlamaDecoderLayer`),
    from config.json's `architectures`; None when the config does not say."""
    for arch in model_config.get("architectures") or ():
        if arch.endswith("ForCausalLM"):
            return arch[: -len("ForCausalLM")] + "DecoderLayer"
    return None


def accelerate_config(launch: Launch) -> dict:
    """The accelerate config (what `accelerate config` would write) for this launch."""
    check(launch)
    cfg: dict = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "num_machines": launch.nodes,
        "machine_rank": launch.node_rank,
        "num_processes": launch.total_processes,  # accelerate counts processes over all machines
        "mixed_precision": "no" if launch.strategy == "cpu" else launch.mixed_precision,
        "rdzv_backend": "static",
        "same_network": True,
        "main_training_function": "main",
        "downcast_bf16": "no",
        "use_cpu": launch.strategy == "cpu",
    }
    if launch.nodes > 1:
        cfg["main_process_ip"] = launch.main_addr
        cfg["main_process_port"] = launch.main_port
    if launch.strategy in ("ddp", "cpu"):
        cfg["distributed_type"] = "MULTI_GPU"  # torchrun; with use_cpu the processes meet over gloo
        cfg["gpu_ids"] = "all"
    elif launch.strategy == "fsdp":
        cfg["distributed_type"] = "FSDP"
        fsdp = {
            "fsdp_version": 1,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_sharding_strategy": FSDP_SHARDING[launch.sharding],
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_offload_params": launch.offload == "params_and_optimizer",  # params, grads and optimizer on CPU
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_sync_module_states": True,  # required with cpu_ram_efficient_loading (rank 0 loads, broadcasts)
            "fsdp_use_orig_params": False,  # PEFT: frozen and trainable params in separate units, real savings
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_forward_prefetch": False,
            "fsdp_activation_checkpointing": False,  # the Trainer's gradient checkpointing does it
        }
        if launch.layer_cls:
            fsdp["fsdp_transformer_layer_cls_to_wrap"] = launch.layer_cls
        cfg["fsdp_config"] = fsdp
    elif launch.ds_config:
        # the file holds the ZeRO settings and the precision: accelerate refuses its own offload, stage and
        # mixed_precision keys beside a deepspeed_config_file (DeepSpeedPlugin._deepspeed_config_checks)
        cfg["distributed_type"] = "DEEPSPEED"
        cfg["deepspeed_config"] = {"deepspeed_config_file": launch.ds_config, "zero3_init_flag": True}
        del cfg["mixed_precision"]
    else:
        cfg["distributed_type"] = "DEEPSPEED"
        cfg["deepspeed_config"] = {"zero_stage": 3, "zero3_init_flag": True, "zero3_save_16bit_model": True,
                                   "offload_optimizer_device": "cpu" if launch.offload == "params_and_optimizer" else "none",
                                   "offload_param_device": "cpu" if launch.offload != "none" else "none"}
    return cfg


def write_config(launch: Launch, run_dir: Path) -> Path:
    """`<run_dir>/accelerate.yaml`, written through a temporary file and a rename. A DeepSpeed JSON is the run's own
    copy (rundir.keep_deepspeed_config), so a resume runs the settings the run started with."""
    from .rundir import keep_deepspeed_config

    path = Path(run_dir).resolve() / CONFIG_FILE
    if launch.ds_config:
        launch = replace(launch, ds_config=str(keep_deepspeed_config(run_dir, launch.ds_config)))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(accelerate_config(launch), sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def worker_args(run_dir: Path, resume: bool = False, force: bool = False) -> list[str]:
    return [str(Path(run_dir).resolve())] + (["--resume"] if resume else []) + (["--force"] if force else [])


def launch_args(launch: Launch, config_path: Path) -> list[str]:
    """`accelerate launch` options (after the program name) up to the worker module."""
    args = ["--config_file", str(config_path), "--num_processes", str(launch.total_processes),
            "--num_machines", str(launch.nodes), "--machine_rank", str(launch.node_rank),
            "--main_process_port", str(launch.main_port)]
    if launch.nodes > 1:
        args += ["--main_process_ip", str(launch.main_addr)]
    return args + ["-m", WORKER]


def command(launch: Launch, config_path: Path, run_dir: Path, resume: bool = False, force: bool = False,
            python: str | None = None) -> list[str]:
    """The argv that starts every local process of the run (accelerate from this interpreter)."""
    return ([python or sys.executable, "-m", "accelerate.commands.launch"] + launch_args(launch, config_path)
            + worker_args(run_dir, resume, force))


def environment(launch: Launch, base: dict | None = None) -> dict:
    """The environment for the launcher: CPU runs see no GPU; nothing is downloaded."""
    env = dict(os.environ if base is None else base)
    if launch.strategy == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def printable(launch: Launch, config_path: Path, run_dir: Path, resume: bool = False, force: bool = False,
              rank_var: str | None = "NODE_RANK") -> str:
    """The command for a cluster scheduler, one line, shell-quoted: `accelerate launch ...`.

    With several machines and `rank_var` set, the machine rank is left to the scheduler as
    `${NODE_RANK}` (e.g. `NODE_RANK=$SLURM_NODEID`), so the same line runs on every machine."""
    parts = [shlex.quote(a) for a in ["accelerate", "launch", *launch_args(launch, config_path),
                                      *worker_args(run_dir, resume, force)]]
    if launch.nodes > 1 and rank_var:
        i = parts.index("--machine_rank")
        parts[i + 1] = "${" + rank_var + "}"
    env = "CUDA_VISIBLE_DEVICES= " if launch.strategy == "cpu" else ""
    return env + " ".join(parts)


def free_port(default: int = DEFAULT_PORT) -> int:
    """A free local TCP port for a one-machine rendezvous, so two runs on one machine do not collide."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    except OSError:
        return default


def is_main_process(env: dict | None = None) -> bool:
    """Rank 0 of the whole run (torchrun/accelerate set RANK); a plain single process is rank 0 too."""
    env = os.environ if env is None else env
    return int(env.get("RANK", "0") or 0) == 0


def world_size(env: dict | None = None) -> int:
    env = os.environ if env is None else env
    return int(env.get("WORLD_SIZE", "1") or 1)


def launched_with(*plugins: str) -> bool:
    """Did `accelerate launch` start this process with one of `plugins` ("FSDP", "DEEPSPEED") on (its
    ACCELERATE_USE_<PLUGIN> environment flag)?"""
    return any(os.environ.get(f"ACCELERATE_USE_{p}", "").lower() in ("1", "true") for p in plugins)


def mixed_precision(precision: str, bf16: bool) -> str:
    """train.precision → accelerate's mixed_precision (auto: bf16 where the GPUs have it, else fp16)."""
    # fp32_master: the model loads in fp32 and FSDP's MixedPrecision (accelerate builds it from "bf16") gathers
    # and computes in bf16 while the shards stay fp32
    return {"fp32": "no", "pure_bf16": "no", "fp16": "fp16", "bf16": "bf16", "fp32_master": "bf16"}.get(
        precision, "bf16" if bf16 else "fp16")


def plan(cfg, spec, hw, *, gpus: int | None = None, processes: int | None = None, nodes: int | None = None,
         node_rank: int | None = None, main_addr: str | None = None, main_port: int | None = None,
         method: str | None = None) -> Launch | None:
    """Flags (over the preset's `distributed` group) → a Launch, or None for one plain process.

    `hw` is the local machine (advisor.hardware.Hardware): `gpus: auto` means all its GPUs,
    and `distributed.strategy: auto` asks the advisor (DDP when a full copy fits one GPU with
    headroom, else FSDP)."""
    if gpus is not None and processes is not None:
        raise RankwiseError("--gpus and --processes together", "--gpus N trains on GPUs, --processes N on the CPU")
    for flag, value, low in (("--gpus", gpus, 1), ("--processes", processes, 1), ("--nodes", nodes, 1),
                             ("--node-rank", node_rank, 0), ("--main-port", main_port, 1)):
        if value is not None and value < low:
            raise RankwiseError(f"{flag} {value} is below {low}", f"e.g. {flag} {max(low, 1) if low else 0}")
    nodes, node_rank = nodes or 1, node_rank or 0
    if node_rank and nodes == 1:
        raise RankwiseError(f"--node-rank {node_rank} without --nodes", "give --nodes N (the number of machines)")
    visible = hw.gpu_count if hw is not None else 0
    if processes is not None:
        strategy, count = "cpu", processes
    else:
        count = cfg.distributed.gpus if gpus is None else gpus
        if count == "auto":
            count = max(1, visible)
        if count > 1 and visible < count:
            raise RankwiseError(f"{'--gpus' if gpus is not None else 'distributed.gpus'} {count}, but "
                                f"{visible or 'no'} GPU{'s' if visible != 1 else ''} visible here",
                                "use fewer GPUs, `--processes N` to train on the CPU, or distributed.gpus: auto")
        strategy = cfg.distributed.strategy
        if strategy == "auto":
            if count * nodes > 1 and spec is not None:  # the advisor's one answer for this many GPUs
                judged = fit.assess(spec, with_values(cfg, {"distributed.gpus": count * nodes}), hw, method=method)
                strategy = judged.estimate.plan.strategy
            else:
                strategy = "ddp"
    if count * nodes == 1:
        one_process(cfg)
        return None  # one process: plain python, as always
    launch = Launch(strategy=strategy, processes=count, nodes=nodes, node_rank=node_rank, main_addr=main_addr,
                    main_port=main_port or (DEFAULT_PORT if nodes > 1 else free_port()),
                    mixed_precision=mixed_precision(cfg.train.precision, bool(hw is not None and hw.bf16)),
                    layer_cls=decoder_layer_class(spec.config) if spec is not None else None,
                    offload=cfg.distributed.offload, sharding=cfg.distributed.fsdp_sharding,
                    ds_config=cfg.distributed.deepspeed_config if strategy == "deepspeed" else None)
    # offload, FSDP sharding and fp32 master weights this strategy cannot run: the estimator's own rules
    sharding.check(Plan.from_config(cfg, method=method, gpus=count * nodes, strategy=strategy))
    if launch.ds_config:
        from rankwise.advisor import deepspeed_file

        problem = deepspeed_file.precision_problem(deepspeed_file.read(launch.ds_config), launch.mixed_precision)
        if problem:
            raise RankwiseError(f"{problem}: the HF Trainer refuses the pair when the run starts",
                                'write "enabled": "auto" in the file\'s bf16 and fp16 sections (the Trainer fills '
                                "them from train.precision), or set train.precision to match")
    check(launch)
    return launch


def one_process(cfg) -> None:
    """The FSDP/ZeRO-3 options are bad input for a run of one process (rankwise trains one GPU without FSDP)."""
    sharded_only = [f"{k} {v}" for k, v, used in (
        ("distributed.offload", cfg.distributed.offload, cfg.distributed.offload != "none"),
        ("distributed.fsdp_sharding", cfg.distributed.fsdp_sharding, cfg.distributed.fsdp_sharding != "full"),
        ("train.precision", cfg.train.precision, cfg.train.precision == "fp32_master"),
        ("distributed.deepspeed_config", cfg.distributed.deepspeed_config, bool(cfg.distributed.deepspeed_config)))
        if used]
    if sharded_only:
        raise RankwiseError(f"{', '.join(sharded_only)}: FSDP/ZeRO-3 options, and this run is one process "
                            "(rankwise trains one GPU without FSDP)",
                            "train on --gpus 2 or more with distributed.strategy: fsdp, or drop the option")


def previous_flags(run_dir: Path) -> dict:
    """The process flags a run was started with, read back from its accelerate.yaml (one
    machine only: a multi-machine resume names its nodes again). {} when it ran as one process."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        conf = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    n = conf.get("num_processes")
    if not isinstance(n, int) or n < 2 or conf.get("num_machines", 1) != 1:
        return {}
    return {"processes": n} if conf.get("use_cpu") else {"gpus": n}
