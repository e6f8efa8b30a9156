"""axolotl and LLaMA-Factory configs read faithfully (issue 12): each tool's own defaults, blank
values, unknown keys, both LLaMA-Factory layouts, peft's target-module rules, every memory-relevant
key mapped or said; findings in the file's language; the fit gate; `rankwise import`.

Small fixture files in tests/fixtures/check/foreign-*.yaml, one per key family or default; the
CLI runs as a user runs it (subprocess) where exit codes and output are the point."""
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from rankwise.advisor.config import get_key
from rankwise.advisor.foreign import read
from rankwise.advisor.foreign.report import judge
from rankwise.advisor.hardware import planned, resolve
from rankwise.advisor.host_plan import CHECKPOINT_EXTRA, SHARD_BYTES
from rankwise.advisor.loader import load_config
from rankwise.advisor.model import load_model

FIX = Path(__file__).parent / "fixtures" / "check"
README = Path(__file__).resolve().parent.parent / "README.md"
GPU24 = resolve("24GiB", None, None)


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rankwise.tui.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def flat(text):
    """Output as one line: rich wraps at the terminal's width, and a longer checkout path moves the breaks."""
    return " ".join(text.split())


def check_json(fixture, *flags):
    out = cli("check", FIX / fixture, "--gpu-mem", "24GiB", "--json", *flags)
    assert out.returncode in (0, 3), out.stderr
    return out.returncode, json.loads(out.stdout)


# ------------------------------------------------------------------ each tool's own defaults

# (fixture, {dotted rankwise key: the value the tool itself would use})
DEFAULTS = [
    ("foreign-axolotl-defaults.yaml", {  # axolotl schemas/training.py, peft.py, config.py; peft LoraConfig
        "train.grad_accum": 1, "lora.dropout": 0.0, "train.grad_checkpointing": False, "train.max_seq_len": 512,
        "lora.alpha": 8, "train.micro_batch": 1, "lora.r": 16, "data.format": "chat"}),
    ("foreign-axolotl-batch-size.yaml", {"train.micro_batch": 2, "train.grad_accum": 8}),  # batch_size 16 // 2
    ("foreign-axolotl-blank-typo.yaml", {"train.scheduler": "cosine", "lora.alpha": 8}),  # blank = unset
    ("foreign-lf-defaults.yaml", {  # LLaMA-Factory finetuning_args.py + transformers TrainingArguments
        "lora.r": 8, "lora.alpha_value": 16, "lora.dropout": 0.0, "lora.target_modules": "all-linear",
        "train.micro_batch": 8, "train.grad_accum": 1, "train.lr": 5e-5, "train.epochs": 3.0,
        "train.scheduler": "linear", "train.warmup_ratio": 0.0, "train.grad_checkpointing": True,
        "train.max_seq_len": 2048}),
    ("foreign-lf-v1.yaml", {  # the newer layout: v1 training_args.py, LoraParams
        "method": "qlora", "lora.r": 32, "lora.alpha": 64, "lora.dropout": 0.05, "lora.target_modules": "all-linear",
        "train.micro_batch": 2, "train.lr": 1e-4, "train.max_seq_len": 1024, "train.max_steps": 10,
        "train.precision": "bf16", "distributed.strategy": "fsdp", "quant.kbit_upcast": False}),
    ("foreign-fsdp.yaml", {"method": "qlora", "distributed.strategy": "fsdp", "train.grad_checkpointing": True}),
]


@pytest.mark.parametrize("fixture,values", DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_tool_defaults(fixture, values):
    r = read(FIX / fixture)
    assert r.kind in ("axolotl", "llama-factory")
    for dotted, value in values.items():
        assert get_key(r.cfg, dotted) == value, (dotted, get_key(r.cfg, dotted))


@pytest.mark.parametrize("fixture", ["foreign-axolotl-defaults.yaml", "foreign-lf-defaults.yaml"])
def test_a_lora_file_is_not_given_the_quantized_bases_defaults(fixture):
    """The tools' kbit-upcast default (axolotl casts embeddings/lm_head/norms back to 16-bit) is for a
    quantized base: a LoRA file does not get it, so no "quant.kbit_upcast False: ignored" finding about a
    key the file never wrote (it was said on 73 of the 213 corpus files)."""
    r = read(FIX / fixture)
    assert r.cfg.method == "lora" and "quant.kbit_upcast" not in r.defaulted
    out = cli("check", FIX / fixture, "--gpu-mem", "24GiB", "--json")
    assert "ignored-quant" not in {f["code"] for f in json.loads(out.stdout)["findings"]}


def test_a_file_that_leaves_the_method_to_rankwise_is_not_given_the_upcast_default(tmp_path):
    """LLaMA-Factory v1 with a peft_config rankwise has no method for (freeze): method auto."""
    f = tmp_path / "freeze.yaml"
    f.write_text("model: Qwen/Qwen3-4B\npeft_config:\n  name: freeze\n  freeze_trainable_layers: 2\n"
                 "train_dataset: data/v1_sft_demo.yaml\nmicro_batch_size: 1\ncutoff_len: 2048\nmax_steps: 10\n")
    r = read(f)
    assert r.kind == "llama-factory" and "quant.kbit_upcast" not in r.defaulted


@pytest.mark.parametrize("adapter", ["[]", "{a: 1}", "7"])
def test_an_invalid_adapter_value_is_bad_input_not_a_crash(tmp_path, adapter):
    """hypothesis found `adapter: []` crashing the upcast-default check (an unhashable method)."""
    f = tmp_path / "bad.yml"
    f.write_text(f"base_model: llama-3.2-1b\nadapter: {adapter}\n")
    out = cli("check", f, "--gpu-mem", "24GiB")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("tool", ["llama-factory", "axolotl"])
@pytest.mark.parametrize("micro", ["all", "[null]", "-1"])
def test_a_bad_micro_batch_beside_a_total_batch_exits_2(tmp_path, micro, tool):
    """hypothesis found LLaMA-Factory v1's global_batch_size dividing by a micro_batch_size of 'all' or a list;
    axolotl's batch_size did the same."""
    f = tmp_path / "bad.yaml"
    if tool == "axolotl":
        f.write_text(f"base_model: llama-3.2-1b\nadapter: lora\nmicro_batch_size: {micro}\nbatch_size: 8\n")
    else:
        f.write_text((FIX / "foreign-lf-v1.yaml").read_text().replace(
            "micro_batch_size: 2", f"micro_batch_size: {micro}\nglobal_batch_size: 8"))
    out = cli("check", f, "--gpu-mem", "24GiB")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "micro_batch_size" in out.stderr + out.stdout


def test_a_qlora_file_gets_the_tools_upcast_default():
    r = read(FIX / "foreign-lf-v1.yaml")
    assert r.cfg.method == "qlora" and r.defaulted["quant.kbit_upcast"].value is False


def test_layouts_are_told_apart():
    assert (read(FIX / "foreign-lf-v1.yaml").kind, read(FIX / "foreign-lf-v1.yaml").layout) == ("llama-factory", "v1")
    assert read(FIX / "foreign-lf-defaults.yaml").layout == "flat"
    assert read(FIX / "foreign-axolotl-defaults.yaml").kind == "axolotl"


def test_blank_values_are_unset_not_errors():
    r = read(FIX / "foreign-axolotl-blank-typo.yaml")
    assert set(r.blank) == {"lr_scheduler", "wandb_project"}


# ------------------------------------------------------------------ unknown keys: the closest key


@pytest.mark.parametrize("fixture,key,closest,severity,code", [
    ("foreign-axolotl-blank-typo.yaml", "lora_alpah", "lora_alpha", "warning", 0),  # axolotl warns, drops it
    ("foreign-lf-typo.yaml", "lora_rnak", "lora_rank", "error", 3),  # LLaMA-Factory refuses the file
])
def test_unknown_key_names_the_closest(fixture, key, closest, severity, code):
    rc, d = check_json(fixture, "--model", "llama-3.2-1b", "--set", "per_device_train_batch_size=1"
                       if "lf" in fixture else "micro_batch_size=1")
    found = [f for f in d["findings"] if f["code"] == "unknown-key"]
    assert len(found) == 1 and found[0]["severity"] == severity
    f = found[0]
    assert f["keys"][0]["key"] == key and f["keys"][0]["line"] == 4 + ("axolotl" in fixture)
    assert closest in f["fix"] and f["set"] == {closest: yaml.safe_load((FIX / fixture).read_text())[key]}
    assert rc == code


# ------------------------------------------------------------------ peft's target-module rules


@pytest.mark.parametrize("fixture,targets", [
    ("foreign-targets-suffix.yaml", ["q_proj", "v_proj"]),
    ("foreign-targets-regex.yaml", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
])
def test_peft_target_rules_resolve_on_the_model(fixture, targets):
    report = judge(read(FIX / fixture), GPU24)
    assert report.reading.cfg.lora.target_modules == targets
    assert report.fit_checked and "unknown-target-module" not in {f["code"] for f in report.findings}


def test_a_name_of_another_architecture_is_a_warning_naming_this_models_modules():
    rc, d = check_json("axolotl-risky.yaml")  # q_proj, v_proj, qkv_proj on Llama: qkv_proj is Phi-3's fused name
    bad = next(f for f in d["findings"] if f["code"] == "unknown-target-module")
    # peft adapts the names that match and skips the rest (it fails only when none matches): the run trains,
    # so it is not an error (finding.py: error = the run will crash); what it meant to adapt is named
    assert rc == 0 and bad["severity"] == "warning" and bad["keys"][0]["key"] == "lora_target_modules"
    assert "qkv_proj" in bad["message"] and "k_proj, o_proj" in bad["why"] and "attention" in bad["why"]
    # and the fit is still answered, for the names peft adapts
    assert d["fit"] in ("fits", "tight", "wont-fit") and d["config"]["lora"]["target_modules"] == ["q_proj", "v_proj"]


def test_a_pre_quantized_base_named_so_is_estimated_in_its_storage_not_said_unmodelled(tmp_path):
    f = tmp_path / "gptq.yaml"
    f.write_text("base_model: TheBloke/Llama-2-7B-GPTQ\nadapter: lora\ngptq: true\nsequence_len: 1024\n"
                 "lora_target_linear: true\nmicro_batch_size: 1\ngradient_accumulation_steps: 8\n")
    report = judge(read(f), GPU24)
    assert not [s for s in report.findings if s["code"] == "not-modelled" and "pre-quantized" in s["message"]]
    assert any(n.startswith("estimated in its shipped storage: pre-quantized GPTQ 4-bit") for n in report.notes)
    assert report.ctx.estimate.components["base_weights"] < 4 * 2 ** 30  # 6.5B linear weights at 4 bits


@pytest.mark.parametrize("model,targets,severity,frozen", [
    # GLM-4 fuses gate and up into gate_up_proj: gate_proj/up_proj adapt nothing of its MLP (axolotl's glm4 example)
    ("THUDM/GLM-4-32B-0414", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
     "warning", ["gate_up_proj"]),
    # GLM-4.7-Flash's attention is multi-head latent (q_lora_rank 768): no q_proj/k_proj/v_proj
    ("zai-org/GLM-4.7-Flash", ["q_proj", "k_proj", "v_proj", "o_proj"], "warning",
     ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj"]),
    # Apertus's MLP has no gate (xIELU up/down): gate_proj leaves nothing out
    ("swiss-ai/Apertus-8B-Instruct-2509", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj"], "info", []),
    # a name of no known part (a typo): a warning with the model's names
    ("meta-llama/Llama-3.1-8B", ["q_proj", "v_proj", "qv_proj"], "warning", []),
])
def test_names_the_model_lacks_say_what_stays_frozen(tmp_path, model, targets, severity, frozen):
    f = tmp_path / "axolotl.yaml"
    f.write_text(yaml.safe_dump({"base_model": model, "adapter": "lora", "sequence_len": 1024, "lora_r": 16,
                                 "lora_alpha": 32, "lora_target_modules": targets, "micro_batch_size": 1,
                                 "gradient_accumulation_steps": 8, "learning_rate": 2e-4,
                                 "datasets": [{"path": "data.jsonl", "type": "alpaca"}]}))
    report = judge(read(f), resolve("80GiB", None, None))
    said = [s for s in report.reading.said if s.code == "unknown-target-module"]
    assert len(said) == 1 and said[0].severity == severity
    adapted = report.reading.cfg.lora.target_modules
    assert not set(adapted) & set(frozen) and all(t in targets for t in adapted)
    if frozen:  # the fix targets this model's modules for the part the foreign names meant
        assert ", ".join(frozen) in said[0].why and said[0].patch == {"lora_target_modules": adapted + frozen}
    else:
        assert said[0].patch == {"lora_target_modules": adapted}
    assert report.fit_checked


# ------------------------------------------------------------------ keys rankwise does not model: said, never silent


def test_not_modelled_keys_are_each_said_at_their_line():
    r = read(FIX / "foreign-not-modelled.yaml")
    text = (FIX / "foreign-not-modelled.yaml").read_text().splitlines()
    said = {s.key for s in r.said if s.code == "not-modelled"}
    # load_in_8bit is the methods table's 8-bit LoRA; peft_use_dora on it has no 8-bit DoRA entry
    # flash_attention is train.attention now, lora_modules_to_save lora.modules_to_save, gradient_checkpointing: offload
    # train.activation_offload, the Cut Cross-Entropy plugin train.loss cce, the Liger plugin's norm train.kernels
    # liger_layers beside it
    assert said == {"peft_use_dora", "deepspeed"}
    for s in r.said:
        assert text[r.line(s.key) - 1].startswith(s.key + ":")
    assert r.unread == []  # nothing in this file is left unread
    assert r.cfg.method == "lora-8bit" and r.cfg.train.grad_checkpointing and r.cfg.train.activation_offload
    assert (r.cfg.train.loss, r.cfg.train.kernels) == ("cce", "liger_layers")
    assert r.cfg.lora.modules_to_save == ["embed_tokens", "lm_head"]


def test_precision_padding_and_generation_keys_are_read_or_said():
    """bfloat16 turns the Trainer's bf16 on (axolotl core/builders/base.py); pad_to_sequence_len: true is
    the estimate's own padding, fsdp_version 2 estimated as rankwise's FSDP1 (said) and low_cpu_mem_usage the host
    plan's loading;
    eval_batch_size is kept for the evaluation check (report.eval_said); a vLLM server is said as not modelled,
    where axolotl moves the loaded model to the GPU in a note (the training peak does not depend on it)."""
    r = read(FIX / "foreign-axolotl-more-keys.yaml")
    assert r.cfg.train.precision == "bf16" and not r.cfg.quant.kbit_upcast
    assert {s.key for s in r.said if s.code == "not-modelled"} == {"vllm", "fsdp_version"}
    assert any("FSDP2 (fully_shard) estimated as rankwise's FSDP1" in s.message for s in r.said)
    assert any(n.startswith("experimental_skip_move_to_device: true: ") for n in r.notes)
    assert r.eval_batch is not None and r.eval_batch[0] == "eval_batch_size"
    assert r.unread == []


def test_online_rl_settings_are_said_not_called_harmless():
    """axolotl's trl: and ebft: blocks set how many rollouts are generated and how long (memory the estimate
    does not count), and model_config overrides config.json: each is said at its line, none is left in the
    "no effect on memory" list."""
    path = FIX / "foreign-axolotl-online-rl.yaml"
    r = read(path)
    said = {s.key: s.message for s in r.said if s.code == "not-modelled"}
    assert set(said) == {"trl", "ebft", "model_config"}, said
    assert "rollouts" in said["trl"] and "rollouts" in said["ebft"] and "output_router_logits" in said["model_config"]
    assert r.unread == []
    lines = path.read_text().splitlines()
    for key in said:
        assert lines[r.line(key) - 1].startswith(key + ":")


def test_preference_stage_keeps_its_lr_and_doubles_the_pairs():
    dpo, sft = judge(read(FIX / "foreign-dpo.yaml"), GPU24), judge(read(FIX / "foreign-sft-twin.yaml"), GPU24)
    codes = {f["code"] for f in dpo.findings}
    assert "preference-stage" in codes and "lr-out-of-range" not in codes  # 5e-6 is a DPO learning rate
    assert "lr-out-of-range" in {f["code"] for f in sft.findings}  # the same 5e-6 for SFT is low
    assert dpo.ctx.estimate.peak_bytes > sft.ctx.estimate.peak_bytes  # chosen + rejected per example


def test_multi_gpu_config_says_gpus():
    # 48 GiB cards: a QLoRA 70B loads whole onto each GPU (~38 GiB, transformers 5) before FSDP shards it
    rc, d = check_json("foreign-fsdp.yaml", "--gpu-mem", "48GiB")
    f = {f["code"]: f for f in d["findings"]}["multi-gpu-config"]
    assert re.search(r"--gpus \d+", f["fix"]) and f["keys"][0]["key"] == "fsdp_config"
    n = int(re.search(r"--gpus (\d+)", f["fix"]).group(1))
    rc2, d2 = check_json("foreign-fsdp.yaml", "--gpu-mem", "48GiB", "--gpus", str(n))
    assert d2["fit"] in ("fits", "tight") and "multi-gpu-config" not in {f["code"] for f in d2["findings"]}
    # 24 GiB cards cannot hold that start-up whatever their number: said, not a GPU count that fails
    rc3, d3 = check_json("foreign-fsdp.yaml")
    f3 = {f["code"]: f for f in d3["findings"]}["multi-gpu-config"]
    assert "does not fit on up to 8 of these GPUs either" in f3["message"]


# ------------------------------------------------------------------ findings in the file's language; --set


def test_findings_name_the_files_keys_lines_and_fixes():
    small = cli("check", FIX / "axolotl-qlora.yaml", "--gpu-mem", "8GiB")
    assert small.returncode == 3
    assert "at: " in small.stdout and "sequence_len (line 16)" in flat(small.stdout)
    out = cli("check", FIX / "axolotl-risky.yaml", "--gpu-mem", "24GiB")
    assert "lora_alpha (line 10)" in flat(out.stdout) and "lora.alpha" not in out.stdout
    sets = re.findall(r"--set (\S+)=", flat(out.stdout))
    assert sets and not [k for k in sets if "." in k]  # axolotl keys, not rankwise's dotted ones


@pytest.mark.parametrize("override", ["lora_alpha=128", "lora.alpha=128"])
def test_set_takes_the_files_keys_and_rankwise_keys(override):
    _, before = check_json("axolotl-risky.yaml")
    assert "alpha-below-rank" in {f["code"] for f in before["findings"]}
    _, after = check_json("axolotl-risky.yaml", "--set", override)
    assert "alpha-below-rank" not in {f["code"] for f in after["findings"]}
    assert after["config"]["lora"]["alpha"] == 128


def test_set_unknown_key_is_bad_input_with_the_closest():
    out = cli("check", FIX / "axolotl-risky.yaml", "--set", "lora_alpah=1")
    assert out.returncode == 2 and "lora_alpha" in out.stderr and "Traceback" not in out.stderr


# ------------------------------------------------------------------ the gate


def test_unchecked_fit_is_said_and_gated():
    unknown = FIX / "llamafactory-qlora-unknown-model.yaml"
    plain = cli("check", unknown, "--gpu-mem", "24GiB")
    assert plain.returncode == 0 and "fit NOT checked" in plain.stdout.replace("\n", " ")
    gated = cli("check", unknown, "--gpu-mem", "24GiB", "--require-fit")
    assert gated.returncode == 3 and "--require-fit" in gated.stdout
    ok = cli("check", FIX / "foreign-axolotl-defaults.yaml", "--gpu-mem", "24GiB", "--require-fit", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["fit_checked"] is True


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"])
def test_empty_file_is_bad_input(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    out = cli("check", path)
    assert out.returncode == 2 and "no settings" in out.stderr and out.stdout == ""


# ------------------------------------------------------------------ rankwise import


@pytest.mark.parametrize("fixture", ["axolotl-qlora.yaml", "foreign-lf-v1.yaml", "foreign-not-modelled.yaml"])
def test_import_writes_a_preset_train_loads(tmp_path, fixture):
    out = tmp_path / "imported.yaml"
    done = cli("import", FIX / fixture, "--out", out)
    assert done.returncode == 0, done.stderr
    cfg, source = load_config(out), read(FIX / fixture)
    for dotted in ("method", "lora.r", "lora.alpha", "lora.dropout", "lora.target_modules", "train.lr",
                   "train.micro_batch", "train.grad_accum", "train.max_seq_len", "train.grad_checkpointing",
                   "distributed.strategy"):
        assert get_key(cfg, dotted) == get_key(source.cfg, dotted), dotted
    assert cfg.model.name == source.cfg.model.name
    text = out.read_text()
    assert "# from " in text
    for s in source.said:
        assert s.key in text.split("No rankwise equivalent")[1]  # each unmodelled key has its note
    again = cli("import", FIX / fixture, "--out", out)
    assert again.returncode == 2 and "--force" in again.stderr


def test_importing_a_full_fine_tune_writes_lora_in_its_place_at_a_lora_rate(tmp_path):
    """rankwise trains adapters: a full fine-tune imports as LoRA on every linear at rankwise's alpha and the LoRA
    learning rate for the model's size (its 5e-6, a full fine-tune's rate, would barely move an adapter), each
    such value commented with why."""
    from rankwise.advisor.coupling import ALPHA, learning_rate
    from rankwise.advisor.model import load_model

    out = tmp_path / "imported.yaml"
    done = cli("import", FIX / "foreign-full-7b.yaml", "--out", out)
    assert done.returncode == 0, done.stderr
    cfg, source = load_config(out), read(FIX / "foreign-full-7b.yaml")
    params = load_model(source.cfg.model.name).total_params
    assert cfg.method == "lora" and cfg.lora.target_modules == "all-linear" and cfg.lora.alpha == ALPHA
    assert cfg.train.lr == learning_rate(params, cfg.lora.r, ALPHA) > 10 * source.cfg.train.lr
    text = out.read_text()
    assert "trains no adapter: a full fine-tune" in text and "LoRA Without Regret" in text
    checked = json.loads(cli("check", out, "--gpu-mem", "24GiB", "--json").stdout)
    assert "lr-out-of-range" not in {f["code"] for f in checked["findings"]}


def test_import_refuses_a_rankwise_preset():
    out = cli("import", FIX / "clean.yaml")
    assert out.returncode == 2 and "already a rankwise preset" in out.stderr


# ------------------------------------------------------------------ codes: documented and exercised

FOREIGN_CODES = {"not-modelled", "unknown-key", "preference-stage", "multi-gpu-config", "unknown-target-module",
                 "full-finetune", "frozen-adapter", "eval-batch", "unfrozen-unmatched", "zero-buckets"}


def test_foreign_codes_are_documented_and_produced():
    text = README.read_text(encoding="utf-8")
    start = text.index("\nForeign-config codes: ")
    paragraph = text[start:text.index("\n\n", start + 1)]
    assert set(re.findall(r"\b[a-z0-9]+(?:-[a-z0-9]+)+\b", paragraph)) == FOREIGN_CODES
    import rankwise.advisor.foreign as pkg

    declared = set()
    for py in Path(pkg.__file__).parent.glob("*.py"):
        declared |= set(re.findall(r'Said\(\s*"([a-z-]+)"', py.read_text()))
    assert declared == FOREIGN_CODES
    produced = set()
    for fixture in ("foreign-not-modelled.yaml", "foreign-lf-typo.yaml", "foreign-dpo.yaml", "foreign-fsdp.yaml",
                    "axolotl-risky.yaml", "foreign-full-7b.yaml", "axolotl-unfrozen-lora.yaml",
                    "axolotl-eval-batch.yaml", "axolotl-unfrozen-full.yaml"):
        produced |= {f["code"] for f in judge(read(FIX / fixture), GPU24).findings}
    produced |= {f["code"] for f in judge(read(FIX / "axolotl-zero2-lora.yaml"), resolve("24GiB", 2, None)).findings}
    assert FOREIGN_CODES <= produced


# ------------------------------------------------------------------ generated files end cleanly through the whole check

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from rankwise.advisor.errors import RankwiseError  # noqa: E402
from rankwise.advisor.foreign import AXOLOTL, LLAMAFACTORY, LLAMAFACTORY_V1, TRL  # noqa: E402

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 5000), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(["", "all", "q_proj,v_proj", "[", "(q|v)_proj", "cosine", "zero3.json", "4",
                                     "llama-3.2-1b", "offload", "dpo", "fsdp2", "lora", "qlora"]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.sampled_from(["name", "x", "path"]),
                                                                             SCALARS, max_size=2))


def _nest(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        head, _, sub = key.partition(".")
        if sub:
            out.setdefault(head, {})[sub] = value
        else:
            out[key] = value
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.sampled_from([AXOLOTL, LLAMAFACTORY, LLAMAFACTORY_V1, TRL]), data=st.data())
def test_generated_foreign_files_end_cleanly(tmp_path, table, data):
    flat = data.draw(st.dictionaries(st.sampled_from(sorted(table)), VALUES, min_size=1, max_size=8))
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump(_nest(flat)))
    try:
        report = judge(read(path, []), GPU24)
    except RankwiseError:
        return  # bad input, said with a message (exit 2)
    assert report.findings is not None and all(f["code"] for f in report.findings)


def test_set_takes_nested_keys_of_the_newer_layout():
    _, d = check_json("foreign-lf-v1.yaml", "--set", "peft_config.r=8", "--set", "quant_config.quantization_bit=8")
    assert d["config"]["lora"]["r"] == 8 and d["method"] == "lora-8bit"  # the methods table's 8-bit LoRA


def test_printed_fixes_apply_as_they_are_printed():
    """Each `--set` line check prints can be pasted back: the finding it fixes goes away."""
    out = cli("check", FIX / "axolotl-risky.yaml", "--gpu-mem", "24GiB")
    line = next(l.strip() for l in out.stdout.splitlines() if l.strip().startswith("--set lora_alpha="))
    again = cli("check", FIX / "axolotl-risky.yaml", "--gpu-mem", "24GiB", "--json", *line.split())
    assert "alpha-below-rank" not in {f["code"] for f in json.loads(again.stdout)["findings"]}


def test_bench_runs_over_a_folder(capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import foreign_configs

    assert foreign_configs.main([str(FIX)]) == 0
    text = capsys.readouterr().out
    assert "tracebacks: 0" in text and "fit answer:" in text and "keys left unread:" in text


@pytest.mark.parametrize("text,key,held", [
    ("base_model: llama-3.2-1b\nlora_r: 8\nlearning_rate: 0.0002\nmicro_batch_size: 1\n", "adapter", 2),  # axolotl
    ("model_name_or_path: llama-3.2-1b\nfinetuning_type: full\nstage: sft\n", "finetuning_type", 4),
])
def test_a_full_fine_tune_is_estimated_as_one_not_as_lora(tmp_path, text, key, held):
    """A small model's full fine-tune on 24 GiB: estimated as a full fine-tune (every weight with its gradient
    and optimizer states, plus the run's activations, logits and buffers), not from the LoRA estimate of the
    same settings; the LoRA-only checks are dropped. axolotl trains the weights in the 16-bit dtype it loads;
    LLaMA-Factory casts them to fp32 first (init_adapter's cast_trainable_params_to_fp32)."""
    from rankwise.advisor.fit import verdict
    from rankwise.advisor.model import load_model

    path = tmp_path / "full.yaml"
    path.write_text(text)
    report = judge(read(path), GPU24)
    said = [f for f in report.findings if f["code"] == "full-finetune"]
    assert said and said[0]["message"].startswith(f"{key}: a full fine-tune")
    full = report.full
    n = load_model("llama-3.2-1b").total_params
    assert full.weights == full.grads == held * n and full.states == 2 * held * n and full.peak > full.bytes
    assert full.bytes < GPU24.gpu_bytes and report.fit == verdict(full.peak, GPU24.gpu_bytes) and report.fit_checked
    assert report.fit_basis == "full-estimate"
    assert said[0]["severity"] == {"fits": "info", "tight": "warning", "wont-fit": "error"}[report.fit]
    assert report.ctx.estimate.peak_bytes != full.peak  # not the LoRA estimate's answer
    assert not {"lr-out-of-range", "wont-fit", "alpha-below-rank"} & {f["code"] for f in report.findings}


@pytest.mark.parametrize("model", ["llama-3.2-1b", "someone/unknown-model"])
def test_a_full_fine_tune_is_not_said_to_use_the_tools_lora_defaults(tmp_path, model):
    """axolotl's LoRA defaults (r 8, alpha 8, dropout 0) play no part in a full fine-tune, whether the model resolves
    or not (an unresolved one listed them)."""
    path = tmp_path / "full.yaml"
    path.write_text(f"base_model: {model}\nlearning_rate: 0.00002\nmicro_batch_size: 1\n")
    report = judge(read(path), GPU24)
    assert report.reading.full == "adapter" and not any("lora." in n for n in report.notes)


def _full(tmp_path, extra: str, gpu=GPU24):
    path = tmp_path / "full.yaml"
    path.write_text("base_model: llama-3.2-1b\nsequence_len: 2048\nmicro_batch_size: 2\nbf16: true\n"
                    "gradient_checkpointing: true\n" + extra)
    return judge(read(path), gpu).full


def test_a_full_fine_tunes_peak_holds_gradients_beside_the_forward_only_when_they_accumulate(tmp_path):
    """One micro-batch a step: the Trainer sets gradients to None after each step, so the forward (activations,
    logits) and the gradients are not alive together: the larger counts. Accumulating: both."""
    one = _full(tmp_path, "gradient_accumulation_steps: 1\n")
    many = _full(tmp_path, "gradient_accumulation_steps: 4\n")
    forward = sum(one.rest[k] for k in ("activations", "logits_loss"))
    other = sum(v for k, v in one.rest.items() if k not in ("activations", "logits_loss"))
    assert one.rest == many.rest and not one.accumulates and many.accumulates
    assert one.peak == one.weights + one.states + max(one.grads, forward) + other
    assert many.peak == many.weights + many.states + many.grads + forward + other > one.peak


def test_a_full_fine_tune_under_ddp_adds_the_gradient_buckets_and_dpo_its_reference_model(tmp_path):
    """DDP keeps a flat bucket copy of every gradient; TRL's DPO deep-copies the policy as its reference when no
    adapter is trained (ORPO is reference-free)."""
    from rankwise.advisor.hardware import resolve as hw

    two = hw("80GiB", None, None)
    two = __import__("rankwise.advisor.fit", fromlist=["with_gpus"]).with_gpus(two, 2)
    ddp = _full(tmp_path, "ddp: true\n", two)
    assert ddp.gpus == 2 and ddp.rest["ddp_buckets"] == ddp.grads
    dpo = _full(tmp_path, "rl: dpo\n")
    orpo = _full(tmp_path, "rl: orpo\n")
    assert dpo.rest["reference_model"] == dpo.weights and "reference_model" not in orpo.rest


def test_a_full_fine_tune_whose_weights_gradients_and_states_exceed_the_gpu_will_not_fit():
    """7B, bf16, torch AdamW (states in the parameters' dtype): 2 + 2 + 4 bytes a parameter, ~54 GiB, over 24 GiB
    before any activation. The LoRA estimate of the same settings fits 24 GiB, and was the answer before."""
    from rankwise.advisor.model import load_model

    rc, d = check_json("foreign-full-7b.yaml")
    params = load_model("mistral-7b").total_params
    assert rc == 3 and d["method"] == "full" and d["fit"] == "wont-fit" and d["fit_basis"] == "full-floor"
    assert d["full_finetune"]["floor_bytes"] == params * (2 + 2 + 2 * 2) and d["estimate"] is None
    codes = {f["code"]: f for f in d["findings"]}
    assert codes["full-finetune"]["severity"] == "error" and "lr-out-of-range" not in codes  # 5e-6: a full FT's rate
    lora = judge(read(FIX / "foreign-full-7b.yaml"), GPU24).ctx.fit
    assert lora in ("fits", "tight")  # what was said before: the LoRA estimate of these settings


def test_a_full_fine_tune_written_for_fsdp_and_judged_on_one_gpu_says_how_many_it_needs(tmp_path):
    """54 GiB of floor on one 24 GiB card: will not fit. Sharded over N GPUs the floor is 54/N GiB each (3 would
    hold it), but the whole estimate (gathered layers, activations, logits, buffers) fits first on 4: the fix
    names the fewest N whose whole estimate fits, with its peak."""
    from rankwise.advisor.fit import with_gpus
    from rankwise.advisor.foreign.full_ft import full_finetune
    from rankwise.advisor.config import with_values

    path = tmp_path / "full-fsdp.yaml"
    path.write_text((FIX / "foreign-full-7b.yaml").read_text() + "fsdp_version: 2\nfsdp_config:\n  offload_params: false\n")
    report = judge(read(path), GPU24)
    said = next(f for f in report.findings if f["code"] == "full-finetune")
    spec = __import__("rankwise.advisor.model", fromlist=["load_model"]).load_model(report.model)

    def on(n):
        cfg = with_values(report.ctx.cfg, {"distributed.gpus": n, "distributed.strategy": "fsdp"})
        return full_finetune("adapter", spec, cfg, with_gpus(GPU24, n))

    n = next(n for n in range(2, 9) if on(n).verdict == "fits")
    assert said["severity"] == "error" and f"--gpus {n} (~{on(n).peak / 2 ** 30:.1f} GiB per GPU there)" in said["fix"]
    # accelerate keeps FSDP's trainable shards in fp32 (4 + 4 + 8 bytes a parameter) where one GPU trains the
    # 16-bit weights it loads (2 + 2 + 4)
    assert abs(on(n).bytes - 2 * report.full.bytes / n) < 4 and on(n - 1).verdict != "fits"


@pytest.mark.parametrize("offload,on_gpu", [("params_and_optimizer", set()), ("params", {"grads", "states"})])
def test_a_full_fine_tune_with_cpu_offload_keeps_what_it_offloads_in_host_ram(tmp_path, offload, on_gpu):
    """Sharded over 2 GPUs with offload: the offloaded parts leave the GPU (counted in host RAM, every rank's
    shard), and the fit is judged on what stays (gathered layers, activations, logits, buffers), no longer left
    unchecked. One GPU is plain training (no offload), as for LoRA."""
    from rankwise.advisor.config import with_values
    from rankwise.advisor.fit import with_gpus
    from rankwise.advisor.foreign.full_ft import full_finetune
    from rankwise.advisor.model import load_model

    spec = load_model("llama-3.1-8b")
    cfg = read(FIX / "foreign-full-7b.yaml").cfg
    two = with_gpus(GPU24, 2)
    plain = full_finetune("adapter", spec, with_values(cfg, {"distributed.gpus": 2, "distributed.strategy": "deepspeed"}), two)
    off = full_finetune("adapter", spec, with_values(cfg, {"distributed.gpus": 2, "distributed.strategy": "deepspeed",
                                                          "distributed.offload": offload}), two)
    for part in ("weights", "grads", "states"):
        assert getattr(off, part) == (getattr(plain, part) if part in on_gpu else 0)
    moved = [p for p in ("weights", "grads", "states") if p not in on_gpu]
    assert off.host == 2 * sum(getattr(plain, p) for p in moved)
    assert off.verdict in ("fits", "tight", "wont-fit") and off.peak < plain.peak
    one = full_finetune("adapter", spec, with_values(cfg, {"distributed.offload": offload}), GPU24)
    assert one.host == 0 and one.weights == 2 * spec.total_params


@pytest.mark.parametrize("strategy,gpus,per_param,divides", [
    ("fsdp", 4, (4, 4, 8), True),  # accelerate upcasts FSDP's trainable flat parameters to fp32
    ("deepspeed", 4, (2, 2, 4 + 8), True),  # ZeRO-3: 16-bit partition and gradients, fp32 master + AdamW states
    ("ddp", 4, (2, 2, 4), False),  # every GPU holds it all, in the 16-bit dtype it loads
])
def test_a_full_fine_tunes_floor_divides_where_the_strategy_shards(strategy, gpus, per_param, divides):
    """Bytes a parameter (weights, gradients, optimizer states incl. a master copy) as each stack holds a bf16
    run with torch AdamW, divided over the GPUs where the strategy shards."""
    from rankwise.advisor.foreign.full_ft import floor
    from rankwise.advisor.model import load_model
    from rankwise.advisor.plan import Plan

    spec = load_model("llama-3.1-8b")
    n = spec.total_params
    one = floor("adapter", spec, Plan("lora", optimizer="adamw_torch", gpus=1), None)
    assert (one.weights, one.grads, one.states) == (2 * n, 2 * n, 4 * n)
    many = floor("adapter", spec, Plan("lora", optimizer="adamw_torch", gpus=gpus, strategy=strategy), None)
    assert (many.weights, many.grads, many.states) == tuple(b * n // (gpus if divides else 1) for b in per_param)
    upcast = floor("finetuning_type", spec, Plan("lora", optimizer="adamw_torch", gpus=1), None, upcast="LLaMA-Factory")
    assert (upcast.weights, upcast.grads, upcast.states) == (4 * n, 4 * n, 8 * n) and "LLaMA-Factory" in upcast.held


@pytest.mark.parametrize("text", ["peft_use_dora: true\nadapter: qlora\n", "adapter: qlora\npeft_use_dora: true\n"])
def test_dora_is_judged_after_the_method_whatever_the_order(tmp_path, text):
    path = tmp_path / "dora.yaml"
    path.write_text("base_model: llama-3.2-1b\nload_in_4bit: true\n" + text)
    r = read(path)
    from rankwise.advisor.methods import METHODS

    dora = [n for n, m in METHODS.items() if m.peft.get("use_dora") and m.quantized]
    if dora:  # the methods table has a 4-bit DoRA entry: the file is judged as it
        assert r.cfg.method == dora[0]
    else:  # otherwise said, on the line that asked for it
        assert [s.key for s in r.said if s.code == "not-modelled"] == ["peft_use_dora"] and r.cfg.method == "qlora"


def test_set_on_a_rankwise_preset_takes_rankwise_keys():
    _, d = check_json("clean.yaml", "--set", "lora.r=8")
    assert d["kind"] == "rankwise" and d["config"]["lora"]["r"] == 8
    bad = cli("check", FIX / "clean.yaml", "--set", "lora.rank=8")
    assert bad.returncode == 2 and "did you mean 'r'" in bad.stderr


@pytest.mark.parametrize("text,key", [
    ("base_model: nvidia/Qwen3-30B-A3B-NVFP4\nadapter: lora\n", "base_model"),  # axolotl
    ("model_name_or_path: nvidia/Qwen3-30B-A3B-NVFP4\nfinetuning_type: lora\nstage: sft\n", "model_name_or_path"),
])
def test_an_nvfp4_copy_is_its_original_with_the_storage_said(tmp_path, text, key):
    """An NVFP4 (ModelOpt) copy has its original's shapes (tests/test_model_index.py SAME_AS); its 4-bit storage is
    said, not counted as a 16-bit base quietly."""
    path = tmp_path / "nvfp4.yaml"
    path.write_text(text)
    said = [s for s in read(path).said if s.key == key and s.code == "not-modelled"]
    assert said and "NVFP4" in said[0].message


@pytest.mark.parametrize("command,fixture,tool", [("train", "axolotl-qlora.yaml", "axolotl"),
                                                   ("sweep", "llamafactory-lora.yaml", "LLaMA-Factory")])
def test_a_foreign_config_given_as_a_preset_is_named_with_the_commands_that_read_it(command, fixture, tool):
    """`train --preset` reads rankwise presets: a foreign file is said as what it is, with check and import, not
    as "not a training config"."""
    out = cli(command, "--preset", FIX / fixture)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    text = flat(out.stderr)
    assert f"an {tool} config, not a rankwise preset" in text and "rankwise check" in text and "rankwise import" in text


@pytest.mark.parametrize("fixture", ["axolotl-qlora.yaml", "axolotl-risky.yaml", "llamafactory-lora.yaml",
                                     "foreign-dpo.yaml", "foreign-full-7b.yaml"])
def test_estimate_reads_a_foreign_config_as_check_does(fixture):
    """One answer: `estimate --preset FILE` on an axolotl / LLaMA-Factory file gives check's peak (its target
    modules under peft's rules, a paired stage's doubled batch; a full fine-tune estimated as one)."""
    est = json.loads(cli("estimate", "--preset", FIX / fixture, "--gpu-mem", "24GiB", "--json").stdout)
    _, d = check_json(fixture)
    if d["full_finetune"]:
        assert est["method"] == "full" and est["full_finetune"] == d["full_finetune"] and est["fit"] == d["fit"]
    else:
        assert est["peak_bytes"] == d["estimate"]["peak_bytes"] and est["fit"] == d["fit"]


@pytest.mark.parametrize("block,r", [(None, 8), (16, 4), (64, 16)])
def test_a_llamafactory_oft_run_is_an_adapter_estimated_as_lora_of_its_size(tmp_path, block, r):
    """finetuning_type: oft is peft's OFT, an adapter (d_in (b - 1) / 2 trainable weights per adapted linear), not
    a full or partial fine-tune: estimated as LoRA with as many weights on a square linear, said as such."""
    f = tmp_path / "oft.yaml"
    f.write_text("model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct\nstage: sft\nfinetuning_type: oft\n"
                 + (f"oft_block_size: {block}\n" if block else "") + "oft_target: all\ncutoff_len: 1024\n")
    report = judge(read(f), GPU24)
    cfg = report.reading.cfg
    assert cfg.method == "lora" and cfg.lora.r == r and cfg.lora.target_modules == "all-linear"
    assert report.full is None and report.fit_checked
    said = [s for s in report.findings if s["code"] == "not-modelled" and "OFT" in s["message"]]
    assert said and said[0]["severity"] == "info" and f"r={r}" in said[0]["message"]
    q = next(l for l in load_model("meta-llama/Meta-Llama-3-8B-Instruct").linears if l.name == "q_proj")
    assert r * (q.d_in + q.d_out) == pytest.approx(q.d_in * ((block or 32) - 1) / 2, rel=0.1)  # r is whole


@pytest.mark.parametrize("path,model", [("models/Llama-2-7b", "llama-2-7b"),
                                        ("/data/models/Meta-Llama-3-8B-Instruct", "meta-llama/Meta-Llama-3-8B-Instruct"),
                                        ("saves/qwen3-4b/full/sft", None), ("/path/to/my-finetune", None)])
def test_a_local_path_from_the_server_is_read_by_its_folders_name(tmp_path, path, model):
    """A config written on the training server names its model by a path this machine lacks: check (and estimate
    --preset, the same answer) resolve it by the last folder's name where that names a known model, and say so;
    a name that names none stays unresolved. --model with a missing path stays bad input."""
    f = tmp_path / "lf.yaml"
    f.write_text(f"model_name_or_path: {path}\nstage: sft\nfinetuning_type: lora\ncutoff_len: 1024\n"
                 "per_device_train_batch_size: 1\n")
    report = judge(read(f), GPU24)
    if model is None:
        assert report.unresolved and not any("not on this machine" in n for n in report.notes)
        return
    assert report.unresolved is None and report.fit_checked
    assert any(n.startswith(f"{path} is not on this machine: estimated as {model}") for n in report.notes)
    est = json.loads(cli("estimate", "--preset", f, "--gpu-mem", "24GiB", "--json").stdout)
    assert est["peak_bytes"] == report.ctx.estimate.peak_bytes and est["model_note"].startswith(path)
    bad = cli("estimate", "--model", path if path.startswith("/") else "./" + path)
    assert bad.returncode == 2 and "not found" in bad.stderr


@pytest.mark.parametrize("order", ["pure_bf16: true\nbf16: true\n", "bf16: true\npure_bf16: true\n"])
def test_llamafactory_pure_bf16_is_rankwise_pure_bf16_and_keeps_a_full_fine_tune_in_16_bit(tmp_path, order):
    """pure_bf16 ("purely bf16 precision (without AMP)") is train.precision pure_bf16 whatever bf16 says beside
    it, and LLaMA-Factory then leaves the trainable parameters in bf16: half the floor of its fp32 cast."""
    from rankwise.advisor.model import load_model

    path = tmp_path / "pure.yaml"
    path.write_text("model_name_or_path: llama-3.2-1b\nfinetuning_type: full\nstage: sft\n" + order)
    reading = read(path)
    assert reading.cfg.train.precision == "pure_bf16"
    full = judge(reading, GPU24).full
    n = load_model("llama-3.2-1b").total_params
    assert (full.weights, full.grads, full.states) == (2 * n, 2 * n, 4 * n)


@pytest.mark.parametrize("keys,layers,per_layer", [
    # LLaMA-Factory's defaults: the last 2 layers, all of each (its norms too; the final norm is not a layer's)
    ("", 2, lambda fam, L, h: fam["attn"] // L + fam["mlp"] // L + (fam["norm"] - h) // L),
    ("freeze_trainable_layers: -4\nfreeze_trainable_modules: mlp\n", 4, lambda fam, L, h: fam["mlp"] // L),
    ("freeze_trainable_layers: 3\nfreeze_trainable_modules: self_attn,mlp\n", 3,
     lambda fam, L, h: fam["attn"] // L + fam["mlp"] // L),
])
def test_a_llamafactory_freeze_fine_tune_trains_only_the_layers_and_modules_it_names(tmp_path, keys, layers,
                                                                                    per_layer):
    """finetuning_type freeze: the named layers' modules train (cast to fp32 with their fp32 gradients and
    states), every other weight stays frozen in bf16; the LoRA checks are dropped as for a full fine-tune, and
    the finding says what trains."""
    from rankwise.advisor.model import load_model

    path = tmp_path / "freeze.yaml"
    path.write_text("model_name_or_path: llama-3.1-8b\nfinetuning_type: freeze\nstage: sft\nbf16: true\n"
                    "cutoff_len: 1024\n" + keys)
    report = judge(read(path), GPU24)
    spec = load_model("llama-3.1-8b")
    fam, L, n = spec.params_by_family, spec.num_layers, spec.total_params
    t = layers * per_layer(fam, L, spec.hidden_size)
    full = report.full
    assert full.trained == t and 0 < t < n // 4
    assert (full.weights, full.grads, full.states) == ((n - t) * 2 + t * 4, t * 4, t * 8)
    said = next(f for f in report.findings if f["code"] == "full-finetune")
    assert said["message"].startswith("finetuning_type: a partial fine-tune (freeze: ")
    assert f"{layers} of {L} layers" in said["message"]
    assert not {"lr-out-of-range", "alpha-below-rank"} & {f["code"] for f in report.findings}


def test_freeze_extra_modules_train_the_embeddings_too(tmp_path):
    from rankwise.advisor.model import load_model

    path = tmp_path / "freeze.yaml"
    base = "model_name_or_path: llama-3.2-1b\nfinetuning_type: freeze\nstage: sft\nbf16: true\n"
    path.write_text(base)
    plain = judge(read(path), GPU24).full
    path.write_text(base + "freeze_extra_modules: embed_tokens\n")
    more = judge(read(path), GPU24).full
    assert more.trained - plain.trained == load_model("llama-3.2-1b").params_by_family["embed"]
    assert "embed_tokens" in more.which


V1_BASE = "model: llama-3.2-1b\ntrain_dataset: data/v1_sft_demo.yaml\ncutoff_len: 1024\nmax_steps: 10\n"


@pytest.mark.parametrize("extra,precision", [("", "fp32"), ("bf16: false\n", "fp32"),
                                             ("dist_config:\n  name: fsdp2\n", None)])
def test_llamafactory_v1_without_peft_config_is_a_full_fine_tune(tmp_path, extra, precision):
    """v1/core/model_engine.py: no peft_config is "full tuning", the model cast to float32; `bf16` reaches only the
    dist plugin, so without one (or with bf16 false) the run computes in fp32. It was checked as LoRA r=8."""
    path = tmp_path / "full.yaml"
    path.write_text(V1_BASE + extra)
    reading = read(path)
    assert reading.full == "peft_config" and reading.full_precision == precision
    report = judge(reading, GPU24)
    n = load_model("llama-3.2-1b").total_params
    assert (report.full.weights, report.full.grads) == (4 * n, 4 * n)
    assert ("no autocast" in report.full.finding(None).message) == (precision == "fp32")
    assert not {"lr-out-of-range", "alpha-below-rank"} & {f["code"] for f in report.findings}
    path.write_text(V1_BASE.replace("llama-3.2-1b", "llama-3.1-8b") + extra)  # over 24 GiB: the fix trains LoRA
    said = next(f for f in judge(read(path), GPU24).findings if f["code"] == "full-finetune")
    assert said["severity"] == "error" and said["set"] == {"peft_config": {"name": "lora"}}


def test_llamafactory_v1_freeze_trains_what_the_flat_layouts_freeze_does(tmp_path):
    """peft_config name freeze (v1/plugins/model_plugins/peft.py get_freeze_model) is the flat layout's freeze
    tuning with the same keys under peft_config; it was checked as LoRA."""
    keys = {"freeze_trainable_layers": -4, "freeze_trainable_modules": "mlp"}
    v1 = tmp_path / "v1.yaml"
    v1.write_text(V1_BASE + "peft_config:\n  name: freeze\n" + "".join(f"  {k}: {v}\n" for k, v in keys.items()))
    old = tmp_path / "flat.yaml"
    old.write_text("model_name_or_path: llama-3.2-1b\nfinetuning_type: freeze\nstage: sft\nbf16: true\n"
                   "cutoff_len: 1024\n" + "".join(f"{k}: {v}\n" for k, v in keys.items()))
    a, b = judge(read(v1), GPU24).full, judge(read(old), GPU24).full
    assert a.trained == b.trained > 0 and a.which == b.which


@pytest.mark.parametrize("value,attention", [("flash_attention_2", "flash_attention_2"), ("eager", "eager"),
                                             ("sdpa", "sdpa")])
def test_llamafactory_v1_flash_attn_takes_the_implementation_names(tmp_path, value, attention):
    """v1's flash_attn values are transformers' attn_implementation names (v1/utils/types.py AttentionFunction),
    not the flat layout's fa2/disabled: flash_attention_2 was said as "not modelled"."""
    path = tmp_path / "attn.yaml"
    path.write_text(V1_BASE + f"peft_config:\n  name: lora\nflash_attn: {value}\n")
    reading = read(path)
    assert reading.cfg.train.attention == attention and reading.full is None
    assert not any(s.code == "not-modelled" and s.key == "flash_attn" for s in reading.said)


def _read_text(tmp_path, text: str):
    path = tmp_path / f"axolotl-{abs(hash(text))}.yaml"
    path.write_text(text)
    return read(path)


def test_axolotl_unfrozen_parameters_beside_an_adapter_that_freezes_it_is_an_error(tmp_path):
    """axolotl freezes every parameter its unfrozen_parameters patterns do not match (re.match, dots literal)
    after the adapter is added: "^model.language_model.*" and "^lm_head.*" match no base_model.model.… LoRA name,
    so nothing trains. A preference stage that loads the adapter's config only, or a pattern that matches the
    LoRA weights, leaves it a note; without an adapter the file is a full fine-tune, estimated whole."""
    report = judge(read(FIX / "axolotl-unfrozen-lora.yaml"), GPU24)
    said = next(f for f in report.findings if f["code"] == "frozen-adapter")
    assert said["severity"] == "error" and said["keys"] == [{"key": "unfrozen_parameters", "line": 11}]
    assert "lora_modules_to_save" in said["fix"]
    text = (FIX / "axolotl-unfrozen-lora.yaml").read_text()
    for change in (text + "rl: dpo\n", text.replace("^lm_head.*", "base_model.model.model.layers.0.+")):
        codes = {f["code"] for f in judge(_read_text(tmp_path, change), GPU24).findings}
        assert "frozen-adapter" not in codes and "not-modelled" in codes
    full = judge(_read_text(tmp_path, text.replace("adapter: qlora\nload_in_4bit: true\n", "")), GPU24)
    assert full.full is not None and "frozen-adapter" not in {f["code"] for f in full.findings}


def test_axolotl_leaves_checkpointing_non_reentrant_with_unfrozen_parameters(tmp_path):
    """normalize_config sets use_reentrant True only without unfrozen_parameters; left unset, transformers 5
    checkpoints non-reentrant."""
    text = (FIX / "axolotl-unfrozen-lora.yaml").read_text()
    assert _read_text(tmp_path, text).cfg.train.checkpointing_reentrant is False
    assert _read_text(tmp_path, text.split("\nunfrozen_parameters:")[0]).cfg.train.checkpointing_reentrant is True


def test_a_full_fine_tunes_checkpoints_are_counted_on_the_disk_they_go_to(tmp_path):
    """A checkpoint holds the weights as held (LLaMA-Factory's fp32 cast: 4 bytes) and both AdamW moments of
    every trained weight; save_total_limit unset keeps every one (HF's default), so even the first must fit. On
    a probed machine with less free disk: an error; on a declared one: the figure only."""
    from rankwise.advisor.hardware import Gpu, Hardware, Host
    from rankwise.advisor.model import load_model

    gib = 1024 ** 3
    n = load_model("llama-3.2-1b").total_params

    def machine(free):
        host = Host(cpu_cores=8, ram_total_bytes=64 * gib, ram_available_bytes=60 * gib, disk_free_bytes=free,
                    disk_path="/data")
        return Hardware(gpus=(Gpu(0, "NVIDIA A100-SXM4-80GB", 80 * gib, free_bytes=79 * gib, used_bytes=gib),), host=host)

    path = tmp_path / "full.yaml"
    body = "model_name_or_path: llama-3.2-1b\nfinetuning_type: full\nstage: sft\nbf16: true\ncutoff_len: 1024\n"
    path.write_text(body)
    roomy = judge(read(path), machine(500 * gib))
    assert roomy.full.checkpoint > n * (4 + 8) and "disk-short" not in {f["code"] for f in roomy.findings}
    assert any(note.startswith("checkpoints: ~") and "every one stays" in note for note in roomy.notes)
    tight = judge(read(path), machine(10 * gib))
    short = next(f for f in tight.findings if f["code"] == "disk-short")
    assert short["severity"] == "error" and "the first checkpoint" in short["message"]
    path.write_text(body + "save_total_limit: 2\n")
    limited = judge(read(path), machine(30 * gib))  # one fits, three (the limit + the one written before) do not
    assert "3 checkpoints" in next(f for f in limited.findings if f["code"] == "disk-short")["message"]
    assert "disk-short" not in {f["code"] for f in judge(read(path), GPU24).findings}  # declared: not judged


def test_a_full_fine_tunes_host_ram_follows_how_its_checkpoints_are_saved(tmp_path):
    """FSDP FULL_STATE_DICT (accelerate's default under FSDP1): rank 0 gathers the weights as held and the optimizer
    states whole in host RAM at each save, on top of what training holds (CPU offload's shards); SHARDED_STATE_DICT
    (and FSDP2's default) saves a tensor at a time. ZeRO-3: the 16-bit weights consolidated on rank 0. On a probed
    machine with less RAM available: host-ram-short, an error naming the save; on a declared one: the figure only."""
    from rankwise.advisor.hardware import Gpu, Hardware, Host

    gib = 1024 ** 3

    def machine(ram):
        host = Host(cpu_cores=64, ram_total_bytes=ram, ram_available_bytes=ram, disk_free_bytes=100_000 * gib,
                    disk_path="/data")
        return Hardware(gpus=tuple(Gpu(i, "NVIDIA H100 80GB HBM3", 80 * gib, free_bytes=79 * gib, used_bytes=gib)
                                   for i in range(8)), host=host)

    head = ("base_model: meta-llama/Llama-3.1-8B\nsequence_len: 2048\nmicro_batch_size: 1\nbf16: true\n"
            "gradient_checkpointing: true\n")
    fsdp = "fsdp:\n  - full_shard\n  - auto_wrap\nfsdp_config:\n  fsdp_offload_params: true\n"
    n = load_model("llama-3.1-8b").total_params

    def on8(text):  # a probed machine's GPUs are used where the run says how many (as `check --gpus 8`)
        path = tmp_path / f"full-{abs(hash(text))}.yaml"
        path.write_text(text)
        return read(path, ["distributed.gpus=8"])

    got = {}
    for name, extra in (("default", ""), ("full", "  fsdp_state_dict_type: FULL_STATE_DICT\n"),
                        ("sharded", "  fsdp_state_dict_type: SHARDED_STATE_DICT\n"), ("fsdp2", "fsdp_version: 2\n")):
        r = judge(on8(head + fsdp + extra), machine(2000 * gib))
        got[name] = r
        assert r.full_host.train >= r.full.host > 0  # the offloaded weights, gradients and states wait on the host
    whole = got["full"].full.checkpoint - CHECKPOINT_EXTRA
    assert whole >= n * (4 + 8)  # accelerate's fp32 shards gathered whole, both AdamW moments
    assert got["full"].full_host.save == got["full"].full_host.train + whole == got["default"].full_host.save
    assert "accelerate's default" in got["default"].full_host.how
    for name in ("sharded", "fsdp2"):
        assert got[name].full_host.save - got[name].full_host.train <= SHARD_BYTES
    note = next(x for x in got["full"].notes if x.startswith("host RAM:"))
    assert "FULL_STATE_DICT" in note and f"saving {(got['full'].full_host.save) / gib:.0f} GiB" in note
    short = judge(on8(head + fsdp), machine(100 * gib))
    ram = next(f for f in short.findings if f["code"] == "host-ram-short")
    assert ram["severity"] == "error" and "saving a checkpoint" in ram["message"] and "SHARDED" in ram["fix"]
    assert "host-ram-short" not in {f["code"] for f in judge(on8(head + fsdp), planned(gpu="H100-80GB", gpus=8)).findings}
    z3 = judge(on8(head + "deepspeed: zero3.json\n"), machine(2000 * gib))
    assert z3.full_host.save - z3.full_host.train == 2 * n


def test_an_evaluation_batch_that_sets_the_peak_is_judged_against_the_gpu(tmp_path):
    """eval_batch_size 16 at 4096 tokens: the eval forward's logits (16 x 4096 x 128k, upcast for the loss) beside
    the resident weights and optimizer states will not fit 24 GiB where training takes ~10 GiB: an error whose
    fix is the training micro-batch. Only where the run evaluates (a validation split or an eval dataset)."""
    text = (FIX / "axolotl-eval-batch.yaml").read_text()
    said = next(f for f in judge(read(FIX / "axolotl-eval-batch.yaml"), GPU24).findings if f["code"] == "eval-batch")
    assert said["severity"] == "error" and said["set"] == {"eval_batch_size": 1}
    fixed = judge(read(FIX / "axolotl-eval-batch.yaml", ["eval_batch_size=1"]), GPU24)
    assert "eval-batch" not in {f["code"] for f in fixed.findings}
    no_eval = text.replace("val_set_size: 0.05\n", "")
    assert "eval-batch" not in {f["code"] for f in judge(_read_text(tmp_path, no_eval), GPU24).findings}
    test_set = no_eval + "test_datasets:\n  - path: held_out.jsonl\n    type: alpaca\n"
    assert "eval-batch" in {f["code"] for f in judge(_read_text(tmp_path, test_set), GPU24).findings}
    lf = tmp_path / "lf.yaml"
    lf.write_text("model_name_or_path: llama-3.2-1b\nfinetuning_type: lora\nstage: sft\ncutoff_len: 4096\n"
                  "per_device_train_batch_size: 1\nper_device_eval_batch_size: 16\nval_size: 0.1\n")
    assert "eval-batch" in {f["code"] for f in judge(read(lf), GPU24).findings}


def test_the_eval_forward_grows_by_the_loss_over_each_rows_logits():
    """Per evaluated row: its tokens' logits at the loss's forward peak (16-bit logits, the fp32 copy and the
    fp32 log_softmax on the HF stack: 10 bytes a logit) and its residual stream; the resident part does not move."""
    from rankwise.advisor.config import RunConfig, with_values
    from rankwise.advisor.evaluation import eval_peak_bytes
    from rankwise.advisor.fit import assess
    from rankwise.advisor.model import load_model

    spec = load_model("llama-3.2-1b")
    est = assess(spec, with_values(RunConfig(), {"method": "lora", "train.max_seq_len": 2048}), GPU24).estimate
    one, two = eval_peak_bytes(spec, est, 1), eval_peak_bytes(spec, est, 2)
    assert two - one == 2048 * spec.vocab_size * (2 + 4 + 4) + 2048 * 2 * spec.hidden_size


# ------------------------------------------------------------------ TRL's configs (trl sft --config, the recipes)

def test_a_trl_recipe_is_read_as_trl_not_as_axolotl():
    """alignment-handbook's zephyr QLoRA recipe: model_name_or_path with TRL's own keys is TRL (it was read as an
    axolotl file: the model unread, llama-3.2-1b estimated, every ModelConfig key unknown)."""
    reading = read(FIX / "trl-sft-qlora.yaml")
    c = reading.cfg
    assert reading.kind == "trl" and c.model.name == "mistralai/Mistral-7B-v0.1" and c.method == "qlora"
    assert (c.lora.r, c.lora.alpha, c.lora.dropout, len(c.lora.target_modules)) == (16, 16.0, 0.05, 7)
    assert (c.train.max_seq_len, c.train.micro_batch, c.train.grad_accum, c.train.lr) == (2048, 4, 2, 2e-4)
    assert c.train.checkpointing_reentrant is False and c.train.attention == "flash_attention_2"
    assert c.quant.double_quant is False  # ModelConfig use_bnb_nested_quant default
    report = judge(reading, GPU24)
    assert report.fit in ("fits", "tight") and not [f for f in report.findings if f["code"] == "unknown-key"]


@pytest.mark.parametrize("text,kind", [
    ("model_name_or_path: llama-3.2-1b\nuse_peft: true\nlora_r: 8\n", "trl"),
    ("model_name_or_path: llama-3.2-1b\nfinetuning_type: lora\nlora_rank: 8\nstage: sft\n", "llama-factory"),
    ("model_name_or_path: llama-3.2-1b\nmax_length: 512\nlora_target: all\ntemplate: llama3\n", "llama-factory"),
    ("base_model: llama-3.2-1b\nadapter: lora\nlora_r: 8\nload_in_4bit: true\n", "axolotl"),
])
def test_which_tool_a_file_is_written_for(tmp_path, text, kind):
    assert _read_text(tmp_path, text).kind == kind


def test_a_trl_config_without_use_peft_is_a_full_fine_tune_held_as_loaded(tmp_path):
    """TRL's ModelConfig: use_peft False by default (every weight trains) and dtype "float32" by default: unset,
    the weights, gradients and states are fp32; with dtype bfloat16, 16-bit. The fix names use_peft."""
    from rankwise.advisor.model import load_model

    n = load_model("llama-3.2-1b").total_params
    base = "model_name_or_path: llama-3.2-1b\nmax_length: 1024\nper_device_train_batch_size: 1\n"
    fp32 = judge(_read_text(tmp_path, base), GPU24)
    assert fp32.full is not None and fp32.full.key == "use_peft"
    assert (fp32.full.weights, fp32.full.grads) == (4 * n, 4 * n) and "float32" in fp32.full.held
    big = judge(_read_text(tmp_path, base.replace("llama-3.2-1b", "llama-3.1-8b")), GPU24)
    said = next(f for f in big.findings if f["code"] == "full-finetune")
    assert said["severity"] == "error" and "use_peft: true" in said["fix"] and said["set"] == {"use_peft": True}
    bf16 = judge(_read_text(tmp_path, base + "dtype: bfloat16\n"), GPU24)
    assert (bf16.full.weights, bf16.full.grads) == (2 * n, 2 * n)
    lora = _read_text(tmp_path, base + "use_peft: true\n")
    assert [s.key for s in lora.said if s.code == "not-modelled" and "float32" in s.message] == ["model_name_or_path"]


def test_trl_configs_say_their_trainer_from_the_keys_only_it_has(tmp_path):
    """beta and max_prompt_length are DPO's (paired: twice the micro-batch estimated); num_generations and
    max_completion_length GRPO's (online), whose sequence is prompt + completion."""
    base = "model_name_or_path: llama-3.2-1b\nuse_peft: true\ndtype: bfloat16\nper_device_train_batch_size: 2\n"
    dpo = _read_text(tmp_path, base + "beta: 0.01\nmax_prompt_length: 512\nmax_length: 1024\n")
    assert dpo.stage == "dpo" and judge(dpo, GPU24).ctx.cfg.train.micro_batch == 4
    grpo = _read_text(tmp_path, base + "num_generations: 8\nmax_prompt_length: 256\nmax_completion_length: 768\n")
    assert grpo.stage == "grpo" and grpo.cfg.train.max_seq_len == 1024
    sft = _read_text(tmp_path, base)
    assert sft.stage is None


def test_trl_keys_take_set_and_import(tmp_path):
    """--set takes TRL's own keys; import writes a rankwise preset from a TRL file."""
    fixed = read(FIX / "trl-sft-qlora.yaml", ["lora_r=8", "load_in_4bit=false"])
    assert fixed.cfg.lora.r == 8 and fixed.cfg.method == "lora"
    out = tmp_path / "imported.yaml"
    r = cli("import", FIX / "trl-sft-qlora.yaml", "--out", out)
    assert r.returncode == 0, r.stderr
    from rankwise.advisor.loader import load_config

    cfg = load_config(out)
    assert cfg.method == "qlora" and cfg.lora.r == 16 and cfg.train.max_seq_len == 2048
    typo_file = tmp_path / "typo.yaml"
    typo_file.write_text("model_name_or_path: llama-3.2-1b\nuse_peft: true\nlora_rr: 8\n")
    typo = cli("check", typo_file)
    assert typo.returncode == 3 and "lora_rr" in typo.stdout and "Traceback" not in typo.stderr


def test_a_reward_model_is_estimated_with_its_score_head_and_its_pairs(tmp_path):
    """axolotl reward_model: AutoModelForSequenceClassification with num_labels outputs in place of lm_head (no
    vocabulary-sized logits), chosen and rejected both run (twice the micro-batch); a process reward model labels
    tokens (num_labels 2 unless set), one sequence at a time. check and estimate --preset say the same peak."""
    from rankwise.advisor.model import load_model

    base = ("base_model: llama-3.2-1b\nadapter: lora\nlora_r: 16\nlora_alpha: 32\nsequence_len: 4096\n"
            "micro_batch_size: 1\ngradient_checkpointing: true\nlearning_rate: 0.00002\n")
    lm = judge(_read_text(tmp_path, base), GPU24)
    rm_path = tmp_path / "rm.yaml"
    rm_path.write_text(base + "reward_model: true\nnum_labels: 1\n")
    rm = judge(read(rm_path), GPU24)
    assert rm.reading.score_head == 1 and rm.ctx.cfg.train.micro_batch == 2
    assert lm.ctx.estimate.components["logits_loss"] > 2 ** 30  # 4096 tokens x 128k vocabulary
    assert rm.ctx.estimate.components.get("logits_loss", 0) < 2 ** 20
    spec = load_model("llama-3.2-1b")
    scored = spec.with_score_head(1)
    assert scored.logit_width == 1 and not scored.tied_embeddings
    assert scored.total_params == spec.total_params - spec.params_by_family["lm_head"] + spec.hidden_size
    prm = _read_text(tmp_path, base + "process_reward_model: true\n")
    assert prm.score_head == 2 and not prm.paired_rows
    est = json.loads(cli("estimate", "--preset", rm_path, "--gpu-mem", "24GiB", "--json").stdout)
    assert est["peak_bytes"] == rm.ctx.estimate.peak_bytes


def test_a_trl_reward_config_is_a_reward_model(tmp_path):
    reading = _read_text(tmp_path, "model_name_or_path: llama-3.2-1b\nuse_peft: true\ndtype: bfloat16\n"
                                   "center_rewards_coefficient: 0.01\n")
    assert (reading.score_head, reading.paired_rows, reading.stage) == (1, True, None)


@pytest.mark.parametrize("beta,reference", [("", False), ("beta: 0.0\n", False), ("beta: 0.01\n", True)])
def test_a_trl_grpo_full_fine_tune_keeps_a_reference_copy_only_with_a_kl_term(tmp_path, beta, reference):
    """GRPOTrainer loads its reference model only when beta > 0 (TRL 1.10's default is 0.0)."""
    report = judge(_read_text(tmp_path, "model_name_or_path: llama-3.2-1b\ndtype: bfloat16\nnum_generations: 8\n"
                                        "max_completion_length: 256\nper_device_train_batch_size: 1\n" + beta), GPU24)
    assert report.reading.stage == "grpo" and ("reference_model" in report.full.rest) == reference


def test_a_full_fine_tune_is_timed_with_its_weight_gradients_and_optimizer_step(tmp_path):
    """Beside LoRA's passes a full fine-tune computes every weight's gradient (2 FLOPs a weight a token more) and
    steps the optimizer over all of them once a step: slower a step than LoRA of the same settings; a partial
    (freeze) fine-tune sits in between. check and estimate --preset give the same time."""
    from rankwise.advisor.foreign.full_ft import full_time
    from rankwise.advisor.hardware import resolve
    from rankwise.advisor.model import load_model
    from rankwise.advisor.time import plan_time

    hw = resolve(None, None, "A100-80GB")
    body = "model_name_or_path: llama-3.2-1b\nstage: sft\nbf16: true\ncutoff_len: 2048\nmax_steps: 100\n"
    path = tmp_path / "full.yaml"
    path.write_text(body + "finetuning_type: full\n")
    full = judge(read(path), hw)
    spec = load_model("llama-3.2-1b")
    lora_step = plan_time(spec, full.ctx.cfg, full.ctx.judged, hw).step_s
    assert full.full_time.step_s > lora_step and full.full_time.steps == 100
    assert any(n.startswith("time: ") for n in full.notes)
    path.write_text(body + "finetuning_type: freeze\n")
    part = judge(read(path), hw)
    assert lora_step < part.full_time.step_s < full.full_time.step_s
    path.write_text(body + "finetuning_type: full\n")
    est = json.loads(cli("estimate", "--preset", path, "--gpu", "A100-80GB", "--json").stdout)
    assert est["full_finetune"]["time"]["step_s"] == round(full_time(spec, full.ctx.cfg, hw, full.full).step_s, 4)
    # its cost: the steps are known (max_steps), priced at the GPU's list price or --price, one GPU
    from rankwise.advisor.pricing import price_for

    listed = price_for("A100-80GB")[0]
    assert full.full_time.cost == pytest.approx(listed * full.full_time.total_s / 3600, rel=1e-6)
    assert any(n.startswith("time: ") and "cost ~" in n for n in full.notes)
    priced = json.loads(cli("estimate", "--preset", path, "--gpu", "A100-80GB", "--price", "10", "--json").stdout)
    assert priced["full_finetune"]["time"]["cost"]["total"] == round(10 * full.full_time.total_s / 3600, 2)


def test_a_full_fine_tune_of_a_model_known_by_its_names_size_is_bounded_as_one(tmp_path):
    """An unresolved model with its size in its name: a full fine-tune is bounded on indexed stand-ins as a full
    fine-tune (weights, gradients and optimizer states scaled to the name's size), not as the LoRA run its
    defaults would describe; the range holds the estimate of a real 7B of the same settings; estimate --preset
    gives the same range."""
    from rankwise.advisor.hardware import resolve

    body = "sequence_len: 2048\nmicro_batch_size: 1\nbf16: true\n"
    unknown = _read_text(tmp_path, "base_model: someorg/Mystery-7B\n" + body)
    small, big = judge(unknown, GPU24), judge(unknown, resolve(None, None, "H100-80GB"))
    assert small.method == big.method == "full" and small.fit == "wont-fit" and small.fit_basis == "name-size"
    said = {f["code"]: f for f in small.findings}
    assert said["full-finetune"]["severity"] == "error" and "approximate" in said["full-finetune"]["message"]
    assert not {"alpha-below-rank", "wont-fit", "lr-out-of-range"} & set(said)  # the LoRA rules are not this run's
    known = judge(_read_text(tmp_path, "base_model: mistralai/Mistral-7B-v0.1\n" + body), resolve(None, None, "H100-80GB"))
    assert big.bound.low_bytes <= known.full.peak <= big.bound.high_bytes
    assert big.bound.low_bytes > 2 * judge(_read_text(tmp_path, "base_model: someorg/Mystery-7B\nadapter: lora\n" + body),
                                           resolve(None, None, "H100-80GB")).bound.low_bytes  # not LoRA's range
    path = tmp_path / "mystery.yaml"
    path.write_text("base_model: someorg/Mystery-7B\n" + body)
    est = json.loads(cli("estimate", "--preset", path, "--gpu", "H100-80GB", "--json").stdout)
    assert est["method"] == "full" and est["fit_bound"]["low_gib"] == round(big.bound.low_bytes / 2 ** 30, 3)


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_a_zero_1_2_full_fine_tune_shards_its_states_and_zero_2_its_gradients(tmp_path, stage):
    """DeepSpeed ZeRO-1/2 under a full fine-tune (LLaMA-Factory's ds_z2_config.json shape): the engine holds 16-bit
    weights (LLaMA-Factory's fp32 cast undone) and an fp32 master copy with the states, partitioned over the GPUs
    (ZeRO-2: the gradients too), and reduces through its own bucket, not DDP's; ZeRO-0 stays DDP."""
    from rankwise.advisor.hardware import resolve

    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {
        "stage": stage, "reduce_bucket_size": 5e8, "overlap_comm": False, "contiguous_gradients": True}}))
    path = tmp_path / "full.yaml"
    path.write_text("model_name_or_path: llama-3.2-1b\nfinetuning_type: full\nstage: sft\nbf16: true\n"
                    "cutoff_len: 1024\ndeepspeed: ds.json\n")
    full = judge(read(path, ["distributed.gpus=8"]), resolve(None, None, "A100-80GB")).full
    n = load_model("llama-3.2-1b").total_params
    if stage == 0:  # judged as DDP (said as not modelled)
        assert "ddp_buckets" in full.rest and "zero_buckets" not in full.rest
        return
    assert full.weights == 2 * n and "ddp_buckets" not in full.rest
    assert full.rest["zero_buckets"] == 500_000_000 * 2
    assert full.states == (8 + 4) * n // 8  # AdamW's two fp32 moments and the fp32 master, over 8 GPUs
    assert full.grads == (2 * n // 8 if stage == 2 else 2 * n)


@pytest.mark.parametrize("name,note", [("adamw_torch_8bit", False), ("adamw_torch_4bit", True)])
def test_torchaos_low_bit_adamw_is_estimated_with_8_bit_states(tmp_path, name, note):
    """The HF Trainer's torchao optimizers (23 axolotl examples name adamw_torch_8bit, several of them full
    fine-tunes): int8 states with an fp32 scale per 256, as bitsandbytes' 8-bit AdamW. adamw_torch_8bit was said
    as not modelled and estimated with two fp32 states per weight; the 4-bit one is said as an upper bound."""
    r = _read_text(tmp_path, f"base_model: llama-3.2-1b\nadapter: lora\noptimizer: {name}\n")
    assert r.cfg.train.optimizer == "adamw_8bit"
    assert not any(s.code == "not-modelled" and s.key == "optimizer" for s in r.said)
    assert any("upper bound" in n for n in r.notes) == note


@pytest.mark.parametrize("value,said", [("xformers", False), ("flex_attention", False),
                                        ("kernels-community/vllm-flash-attn3", False), ("my_block_sparse_attn", True)])
def test_memory_efficient_attention_kernels_are_estimated_as_sdpa_and_said_in_a_note(tmp_path, value, said):
    """19 axolotl examples name xFormers, flex attention or a hub FlashAttention 3 build: none keeps seq x seq scores,
    so the SDPA estimate holds for them (a note says so); an unknown kernel stays not modelled."""
    r = _read_text(tmp_path, f"base_model: llama-3.2-1b\nadapter: lora\nattn_implementation: {value}\n")
    assert any(s.code == "not-modelled" and s.key == "attn_implementation" for s in r.said) == said
    assert any("estimated as SDPA" in n for n in r.notes) != said
    assert r.cfg.train.attention == "auto"


@pytest.mark.parametrize("text, noted, unmodelled", [
    ("kernel_config:\n  name: auto\n", True, []),
    ("kernel_config:\n  name: auto, flash-linear-attention\n", True, ["flash-linear-attention"]),
    ("kernel_config:\n  name: liger_kernel\n", False, ["liger_kernel"]),
])
def test_llamafactory_v1_auto_kernels_patch_nothing_on_a_gpu(tmp_path, text, noted, unmodelled):
    """kernels/interface.py: "auto" applies _AUTO_KERNELS for the accelerator, which lists Ascend NPU kernels only;
    it was said as lower activation memory than estimated."""
    path = tmp_path / "k.yaml"
    path.write_text(V1_BASE + "peft_config:\n  name: lora\n" + text)
    reading = read(path)
    assert any("Ascend NPUs only" in n for n in reading.notes) is noted
    said = [s.message for s in reading.said if s.code == "not-modelled" and s.key == "kernel_config.name"]
    assert len(said) == len(unmodelled) and all(u in m for u, m in zip(unmodelled, said))


def test_llamafactory_use_v1_kernels_is_the_npu_only_auto_set(tmp_path):
    path = tmp_path / "flat.yaml"
    path.write_text("model_name_or_path: llama-3.2-1b\nfinetuning_type: lora\nstage: sft\nuse_v1_kernels: true\n")
    reading = read(path)
    assert any(n.startswith("use_v1_kernels: ") and "Ascend NPUs only" in n for n in reading.notes)
    assert not [s for s in reading.said if s.key == "use_v1_kernels"]


@pytest.mark.parametrize("value, noted", [(True, True), (False, False)])
def test_axolotls_32x_embedding_rounding_is_a_note_not_a_gap(tmp_path, value, noted):
    """axolotl pads a resized embedding to a multiple of 32 rows only when the tokenizer outgrows it: at most 31 rows,
    said in a note (5 axolotl examples set it), not as memory the estimate misses."""
    r = _read_text(tmp_path, f"base_model: llama-3.2-1b\nadapter: lora\nresize_token_embeddings_to_32x: {value}\n")
    assert not any(s.key == "resize_token_embeddings_to_32x" for s in r.said)
    assert any(n.startswith("resize_token_embeddings_to_32x: ") for n in r.notes) == noted
    assert "resize_token_embeddings_to_32x" not in r.unread


def test_axolotl_unfrozen_parameters_train_what_their_patterns_match_as_transformers_names_it():
    """A full fine-tune with unfrozen_parameters trains only the parameters a pattern matches from the start of
    the name (axolotl's freeze_layers_except), named as the model built on the meta device names them: here the
    MLPs of layers 10-15; `^lm_head.weight$` matches nothing on a tied head (listed once, as the embedding) and
    `embed_tokens` nothing at all (re.match), which a warning says with the model's own name for it."""
    reading = read(FIX / "axolotl-unfrozen-full.yaml")
    report = judge(reading, GPU24)
    spec = load_model("meta-llama/Llama-3.2-1B")
    mlp = next(l for l in spec.linears if l.name == "up_proj")
    assert report.full.trained == 6 * 3 * mlp.d_in * mlp.d_out
    said = next(f for f in report.findings if f["code"] == "unfrozen-unmatched")
    assert "^lm_head.weight$, embed_tokens match no parameter" in said["message"]
    assert "embed_tokens → model.embed_tokens" in said["fix"]
    assert not any(f["code"] == "not-modelled" and f.get("key") == "unfrozen_parameters" for f in report.findings)


def test_axolotl_unfrozen_language_model_pattern_reads_a_text_stand_in_as_the_release_names_it(tmp_path):
    """The index holds Mistral Small 4's language model alone (model.layers...); the release is a vision-language
    model whose decoder transformers names model.language_model..., which the file's pattern names: every
    parameter of the stand-in but its untied head (lm_head, outside model.) trains, and the pattern is not reported
    as matching nothing."""
    r = _read_text(tmp_path, "base_model: axolotl-ai-co/Mistral-Small-4-119B-2603-BF16\nunfrozen_parameters:\n"
                             "  - model.language_model.*\n")
    report = judge(r, planned(gpu="H100"))
    spec = load_model("axolotl-ai-co/Mistral-Small-4-119B-2603-BF16")
    assert report.full.trained == spec.total_params - spec.params_by_family["lm_head"]
    assert not any(f["code"] == "unfrozen-unmatched" for f in report.findings)


def test_axolotls_fused_lora_mlp_is_said_with_what_it_saves_at_the_peak(tmp_path):
    """lora_mlp_kernel: axolotl's LoRA_MLP saves X, gate and up and recomputes act(gate) and the product: without
    checkpointing every layer keeps act(gate) and down_proj's LoRA input less, which the note gives in GiB, where
    the fit stays on transformers' MLP (an upper bound)."""
    from rankwise.advisor.activations import _lora_input_bytes, stream_bytes
    from rankwise.advisor.memory import estimate

    text = ("base_model: meta-llama/Llama-3.2-1B\nadapter: lora\nlora_target_linear: true\nlora_mlp_kernel: true\n"
            "lora_o_kernel: true\n"
            "sequence_len: 512\nmicro_batch_size: 2\ngradient_checkpointing: false\nbf16: true\n")
    r = _read_text(tmp_path, text)
    report = judge(r, planned(gpu="H100"))
    assert not any(f["code"] == "not-modelled" and f.get("key") == "lora_mlp_kernel" for f in report.findings)
    note = next(n for n in r.notes if n.startswith("lora_mlp_kernel: "))
    est = report.ctx.estimate
    fused = estimate(load_model("meta-llama/Llama-3.2-1B"), replace(est.plan, fused_lora=("mlp",)))
    spec = load_model("meta-llama/Llama-3.2-1B")
    down = next(l for l in spec.linears if l.name == "down_proj")
    per_token = stream_bytes(est.plan) * spec.mlp_width + _lora_input_bytes(down, est.plan)
    tokens = 2 * 512
    assert est.components["activations"] - fused.components["activations"] == spec.num_layers * tokens * per_token
    assert f"~{(est.peak_bytes - fused.peak_bytes) / 2 ** 30:.2f} GiB less at the peak (every layer's" in note
    assert any(n.startswith("lora_o_kernel: ") and "the estimate holds" in n for n in r.notes)


@pytest.mark.parametrize("dropout", [0.0, 0.05])
def test_axolotls_fused_lora_qkv_keeps_its_input_once_for_three_projections(tmp_path, dropout):
    """lora_qkv_kernel: LoRA_QKV saves its input (and one dropout output with its mask) once, where peft's q, k and v
    LoRA branches each keep a copy of theirs: without checkpointing every layer keeps the difference less."""
    from rankwise.advisor.activations import _lora_input_bytes, stream_bytes
    from rankwise.advisor.memory import estimate

    spec = load_model("meta-llama/Llama-3.2-1B")
    r = _read_text(tmp_path, "base_model: meta-llama/Llama-3.2-1B\nadapter: lora\nlora_target_linear: true\n"
                             f"lora_qkv_kernel: true\nlora_dropout: {dropout}\nsequence_len: 256\nmicro_batch_size: 1\n"
                             "gradient_checkpointing: false\nbf16: true\n")
    report = judge(r, planned(gpu="H100"))
    est = report.ctx.estimate
    fused = estimate(spec, replace(est.plan, fused_lora=("qkv",)))
    s, h = stream_bytes(est.plan), spec.hidden_size
    branches = sum(_lora_input_bytes(l, est.plan) for l in spec.linears if l.name in ("q_proj", "k_proj", "v_proj"))
    kept = s * h + ((s + 1) * h if dropout else 0)
    assert est.components["activations"] - fused.components["activations"] == spec.num_layers * 256 * (branches - kept)
    assert any(n.startswith("lora_qkv_kernel: ") and "GiB less at the peak" in n for n in r.notes)


@pytest.mark.parametrize("frozen, noted", [("", True), ("freeze_vision_tower: false\n", False)])
def test_llamafactory_image_tokens_count_within_cutoff_len_beside_a_frozen_tower(tmp_path, frozen, noted):
    """LLaMA-Factory expands images into their tokens before truncating a row to cutoff_len, and freezes the vision
    tower by default (nothing there keeps tensors for backward): image_max_pixels is a note. With the tower training,
    its activations per image are said as not modelled."""
    f = tmp_path / "vl.yaml"
    f.write_text("model_name_or_path: Qwen/Qwen2-VL-7B-Instruct\nstage: sft\nfinetuning_type: lora\nlora_target: all\n"
                 f"image_max_pixels: 262144\nvideo_max_pixels: 16384\ncutoff_len: 2048\n{frozen}")
    r = read(f)
    said = {s.key for s in r.said if s.code == "not-modelled"}
    assert ("image_max_pixels" in said) is not noted
    assert any(n.startswith("image_max_pixels, video_max_pixels: image and video tokens are counted within cutoff_len")
               for n in r.notes) is noted
    assert "image_max_pixels" not in r.unread


@pytest.mark.parametrize("zero2, elements, copies", [
    ({"stage": 2, "overlap_comm": True}, 500_000_000, 2),
    ({"stage": 1, "reduce_bucket_size": "auto"}, 2048 * 2048, 1),
    ({"stage": 2, "reduce_bucket_size": 5e7, "contiguous_gradients": False}, 0, 0),
])
def test_lora_under_zero_1_2_holds_deepspeeds_reduce_buckets_in_ddps_place(tmp_path, zero2, elements, copies):
    """DeepSpeed ZeRO-1/2 allocates its contiguous reduce bucket (reduce_bucket_size elements, two with overlap_comm)
    at full size each backward, however few weights train: a LoRA run judged as DDP is said with them in place of
    DDP's gradient buckets; without contiguous_gradients there is no bucket and nothing is said."""
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": zero2, "bf16": {"enabled": "auto"}}))
    r = _read_text(tmp_path, "base_model: meta-llama/Llama-3.2-1B\nadapter: lora\nlora_target_linear: true\n"
                             f"sequence_len: 512\nmicro_batch_size: 1\nbf16: true\ndeepspeed: {tmp_path / 'ds.json'}\n")
    report = judge(r, resolve("24GiB", 2, None))
    said = [f for f in report.findings if f["code"] == "zero-buckets"]
    if not elements:
        assert said == []
        return
    est = report.ctx.estimate
    peak = est.peak_bytes - est.components["ddp_buckets"] + elements * 2 * copies
    assert f"take {elements * 2 * copies / 2 ** 30:.2f} GiB per GPU" in said[0]["message"]
    assert f"~{peak / 2 ** 30:.1f} GiB per GPU" in said[0]["message"]
    assert said[0]["severity"] == "info"  # the 1B fits either way
    assert not any(f["code"] == "not-modelled" and f.get("key") == "deepspeed" for f in report.findings)


@pytest.mark.parametrize("model, linear", [("meta-llama/Llama-4-Scout-17B-16E", True),
                                           ("mistralai/Mixtral-8x7B-v0.1", False)])
def test_axolotls_linearized_llama4_experts_are_linears_quantized_with_the_rest(tmp_path, model, linear):
    """llama4_linearized_experts: axolotl's Llama 4 holds one nn.Linear an expert, which QLoRA stores in 4 bits
    like every linear (where transformers' fused experts stay 16-bit under axolotl's default); on another model
    axolotl does not apply it."""
    text = f"base_model: {model}\nadapter: qlora\nload_in_4bit: true\nlora_target_linear: true\nsequence_len: 1024\n"
    plain = judge(_read_text(tmp_path, text), planned(gpu="H100"))
    r = _read_text(tmp_path, text + "llama4_linearized_experts: true\n")
    report = judge(r, planned(gpu="H100"))
    spec = report.ctx.spec
    fused = [l for l in spec.linears if l.family == "experts" and not l.adaptable]
    base = report.ctx.estimate.components["base_weights"]
    if linear:  # the experts' 16-bit weights become 4-bit ones: 1.5 bytes a weight less
        assert fused == [] and {"gate_projs", "up_projs", "down_projs"} <= set(spec.adaptable_names())
        experts = sum(l.params for l in load_model(model).linears if l.family == "experts")
        assert sum(l.params for l in spec.linears if l.family == "experts") == experts
        assert plain.ctx.estimate.components["base_weights"] - base == 1.5 * experts
        assert any(n.startswith("llama4_linearized_experts: the experts load as one nn.Linear each") for n in r.notes)
    else:
        assert fused and base == plain.ctx.estimate.components["base_weights"]
        assert any("applies it to Llama 4 only" in n for n in r.notes)
    assert not any(f["code"] == "not-modelled" and f.get("key") == "llama4_linearized_experts" for f in report.findings)


def test_axolotl_sample_packing_on_a_gated_deltanet_model_says_it_needs_fla(tmp_path):
    """axolotl passes packed examples' bounds to Qwen3.5's linear-attention layers (they need flash-linear-attention
    for it); rankwise's own packing would run them across examples, the warning a rankwise preset gets."""
    r = _read_text(tmp_path, "base_model: Qwen/Qwen3.5-9B\nadapter: lora\nsample_packing: true\nsequence_len: 2048\n")
    found = next(f for f in judge(r, GPU24).findings if f["code"] == "packing-linear-attention")
    assert found["severity"] == "info" and "needs flash-linear-attention" in found["message"]
    assert "sample_packing" in found["fix"]
    r = _read_text(tmp_path, "base_model: Qwen/Qwen3.5-9B\nadapter: lora\nsequence_len: 2048\n")
    assert not any(f["code"] == "packing-linear-attention" for f in judge(r, GPU24).findings)


def test_axolotl_sample_packing_on_a_mamba2_hybrid_says_it_needs_mamba_ssm(tmp_path):
    """axolotl threads seq_idx from position_ids into Nemotron-H's Mamba2 kernels (its packing patch), through
    mamba-ssm."""
    r = _read_text(tmp_path, "base_model: nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16\nadapter: qlora\n"
                             "load_in_4bit: true\nsample_packing: true\nsequence_len: 4096\n")
    found = next(f for f in judge(r, GPU24).findings if f["code"] == "packing-linear-attention")
    assert found["severity"] == "info" and "Mamba2 layers, which needs mamba-ssm" in found["message"]


@pytest.mark.parametrize("model, kind", [("LiquidAI/LFM2-8B-A1B", "18 short-convolution"),
                                         ("ai21labs/Jamba-v0.1", "28 Mamba1")])
def test_axolotl_sample_packing_where_it_passes_no_bounds_stays_a_warning(tmp_path, model, kind):
    """axolotl packs LFM2 and Jamba with position_ids alone (monkeypatch/multipack.py; no patch passes their layers
    the bounds), so its run mixes packed examples there as rankwise's would: the warning stands."""
    r = _read_text(tmp_path, f"base_model: {model}\nadapter: lora\nsample_packing: true\nsequence_len: 2048\n")
    found = next(f for f in judge(r, GPU24).findings if f["code"] == "packing-linear-attention")
    assert found["severity"] == "warning" and f"its {kind} layers see the packed examples" in found["message"]


@pytest.mark.parametrize("text, key", [
    ("base_model: llama-3.2-1b\nadapter: lora\nlora_model_dir: out/sft\n", "lora_model_dir"),
    ("model_name_or_path: llama-3.2-1b\nstage: sft\nfinetuning_type: lora\nadapter_name_or_path: saves/sft\n",
     "adapter_name_or_path"),
    ("model: llama-3.2-1b\npeft_config:\n  name: lora\n  r: 8\n  adapter_name_or_path: saves/sft\n",
     "peft_config.adapter_name_or_path"),
])
def test_a_run_that_continues_a_trained_adapter_continues_it_here(tmp_path, text, key):
    """It was listed as having no effect: true of the memory, not of what the run trains."""
    f = tmp_path / "c.yaml"
    f.write_text(text)
    r = read(f)
    assert key not in r.unread
    assert r.cfg.lora.init_from.endswith("/sft")
    assert any(n.startswith(f"{key} ") and "`train` checks that they match" in n for n in r.notes)
