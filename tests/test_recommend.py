"""The recommender against the issue's rules, over a table of (GPU, model, task) scenarios."""
import pytest

from rankwise.advisor import memory
from rankwise.advisor.fit import verdict
from rankwise.advisor.loader import apply_overrides, validate
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.hardware import Hardware, planned
from rankwise.advisor.model import load_model
from rankwise.advisor.recommend import BANDS, advise

ADVISED_FIELDS = ["method", "lora.r", "lora.alpha", "lora.dropout", "lora.bias", "lora.target_modules",
                  "train.lr", "train.scheduler", "train.warmup_ratio", "train.micro_batch", "train.grad_accum",
                  "train.max_seq_len", "train.grad_checkpointing", "train.optimizer", "train.epochs"]

# (model, task, gpu memory or None for CPU-only, kwargs, expected method, rank range, targets)
SCENARIOS = [
    ("llama-3.1-8b", "chat", "16GiB", {}, "qlora", (16, 32), "standard"),
    ("llama-3.1-8b", "chat", "24GiB", {"seq_len": 4096}, "qlora", (16, 32), "standard"),
    ("llama-3.1-8b", "instruction", "80GiB", {}, "lora", (16, 32), "standard"),
    ("qwen2.5-7b", "code", "80GiB", {}, "lora", (64, 128), "aggressive"),
    ("llama-3.1-70b", "chat", "24GiB", {}, None, (16, 32), "standard"),
    ("llama-3.2-1b", "classification", "24GiB", {}, "lora", (4, 8), "standard"),
    ("qwen2.5-0.5b", "style", "24GiB", {"dataset_rows": 300}, "lora", (4, 8), "standard"),
    ("mistral-7b", "reasoning", "16GiB", {"dataset_rows": 20_000}, "qlora", (64, 128), "aggressive"),
]


@pytest.fixture(scope="module")
def results():
    return {i: advise(load_model(m), planned(mem) if mem else Hardware(gpus=()), task, **kw)
            for i, (m, task, mem, kw, *_rest) in enumerate(SCENARIOS)}


@pytest.mark.parametrize("i", range(len(SCENARIOS)), ids=[f"{s[0]}-{s[1]}-{s[2]}" for s in SCENARIOS])
def test_scenario(results, i):
    model, task, mem, kw, method, (lo, hi), targets = SCENARIOS[i]
    a = results[i]
    cfg = a.config
    assert a.method == method
    assert lo <= cfg.lora.r <= hi
    assert BANDS[task] == (lo, hi)
    assert cfg.lora.alpha == 2 * cfg.lora.r
    assert cfg.lora.target_modules == targets
    assert cfg.lora.bias == "none"
    assert cfg.train.scheduler == "cosine" and cfg.train.warmup_ratio == 0.03
    if a.method == "lora":
        assert 1e-4 <= cfg.train.lr <= 5e-4
    else:
        assert 5e-5 <= cfg.train.lr <= 2e-4
    for field in ADVISED_FIELDS:
        assert a.reasons.get(field), field
    # the method rule: LoRA iff its 16-bit estimate fits with headroom; else QLoRA if it fits
    if a.fits["lora"] == "fits":
        assert a.method == "lora"
    elif a.fits["qlora"] in ("fits", "tight"):
        assert a.method == "qlora"
    else:
        assert a.method is None
    assert set(a.estimates) == {"lora", "qlora"}
    # the config round-trips through the schema
    assert validate(a.config.model_dump(mode="json")) == a.config


@pytest.mark.parametrize("i", [i for i, s in enumerate(SCENARIOS) if s[4]])
def test_batch_is_the_largest_that_fits(results, i):
    a = results[i]
    cfg, spec, hw = a.config, load_model(SCENARIOS[i][0]), planned(SCENARIOS[i][2])
    eff = cfg.train.micro_batch * cfg.train.grad_accum * hw.gpu_count
    assert 16 <= eff <= 32
    est = memory.estimate(spec, memory.Plan.from_config(cfg, a.method, hw.gpu_count))
    assert est.peak_bytes == a.estimate.peak_bytes
    if cfg.train.micro_batch > 1:
        assert verdict(est.peak_bytes, hw.gpu_bytes) == "fits"
    if cfg.train.micro_batch < 16:
        bigger = validate(apply_overrides(cfg.model_dump(mode="json"), [f"train.micro_batch={cfg.train.micro_batch * 2}"]))
        est2 = memory.estimate(spec, memory.Plan.from_config(bigger, a.method, hw.gpu_count))
        assert verdict(est2.peak_bytes, hw.gpu_bytes) != "fits"


@pytest.mark.parametrize("i", [i for i, s in enumerate(SCENARIOS) if s[4]])
def test_advised_config_has_no_errors_or_warnings(results, i):
    assert [f.code for f in results[i].findings if f.severity != "info"] == []


def test_nothing_fits_gives_suggestions_with_new_peaks(results):
    a = results[4]  # llama-3.1-70b on 24 GiB
    assert a.method is None
    assert "wont-fit" in {f.code for f in a.findings if f.severity == "error"}
    assert a.suggestions
    spec, hw = load_model("llama-3.1-70b"), planned("24GiB")
    checked = 0
    for s in a.suggestions:
        assert s["change"] and s["peak_gib"] > 0 and s["fit"] in ("fits", "tight", "wont-fit")
        if s["patch"] and "method" not in s["patch"]:  # re-estimate independently
            sets = [f"{k}={v}" for k, v in s["patch"].items()]
            cfg = validate(apply_overrides(a.config.model_dump(mode="json"), sets))
            est = memory.estimate(spec, memory.Plan.from_config(cfg, "qlora", 1))
            assert round(est.peak_gib, 2) == s["peak_gib"]
            checked += 1
    assert checked >= 2
    assert any("shorter sequences" in s["change"] and s["saves_gib"] > 0 for s in a.suggestions)
    assert any("GPU with at least" in s["change"] for s in a.suggestions)


def test_budget_arithmetic_by_hand():
    # llama-3.1-8b, standard targets = q,k,v,o over 32 layers; hidden 4096, kv 8 heads × 128 = 1024
    per_unit = 32 * ((4096 + 4096) + (4096 + 1024) + (4096 + 1024) + (4096 + 4096))
    assert per_unit == 851_968
    r = 10_000_000 // per_unit  # 11
    assert r * per_unit <= 10_000_000 < (r + 1) * per_unit
    a = advise(load_model("llama-3.1-8b"), planned("24GiB"), "chat", budget=10_000_000)
    assert a.config.lora.r == r == 11
    assert a.estimate.trainable_params == r * per_unit
    assert "851,968" in a.budget_arithmetic and "= 11" in a.budget_arithmetic
    assert f"{r * per_unit:,}" in a.budget_arithmetic
    assert max(a.first_sweep) <= r


def test_budget_above_band_keeps_band_rank():
    a = advise(load_model("llama-3.1-8b"), planned("80GiB"), "chat", budget=100_000_000)
    assert a.config.lora.r == 16  # 100M allows 117, the band's choice is kept
    assert "117" in a.budget_arithmetic


def test_budget_too_small_is_a_user_error():
    with pytest.raises(RankwiseError, match="budget"):
        advise(load_model("llama-3.1-8b"), planned("24GiB"), "chat", budget=100_000)


@pytest.mark.parametrize("rows,r,dropout,epochs", [(None, 16, 0.05, 1.0), (500, 16, 0.1, 3.0), (5_000, 16, 0.05, 2.0),
                                                   (20_000, 32, 0.05, 1.0), (100_000, 32, 0.0, 1.0)])
def test_data_size_moves_rank_dropout_epochs(rows, r, dropout, epochs):
    a = advise(load_model("llama-3.1-8b"), planned("80GiB"), "chat", dataset_rows=rows)
    assert (a.config.lora.r, a.config.lora.dropout, a.config.train.epochs) == (r, dropout, epochs)


def test_cpu_only_plans_by_model_size_and_says_so():
    small = advise(load_model("llama-3.2-1b"), Hardware(gpus=()), "chat")
    big = advise(load_model("llama-3.1-8b"), Hardware(gpus=()), "chat")
    assert small.method == "lora" and big.method == "qlora"
    assert "no GPU" in big.reasons["method"]
    assert big.fits == {"lora": "no-gpu", "qlora": "no-gpu"}
    assert {f.code: f.severity for f in big.findings}.get("wont-fit") == "info"
    assert not [f for f in big.findings if f.severity == "error"]


def test_seq_capped_at_model_positions():
    a = advise(load_model("llama-2-7b"), planned("80GiB"), "chat", seq_len=8192)
    assert a.config.train.max_seq_len == 4096
    assert "4096" in a.reasons["train.max_seq_len"]


def test_unknown_task_is_a_user_error():
    with pytest.raises(RankwiseError, match="task"):
        advise(load_model("llama-3.1-8b"), planned("24GiB"), "poetry")


def test_to_dict_shape(results):
    d = results[0].to_dict()
    assert d["method"] == "qlora"
    assert d["config"]["lora"]["r"] == results[0].config.lora.r
    assert d["estimate"]["fit"] == "fits" and d["estimate"]["peak_gib"] > 0
    assert set(d["estimates"]) == {"lora", "qlora"}
    assert d["reasons"]["lora.r"] and isinstance(d["findings"], list) and d["first_sweep"]
