"""bench/gpu_suite.py is ready for the first GPU session: its dry run (tiny shapes of the same
architectures, on the CPU) goes through every step a GPU run takes — random-weight model folder,
preset, `rankwise estimate`, `rankwise train`, the CSV row, the bare-HF throughput comparison."""
import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_dry_run_writes_a_row_per_case_and_the_throughput_line(tmp_path):
    out = tmp_path / "gpu.csv"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_suite.py"), "--dry-run", "--models", "llama-3.2-1b",
                        "--max-cases", "1", "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1
    row = rows[0]
    assert (row["model"], row["method"], row["status"]) == ("llama-3.2-1b", "lora", "ok")
    assert float(row["est_peak_gib"]) > 0 and float(row["tokens_per_s"]) > 0 and float(row["planned_tokens_per_s"]) > 0
    assert row["nvml_peak_gib"] == "" and "no GPU figure" in row["note"]  # the CPU has none: said, not faked
    assert row["unused_adapters"] == ""  # the run's adapters event: every adapter got its gradient
    line = next(l for l in p.stdout.splitlines() if l.startswith("throughput ("))
    assert "rankwise" in line and "bare HF Trainer" in line and "ratio" in line


def test_case_order_puts_the_headline_cases_first():
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_suite

    todo = gpu_suite.cases(list(gpu_suite.MODELS), liger=True)
    assert [(c["model"], c["method"]) for c in todo[:4]] == [
        ("llama-3.2-1b", "lora"), ("llama-3.2-1b", "qlora"), ("llama-3.1-8b", "lora"), ("llama-3.1-8b", "qlora")]
    assert all(c["seq"] == 2048 and c["grad_ckpt"] for c in todo[:4])
    assert len({tuple(sorted(c.items())) for c in todo}) == len(todo)  # no case twice
    extra = {gpu_suite.MOE, gpu_suite.DENSE_MOE, gpu_suite.HYBRID, gpu_suite.MAMBA_HYBRID, gpu_suite.PURE_MAMBA}
    assert {c["model"] for c in todo} == set(gpu_suite.MODELS) | extra
    assert todo[4] == {**todo[1], "model": gpu_suite.MOE}  # the MoE under QLoRA right after the headline cases
    assert not [c for c in gpu_suite.cases(list(gpu_suite.MODELS), liger=False) if c["kernels"] == "liger"]
    chunked = [c for c in todo if c["loss"] == "chunked"]  # train.loss chunked, measured beside the standard loss
    assert [c["model"] for c in chunked] == list(gpu_suite.MODELS[:2]) and all(c["kernels"] == "none" for c in chunked)


@pytest.mark.slow
def test_fsdp_probe_dry_run_writes_the_three_variants_and_the_4bit_start(tmp_path):
    """bench/gpu_fsdp_probe.py's CPU run: each variant in its own process, the hold around the units against
    the estimate's (the GPU run adds allocated/reserved after wrapping and at the peak)."""
    out = tmp_path / "fsdp.csv"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_fsdp_probe.py"), "--dry-run", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = {r["variant"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {"around", "inside", "around-nonreentrant", "inside-offload", "qlora-start"}
    # FSDP's CPU offload pins host memory: the CPU cannot run it, and its row says so instead of a figure
    offload = rows.pop("inside-offload")
    assert offload["note"].startswith("not run: ") and offload["peak_allocated_mib"] == ""
    # the 4-bit start rankwise's worker makes under FSDP: on the CPU bitsandbytes quantizes there, FSDP wraps it
    assert "loaded by transformers under FSDP onto cpu" in rows["qlora-start"]["note"]
    assert float(rows["qlora-start"]["static_est_mib"]) > 0
    assert all(r["device"] == "cpu" and r["peak_reserved_mib"] == "" for r in rows.values())  # no GPU figure faked
    hold, measured = float(rows["around"]["est_hold_mib"]), float(rows["around"]["around_minus_inside_mib"])
    assert hold > 0 and abs(measured - hold) <= 0.25 * hold, (measured, hold)
    assert "around - inside" in p.stdout
    # the replayed reserve after wrapping sits beside the GPU's (empty on the CPU: no reserved figure there)
    assert all(float(r["wrap_reserved_est_mib"]) >= float(r["static_est_mib"]) > 0 for r in rows.values())
    assert all(r["wrap_reserved_mib"] == "" for r in rows.values())


# The device image's Python packages (../.library/device/KINDS.md, "Python packages already there", read
# 2026-11-17), the ones rankwise's dependency tree can touch.
DEVICE_IMAGE = {"torch", "transformers", "peft", "accelerate", "safetensors", "pyarrow", "psutil", "nvidia-ml-py",
                "pyyaml", "numpy", "triton", "huggingface-hub", "tokenizers", "packaging", "filelock", "fsspec",
                "jinja2", "networkx", "sympy", "regex", "requests", "tqdm", "setuptools", "wheel", "pip"}


def _name(requirement: str) -> str:
    import re

    return re.split(r"[ ;<>=!~\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


GPU_ONLY = ("liger-kernel", "cut-cross-entropy", "fla-core", "flash-linear-attention")  # pinned, not installed here


def test_the_gpu_bundle_carries_what_the_device_image_lacks():
    """Every runtime dependency of rankwise, and every requirement of what the bundle carries (at the versions
    installed here, which bench/gpu_bundle.sh downloads), is in the device image or in bench/gpu_wheels.txt."""
    import importlib.metadata as md

    carried = {}
    for line in (ROOT / "bench" / "gpu_wheels.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            carried[_name(name)] = pinned.strip()
    have = DEVICE_IMAGE | set(carried)
    deps = [_name(r) for r in md.requires("rankwise") if "extra ==" not in r]
    assert set(deps) <= have, set(deps) - have
    checked = 0
    for name, pinned in carried.items():
        try:
            requires = md.requires(name) or ()
        except md.PackageNotFoundError:  # GPU-only extras: pinned in the file instead
            assert pinned, f"{name} is neither installed here nor pinned in bench/gpu_wheels.txt"
            continue
        needs = {_name(r) for r in requires if "extra ==" not in r and "sys_platform" not in r
                 and "platform_system" not in r}
        assert needs <= have, (name, needs - have)
        checked += 1
    assert checked >= len(carried) - len(GPU_ONLY)
    device = (ROOT / "bench" / "gpu_device.sh").read_text()
    assert "--find-links .gpu-wheels" in device and "gpu_suite.py" in device and "$OUT" in device
    # the FSDP probe's own call (GPU_PART=fsdp): the suite's cases spend the main call's budget before its turn
    assert 'if [ "${GPU_PART:-main}" = fsdp ]; then' in device and "gpu_fsdp_probe.py --out \"$OUT/" in device


def test_full_fine_tune_probe_dry_run_trains_each_case_beside_its_estimate(tmp_path):
    """bench/gpu_full_probe.py: a full fine-tune (no adapter) of a 2-layer llama-3.2-1b with the HF Trainer on the
    CPU, each case beside check's estimate of the full-size model; the device script runs it."""
    out = tmp_path / "full.csv"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_full_probe.py"), str(out), "--dry-run"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert [(r["grad_accum"], r["grad_ckpt"]) for r in rows] == [("1", "True"), ("4", "True"), ("1", "False")]
    assert all(r["status"] == "dry-run" and float(r["est_peak_gib"]) > float(r["est_allocated_gib"]) > 0 for r in rows)
    # gradients beside the forward only when they accumulate: the 4-micro-batch case estimates more
    assert float(rows[1]["est_allocated_gib"]) > float(rows[0]["est_allocated_gib"])
    assert "gpu_full_probe.py" in (ROOT / "bench" / "gpu_device.sh").read_text()


def test_cce_and_activation_offload_cases_write_presets_rankwise_reads(tmp_path):
    """Cut Cross-Entropy rows only where its package is (the device's image has Triton), and activation offload as a
    pair beside the same run without it; each case's preset is one rankwise loads as written."""
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_suite
    from rankwise.advisor.loader import load_config

    models = list(gpu_suite.MODELS)
    assert not [c for c in gpu_suite.cases(models, liger=False) if c["loss"] == "cce"]
    todo = gpu_suite.cases(models, liger=False, cce=True)
    assert {c["model"] for c in todo if c["loss"] == "cce"} == set(models[:2])
    offload = [c for c in todo if c["act_offload"]]
    assert len(offload) == 2 and all({**c, "act_offload": False} in todo for c in offload)
    for case in (offload[0], next(c for c in todo if c["loss"] == "cce")):
        cfg = load_config(gpu_suite.preset(case, tmp_path / "model", tmp_path / "data.jsonl", tmp_path))
        assert (cfg.train.activation_offload, cfg.train.loss) == (case["act_offload"], case["loss"])


def test_a_model_cut_to_its_first_layers_is_built_and_estimated_as_built(tmp_path):
    """NAME@N (the suite's MoE case): the catalog config with N decoder layers, written where the estimate reads it."""
    import json

    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_suite
    from rankwise.advisor.model import load_model

    folder = gpu_suite.build_model(gpu_suite.MOE, tmp_path, dry=True)
    config = json.loads((folder / "config.json").read_text())
    assert config["num_hidden_layers"] == int(gpu_suite.MOE.split("@")[1]) and config["num_local_experts"] == 8
    assert load_model(str(folder)).num_layers == config["num_hidden_layers"]


def test_the_offload_variant_reports_the_reserve_in_layers_and_by_stream():
    """gpu_fsdp_probe's offload figures from what torch.cuda hands back (a memory snapshot's segments, the peak
    counters): the reserve above the allocated peak in decoder layers, and each stream's pool (FSDP's offload
    copies parameters on its pre-unshard stream; a block is reused only by its own stream). The inputs are in
    torch.cuda.memory_snapshot()'s shape: the CPU has no allocator to ask."""
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_fsdp_probe as probe

    mib = 2 ** 20
    segments = [{"stream": 0, "total_size": 40 * mib, "allocated_size": 30 * mib},
                {"stream": 0, "total_size": 20 * mib, "allocated_size": 0},
                {"stream": 7, "total_size": 64 * mib, "allocated_size": 8 * mib}]
    assert probe.reserved_by_stream(segments) == {"0": [60 * mib, 30 * mib, 2], "7": [64 * mib, 8 * mib, 1]}
    note = probe.offload_note({"peak_reserved": 1000 * mib, "peak_allocated_total": 700 * mib, "layer_bytes": 100 * mib})
    assert note.startswith("reserved above allocated at the peak: 300 MiB = 3.0 decoder layers of 100 MiB")
    assert probe.offload_note({"peak_reserved": None}) == "dry run"
