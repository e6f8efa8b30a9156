"""Flags and output helpers shared by the commands."""
from __future__ import annotations

import argparse
import json
import sys

from rankwise.advisor import hardware



def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def add_planning(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("planning for another machine (instead of the probe)")
    g.add_argument("--gpu-mem", metavar="SIZE", help="memory per GPU, e.g. 24GiB or 80GB")
    g.add_argument("--gpus", type=int, metavar="N", help="number of GPUs (0: plan for a machine without one)")
    g.add_argument("--gpu", metavar="NAME", help=f"a named GPU: {', '.join(hardware.GPU_TABLE)}")
    g.add_argument("--fetch-config", action="store_true", default=argparse.SUPPRESS,
                   help="for a Hugging Face id rankwise does not know: fetch just its config.json (no weights) "
                        "and keep it under <runs dir>/.model-configs ($RANKWISE_CACHE moves it); never when "
                        "HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set")
    g.add_argument("--price", type=float, metavar="PER_GPU_HOUR",
                   help="price of one GPU-hour for the cost figure (default: prices: in ~/.config/rankwise/config.yaml, "
                        "else a list price per named GPU)")


def add_launcher(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accelerate-config", metavar="FILE",
                        help="the accelerate config the run is launched with (`accelerate launch --config_file`): "
                             "its process count, FSDP/DeepSpeed, offload, sharding and mixed precision, under any "
                             "--gpus/--set given")


def launcher_from(args):
    """--accelerate-config FILE → its settings (advisor/launcher.Launch), or None; its process count becomes --gpus
    when --gpus is not given."""
    path = getattr(args, "accelerate_config", None)
    if not path:
        return None
    from rankwise.advisor.loader import read_launcher

    launch = read_launcher(path)
    if launch.gpus and getattr(args, "gpus", None) is None:
        args.gpus = launch.gpus
    return launch


def with_launcher(reading, launch):
    """A foreign reading with what the launcher says beyond rankwise keys: how FSDP saves checkpoints and a
    DeepSpeed ZeRO-1/2 stage (the training file's own wins where it says)."""
    if launch is None:
        return reading
    from dataclasses import replace

    return replace(reading, state_dict=reading.state_dict or launch.state_dict, zero=reading.zero or launch.zero)


def launcher_note(args, launch) -> list[str]:
    if launch is None:
        return []
    said = ", ".join(f"{k} {v}" for k, v in launch.values.items())
    head = f"from {args.accelerate_config}: {launch.gpus or 1} process(es)" + (f", {said}" if said else "")
    return [head, *launch.notes]


def hardware_from(args) -> hardware.Hardware:
    return hardware.resolve(getattr(args, "gpu_mem", None), getattr(args, "gpus", None), getattr(args, "gpu", None))


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
