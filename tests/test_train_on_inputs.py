"""data.train_on_inputs: the prompt trained on too (axolotl's train_on_inputs, LLaMA-Factory's train_on_prompt, TRL's
completion_only_loss: false), as a view over the masked build (trainer/data.py's Unmasked): validation, the data cache,
`rankwise compare` and the sample prompts keep reading the prompt."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankwise.advisor.config import RunConfig
from rankwise.advisor.foreign import read
from rankwise.trainer.data import IGNORE
from rankwise.trainer.data_build import build_datasets

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "presets" / "assets"


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(ASSETS / "tiny-llama")


def cfg(path, **data):
    train = data.pop("train", {})
    return RunConfig.model_validate({"data": {"path": str(path), **data}, "train": train})


def test_training_examples_are_trained_whole_and_validation_keeps_the_prompt_masked(tok):
    masked, mval, mrep = build_datasets(cfg(ASSETS / "demo-chat.jsonl", val_ratio=0.25), tok)
    whole, wval, wrep = build_datasets(cfg(ASSETS / "demo-chat.jsonl", val_ratio=0.25, train_on_inputs=True), tok)
    assert [e["input_ids"] for e in whole] == [e["input_ids"] for e in masked]
    assert all(e["labels"] == [IGNORE] + e["input_ids"][1:] for e in whole)
    assert any(lab == IGNORE for e in masked for lab in e["labels"][1:])  # the masked build does mask prompts
    assert wval == mval  # validation: the answers only, as before
    assert wrep.supervised_tokens == wrep.train_tokens - wrep.train_rows > mrep.supervised_tokens


def test_packed_examples_mask_only_each_examples_first_token(tok):
    c = cfg(ASSETS / "demo-chat.jsonl", packing=True, train_on_inputs=True, train={"max_seq_len": 128})
    packed, _, rep = build_datasets(c, tok)
    assert len(packed) < rep.train_rows  # several examples per sequence
    for ex in packed:
        starts = {k for k, p in enumerate(ex["position_ids"]) if p == 0}
        assert len(starts) >= 1
        assert ex["labels"] == [IGNORE if k in starts else t for k, t in enumerate(ex["input_ids"])]
    assert rep.supervised_tokens == sum(len(e["input_ids"]) for e in packed) - rep.train_rows


def test_the_cache_holds_one_build_for_both_settings(tok, tmp_path):
    from rankwise.trainer.data_cache import prepare_data

    masked, _, _, first = prepare_data(cfg(ASSETS / "demo-chat.jsonl"), tok, root=tmp_path)
    whole, _, rep, second = prepare_data(cfg(ASSETS / "demo-chat.jsonl", train_on_inputs=True), tok, root=tmp_path)
    assert not first["hit"] and second["hit"] and first["dir"] == second["dir"]
    assert whole[3]["labels"] == [IGNORE] + masked[3]["input_ids"][1:] != masked[3]["labels"]
    assert [e["labels"] for e in whole] == [e["labels"] for e in (whole[i] for i in range(len(whole)))]
    assert rep.supervised_tokens == rep.train_tokens - rep.train_rows
    again, _, _, _ = prepare_data(cfg(ASSETS / "demo-chat.jsonl"), tok, root=tmp_path)
    assert [e["labels"] for e in again] == [e["labels"] for e in masked]  # the cached build stayed masked


def test_compare_reads_the_prompt_of_a_run_that_trained_on_inputs(tok, tmp_path):
    from rankwise.trainer.compare import held_out_rows

    c = cfg(ASSETS / "demo-chat.jsonl", val_ratio=0.25, train_on_inputs=True)
    rows = held_out_rows(tmp_path / "runs" / "r", c, tok, 3, ASSETS / "demo-chat.jsonl")  # --prompts FILE
    assert len(rows) == 3 and all(r.prompt and r.reference for r in rows)
    rows = held_out_rows(tmp_path / "runs" / "r", c, tok, 3, None)  # the run's own validation rows
    assert len(rows) == 3 and all(r.prompt and r.reference for r in rows)


def test_datacheck_shows_what_training_trains(tok):
    from rankwise.trainer.datacheck import check_data

    masked = check_data(ASSETS / "demo-chat.jsonl", tokenizer=tok)
    whole = check_data(ASSETS / "demo-chat.jsonl", tokenizer=tok, train_on_inputs=True)
    assert whole.tokens == masked.tokens and masked.trained_tokens < whole.trained_tokens
    assert whole.trained_tokens == whole.tokens - whole.usable_rows
    c = cfg(ASSETS / "demo-chat.jsonl", train_on_inputs=True)
    _, _, rep = build_datasets(c, tok)
    assert whole.trained_tokens == rep.supervised_tokens  # one count: the check and the build


@pytest.mark.parametrize("text, expect", [
    ("base_model: llama-3.2-1b\nadapter: lora\ntrain_on_inputs: true\n", True),
    ("base_model: llama-3.2-1b\nadapter: lora\ntrain_on_inputs: false\n", False),
    ("model_name_or_path: llama-3.2-1b\nfinetuning_type: lora\nstage: sft\ntrain_on_prompt: true\n", True),
    ("model_name_or_path: llama-3.2-1b\nuse_peft: true\ncompletion_only_loss: false\n", True),
    ("model_name_or_path: llama-3.2-1b\nuse_peft: true\ncompletion_only_loss: true\n", False),
])
def test_foreign_keys_are_carried_over(tmp_path, text, expect):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    r = read(f)
    assert r.cfg.data.train_on_inputs is expect
    assert not {"train_on_inputs", "train_on_prompt", "completion_only_loss"} & set(r.unread)


@pytest.mark.parametrize("extra, said", [
    ("assistant_only_loss: false\n", "assistant_only_loss false"),
    ("", "assistant_only_loss unset (TRL's default: false)"),
    ("assistant_only_loss: true\n", None),  # rankwise's own default
    ("completion_only_loss: false\n", None),  # set: the prompt is trained on
    ("beta: 0.1\n", None),  # a DPO file: no SFT loss to speak of
])
def test_trl_sft_files_are_told_how_trls_loss_differs(tmp_path, extra, said):
    f = tmp_path / "c.yaml"
    f.write_text("model_name_or_path: llama-3.2-1b\nuse_peft: true\n" + extra)
    r = read(f)
    notes = [n for n in r.notes if n.startswith("assistant_only_loss")]
    assert "assistant_only_loss" not in r.unread
    assert (notes[0].startswith(said) and "data.train_on_inputs" in notes[0]) if said else not notes, notes


@pytest.mark.slow
def test_a_run_trains_on_inputs(tmp_path):
    """Real demo-cpu runs with and without data.train_on_inputs, the same seed: the start event counts every token but
    each row's first as supervised, and the first step's loss is another loss (over the prompts too)."""
    from train_helpers import events, of_type, only_run, tail_log, train

    firsts = {}
    for whole in (True, False):
        runs = tmp_path / f"runs-{whole}"
        out = train(runs, "--set", f"data.train_on_inputs={str(whole).lower()}", "--set", "train.max_steps=2")
        run = only_run(runs)
        assert out.returncode == 0, out.stderr[-3000:] + tail_log(run)
        evs = events(run)
        start = of_type(evs, "start")[0]
        assert (start["supervised_tokens"] == start["train_tokens"] - start["train_rows"]) is whole
        assert json.loads((run / "summary.json").read_text())["status"] == "finished"
        firsts[whole] = of_type(evs, "step")[0]["loss"]
    assert firsts[True] != pytest.approx(firsts[False], rel=1e-3)
