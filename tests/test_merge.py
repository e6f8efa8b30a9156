"""`rankwise merge RUN`: W0 + BA in the base weights, a standalone model with the PEFT model's logits."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from train_helpers import CLI, env

from test_train import MODEL, _logits


@pytest.mark.slow
@pytest.mark.parametrize("trained", [pytest.param("demo_training", id="demo-cpu"),  # the session's runs (conftest.py)
                                     pytest.param("qlora_run", id="demo-cpu-qlora")])
def test_merge_matches_the_peft_model_and_refuses_to_overwrite(tmp_path, trained, request):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    session_run = request.getfixturevalue(trained)[0]
    runs = tmp_path / "runs"
    run_dir = runs / session_run.name  # a copy of the session's run: merge writes into the run folder
    shutil.copytree(session_run, run_dir)
    merge = subprocess.run(CLI + ["merge", run_dir.name, "--runs-dir", str(runs)], capture_output=True, text=True,
                           env=env(), timeout=300)
    assert merge.returncode == 0, merge.stderr
    out = run_dir / "merged"
    assert merge.stdout.strip().splitlines()[-1] == str(out)
    said = merge.stdout + merge.stderr
    assert "kernels" not in said and "Setting accelerator" not in said  # no library chatter (bnb, DeepSpeed)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not list(out.glob("adapter_*"))  # standalone: no peft needed to load it

    tok = AutoTokenizer.from_pretrained(out)
    merged = _logits(AutoModelForCausalLM.from_pretrained(out), tok)
    peft = _logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(MODEL), run_dir / "adapter"), tok)
    assert torch.allclose(merged, peft, atol=1e-4)
    # (a QLoRA run merges into the 16-bit/fp32 base, so it matches the adapter on that base)

    again = subprocess.run(CLI + ["merge", run_dir.name, "--runs-dir", str(runs)], capture_output=True, text=True,
                           env=env(), timeout=120)
    assert again.returncode == 2 and "not empty" in again.stderr


def test_merge_needs_a_finished_run(tmp_path):
    run_dir = tmp_path / "runs" / "x-1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("name: x\n")
    p = subprocess.run(CLI + ["merge", "x-1", "--runs-dir", str(tmp_path / "runs")], capture_output=True, text=True,
                       env=env(), timeout=60)
    assert p.returncode == 2 and "no final adapter" in p.stderr
