"""Per-GPU memory for DDP and FSDP, the strategy the advisor recommends, and ddp-wont-fit.

The arithmetic is written out from Llama 3.1 70B's config.json (hidden 8192, 8 KV heads of
128, MLP 28672, 80 layers, vocabulary 128256, untied head), not read back from the estimator.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from rankwise.advisor import memory
from rankwise.advisor.config import RunConfig
from rankwise.advisor.fit import assess, verdict
from rankwise.advisor.hardware import planned
from rankwise.advisor.memory import Plan, estimate
from rankwise.advisor.model import load_model
from rankwise.advisor.recommend import advise, choose_strategy
from rankwise.advisor.redflags import check

H, KV, I, L, V = 8192, 1024, 28672, 80, 128256
LAYER_LINEARS = 2 * H * H + 2 * H * KV + 3 * H * I  # q, o; k, v; gate, up, down
LAYER = LAYER_LINEARS + 2 * H  # + two RMSNorms
ROOT = 2 * V * H + H  # embeddings, lm_head, final norm


@pytest.fixture(scope="module")
def l70():
    return load_model("llama-3.1-70b")


def test_layer_and_root_units_from_the_config(l70):
    assert memory.layer_unit_params(l70) == LAYER
    assert l70.total_params == L * LAYER + ROOT


@pytest.mark.parametrize("n", [2, 8])
def test_fsdp_lora_shards_weights_and_gathers_units(l70, n):
    one = estimate(l70, Plan("lora", gpus=1))
    est = estimate(l70, Plan("lora", gpus=n, strategy="fsdp"))
    c = est.components
    assert c["base_weights"] == -(-2 * (L * LAYER + ROOT) // n)  # 16-bit weights / N
    assert c["gather_layers"] == 2 * 2 * LAYER  # running + prefetched layer, 16-bit
    assert c["gather_root"] == 2 * ROOT  # the root unit stays gathered from forward to backward
    for k in ("lora_params", "lora_grads", "optimizer_states"):
        assert c[k] == -(-one.components[k] // n)
    assert "ddp_buckets" not in c
    assert c["activations"] == one.components["activations"]  # per-GPU micro-batch unchanged
    assert est.peak_bytes == sum(c.values())


@pytest.mark.parametrize("n", [2, 8])
def test_fsdp_qlora_storage_dtype_and_replicated_constants(l70, n):
    single = estimate(l70, Plan("qlora", gpus=1))
    est = estimate(l70, Plan("qlora", gpus=n, strategy="fsdp"))
    c = est.components
    quant = L * LAYER_LINEARS  # every linear but lm_head in NF4
    assert c["base_weights"] == -(-(quant // 2) // n)  # 4 bits each, packed in bf16 storage of the same bytes
    assert c["unquantized_weights"] == -(-2 * (l70.total_params - quant) // n)  # bf16: no fp32 upcast under FSDP
    assert c["quant_constants"] == single.components["quant_constants"]  # quant_state is per-module metadata
    assert c["gather_layers"] == 2 * (LAYER_LINEARS // 2 + 2 * 2 * H)  # packed NF4 + bf16 norms, x2
    assert c["gather_root"] == 2 * ROOT
    assert "lm_head_cast" not in c and "lm_head_cast" in single.components
    assert est.peak_bytes < single.peak_bytes


def test_ddp_keeps_the_full_copy(l70):
    one, eight = estimate(l70, Plan("qlora", gpus=1)), estimate(l70, Plan("qlora", gpus=8, strategy="ddp"))
    assert eight.components["base_weights"] == one.components["base_weights"]
    assert eight.peak_bytes == one.peak_bytes + eight.components["ddp_buckets"] + eight.components["nccl_buffers"]
    # NCCL: 32 channels (its cap) x ring + tree peer x (4 MiB SIMPLE + LL128 120*640*8*8 + LL 8*512*8*16)
    assert eight.components["nccl_buffers"] == 32 * 2 * (4 * 2 ** 20 + 120 * 640 * 64 + 8 * 512 * 128)


def test_single_gpu_estimate_is_unchanged_by_the_strategy_field(l70):
    assert estimate(l70, Plan("lora")).peak_bytes == estimate(l70, Plan("lora", strategy="ddp")).peak_bytes


def test_auto_strategy(l70):
    hw = planned("80GiB", 8)
    assert assess(l70, _cfg("lora"), hw).strategy == "fsdp"
    assert assess(l70, _cfg("qlora"), hw).strategy == "ddp"
    assert assess(load_model("llama-3.1-8b"), _cfg("lora", model="llama-3.1-8b"), hw).strategy == "ddp"
    assert assess(l70, _cfg("lora"), planned("80GiB", 1)).strategy == "single"


def _cfg(method: str, strategy: str = "auto", model: str = "llama-3.1-70b") -> RunConfig:
    cfg = RunConfig()
    cfg.model.name, cfg.method, cfg.distributed.strategy = model, method, strategy
    return cfg


def test_recommend_fsdp_for_70b_lora_on_8x80(l70):
    hw = planned("80GiB", 8)
    s = choose_strategy(l70, _cfg("lora"), "lora", hw)
    assert (s["strategy"], s["gpus"], s["fit"]) == ("fsdp", 8, "fits")
    k = s["min_gpus"]
    assert 1 < k <= 8
    at = lambda n: verdict(estimate(l70, Plan.from_config(_cfg("lora"), "lora", gpus=n, strategy="fsdp")).peak_bytes,
                              hw.gpu_bytes)
    assert at(k) == "fits" and at(k // 2) != "fits"  # the fewest GPUs that fit
    a = advise(l70, hw, "chat")
    assert a.method == "lora" and a.strategy["strategy"] == "fsdp"
    assert (a.config.distributed.strategy, a.config.distributed.gpus) == ("fsdp", 8)
    assert a.to_dict()["estimate"]["strategy"] == "fsdp"


def test_recommend_ddp_for_8b():
    a = advise(load_model("llama-3.1-8b"), planned("80GiB", 8), "chat")
    assert a.strategy["strategy"] == "ddp" and a.strategy["min_gpus"] == 1
    assert a.config.distributed.strategy == "ddp"


@pytest.mark.parametrize("method,strategy,model,hw,fires", [
    ("lora", "ddp", "llama-3.1-70b", ("80GiB", 8), True),  # full copy 140 GB; FSDP over 8 fits
    ("lora", "auto", "llama-3.1-70b", ("80GiB", 8), False),  # auto already shards
    ("lora", "fsdp", "llama-3.1-70b", ("80GiB", 8), False),
    ("lora", "ddp", "llama-3.1-8b", ("80GiB", 8), False),  # DDP fits
    ("lora", "ddp", "llama-3.1-70b", ("80GiB", 1), False),  # one GPU: nothing to shard over
    ("lora", "ddp", "llama-3.1-70b", ("24GiB", 2), False),  # FSDP would not fit either
    ("qlora", "ddp", "llama-3.1-70b", ("48GiB", 8), True),  # 4-bit 70B + its step need > 48 GB whole; sharded fits
    # transformers 5 loads the 4-bit 70B whole (~38 GiB) onto each GPU before FSDP shards it: FSDP does not fit either
    ("qlora", "ddp", "llama-3.1-70b", ("24GiB", 8), False),
])
def test_ddp_wont_fit(method, strategy, model, hw, fires):
    found = {f.code: f for f in check(_cfg(method, strategy, model), load_model(model), planned(*hw))}
    assert ("ddp-wont-fit" in found) == fires
    if fires:
        f = found["ddp-wont-fit"]
        assert f.severity == "error" and f.patch == {"distributed.strategy": "fsdp"}
        fixed = _cfg(method, "fsdp", model)
        assert "wont-fit" not in {g.code for g in check(fixed, load_model(model), planned(*hw))}


def test_estimate_cli_json_is_per_gpu(rankwise_cmd):
    def run(*flags):
        out = subprocess.run([*rankwise_cmd, "estimate", "--model", "llama-3.1-70b", "--gpu-mem", "80GiB",
                              "--json", *flags], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    auto, ddp, one = run("--gpus", "8"), run("--gpus", "8", "--strategy", "ddp"), run()
    assert (auto["strategy"], auto["gpus"], auto["fit"]) == ("fsdp", 8, "fits")
    assert (ddp["strategy"], ddp["fit"]) == ("ddp", "wont-fit")
    assert one["strategy"] == "single" and one["gpus"] == 1
    assert auto["peak_gib"] < one["peak_gib"] / 3
