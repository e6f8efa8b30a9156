"""lora.init_from: a run that starts from a trained adapter's weights (continued fine-tuning). The folder is
checked before a run exists (advisor/adapter_from.py: a LoRA adapter in safetensors, of the config's shape), and
the worker loads its tensors into the adapter it builds (trainer/adapter_init.py start_from)."""
from __future__ import annotations

import json

import pytest

from rankwise.advisor import adapter_from
from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.loader import load_config
from rankwise.advisor.model import load_model

SPEC = load_model("llama-3.2-1b")


def adapter(folder, weights=True, trained_on=SPEC, **over):
    """A saved adapter as peft writes it: its config, and layer 0's LoRA tensors at `trained_on`'s widths."""
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    conf = {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "use_rslora": False, "use_dora": False,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "modules_to_save": None, **over}
    (folder / "adapter_config.json").write_text(json.dumps(conf))
    if weights:
        r, key = conf["r"], "base_model.model.model.layers.0.self_attn.{}.lora_{}.weight"
        save_file({key.format(lin.name, side): np.zeros(shape, dtype=np.float16)
                   for lin in trained_on.linears if lin.name in conf["target_modules"]
                   for side, shape in (("A", (r, lin.d_in)), ("B", (lin.d_out, r)))},
                  str(folder / "adapter_model.safetensors"))
    return folder


def cfg(folder, **lora):
    return RunConfig.model_validate({"lora": {"r": 16, "alpha": 32, "target_modules": "standard",
                                              "init_from": str(folder) if folder else None, **lora}})


def test_an_adapter_of_the_configs_shape_passes(tmp_path):
    adapter_from.check(cfg(adapter(tmp_path / "a")), SPEC, dora=False)
    adapter_from.check(cfg(None), SPEC, dora=False)  # unset: nothing to check


def test_a_shape_that_differs_is_refused_with_the_values_that_match_it(tmp_path):
    with pytest.raises(RankwiseError) as e:
        adapter_from.check(cfg(adapter(tmp_path / "a"), r=8, alpha=16, target_modules="all-linear"), SPEC, dora=False)
    assert "lora.r 16 there, 8 here" in e.value.message and "lora.alpha 32 there, 16 here" in e.value.message
    assert "--set lora.r=16 --set lora.alpha=32 --set lora.target_modules=[k_proj,o_proj,q_proj,v_proj]" in e.value.hint
    (tmp_path / "p.yaml").write_text("lora: {r: 8, alpha: 16, target_modules: all-linear}\n")
    fixed = load_config(tmp_path / "p.yaml", ["lora.r=16", "lora.alpha=32", "lora.target_modules=[k_proj,o_proj,q_proj,v_proj]",
                               f"lora.init_from={tmp_path / 'a'}"])
    adapter_from.check(fixed, SPEC, dora=False)  # the hint's values, typed as given, pass


def test_an_adapter_of_another_model_is_refused_before_the_run(tmp_path):
    """Its tensors' widths (read from the safetensors header, no torch) are not this model's: Llama-3.2-1B's q_proj
    takes 2,048 inputs, Llama-3.1-8B's 4,096. The worker would find it only after loading the model."""
    folder = adapter(tmp_path / "a", base_model_name_or_path="meta-llama/Llama-3.2-1B")
    with pytest.raises(RankwiseError) as e:
        adapter_from.check(cfg(folder), load_model("llama-3.1-8b"), dora=False)
    assert "trained on another model" in e.value.message and "q_proj input 2,048 there, 4,096 here" in e.value.message
    assert "its base: meta-llama/Llama-3.2-1B" in e.value.message and "model.name" in e.value.hint
    (folder / "adapter_model.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(RankwiseError, match="not a readable safetensors file"):
        adapter_from.check(cfg(folder), SPEC, dora=False)


@pytest.mark.parametrize("over, weights, dora, said", [
    ({"peft_type": "IA3"}, True, False, "a IA3 adapter, not LoRA"),
    ({}, False, False, "no adapter_model.safetensors there"),
    ({"use_dora": True}, True, False, "a DoRA adapter, and this run's method trains plain LoRA"),
    ({}, True, True, "a plain LoRA adapter, and this run's method trains DoRA"),
])
def test_what_cannot_be_continued_is_said(tmp_path, over, weights, dora, said):
    with pytest.raises(RankwiseError, match=said):
        adapter_from.check(cfg(adapter(tmp_path / "a", weights, **over)), SPEC, dora=dora)
    with pytest.raises(RankwiseError, match="no adapter_config.json"):
        adapter_from.check(cfg(tmp_path), SPEC, dora=False)
    with pytest.raises(RankwiseError, match="replace the initialisation"):
        adapter_from.check(cfg(adapter(tmp_path / "b"), init="olora"), SPEC, dora=False)


def test_a_relative_adapter_folder_is_read_from_the_presets_folder(tmp_path):
    (tmp_path / "p.yaml").write_text("lora: {init_from: runs/first/adapter}\n")
    assert load_config(tmp_path / "p.yaml").lora.init_from == str(tmp_path / "runs" / "first" / "adapter")


@pytest.mark.slow
def test_a_run_continues_where_the_trained_adapter_left_off(tmp_path):
    """demo-cpu trains 8 steps; a run started from its adapter begins at that adapter's loss, far below a new
    adapter's first loss (B = 0: the base model's), on the same rows in the same order. A shape that differs stops
    `train` before a run dir exists."""
    from train_helpers import events, of_type, only_run, tail_log, train

    steps = ("--set", "train.logging_steps=1")
    first = train(tmp_path / "first", "--set", "train.max_steps=8", *steps)
    run = only_run(tmp_path / "first")
    assert first.returncode == 0, first.stderr[-3000:] + tail_log(run)
    fresh_loss = of_type(events(run), "step")[0]["loss"]
    again = train(tmp_path / "again", "--set", "train.max_steps=1", *steps,
                  "--set", f"lora.init_from={run / 'adapter'}")
    cont = only_run(tmp_path / "again")
    assert again.returncode == 0, again.stderr[-3000:] + tail_log(cont)
    assert of_type(events(cont), "step")[0]["loss"] < 0.8 * fresh_loss
    assert "adapter tensors loaded from" in (cont / "train.log").read_text()
    wrong = train(tmp_path / "wrong", "--set", "lora.r=4", "--set", f"lora.init_from={run / 'adapter'}")
    assert wrong.returncode == 2 and "lora.r 16 there, 4 here" in wrong.stderr
    assert not (tmp_path / "wrong").exists() or not any((tmp_path / "wrong").iterdir())


def test_a_sweep_over_ranks_cannot_continue_one_adapter(tmp_path):
    """Each trial of a rank sweep would need an adapter of its own rank: said before any trial or sweep folder."""
    import subprocess

    from train_helpers import CLI, env

    folder = adapter(tmp_path / "a", r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    out = subprocess.run(CLI + ["sweep", "--preset", "demo-cpu", "--ranks", "4,8", "--steps", "2", "--sweep-dir",
                                str(tmp_path / "sweep"), "--set", f"lora.init_from={folder}"],
                         capture_output=True, text=True, timeout=300, env=env(), stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "sweep over ranks 4, 8 with lora.init_from" in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "sweep").exists()
