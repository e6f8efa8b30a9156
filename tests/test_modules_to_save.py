"""lora.modules_to_save (issue 11): modules trained in full beside the adapter. The estimate adds each module's
trainable copy, its gradient and its optimizer states by hand arithmetic on the model's shapes; bad names and
quantized linears are bad input; other tools' keys map to it; the tiny model trains with it on the CPU and the
adapter holds the trained copies."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import adapter_weights, events, of_type, only_run, tail_log, train

from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.foreign import read
from rankwise.advisor.memory import OPT8_BLOCK, Plan, estimate
from rankwise.advisor.model import load_model

SPEC = load_model("llama-3.1-8b")  # embed_tokens and lm_head 128256 x 4096 each, untied
EMBED = SPEC.vocab_size * SPEC.hidden_size
BOTH = ("embed_tokens", "lm_head")
ASSETS = Path(__file__).resolve().parent.parent / "presets" / "assets"


def _added(plan: Plan) -> dict[str, int]:
    return {k: v for k, v in estimate(SPEC, plan).components.items() if k.startswith("saved_modules")}


def test_lora_adds_a_16_bit_copy_its_gradient_and_two_adamw_states():
    """peft deep-copies each module in the model's dtype (bf16 here; checked with peft 0.21: the copies stay
    bf16 where autocast_adapter_dtype upcasts lora_A/B); torch AdamW's states are zeros_like the parameter."""
    plan = Plan("lora", optimizer="adamw_torch", modules_to_save=BOTH)
    assert _added(plan) == {"saved_modules": 2 * 2 * EMBED, "saved_modules_grads": 2 * 2 * EMBED,
                            "saved_modules_optimizer": 2 * 2 * 2 * EMBED}
    without = estimate(SPEC, Plan("lora", optimizer="adamw_torch"))
    with_ = estimate(SPEC, plan)
    assert with_.trainable_params - without.trainable_params == 2 * EMBED
    assert with_.peak_bytes - without.peak_bytes >= sum(_added(plan).values())


def test_8bit_adamw_keeps_the_embedding_copy_in_32_bit_states():
    """QLoRA (paged 8-bit AdamW): transformers' Trainer registers optim_bits 32 for every nn.Embedding, so the
    embedding copy has two fp32 states; lm_head (a Linear) 8-bit ones. Both copies are fp32 under peft's k-bit
    upcast, 16-bit without it."""
    plan = Plan("qlora", optimizer="paged_adamw_8bit", modules_to_save=BOTH)
    opt8 = 2 * EMBED + 2 * 4 * -(-EMBED // OPT8_BLOCK)
    assert _added(plan) == {"saved_modules": 4 * 2 * EMBED, "saved_modules_grads": 4 * 2 * EMBED,
                            "saved_modules_optimizer": 8 * EMBED + opt8}
    cast_back = Plan("qlora", optimizer="paged_adamw_8bit", modules_to_save=BOTH, kbit_upcast=False)
    assert _added(cast_back)["saved_modules"] == 2 * 2 * EMBED


def test_sharded_the_copies_divide_over_the_gpus_and_offload_moves_them():
    one = _added(Plan("lora", optimizer="adamw_torch", modules_to_save=BOTH))
    fsdp = _added(Plan("lora", optimizer="adamw_torch", modules_to_save=BOTH, gpus=4, strategy="fsdp"))
    assert fsdp == {k: -(-v // 4) for k, v in one.items()}
    off = estimate(SPEC, Plan("lora", optimizer="adamw_torch", modules_to_save=BOTH, gpus=4, strategy="fsdp",
                              offload="params_and_optimizer"))
    assert not any(off.components.get(k) for k in one)
    plain = estimate(SPEC, Plan("lora", optimizer="adamw_torch", gpus=4, strategy="fsdp",
                                offload="params_and_optimizer"))
    assert off.host_offload_bytes - plain.host_offload_bytes == sum(one.values())


@pytest.mark.parametrize("names,says", [(("embed_tokns",), "did you mean embed_tokens"),
                                        (("q_proj",), "cannot train in full")])
def test_a_name_the_model_lacks_or_a_4bit_linear_is_refused(names, says):
    with pytest.raises(RankwiseError) as e:
        estimate(SPEC, Plan("qlora", optimizer="paged_adamw_8bit", modules_to_save=names))
    assert says in e.value.message + (e.value.hint or "")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "rankwise.tui.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_estimate_flags_write_down_the_run():
    """--modules-to-save, --dropout, --load/--dora and --loss are the config keys they name; the JSON gains
    keys only."""
    out = cli("estimate", "--model", "llama-3.1-8b", "--load", "4bit", "--dora", "--modules-to-save",
              "embed_tokens,lm_head", "--dropout", "0", "--loss", "fused", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    plan = estimate(SPEC, Plan("qdora", optimizer="paged_adamw_8bit", modules_to_save=BOTH, lora_dropout=False,
                               loss="fused", liger=True))  # --loss fused is --kernels liger
    assert d["peak_bytes"] == plan.peak_bytes  # the components are GiB, rounded to 4 places
    assert d["components"]["saved_modules"] == round(4 * 2 * EMBED / 1024 ** 3, 4)
    bad = cli("estimate", "--model", "llama-3.1-8b", "--modules-to-save", "embed_tokns")
    assert bad.returncode == 2 and "embed_tokens" in bad.stderr and "Traceback" not in bad.stderr
    clash = cli("estimate", "--method", "lora", "--load", "4bit")
    assert clash.returncode == 2 and "disagree" in clash.stderr


@pytest.mark.parametrize("text", ["base_model: llama-3.2-1b\nadapter: lora\nlora_modules_to_save:\n  - embed_tokens\n"
                                  "  - lm_head\n",
                                  "model_name_or_path: llama-3.2-1b\nfinetuning_type: lora\nstage: sft\n"
                                  "additional_target: embed_tokens,lm_head\n"])
def test_other_tools_keys_map_to_it(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    r = read(path)
    assert r.cfg.lora.modules_to_save == list(BOTH)
    assert not [s for s in r.said if s.code == "not-modelled"]


@pytest.mark.slow
def test_the_tiny_model_trains_its_embeddings_and_head_in_full(tmp_path):
    from safetensors.torch import load_file

    runs = tmp_path / "runs"
    proc = train(runs, "--set", "train.max_steps=6", "--set", "lora.modules_to_save=[embed_tokens, lm_head]")
    run_dir = only_run(runs)
    assert proc.returncode == 0, proc.stderr + tail_log(run_dir)
    steps = of_type(events(run_dir), "step")
    assert len(steps) == 6 and steps[-1]["loss"] < steps[0]["loss"]
    saved = adapter_weights(run_dir / "adapter")
    base = load_file(str(ASSETS / "tiny-llama" / "model.safetensors"))
    for name in BOTH:
        key = next(k for k in saved if f"{name}.weight" in k)
        original = next(v for k, v in base.items() if k.endswith(f"{name}.weight"))
        assert saved[key].shape == original.shape
        assert (saved[key].float() - original.float()).abs().max() > 0  # trained, not the frozen original
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert sorted(config["modules_to_save"]) == sorted(BOTH)


# ------------------------------------------------------------------ model.added_tokens


def test_added_tokens_grow_the_vocabulary_and_train_their_rows():
    """3 tokens on an 8B (untied head): 3 rows more in the embedding and the head, the logits 3 wider, and the
    rows trained (peft trainable tokens) in both."""
    without = estimate(SPEC, Plan("lora"))
    with_ = estimate(SPEC, Plan("lora", added_tokens=3))
    assert with_.trainable_params - without.trainable_params == 2 * 3 * SPEC.hidden_size
    assert with_.components["base_weights"] - without.components["base_weights"] == 2 * 2 * 3 * SPEC.hidden_size
    assert with_.components["logits_loss"] > without.components["logits_loss"]


@pytest.mark.parametrize("text", ["base_model: llama-3.2-1b\nadapter: lora\ntokens:\n  - <|a|>\n  - <|b|>\n",
                                  "model_name_or_path: llama-3.2-1b\nfinetuning_type: lora\nstage: sft\n"
                                  "add_tokens: <|a|>\nadd_special_tokens: <|b|>,<|a|>\n"])
def test_other_tools_new_tokens_map_to_added_tokens(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert read(path).cfg.model.added_tokens == ["<|a|>", "<|b|>"]


@pytest.mark.slow
def test_the_tiny_model_learns_a_new_token_and_merge_keeps_it(tmp_path):
    """A token the base tokenizer does not have: one id past the vocabulary, its embedding and head rows trained
    and saved in the adapter, and the merged model's tokenizer and rows carry it."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"mark {i}"},
                                                     {"role": "assistant", "content": f"<|mark|> {i}"}]}) + "\n"
                            for i in range(16)))
    runs = tmp_path / "runs"
    proc = train(runs, "--set", "train.max_steps=4", "--set", f"data.path={data}", "--set", "data.val_ratio=0",
                 "--set", "model.added_tokens=['<|mark|>']")
    run_dir = only_run(runs)
    assert proc.returncode == 0, proc.stderr + tail_log(run_dir)
    base_tok = AutoTokenizer.from_pretrained(ASSETS / "tiny-llama")
    new_id = len(base_tok)
    assert "<|mark|>" not in base_tok.get_vocab()
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert config["trainable_token_indices"] == {"embed_tokens": [new_id], "lm_head": [new_id]}
    saved = adapter_weights(run_dir / "adapter")
    rows = {k.split(".token_adapter")[0].rsplit(".", 1)[-1]: v for k, v in saved.items() if "trainable_tokens_delta" in k}
    assert set(rows) == {"embed_tokens", "lm_head"} and all(v.shape == (1, 64) for v in rows.values())

    merge = subprocess.run([sys.executable, "-m", "rankwise.tui.cli", "merge", run_dir.name, "--runs-dir", str(runs)],
                           capture_output=True, text=True, timeout=300)
    assert merge.returncode == 0, merge.stderr
    out = run_dir / "merged"
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.convert_tokens_to_ids("<|mark|>") == new_id and len(tok("<|mark|>", add_special_tokens=False)["input_ids"]) == 1
    merged = load_file(str(out / "model.safetensors"))
    emb = next(v for k, v in merged.items() if k.endswith("embed_tokens.weight"))
    assert emb.shape[0] == new_id + 1 and (emb[new_id].float() - rows["embed_tokens"][0].float()).abs().max() == 0
