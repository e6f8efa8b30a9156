"""Settings the resolved config will not use are said (info, with why and fix), and only those."""
import json
from pathlib import Path

import pytest
from rule_codes import declared, documented

from rankwise.advisor import ignored
from rankwise.advisor.config import RunConfig
from rankwise.advisor.hardware import planned
from rankwise.advisor.model import load_model
from rankwise.advisor.recommend import advise
from rankwise.advisor.redflags import check

# written as a user writes a preset: only these keys are set
BASE = {"model.name": "llama-3.1-8b", "method": "qlora", "lora.r": 16, "lora.alpha": 32, "train.lr": 1e-4,
        "train.grad_accum": 16}

HW = {"80g": lambda: planned("80GiB"), "80g-x4": lambda: planned("80GiB", gpus=4), "16g": lambda: planned("16GiB")}


def make(tweak: dict) -> RunConfig:
    data: dict = {}
    for key, value in {**BASE, **tweak}.items():
        node = data
        *head, last = key.split(".")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    return RunConfig.model_validate(data)


def ignored_findings(tweak: dict, hw: str = "80g") -> dict:
    cfg = make(tweak)
    return {f.code: f for f in check(cfg, load_model(cfg.model.name), HW[hw]()) if f.code.startswith("ignored-")}


DS = Path(__file__).parent / "fixtures" / "deepspeed"  # z3-optimizer.json: the HF docs' template shape; z3-auto.json
ZERO3 = {"distributed.gpus": 4, "distributed.strategy": "deepspeed"}

# (tweak, hardware, {code: words its message must hold}) — every ignored-* code not listed must be absent
TABLE = [
    ({}, "80g", {}),
    # quant.* is read only for a 4-bit base
    ({"method": "lora", "quant.quant_type": "fp4"}, "80g", {"ignored-quant": ["quant.quant_type fp4"]}),
    ({"method": "lora", "quant.double_quant": False, "quant.compute_dtype": "float16"}, "80g",
     {"ignored-quant": ["quant.double_quant False", "quant.compute_dtype float16"]}),
    ({"method": "lora", "quant.quant_type": "nf4", "quant.double_quant": True}, "80g", {}),  # the defaults, written
    ({"method": "qlora", "quant.quant_type": "fp4"}, "80g", {}),
    # method auto: an 8B LoRA fits 80 GiB (the quant group is unused), not 16 GiB (QLoRA reads it)
    ({"method": "auto", "quant.quant_type": "fp4"}, "80g", {"ignored-quant": ["quant.quant_type fp4"]}),
    ({"method": "auto", "quant.quant_type": "fp4"}, "16g", {}),
    # warmup_steps wins over warmup_ratio, even over a ratio written equal to its default
    ({"train.warmup_ratio": 0.1, "train.warmup_steps": 20}, "80g",
     {"ignored-warmup-ratio": ["warmup_ratio 0.1", "warmup_steps 20"]}),
    ({"train.warmup_ratio": 0.03, "train.warmup_steps": 20}, "80g", {"ignored-warmup-ratio": ["warmup_ratio 0.03"]}),
    ({"train.warmup_steps": 20}, "80g", {}),
    ({"train.warmup_ratio": 0.1}, "80g", {}),
    # settings a declared data.format never reads
    ({"model.chat_template": "chatml", "data.format": "prompt_completion"}, "80g",
     {"ignored-by-format": ["model.chat_template (data.format prompt_completion"]}),
    ({"data.train_on_inputs": True, "data.format": "text", "model.chat_template": "chatml"}, "80g",
     {"ignored-by-format": ["data.train_on_inputs (data.format text", "model.chat_template (data.format text"]}),
    ({"model.chat_template": "chatml", "data.train_on_inputs": True, "data.format": "chat"}, "80g", {}),
    ({"model.chat_template": "chatml", "data.train_on_inputs": True}, "80g", {}),  # format auto: not known here
    # max_steps wins over epochs
    ({"train.epochs": 3, "train.max_steps": 100}, "80g", {"ignored-epochs": ["epochs 3", "max_steps 100"]}),
    ({"train.epochs": 1, "train.max_steps": 100}, "80g", {"ignored-epochs": ["epochs 1"]}),
    ({"train.max_steps": 100}, "80g", {}),
    ({"train.epochs": 2}, "80g", {}),
    # evaluation needs validation data
    ({"train.eval_steps": 50}, "80g", {"ignored-eval-steps": ["eval_steps 50"]}),
    ({"train.eval_steps": 50, "data.val_ratio": 0.1}, "80g", {}),
    ({"train.eval_steps": 50, "data.val_path": "val.jsonl"}, "80g", {}),
    ({"data.val_ratio": 0.1}, "80g", {}),
    ({"train.evals_per_epoch": 4}, "80g", {"ignored-eval-steps": ["evals_per_epoch 4"]}),
    ({"train.evals_per_epoch": 4, "data.val_ratio": 0.05}, "80g", {}),
    # a per-epoch count replaces the step interval beside it
    ({"train.saves_per_epoch": 2, "train.save_steps": 100}, "80g",
     {"ignored-step-interval": ["train.save_steps 100", "saves_per_epoch 2"]}),
    ({"train.evals_per_epoch": 4, "train.eval_steps": 50, "train.saves_per_epoch": 1, "train.save_steps": 20,
      "data.val_ratio": 0.05}, "80g",
     {"ignored-step-interval": ["train.save_steps 20, train.eval_steps 50",
                                "saves_per_epoch 1 and train.evals_per_epoch 4"]}),
    ({"train.saves_per_epoch": 2}, "80g", {}),
    ({"train.evals_per_epoch": 2, "train.save_steps": 50, "data.val_ratio": 0.05}, "80g", {}),
    # a strategy shares work between processes: one GPU runs one process
    ({"distributed.strategy": "fsdp"}, "80g", {"ignored-strategy": ["strategy fsdp"]}),
    ({"distributed.strategy": "ddp", "distributed.gpus": 1}, "80g-x4", {"ignored-strategy": ["strategy ddp"]}),
    ({"distributed.strategy": "fsdp"}, "80g-x4", {}),
    ({"distributed.strategy": "fsdp", "distributed.gpus": 4}, "80g-x4", {}),
    ({"distributed.strategy": "auto"}, "80g", {}),
    # a DeepSpeed file with its own optimizer and scheduler sections: DeepSpeed builds those
    ({**ZERO3, "distributed.deepspeed_config": str(DS / "z3-optimizer.json")}, "80g-x4",
     {"ignored-by-deepspeed": ["train.optimizer paged_adamw_8bit (the file's AdamW)",
                               "train.scheduler cosine (the file's WarmupLR)"]}),
    ({**ZERO3, "distributed.deepspeed_config": str(DS / "z3-auto.json")}, "80g-x4", {}),
    # several at once, each said once
    ({"method": "lora", "quant.quant_type": "fp4", "train.warmup_ratio": 0.1, "train.warmup_steps": 20,
      "train.epochs": 2, "train.max_steps": 50, "train.eval_steps": 10}, "80g",
     {"ignored-quant": ["fp4"], "ignored-warmup-ratio": ["0.1"], "ignored-epochs": ["2"], "ignored-eval-steps": ["10"]}),
]


@pytest.mark.parametrize("tweak,hw,expected", TABLE, ids=[f"{i}-{list(e) or 'none'}" for i, (_, _, e) in enumerate(TABLE)])
def test_ignored_table(tweak, hw, expected):
    found = ignored_findings(tweak, hw)
    assert set(found) == set(expected), (set(found), set(expected))
    for code, words in expected.items():
        f = found[code]
        assert f.severity == "info"
        assert f.why and f.fix
        for word in words:
            assert word in f.message, (word, f.message)


def test_patch_makes_the_setting_used():
    """ignored-eval-steps' patch holds out validation rows, after which eval_steps is used."""
    f = ignored_findings({"train.eval_steps": 50})["ignored-eval-steps"]
    assert f.patch == {"data.val_ratio": 0.05}
    assert ignored_findings({"train.eval_steps": 50, **f.patch}) == {}


def test_every_ignored_code_has_a_row_and_a_readme_line():
    by_rule = declared(ignored.RULES)
    assert all(by_rule.values()), by_rule
    codes = set().union(*by_rule.values())
    assert sum(map(len, by_rule.values())) == len(codes)
    assert {c for _, _, e in TABLE for c in e} == codes
    assert codes <= documented(), codes - documented()


def test_advice_does_not_call_its_own_settings_ignored():
    """The recommender writes every field of its config; none of them is unused."""
    for hw in ("80g", "16g"):
        got = advise(load_model("llama-3.1-8b"), HW[hw](), "instruction")
        assert not [f.code for f in got.findings if f.code.startswith("ignored-")], hw


def test_check_cli_says_ignored_settings_and_keeps_exit_0(tmp_path):
    """`rankwise check FILE --json` on a preset with four unused settings: four info findings, exit 0."""
    import subprocess
    import sys
    from pathlib import Path

    fixture = Path(__file__).parent / "fixtures" / "check" / "ignored-settings.yaml"
    out = subprocess.run([sys.executable, "-m", "rankwise.tui.cli", "check", str(fixture), "--gpu-mem", "80GiB",
                          "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    found = {f["code"]: f for f in d["findings"] if f["code"].startswith("ignored-")}
    assert set(found) == {"ignored-quant", "ignored-warmup-ratio", "ignored-epochs", "ignored-eval-steps"}
    assert {f["severity"] for f in found.values()} == {"info"}
    assert d["errors"] == 0
    assert "quant.quant_type fp4" in found["ignored-quant"]["message"]
