"""A bounded fit from the size a model's name states (advisor/size_bound.py): the parsing table with its
traps, the bound on the real estimator (stand-ins from the index and the catalog), and `rankwise check`'s
verdicts, gate and JSON for an axolotl file whose model is outside the index."""
import json
import subprocess
import sys

import pytest

from rankwise.advisor import fit
from rankwise.advisor.config import RunConfig, with_values
from rankwise.advisor.hardware import planned
from rankwise.advisor.model import load_model
from rankwise.advisor.size_bound import BAND, MIN_STAND_INS, Bound, NameSize, StandIn, bound, name_size, stand_ins

B, M = 1e9, 1e6

# (id, total, moe, active) — None: the name states no usable total
NAMES = [
    ("swiss-ai/Apertus-8B-Instruct-2509", 8 * B, False, None),  # a date after the size
    ("Qwen/Qwen2.5-1.5B", 1.5 * B, False, None),
    ("Qwen/Qwen2.5-0.5B", 0.5 * B, False, None),
    ("LiquidAI/LFM2-VL-450M", 450 * M, False, None),
    ("google/gemma-3-270m", 270 * M, False, None),
    ("mistralai/Mixtral-8x7B-v0.1", 56 * B, True, None),  # experts x size: the nominal total
    ("Qwen/Qwen3.5-122B-A10B", 122 * B, True, 10 * B),  # MoE total and active
    ("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-BF16", 120 * B, True, 12 * B),  # BF16 is not a size
    ("ibm-granite/granite-3.0-3b-a800m-instruct", 3 * B, True, 800 * M),
    ("meta-llama/Llama-3.2-1B", 1 * B, False, None),  # the version is not a size
    ("Salesforce/xgen-7b-8k-base", 7 * B, False, None),  # -8k is a context length
    ("TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T", 1.1 * B, False, None),  # 3T: training tokens
    ("/path/to/Olmo-3-7B-Instruct-SFT", 7 * B, False, None),  # a local path: its last part
    ("google/gemma-3n-E2B-it", None, None, None),  # E2B: an effective size, not the count
    ("PaddlePaddle/PaddleOCR-VL-1.6", None, None, None),  # a version
    ("Qwen/Qwen3.5-Flash-2025", None, None, None),  # a date
    ("Qwen/Qwen1.5-MoE-A2.7B", None, None, None),  # an active count alone
    ("meta-llama/Llama-4-Scout-17B-16E", None, None, None),  # 17B beside an expert count is the active one
    ("allenai/OLMoE-1B-7B-0924", None, None, None),  # two sizes
    ("CohereForAI/c4ai-command-r7b-12-2024", None, None, None),  # glued to a letter
    ("bigscience/bloom-7b1", None, None, None),  # glued to a digit
    ("LnL-AI/dbrx-base-converted-v2", None, None, None),
    ("axolotl-quants/DeepSeek-V2.5-bnb-nf4-bf16", None, None, None),
]


@pytest.mark.parametrize("name,total,moe,active", NAMES, ids=[n[0] for n in NAMES])
def test_name_size(name, total, moe, active):
    got = name_size(name)
    if total is None:
        assert got is None
        return
    assert got is not None and got.total == pytest.approx(total) and got.moe == moe
    assert got.active == (pytest.approx(active) if active else None)


def cfg(**values) -> RunConfig:
    return with_values(RunConfig(), {"model.name": "some-org/Unknown-8B", "method": "lora",
                                     "lora.target_modules": "all-linear", **values})


def test_stand_ins_are_of_the_kind_and_within_the_band():
    size = name_size("x/Foo-8B")
    found = stand_ins(size)
    assert len({c.spec.name for c in found}) >= MIN_STAND_INS
    for c in found:
        assert not c.spec.is_moe and BAND[0] * 8 * B <= c.named(size) <= BAND[1] * 8 * B
    assert all(c.spec.is_moe for c in stand_ins(name_size("x/Foo-30B-A3B")))


def test_a_stand_in_named_the_same_size_is_estimated_as_the_resolved_model():
    """Scale 1 (Llama-3.1-8B for an 8B name): its peak is fit.assess's on the model itself, nothing added."""
    c, hw = cfg(), planned("80GiB")
    b = bound("some-org/Unknown-8B", c, hw, "lora")
    row = next(s for s in b.stand_ins if s.name == "llama-3.1-8b")
    assert row.scale == 1.0
    assert row.peak_bytes == fit.assess(load_model("llama-3.1-8b"), c, hw, method="lora").estimate.peak_bytes
    assert b.low_bytes <= row.peak_bytes <= b.high_bytes


def test_weights_scale_with_the_name_and_the_rest_does_not():
    """Yi-6B (named 6B) for an 8B name: its weights x 8/6, every other component its own."""
    c, hw = cfg(), planned("80GiB")
    row = next(s for s in bound("some-org/Unknown-8B", c, hw, "lora").stand_ins if s.name == "01-ai/Yi-6B")
    own = fit.assess(load_model("01-ai/Yi-6B"), c, hw, method="lora").estimate
    weights = own.components["base_weights"]
    assert row.scale == pytest.approx(8 / 6)
    assert row.peak_bytes == pytest.approx(own.peak_bytes + (8 / 6 - 1) * weights, abs=2)


def test_one_architecture_gives_no_range():
    """A single stand-in is a point: no verdict unless its weights alone exceed the GPU."""
    size = NameSize(100 * B, True, 10 * B, "100B-A10B")
    one = (StandIn("x", int(100 * B), 100 * B, 1.0, 20 * 2 ** 30, "qlora", 10 * 2 ** 30),)
    assert Bound("m", size, one, 80 * 2 ** 30, 20 * 2 ** 30, 20 * 2 ** 30).verdict is None
    assert Bound("m", size, one, 8 * 2 ** 30, 20 * 2 ** 30, 20 * 2 ** 30).verdict == "wont-fit"


@pytest.mark.parametrize("name", ["google/gemma-3n-E2B-it", "some-org/Unknown-7B-GPTQ", "some-org/Unknown-7B-AWQ",
                                  "some-org/Unknown-8B-FP8", "unsloth/Unknown-8B-bnb-4bit", "Qwen/Qwen-7B-Chat-Int4"])
def test_no_size_or_a_quantized_checkpoint_no_bound(name):
    assert bound(name, cfg(), planned("24GiB"), "lora") is None


# ------------------------------------------------------------------ rankwise check on an axolotl file


def axolotl(tmp_path, model, adapter="lora", seq=2048, batch=2):
    path = tmp_path / "run.yml"
    path.write_text(f"base_model: {model}\nadapter: {adapter}\nload_in_4bit: {str(adapter == 'qlora').lower()}\n"
                    f"lora_r: 16\nlora_alpha: 32\nlora_target_linear: true\nsequence_len: {seq}\n"
                    f"micro_batch_size: {batch}\ngradient_accumulation_steps: 4\ngradient_checkpointing: true\n"
                    "learning_rate: 0.0002\nbf16: true\nwarmup_ratio: 0.03\n")
    return path


def check(path, *flags):
    out = subprocess.run([sys.executable, "-m", "rankwise.tui.cli", "check", str(path), *flags],
                         capture_output=True, text=True, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def check_json(path, *flags):
    out = check(path, *flags, "--json")
    return out.returncode, json.loads(out.stdout)


def test_too_big_wont_fit_decided(tmp_path):
    path = axolotl(tmp_path, "some-org/Unknown-70B")
    rc, d = check_json(path, "--gpu", "RTX4090")
    assert rc == 3 and d["fit"] == "wont-fit" and d["fit_basis"] == "name-size" and d["fit_checked"] is True
    assert d["estimate"] is None and d["unchecked_reason"] is None
    b = d["fit_bound"]
    assert b["decided"] and b["size"] == "70B" and b["low_gib"] > 24 and b["stand_ins"]
    wont = next(f for f in d["findings"] if f["code"] == "wont-fit")
    assert wont["severity"] == "error" and "approximate" in wont["message"]
    assert "checks-skipped" in {f["code"] for f in d["findings"]}
    text = check(path, "--gpu", "RTX4090").stdout.replace("\n", " ")
    assert "approximate" in text and "70B" in text


def test_small_fits_decided_and_passes_the_gate(tmp_path):
    path = axolotl(tmp_path, "some-org/Unknown-0.5B", adapter="qlora", seq=512, batch=1)
    rc, d = check_json(path, "--gpu", "RTX4090", "--require-fit")
    assert rc == 0 and d["fit"] == "fits" and d["fit_basis"] == "name-size" and d["fit_checked"] is True
    assert d["fit_bound"]["high_gib"] < 0.9 * 24
    assert "wont-fit" not in {f["code"] for f in d["findings"]}
    out = check(path, "--gpu", "RTX4090", "--require-fit")
    assert out.returncode == 0 and "fit checked (approximate, from the name's size)" in out.stdout.replace("\n", " ")


def test_undecided_middle_stays_unchecked(tmp_path):
    """A GPU whose limit lies inside the stand-ins' range: no verdict, the range said, --require-fit exits 3."""
    path = axolotl(tmp_path, "some-org/Unknown-8B")
    _, wide = check_json(path, "--gpu-mem", "1000GiB")
    lo, hi = wide["fit_bound"]["low_gib"], wide["fit_bound"]["high_gib"]
    assert hi >= 1.25 * lo  # so the midpoint has the low end fitting and the high end not
    mid = f"{(lo + hi) / 2:.2f}GiB"
    rc, d = check_json(path, "--gpu-mem", mid)
    assert rc == 0 and d["fit"] is None and d["fit_basis"] is None and d["fit_checked"] is False
    assert d["fit_bound"]["verdict"] is None and not d["fit_bound"]["decided"]
    assert "cannot tell without the shape" in d["unchecked_reason"]
    skipped = next(f for f in d["findings"] if f["code"] == "checks-skipped")
    assert "undecided" in skipped["message"]
    gated = check(path, "--gpu-mem", mid, "--require-fit")
    assert gated.returncode == 3 and "--require-fit: exit 3" in gated.stdout.replace("\n", " ")


def test_json_keeps_its_keys_and_adds_the_bound(tmp_path):
    rc, d = check_json(axolotl(tmp_path, "some-org/Unknown-70B"), "--gpu", "RTX4090")
    assert {"file", "kind", "layout", "model", "method", "method_note", "fit", "fit_checked", "unchecked_reason",
            "estimate", "gpu_gib", "findings", "notes", "unread", "blank", "errors", "config"} <= set(d)
    assert {"low_gib", "high_gib", "verdict", "decided", "size", "total_params", "moe", "band", "basis",
            "stand_ins"} <= set(d["fit_bound"])
    row = d["fit_bound"]["stand_ins"][0]
    assert {"name", "params", "named", "scale", "peak_gib", "weights_gib", "method"} <= set(row)


def test_a_name_without_a_size_is_unchanged(tmp_path):
    rc, d = check_json(axolotl(tmp_path, "google/gemma-3n-E2B-it"), "--gpu", "RTX4090", "--require-fit")
    assert rc == 3 and d["fit"] is None and d["fit_bound"] is None and d["fit_basis"] is None
    assert d["unchecked_reason"] == "model google/gemma-3n-E2B-it not resolved offline"


@pytest.mark.parametrize("model,method", [("some-org/Unknown-0.5B", "lora"), ("some-org/Unknown-70B", "qlora")])
def test_method_auto_is_resolved_on_the_names_size(tmp_path, model, method):
    """A rankwise preset with method auto: LoRA when its whole range fits with headroom, else QLoRA."""
    path = tmp_path / "preset.yaml"
    path.write_text(f"model:\n  name: {model}\nmethod: auto\ntrain:\n  max_seq_len: 512\n")
    _, d = check_json(path, "--gpu", "RTX4090")
    assert d["method"] == method and "approximate" in d["method_note"]
    assert {s["method"] for s in d["fit_bound"]["stand_ins"]} == {method}


# ------------------------------------------------------------------ estimate: the same bound for an unknown model


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Nothing cached or fetched: an unknown id stays unknown."""
    from rankwise.advisor import config_cache

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("RANKWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    config_cache.configure(False)


def estimate(capsys, *argv) -> tuple[int, str, str]:
    from rankwise.tui import cli

    rc = cli.main(["estimate", *argv])
    out, err = capsys.readouterr()
    return rc, out, " ".join(err.split())


def test_estimate_bounds_an_unknown_model_from_its_names_size(offline, capsys):
    rc, out, err = estimate(capsys, "--model", "some-org/Unknown-70B", "--method", "qlora", "--gpu", "RTX4090",
                            "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["approximate"] is True and d["fit_basis"] == "name-size" and d["method"] == "qlora"
    hw = planned(gpu="RTX4090")
    flags = with_values(RunConfig(), {"model.name": "some-org/Unknown-70B", "method": "qlora"})  # estimate's defaults
    expected = bound("some-org/Unknown-70B", flags, hw, "qlora")  # the flags' config, bounded as check bounds it
    assert d["fit_bound"]["low_gib"] == round(expected.low_bytes / 2**30, 3)
    assert d["fit_bound"]["high_gib"] == round(expected.high_bytes / 2**30, 3)
    assert d["fit"] == expected.verdict == "wont-fit" and d["peak_bytes"] is None  # no single peak to read
    rc, text, _ = estimate(capsys, "--model", "some-org/Unknown-70B", "--method", "qlora", "--gpu", "RTX4090")
    flat = " ".join(text.split())
    assert rc == 0 and "approximate" in flat and expected.range_text() in flat and "won't fit" in flat
    assert "--fetch-config" in flat


def test_estimate_method_auto_on_an_unknown_model_picks_by_the_range(offline, capsys, tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("model:\n  name: some-org/Unknown-70B\nmethod: auto\ntrain:\n  max_seq_len: 512\n")
    rc, out, err = estimate(capsys, "--preset", str(preset), "--gpu", "RTX4090", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["method"] == "qlora" and {s["method"] for s in d["fit_bound"]["stand_ins"]} == {"qlora"}


@pytest.mark.parametrize("argv,said", [
    (["--model", "some-org/Unknown"], "unknown model"),  # no size in the name
    (["--model", "some-org/Unknown-900B"], "no analytically read dense model of the index is named 636B–1.27T"),  # nothing of that size stands in
    (["--model", "some-org/Unknown-7B", "--dataset", "rows.jsonl"], "unknown model"),  # lengths need its tokenizer
])
def test_estimate_still_refuses_what_it_cannot_bound(offline, capsys, argv, said):
    (offline / "rows.jsonl").write_text('{"text": "hello"}\n')
    rc, out, err = estimate(capsys, *argv, "--gpu", "RTX4090")
    assert rc == 2 and said in err and "Traceback" not in err, err
    assert out == ""


def test_estimate_refuses_for_an_unknown_model_what_it_refuses_for_a_known_one(offline, capsys):
    """Offload without sharding cannot run whatever the model: the bounded answer exits 2 as the exact one does."""
    said = []
    for model in ("some-org/Unknown-8B", "llama-3.1-8b"):
        rc, out, err = estimate(capsys, "--model", model, "--offload", "params_and_optimizer", "--gpu", "RTX4090")
        assert rc == 2 and out == "" and "Traceback" not in err, err
        said.append(err)
    assert said[0] == said[1] and "needs FSDP or DeepSpeed ZeRO-3" in said[0]


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SIZES = st.sampled_from(["0.5B", "1B", "3B", "7B", "8B", "13B", "34B", "70B", "405B", "900B", "8x7B", "8x22B",
                         "30B-A3B", "122B-A10B", "235B-A22B", "450M", "E2B", "0B", "1e3B", "7b", "-7B", ""])
FLAG_SETS = st.lists(st.sampled_from([
    ("--method", "qlora"), ("--method", "lora-8bit"), ("--method", "dora"), ("--rank", "64"), ("--rank", "0"),
    ("--seq", "512"), ("--batch", "4"), ("--gpus", "2"), ("--strategy", "fsdp"), ("--strategy", "deepspeed"),
    ("--offload", "params_and_optimizer"), ("--init", "pissa"), ("--init", "loftq"), ("--targets", "all-linear"),
    ("--targets", "q_proj,nonsense"), ("--targets", " "), ("--kernels", "liger"), ("--precision", "fp32_master"),
    ("--gpu-mem", "24GiB"), ("--gpu", "H100-80GB"), ("--gpus", "0")]), max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(org=st.sampled_from(["some-org/", "", "a/b/"]), stem=st.sampled_from(["Unknown-", "Frob_", "x-"]),
       size=SIZES, flags=FLAG_SETS)
def test_estimate_of_any_unknown_name_answers_or_says_why(offline, capsys, org, stem, size, flags):
    """Whatever the name and flags: an answer (exit 0, JSON with an exact peak or a bound) or a clear refusal
    (exit 2, a message), never a traceback."""
    argv = ["--model", f"{org}{stem}{size}", *[x for f in flags for x in f], "--json"]
    rc, out, err = estimate(capsys, *argv)
    assert "Traceback" not in err and rc in (0, 2), (argv, rc, err)
    if rc == 0:
        d = json.loads(out)
        assert d.get("fit_basis") == "name-size" and d["fit_bound"]["low_gib"] <= d["fit_bound"]["high_gib"], argv
    else:
        assert out == "" and err.startswith("error: "), (argv, err)
