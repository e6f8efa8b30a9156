"""`rankwise svd` on the shipped tiny model: a rank band and a spectrum from real hidden states."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rankwise.trainer.svd import components, parse_layers, rank_band
from train_helpers import CLI, env

ROOT = Path(__file__).resolve().parent.parent  # not `from conftest`: tests/faults has a conftest too

MODEL = str(ROOT / "presets" / "assets" / "tiny-llama")
DATA = str(ROOT / "presets" / "assets" / "demo-chat.jsonl")


@pytest.mark.parametrize("variances, want", [
    ([1.0] * 10, {"0.9": 9, "0.95": 10, "0.99": 10}),  # isotropic: every direction counts
    ([100.0, 1.0, 1.0], {"0.9": 1, "0.95": 1, "0.99": 2}),  # one dominant direction: 101/102 = 99.02%
    ([50.0, 40.0, 5.0, 4.0, 1.0], {"0.9": 2, "0.95": 3, "0.99": 4}),
])
def test_components_hold_each_share_of_the_variance(variances, want):
    assert components(variances) == want


def test_rank_band_is_powers_of_two_capped_at_half_the_hidden_size():
    assert rank_band({"0.9": 15, "0.95": 19, "0.99": 31}, 64) == [8, 32]
    assert rank_band({"0.9": 40, "0.95": 60, "0.99": 63}, 64) == [32, 32]
    assert rank_band({"0.9": 1, "0.95": 1, "0.99": 2}, 4096) == [1, 1]


def test_layers_flag():
    assert parse_layers(None, 32) == [16, 32]
    assert parse_layers("-1,0,8", 32) == [0, 8, 32]
    assert parse_layers("all", 2) == [1, 2]
    with pytest.raises(Exception, match="out of range"):
        parse_layers("40", 32)


@pytest.mark.slow
def test_svd_on_the_tiny_model_returns_a_band_and_a_spectrum():
    proc = subprocess.run(CLI + ["svd", "--model", MODEL, "--dataset", DATA, "--samples", "32", "--layers", "1,-1",
                                 "--json"], capture_output=True, text=True, env=env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    c = out["components"]
    assert 1 <= c["0.9"] <= c["0.95"] <= c["0.99"] <= out["hidden_size"] == 64
    lo, hi = out["suggested_rank_band"]
    assert 1 <= lo <= hi <= 32 and lo & (lo - 1) == 0 and hi & (hi - 1) == 0
    assert out["samples"] == 32 and out["tokens"] > 32 and [l["layer"] for l in out["layers"]] == [1, 2]
    spectrum = out["layers"][-1]["spectrum"]
    assert len(spectrum) == 64 and spectrum[0] == 1.0
    assert all(a >= b for a, b in zip(spectrum, spectrum[1:]))  # singular values, largest first
    assert spectrum[-1] < 0.5  # the tiny model's states do not fill every direction evenly

    text = subprocess.run(CLI + ["svd", "--model", MODEL, "--dataset", DATA, "--samples", "16"], capture_output=True,
                          text=True, env=env(), timeout=300)
    assert text.returncode == 0, text.stderr[-3000:]
    assert "suggested rank band: r = " in text.stdout and "component (log2 axis)" in text.stdout
    assert "does not measure: the rank the weight update needs" in text.stdout


@pytest.mark.parametrize("args, words", [
    (["--model", MODEL, "--dataset", "nope.jsonl"], "--dataset not found"),
    (["--model", "llama-3.1-8b", "--dataset", DATA], "has no weights on this machine"),
    (["--model", MODEL, "--dataset", DATA, "--layers", "9"], "out of range"),
    (["--model", MODEL, "--dataset", DATA, "--samples", "1"], "--samples 1"),
])
def test_bad_input_exits_2(args, words):
    proc = subprocess.run(CLI + ["svd", *args], capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
