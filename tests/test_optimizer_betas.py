"""train.adam_beta1 / adam_beta2 / adam_epsilon: HF TrainingArguments' AdamW settings, passed to the optimizer the run
builds (torch AdamW, the bitsandbytes 8-bit ones, LoRA+) and carried over from axolotl, LLaMA-Factory and TRL files."""
from __future__ import annotations

import pytest

from rankwise.advisor.errors import ConfigError
from rankwise.advisor.foreign import read
from rankwise.advisor.loader import load_config


@pytest.mark.parametrize("head", [
    "base_model: llama-3.2-1b\nadapter: lora\n",
    "model_name_or_path: llama-3.2-1b\nfinetuning_type: lora\nstage: sft\n",
    "model_name_or_path: llama-3.2-1b\nuse_peft: true\n",
])
def test_other_tools_keys_are_carried_over(tmp_path, head):
    f = tmp_path / "c.yaml"
    f.write_text(head + "adam_beta1: 0.8\nadam_beta2: 0.95\nadam_epsilon: 1.0e-6\n")
    r = read(f)
    t = r.cfg.train
    assert (t.adam_beta1, t.adam_beta2, t.adam_epsilon) == (0.8, 0.95, 1e-6)
    assert not {"adam_beta1", "adam_beta2", "adam_epsilon"} & set(r.unread)


@pytest.mark.parametrize("key, value", [("adam_beta2", 1.0), ("adam_beta1", -0.1), ("adam_epsilon", 0)])
def test_values_out_of_range_are_bad_input(tmp_path, key, value):
    f = tmp_path / "p.yaml"
    f.write_text(f"train:\n  {key}: {value}\n")
    with pytest.raises(ConfigError, match=key):
        load_config(f)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw_torch", "adamw_8bit"])
def test_the_run_optimizer_uses_them(tmp_path, optimizer):
    """A real demo-cpu run: the optimizer state saved with its checkpoint holds the betas and epsilon set."""
    import torch
    from train_helpers import only_run, tail_log, train

    from rankwise.trainer import rundir

    runs = tmp_path / "runs"
    out = train(runs, "--set", "train.max_steps=2", "--set", "train.save_steps=2", "--set", f"train.optimizer={optimizer}",
                "--set", "train.adam_beta1=0.8", "--set", "train.adam_beta2=0.95", "--set", "train.adam_epsilon=1e-6")
    run = only_run(runs)
    assert out.returncode == 0, out.stderr[-3000:] + tail_log(run)
    state = torch.load(run / rundir.CHECKPOINTS / "checkpoint-2" / "optimizer.pt", weights_only=False)
    groups = state["param_groups"]
    assert groups and all(tuple(g["betas"]) == (0.8, 0.95) and g["eps"] == 1e-6 for g in groups)
