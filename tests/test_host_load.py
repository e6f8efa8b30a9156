"""What host RAM an FSDP start costs on each rank (advisor/host_plan.py): under accelerate's FSDP with
cpu_ram_efficient_loading (what trainer/launch.py writes), transformers 5 still reads the whole model on every
rank, with the process group started or not. Two real gloo processes on the CPU, the shipped tiny Llama, this
transformers: if a later version loads on rank 0 alone, this test says so and the host plan can count one copy."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "presets" / "assets" / "tiny-llama"

RANK_SCRIPT = r"""
import json, os, sys
import torch
from accelerate import PartialState
PartialState()  # the process group, as the Trainer's accelerator starts it
import torch.distributed as dist
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
file = load_file(os.path.join(sys.argv[1], "model.safetensors"))
read = all(torch.equal(p.detach(), file[n]) for n, p in model.named_parameters() if n in file)
print(json.dumps({"rank": int(os.environ["RANK"]), "devices": sorted({p.device.type for p in model.parameters()}),
                  "read": read, "group": dist.is_initialized()}))
dist.barrier()
dist.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_every_rank_reads_the_whole_model():
    assert (TINY / "model.safetensors").is_file()
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "ACCELERATE_USE_CPU": "true",
               "ACCELERATE_USE_FSDP": "true", "FSDP_CPU_RAM_EFFICIENT_LOADING": "true", "CUDA_VISIBLE_DEVICES": "",
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, str(TINY)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    got = {}
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        row = json.loads(stdout.strip().splitlines()[-1])
        got[row["rank"]] = row
    assert got[0]["group"] and got[1]["group"]
    for rank in (0, 1):  # rank 1 too: the real weights, on the host
        assert got[rank]["devices"] == ["cpu"] and got[rank]["read"], got[rank]
