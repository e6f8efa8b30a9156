"""`rankwise check` and `rankwise advise` as a user runs them (subprocess), text and --json."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rankwise.advisor.loader import load_config
from rankwise.advisor.foreign import load_any

FIX = Path(__file__).parent / "fixtures" / "check"
ROOT = Path(__file__).resolve().parent.parent


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rankwise.tui.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


# (fixture, extra flags, exit code, kind, codes present, codes absent)
CHECKS = [
    ("axolotl-qlora.yaml", ["--gpu-mem", "24GiB"], 0, "axolotl", [], ["wont-fit"]),
    ("axolotl-risky.yaml", ["--gpu-mem", "24GiB"], 0, "axolotl",
     ["unknown-target-module", "qlora-high-lr", "alpha-below-rank", "trust-remote-code", "effective-batch-small"], []),
    ("axolotl-qlora.yaml", ["--gpu-mem", "8GiB"], 3, "axolotl", ["wont-fit"], []),
    ("llamafactory-lora.yaml", ["--gpu-mem", "24GiB"], 0, "llama-factory", ["wont-fit"], ["alpha-below-rank"]),
    ("llamafactory-lora.yaml", ["--gpu-mem", "80GiB"], 0, "llama-factory", [], ["wont-fit"]),
    ("llamafactory-qlora-unknown-model.yaml", ["--gpu-mem", "24GiB"], 0, "llama-factory",
     ["checks-skipped", "qlora-high-lr", "effective-batch-small"], ["wont-fit"]),
    ("llamafactory-qlora-unknown-model.yaml", ["--gpu-mem", "24GiB", "--model", "qwen2.5-7b"], 0, "llama-factory",
     ["qlora-high-lr"], ["checks-skipped"]),
    ("clean.yaml", ["--gpu-mem", "24GiB"], 0, "rankwise", [], ["*"]),
    ("clean.yaml", ["--gpu", "T4", "--set-dummy"], 2, None, [], []),  # unknown flag: usage error
]


@pytest.mark.parametrize("fixture,flags,code,kind,present,absent", CHECKS,
                         ids=[f"{c[0]}-{'-'.join(c[1])}" for c in CHECKS])
def test_check_json(fixture, flags, code, kind, present, absent):
    out = cli("check", FIX / fixture, *flags, "--json")
    assert out.returncode == code, out.stderr
    if code == 2:
        return
    d = json.loads(out.stdout)
    assert d["kind"] == kind
    codes = {f["code"]: f for f in d["findings"]}
    for c in present:
        assert c in codes, (c, list(codes))
    for c in absent:
        assert (codes == {}) if c == "*" else (c not in codes), (c, list(codes))
    assert (code == 3) == any(f["severity"] == "error" for f in d["findings"])
    for f in d["findings"]:
        assert set(f) >= {"code", "severity", "message", "why", "fix", "patch"}
    assert "fit" in d
    assert "Traceback" not in out.stderr and "kernels" not in out.stderr


@pytest.mark.parametrize("fixture,flags,code,kind,present,absent", [c for c in CHECKS if c[2] != 2][:4])
def test_check_text(fixture, flags, code, kind, present, absent):
    out = cli("check", FIX / fixture, *flags)
    assert out.returncode == code, out.stderr
    assert f"({kind})" in out.stdout
    for c in present:
        assert c in out.stdout
        assert "why:" in out.stdout and "fix:" in out.stdout


def test_probed_machine_fit():
    """Without planning flags the probe decides; with no GPU, fit is info, never an error."""
    out = cli("check", FIX / "clean.yaml", "--json")
    assert out.returncode == 0
    d = json.loads(out.stdout)
    if d["gpu_gib"] is None:  # the dev and CI machines have no GPU
        assert d["fit"] == "no-gpu"
        assert {f["code"]: f["severity"] for f in d["findings"]}["wont-fit"] == "info"
    else:
        assert d["fit"] in ("fits", "tight", "wont-fit")


# bad input: exit 2, message names file:line and the fix
BAD = [
    ("axolotl-bad-value.yaml", ["axolotl-bad-value.yaml:5", "lora_dropout", "less than 1"]),
    ("malformed.yaml", ["malformed.yaml:5", "malformed YAML"]),
    ("unknown-key.yaml", ["unknown-key.yaml:4", "lora.rank", "did you mean 'r'"]),
    ("does-not-exist.yaml", ["not found", "does-not-exist.yaml"]),
]


@pytest.mark.parametrize("fixture,expect", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("as_json", [False, True])
def test_check_bad_input(fixture, expect, as_json):
    out = cli("check", FIX / fixture, *(["--json"] if as_json else []))
    assert out.returncode == 2
    assert out.stdout == ""
    for text in expect:
        assert text in out.stderr, (text, out.stderr)
    assert "Traceback" not in out.stderr


def test_check_bad_model_flag_is_bad_input():
    out = cli("check", FIX / "clean.yaml", "--model", "llama-9z")
    assert out.returncode == 2 and "unknown model" in out.stderr


def test_axolotl_mapping():
    cfg, kind, notes = load_any(FIX / "axolotl-qlora.yaml")
    assert kind == "axolotl"
    assert (cfg.model.name, cfg.method, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == \
           ("meta-llama/Llama-3.1-8B", "qlora", 32, 64, 0.05)
    assert cfg.lora.target_modules == "all-linear"
    t = cfg.train
    assert (t.micro_batch, t.grad_accum, t.max_seq_len, t.lr, t.epochs, t.warmup_steps, t.scheduler) == \
           (2, 4, 2048, 2e-4, 4, 10, "cosine")
    assert t.grad_checkpointing and t.precision == "auto" and cfg.data.packing and cfg.data.val_ratio == 0.05
    assert cfg.data.path == "mhenrichsen/alpaca_2k_test"
    assert t.attention == "flash_attention_2"  # flash_attention: true (issue 11: modelled, no longer only said)
    assert t.optimizer == "adamw_torch"  # paged_adamw_32bit: 32-bit states, as adamw_torch for memory


def test_llamafactory_mapping():
    cfg, kind, notes = load_any(FIX / "llamafactory-lora.yaml")
    assert kind == "llama-factory"
    assert (cfg.method, cfg.lora.r, cfg.lora.alpha, cfg.lora.target_modules) == \
           ("lora", 16, 32, ["q_proj", "k_proj", "v_proj", "o_proj"])
    t = cfg.train
    assert (t.micro_batch, t.grad_accum, t.max_seq_len, t.lr, t.epochs, t.warmup_ratio, t.precision) == \
           (2, 8, 2048, 1e-4, 3, 0.1, "bf16")
    assert any("template" in n for n in notes)
    q, _, _ = load_any(FIX / "llamafactory-qlora-unknown-model.yaml")
    assert q.method == "qlora" and q.lora.target_modules == "all-linear"


# ------------------------------------------------------------------ advise


ADVISE = [
    (["--model", "llama-3.1-8b", "--task", "chat", "--gpu-mem", "16GiB"], "qlora"),
    (["--model", "llama-3.1-8b", "--task", "instruction", "--gpu", "A100-80GB"], "lora"),
    (["--model", "llama-3.1-70b", "--task", "chat", "--gpu-mem", "24GiB"], None),
    (["--model", "llama-3.1-8b", "--task", "chat", "--budget", "10M", "--gpu-mem", "24GiB"], "lora"),
]


@pytest.mark.parametrize("args,method", ADVISE, ids=["-".join(a[1:4]) for a, _ in ADVISE])
def test_advise_json_and_text(args, method):
    out = cli("advise", *args, "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["method"] == method
    assert set(d) >= {"method", "config", "estimate", "estimates", "reasons", "findings", "suggestions", "first_sweep"}
    assert d["config"]["lora"]["r"] >= 1 and d["reasons"]["lora.r"]
    assert d["estimate"]["peak_gib"] > 0
    text = cli("advise", *args)
    assert text.returncode == 0, text.stderr
    if method:
        assert f"Recommended: {dict(lora='LoRA', qlora='QLoRA')[method]}" in text.stdout and "First sweep" in text.stdout
    else:
        assert "Nothing fits" in text.stdout and "What would make it fit" in text.stdout
    if "--budget" in args:
        assert d["config"]["lora"]["r"] == 3 and "2,621,440" in d["budget_arithmetic"]  # all-linear (issue 18)
        assert "Budget arithmetic" in text.stdout


@pytest.mark.parametrize("args,needle", [
    (["--model", "llama-3.1-8b", "--task", "poetry"], "invalid choice"),
    (["--model", "nope-model", "--task", "chat"], "unknown model"),
    (["--model", "llama-3.1-8b", "--task", "chat", "--budget", "ten"], "--budget"),
    (["--model", "llama-3.1-8b", "--task", "chat", "--budget", "10k"], "budget"),
    (["--model", "llama-3.1-8b", "--task", "chat", "--gpu-mem", "lots"], "--gpu-mem"),
    (["--model", "llama-3.1-8b", "--task", "chat", "--dataset", "missing.jsonl"], "missing.jsonl"),
    (["--model", "llama-3.1-8b", "--task", "chat", "--samples", "0"], "--samples"),
])
def test_advise_bad_input(args, needle):
    out = cli("advise", *args)
    assert out.returncode == 2
    assert needle in out.stderr and "Traceback" not in out.stderr


def test_advise_counts_dataset_rows():
    data = ROOT / "presets" / "assets" / "demo-chat.jsonl"
    rows = sum(1 for line in data.read_text().splitlines() if line.strip())
    d = json.loads(cli("advise", "--model", "llama-3.2-1b", "--task", "chat", "--dataset", data, "--gpu-mem", "24GiB",
                       "--json").stdout)
    assert any(f"{rows:,} rows" in n for n in d["notes"])
    assert str(rows) in d["reasons"]["lora.r"] and d["config"]["data"]["path"] == str(data)
    assert d["config"]["lora"]["dropout"] == 0.05  # not tiered by rows (issue 18: no source ties it to the row count)
    # 64 rows: the split is raised to its cap (0.2) toward the 100 validation rows a pick needs, and says so
    assert d["config"]["data"]["val_ratio"] == 0.2 and "capacity check:" in d["reasons"]["lora.r"]
    assert f"of the {rows} rows validate" in d["reasons"]["data.val_ratio"]
    assert d["citations"]["lora.target_modules"] and d["statuses"]["lora.target_modules"] == "evidence"


def test_write_preset_reloads_and_passes_check(tmp_path):
    preset = tmp_path / "advised.yaml"
    args = ["advise", "--model", "llama-3.1-8b", "--task", "code", "--samples", "20000", "--gpu-mem", "24GiB"]
    out = cli(*args, "--write-preset", preset)
    assert out.returncode == 0, out.stderr
    text = preset.read_text()
    assert "# " in text.split("lora:")[1].splitlines()[1]  # reasons beside the knobs
    cfg = load_config(preset)
    d = json.loads(cli(*args, "--json").stdout)
    assert cfg.model_dump(mode="json") == d["config"]
    chk = cli("check", preset, "--gpu-mem", "24GiB", "--json")
    assert chk.returncode == 0, chk.stdout
    assert not [f for f in json.loads(chk.stdout)["findings"] if f["severity"] != "info"]
    # refuses to overwrite without --force, and leaves the file as it was
    preset.write_text("# mine\n")
    again = cli(*args, "--write-preset", preset)
    assert again.returncode == 2 and "--force" in again.stderr
    assert preset.read_text() == "# mine\n"
    assert cli(*args, "--write-preset", preset, "--force").returncode == 0
    assert load_config(preset).lora.r == cfg.lora.r


def test_advise_never_imports_torch():
    code = ("import sys, io, contextlib\nfrom rankwise.tui import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    rc = cli.main(['advise', '--model', 'llama-3.1-8b', '--task', 'chat', '--gpu-mem', '24GiB', '--json'])\n"
            "    rc2 = cli.main(['check', sys.argv[1], '--gpu-mem', '24GiB'])\n"
            "print(rc, rc2, ','.join(m for m in ('torch', 'transformers', 'peft', 'bitsandbytes', 'textual') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(FIX / "axolotl-qlora.yaml")], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == ["0", "0"], out.stdout + out.stderr


# small foreign files: (yaml text, kind, expected dotted values, a note that must appear)
FOREIGN = [
    ("load_in_4bit: true\nadapter: lora\nbase_model: llama-3.1-8b\n", "axolotl", {"method": "qlora"}, None),
    ("adapter: lora\nload_in_8bit: true\nbase_model: x\n", "axolotl", {"method": "lora-8bit"}, None),  # issue 11
    ("adapter: qlora\nlora_target_modules: q_proj\nmax_steps: -1\nbase_model: x\n", "axolotl",
     {"lora.target_modules": ["q_proj"], "train.max_steps": None}, None),
    ("model_name_or_path: x\nfinetuning_type: lora\nquantization_bit: 8\n", "llama-factory", {"method": "lora-8bit"},
     None),
    ("model_name_or_path: x\nfinetuning_type: lora\ndisable_gradient_checkpointing: true\n"
     "lr_scheduler_type: cosine_with_restarts\n", "llama-factory",
     {"train.grad_checkpointing": False, "train.scheduler": "cosine"}, "cosine_with_restarts"),
    ("model:\n  name: llama-3.1-8b\nlora:\n  r: 8\n", "rankwise", {"lora.r": 8}, None),
]


@pytest.mark.parametrize("text,kind,values,note", FOREIGN, ids=[f"{i}-{f[1]}" for i, f in enumerate(FOREIGN)])
def test_foreign_small_cases(tmp_path, text, kind, values, note):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    cfg, got_kind, notes = load_any(path)
    assert got_kind == kind
    for dotted, value in values.items():
        node = cfg
        for part in dotted.split("."):
            node = getattr(node, part)
        assert node == value, dotted
    if note:
        assert any(note in n for n in notes), notes


def test_foreign_invalid_value_names_foreign_key_and_line(tmp_path):
    path = tmp_path / "lf.yaml"
    path.write_text("model_name_or_path: x\nfinetuning_type: lora\nlora_rank: 0\ncutoff_len: lots\n")
    out = cli("check", path)
    assert out.returncode == 2
    assert "lf.yaml:3" in out.stderr and "lora_rank" in out.stderr
    assert "lf.yaml:4" in out.stderr and "cutoff_len" in out.stderr


def test_check_takes_a_shipped_preset_name():
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "rankwise.tui.cli", "check", "mistral-7b-style-qlora-12gb",
                         "--gpu-mem", "12GiB", "--json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "rankwise.tui.cli", "check", "mistral-7b-style-qlora-12g"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "mistral-7b-style-qlora-12gb" in bad.stderr and "Traceback" not in bad.stderr


def test_check_of_an_accelerate_config_exits_2_with_one_message(tmp_path):
    from test_config import ACCELERATE

    f = tmp_path / "fsdp.yaml"
    f.write_text(ACCELERATE)
    p = cli("check", f)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    text = " ".join(p.stderr.split())
    assert "1 problem" in text and "an accelerate launcher config" in text and "--gpus 4" in text


def test_advise_on_a_model_known_only_by_its_names_size_answers_the_method_approximately(tmp_path):
    """As `estimate` and `check` do: the range each method's peak lies in, from indexed models of that size; the
    method from those ranges; the rest needs the shape, and what needs the model itself is refused (exit 2)."""
    p = cli("advise", "--model", "someorg/Foo-7B", "--task", "chat", "--gpu", "RTX4090", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["approximate"] and d["fit_basis"] == "name-size" and d["method"] == "qlora"
    assert d["bounds"]["qlora"]["verdict"] == "fits" and d["bounds"]["lora"]["high_gib"] > d["bounds"]["qlora"]["high_gib"]
    big = json.loads(cli("advise", "--model", "someorg/Foo-70B", "--task", "chat", "--gpu", "RTX4090", "--json").stdout)
    assert big["method"] is None and big["bounds"]["qlora"]["verdict"] == "wont-fit"
    text = " ".join(cli("advise", "--model", "someorg/Foo-70B", "--task", "chat", "--gpu", "RTX4090").stdout.split())
    assert "Nothing fits" in text and "needs the shape: --fetch-config" in text
    refused = cli("advise", "--model", "someorg/Foo-7B", "--task", "chat", "--write-preset", tmp_path / "x.yaml")
    assert refused.returncode == 2 and "--write-preset needs the model's shape" in refused.stderr
    assert not (tmp_path / "x.yaml").exists()
    nameless = cli("advise", "--model", "someorg/Foo", "--task", "chat")
    assert nameless.returncode == 2 and "unknown model" in nameless.stderr and "Traceback" not in nameless.stderr


DEEPSPEED_Z3_OFFLOAD = """compute_environment: LOCAL_MACHINE
distributed_type: DEEPSPEED
deepspeed_config:
  zero_stage: 3
  offload_param_device: cpu
  offload_optimizer_device: cpu
mixed_precision: bf16
num_processes: 2
"""


@pytest.mark.parametrize("text,values,gpus", [
    ("compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nfsdp_config:\n  fsdp_offload_params: true\n"
     "mixed_precision: fp16\nnum_processes: 4\n",
     {"distributed.strategy": "fsdp", "distributed.offload": "params_and_optimizer", "train.precision": "fp16"}, 4),
    (DEEPSPEED_Z3_OFFLOAD, {"distributed.strategy": "deepspeed", "distributed.offload": "params_and_optimizer",
                           "train.precision": "bf16"}, 2),
    ("compute_environment: LOCAL_MACHINE\ndistributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 2\n"
     "num_processes: 8\n", {"distributed.strategy": "ddp"}, 8),  # ZeRO-2: judged as DDP, said
    ("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nmixed_precision: 'no'\nnum_processes: 2\n",
     {"distributed.strategy": "ddp"}, 2),
])
def test_an_accelerate_config_reads_as_rankwise_settings(tmp_path, text, values, gpus):
    from rankwise.advisor.loader import read_launcher

    f = tmp_path / "acc.yaml"
    f.write_text(text)
    got = read_launcher(f)
    assert got.values == values and got.gpus == gpus


def test_an_accelerate_configs_fsdp_state_dict_sets_a_full_fine_tunes_save(tmp_path):
    """LLaMA-Factory's full FSDP fine-tune takes its checkpoint format from the launcher: FULL_STATE_DICT gathers
    the weights and optimizer states on rank 0's host at each save, SHARDED_STATE_DICT does not."""
    lf = tmp_path / "lf.yaml"
    lf.write_text("model_name_or_path: llama-3.2-1b\nfinetuning_type: full\nstage: sft\nbf16: true\n"
                  "cutoff_len: 1024\n")
    saves = {}
    for kind in ("FULL_STATE_DICT", "SHARDED_STATE_DICT"):
        acc = tmp_path / f"{kind}.yaml"
        acc.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nnum_processes: 4\n"
                       f"fsdp_config:\n  fsdp_state_dict_type: {kind}\n")
        out = json.loads(cli("check", lf, "--gpu", "A100-80GB", "--accelerate-config", acc, "--json").stdout)
        ram = out["full_finetune"]["host_ram"]
        saves[kind] = ram["save_bytes"] - ram["train_bytes"]
        assert (kind in ram["save_gathers"]) == (kind == "FULL_STATE_DICT")
    assert saves["FULL_STATE_DICT"] > 12 * 1.2e9 > saves["SHARDED_STATE_DICT"]  # weights + moments of 1.2B params


def test_check_and_estimate_judge_a_training_config_under_its_accelerate_config(tmp_path):
    """LLaMA-Factory and axolotl take their GPUs, FSDP/DeepSpeed and offload from the accelerate config the run
    is launched with: beside the training config, the same answer as those settings written as flags; --gpus
    and --set still win; a file that is not an accelerate config is bad input."""
    acc = tmp_path / "acc.yaml"
    acc.write_text(DEEPSPEED_Z3_OFFLOAD)
    train = FIX / "foreign-fsdp.yaml"
    via = json.loads(cli("check", train, "--gpu", "RTX4090", "--accelerate-config", acc, "--json").stdout)
    by_hand = json.loads(cli("check", train, "--gpu", "RTX4090", "--gpus", "2", "--set", "distributed.strategy=deepspeed",
                             "--set", "distributed.offload=params_and_optimizer", "--set", "train.precision=bf16",
                             "--json").stdout)
    assert via["estimate"]["peak_gib"] == by_hand["estimate"]["peak_gib"]
    assert via["config"]["distributed"]["strategy"] == "deepspeed" and via["estimate"]["plan"]["gpus"] == 2
    assert any(n.startswith(f"from {acc}: 2 process(es)") for n in via["notes"])
    four = json.loads(cli("check", train, "--gpu", "RTX4090", "--accelerate-config", acc, "--gpus", "4",
                          "--set", "distributed.offload=none", "--json").stdout)
    assert four["estimate"]["plan"]["gpus"] == 4 and four["config"]["distributed"]["offload"] == "none"
    est = json.loads(cli("estimate", "--model", "llama-3.1-8b", "--gpu", "RTX4090", "--accelerate-config", acc,
                         "--json").stdout)
    assert est["plan"]["gpus"] == 2 and est["plan"]["strategy"] == "deepspeed" and est["launcher"]
    bad = cli("check", train, "--accelerate-config", train)
    assert bad.returncode == 2 and "not an accelerate config" in bad.stderr and "Traceback" not in bad.stderr


def test_an_accelerate_configs_zero_2_shards_a_full_fine_tunes_states(tmp_path):
    """A launcher with DeepSpeed zero_stage 2 (no JSON): the full fine-tune's states and gradients are counted over its
    processes, where MULTI_GPU keeps a whole copy on each."""
    lf = tmp_path / "lf.yaml"
    lf.write_text("model_name_or_path: llama-3.2-1b\nfinetuning_type: full\nstage: sft\nbf16: true\ncutoff_len: 1024\n")
    floors = {}
    for kind, extra in (("zero2", "distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 2\n"),
                        ("ddp", "distributed_type: MULTI_GPU\n")):
        acc = tmp_path / f"{kind}.yaml"
        acc.write_text("compute_environment: LOCAL_MACHINE\nnum_processes: 8\n" + extra)
        out = json.loads(cli("check", lf, "--gpu", "A100-80GB", "--accelerate-config", acc, "--json").stdout)
        floors[kind] = out["full_finetune"]
    assert floors["zero2"]["gpus"] == floors["ddp"]["gpus"] == 8
    assert floors["zero2"]["optimizer_bytes"] * 4 < floors["ddp"]["optimizer_bytes"]
    assert floors["zero2"]["grads_bytes"] * 4 < floors["ddp"]["grads_bytes"]


def test_a_presets_data_file_missing_here_is_said_before_train_stops_on_it(tmp_path):
    """check names a rankwise preset's data files that this machine lacks (info: the preset may be checked away from
    its server); a file that is there, and a foreign config's data, are not mentioned."""
    (tmp_path / "there.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    preset = tmp_path / "p.yaml"
    preset.write_text("model: {name: llama-3.2-1b}\ndata: {path: gone.jsonl, val_path: there.jsonl}\n")
    out = cli("check", str(preset), "--gpu-mem", "24GiB", "--json")
    assert out.returncode == 0, out.stderr
    missing = [f for f in json.loads(out.stdout)["findings"] if f["code"] == "data-not-found"]
    assert [(f["severity"], f["message"]) for f in missing] == [
        ("info", f"data.path {tmp_path / 'gone.jsonl'} is not on this machine")]
    axolotl = tmp_path / "axolotl.yaml"
    axolotl.write_text("base_model: llama-3.2-1b\nadapter: lora\ndatasets:\n  - path: gone.jsonl\n    type: alpaca\n")
    out = cli("check", str(axolotl), "--gpu-mem", "24GiB", "--json")
    assert "data-not-found" not in {f["code"] for f in json.loads(out.stdout)["findings"]}
