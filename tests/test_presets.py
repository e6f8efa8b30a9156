"""Shipped presets: each loads and validates, fits its target GPU, and `rankwise presets` lists them."""
from __future__ import annotations

import json
import subprocess

import pytest

from rankwise.advisor.loader import load_config
from rankwise.advisor.fit import verdict
from rankwise.advisor.memory import Plan, estimate
from rankwise.advisor.model import load_model
from rankwise.advisor.presets import shipped

# GPU presets → the planning flags of the machine they are written for (their header says the same)
GPU_TARGETS = {
    "llama3.1-8b-chat-qlora-24gb": ["--gpu", "L4"],
    "llama3.1-8b-instruct-lora-80gb": ["--gpu", "A100-80GB"],
    "qwen2.5-7b-code-lora-80gb": ["--gpu", "H100-80GB"],
    "mistral-7b-style-qlora-12gb": ["--gpu-mem", "12GiB"],
    "llama3.1-70b-qlora-2x80gb": ["--gpu", "A100-80GB", "--gpus", "2"],
    "qwen3-30b-a3b-chat-qlora-48gb": ["--gpu", "L40S"],
}


@pytest.mark.parametrize("name", sorted(shipped()))
def test_every_shipped_preset_loads_and_validates(name):
    cfg = load_config(shipped()[name])
    assert cfg.name == name and cfg.description
    load_model(cfg.model.name)  # catalog name, alias or shipped local model: resolvable offline


@pytest.mark.parametrize("name", sorted(GPU_TARGETS))
def test_gpu_preset_is_shipped_and_documents_itself(name):
    path = shipped()[name]
    header = path.read_text().split("\nname:")[0]
    assert "Target GPU" in header and "Estimated peak" in header and "Launch: rankwise train --preset" in header


@pytest.mark.parametrize("name", sorted(GPU_TARGETS))
def test_gpu_preset_fits_its_target_gpu_with_headroom(name):
    from rankwise.advisor.hardware import planned

    flags = GPU_TARGETS[name]
    opts = dict(zip(flags[::2], flags[1::2]))
    hw = planned(opts.get("--gpu-mem"), int(opts.get("--gpus", 1)), opts.get("--gpu"))
    cfg = load_config(shipped()[name])
    est = estimate(load_model(cfg.model.name), Plan.from_config(cfg, cfg.method, gpus=hw.gpu_count))
    assert verdict(est.peak_bytes, hw.gpu_bytes) == "fits", f"{name}: {est.peak_gib:.1f} GiB on {hw.gpu_bytes / 2**30:.1f} GiB"
    # the header's figure stays the estimator's (within 10%: recalibrations move it a little)
    import re

    stated = float(re.search(r"Estimated peak: ~([0-9.]+) GiB", shipped()[name].read_text()).group(1))
    assert abs(stated - est.peak_gib) <= 0.1 * est.peak_gib, \
        f"{name}: header says ~{stated} GiB, the estimator now says {est.peak_gib:.1f}: update the header"


def test_presets_json_lists_every_shipped_preset(rankwise_cmd):
    out = subprocess.run([*rankwise_cmd, "presets", "--json", "--gpu", "A100-80GB"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["name"] for r in rows] == list(shipped())
    for r in rows:
        assert r["error"] is None, r
        assert set(r) >= {"name", "path", "description", "model", "method", "fit", "peak_gib", "findings"}
        assert r["fit"] in ("fits", "tight", "wont-fit") and r["peak_gib"] > 0
    by_name = {r["name"]: r for r in rows}
    assert by_name["llama3.1-8b-chat-qlora-24gb"]["fit"] == "fits"


def test_presets_table_on_a_small_gpu(rankwise_cmd):
    out = subprocess.run([*rankwise_cmd, "presets", "--gpu-mem", "12GiB"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = {l.split()[0]: l for l in out.stdout.splitlines() if l and not l.startswith(" ")}
    assert "won't fit" in lines["llama3.1-70b-qlora-2x80gb"]
    assert "fits" in lines["mistral-7b-style-qlora-12gb"]


@pytest.mark.parametrize("name", sorted(GPU_TARGETS))
def test_gpu_preset_passes_check_on_its_target_gpu(name, rankwise_cmd):
    out = subprocess.run([*rankwise_cmd, "check", str(shipped()[name]), *GPU_TARGETS[name], "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    findings = report["findings"] if isinstance(report, dict) else report
    assert not [f for f in findings if f["severity"] in ("error", "warning")], findings


def _restated_defaults(data: dict, model) -> list[str]:
    out = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            continue
        sub = field.annotation
        if isinstance(value, dict) and isinstance(sub, type) and hasattr(sub, "model_fields"):
            out += [f"{key}.{k}" for k in _restated_defaults(value, sub)]
        elif field.default == value and key not in ("name", "description"):
            out.append(key)
    return out


@pytest.mark.parametrize("name", sorted(shipped()))
def test_presets_do_not_restate_schema_defaults(name):
    """A default restated in a preset drifts when the schema's default changes (STYLE.md)."""
    import yaml

    from rankwise.advisor.config import RunConfig

    data = yaml.safe_load(shipped()[name].read_text())
    assert _restated_defaults(data, RunConfig) == []
