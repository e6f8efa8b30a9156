"""model.chat_template (advisor/chat_templates.py): chat data rendered with a template that is not the tokenizer's own
(a base model has none), read from a built-in name, inline Jinja or a file, set the same way by the worker, chat and
merge, and carried over from axolotl (chat_template: chatml, chat_template_jinja), LLaMA-Factory (template: chatml)
and TRL (chat_template_path)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rankwise.advisor import chat_templates
from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.foreign import read
from rankwise.advisor.loader import load_config
from rankwise.trainer.data import IGNORE
from rankwise.trainer.data_build import build_datasets

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "presets" / "assets"
CHAT = {"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"}]}


def base_tokenizer():
    """The tiny model's tokenizer without its chat template: a base model's."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(ASSETS / "tiny-llama")
    tok.chat_template = None
    return tok


def base_model_folder(tmp_path) -> Path:
    folder = tmp_path / "tiny-base"
    shutil.copytree(ASSETS / "tiny-llama", folder)
    (folder / "chat_template.jinja").unlink()
    return folder


def test_the_values_it_takes(tmp_path):
    assert chat_templates.template_text(None) is None
    assert chat_templates.template_text("chatml") == chat_templates.CHATML
    inline = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert chat_templates.template_text(inline) == inline
    (tmp_path / "t.jinja").write_text(inline)
    assert chat_templates.template_text(str(tmp_path / "t.jinja")) == inline
    (tmp_path / "plain.txt").write_text("no template here")
    (tmp_path / "broken.jinja").write_text("{% for m in messages %}{{ m }}")
    for bad, said in ((tmp_path / "missing.jinja", "cannot read"), (tmp_path / "plain.txt", "holds no Jinja"),
                      (tmp_path / "broken.jinja", r"not a valid Jinja template \(line 1")):
        with pytest.raises(RankwiseError, match=said) as e:
            chat_templates.template_text(str(bad))
        assert str(bad) in e.value.message and "chatml" in e.value.hint


def test_a_file_is_anchored_to_the_presets_folder_and_names_are_not(tmp_path):
    (tmp_path / "presets").mkdir()
    preset = tmp_path / "presets" / "p.yaml"
    for value, expect in (("my.jinja", str(tmp_path / "presets" / "my.jinja")), ("chatml", "chatml"),
                          ("'{{ messages }}'", "{{ messages }}")):
        preset.write_text(f"model:\n  chat_template: {value}\n")
        assert load_config(preset).model.chat_template == expect


def test_chat_rows_on_a_base_tokenizer_render_as_chatml():
    tok = base_tokenizer()
    chat_templates.apply(tok, "chatml")
    path = ASSETS / "demo-chat.jsonl"
    train, _, _ = build_datasets(RunConfig.model_validate({"data": {"path": str(path)}}), tok)
    first = json.loads(path.read_text().splitlines()[0])["messages"]
    text = tok.decode(train[0]["input_ids"])
    assert text.startswith(f"<|im_start|>{first[0]['role']}\n{first[0]['content']}<|im_end|>")
    trained = tok.decode([t for t, lab in zip(train[0]["input_ids"], train[0]["labels"]) if lab != IGNORE])
    answers = [m["content"] for m in first if m["role"] == "assistant"]
    assert trained == "".join(f"{a}<|im_end|>" for a in answers) + "</s>"  # the turns, their end, then EOS


def test_answers_end_where_a_plain_text_turn_marker_begins():
    """ChatML's <|im_end|> is plain text to a base tokenizer, so decoding would show it at the end of every answer:
    generation stops at it and drops it, and compare's reference answers are read without it."""
    from transformers import AutoModelForCausalLM

    from rankwise.trainer.generation import Settings, generate_ids, turn_end, without_turn_end
    from rankwise.trainer.prompts import encode, rows_from_examples

    tok = base_tokenizer()
    assert turn_end(tok) is None  # no template
    chat_templates.apply(tok, "chatml")
    assert turn_end(tok) == "<|im_end|>" and without_turn_end("Paris<|im_end|>\n", "<|im_end|>") == "Paris"
    from transformers import AutoTokenizer
    assert turn_end(AutoTokenizer.from_pretrained(ASSETS / "tiny-llama")) is None  # its turns end with </s>
    val, _, _ = build_datasets(RunConfig.model_validate({"data": {"path": str(ASSETS / "demo-chat.jsonl")}}), tok)
    rows = rows_from_examples(val, tok, 3)
    assert rows and all(r.reference and "<|im_end|>" not in r.reference for r in rows)
    model = AutoModelForCausalLM.from_pretrained(ASSETS / "tiny-llama")
    ids = encode(tok, [{"role": "user", "content": "Capital of France?"}])
    text = generate_ids(model, tok, ids, Settings(max_new_tokens=8, temperature=0))  # stop_strings accepted
    assert "<|im_end|>" not in text


def test_datacheck_renders_with_the_presets_template():
    from rankwise.trainer.datacheck import check_data

    tok = base_tokenizer()
    with pytest.raises(RankwiseError, match="needs a tokenizer with a chat template"):
        check_data(ASSETS / "demo-chat.jsonl", tokenizer=tok)
    c = check_data(ASSETS / "demo-chat.jsonl", tokenizer=tok, chat_template="chatml")
    assert c.usable_rows == 64 and "<|im_start|>" in c.preview[0].marked()
    assert tok.chat_template is None  # the caller's tokenizer is left as it was


@pytest.mark.parametrize("text, expect, note", [
    ("base_model: llama-3.2-1b\nadapter: lora\nchat_template: chatml\n", "chatml", None),
    ("base_model: llama-3.2-1b\nadapter: lora\nchat_template: tokenizer_default\n", None, None),
    ("base_model: llama-3.2-1b\nadapter: lora\nchat_template: llama3\n", None, "chat_template llama3: axolotl's"),
    ("base_model: llama-3.2-1b\nadapter: lora\nchat_template: jinja\nchat_template_jinja: \"{{ messages }}\"\n",
     "{{ messages }}", None),
    ("model_name_or_path: llama-3.2-1b\nuse_peft: true\nchat_template_path: /t/chat.jinja\n", "/t/chat.jinja", None),
    ("model_name_or_path: llama-3.2-1b\nuse_peft: true\nchat_template_path: /t/tokenizer\n", None,
     "chat_template_path /t/tokenizer: a tokenizer folder"),
    ("model_name_or_path: llama-3.2-1b\nstage: sft\nfinetuning_type: lora\ntemplate: chatml\n", "chatml", None),
    ("model_name_or_path: llama-3.2-1b\nstage: sft\nfinetuning_type: lora\ntemplate: llama3\n", None,
     "template llama3: LLaMA-Factory's built-in llama3 template"),
])
def test_other_tools_keys_are_carried_over(tmp_path, text, expect, note):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    r = read(f)
    assert r.cfg.model.chat_template == expect
    assert not {"chat_template", "chat_template_jinja", "chat_template_path", "template"} & set(r.unread)
    assert any(n.startswith(note) for n in r.notes) if note else not any("template" in n for n in r.notes)


def test_an_imported_multi_line_template_is_written_whole(tmp_path):
    """`rankwise import` notes where each value came from after it on its line; a template that runs over several
    lines is written without one (inside the quoted value it would become part of the template)."""
    from rankwise.advisor.foreign.preset import to_preset

    template = "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    f = tmp_path / "axolotl.yaml"
    f.write_text("base_model: llama-3.2-1b\nadapter: lora\nchat_template: jinja\nchat_template_jinja: |\n"
                 + "".join(f"  {line}\n" for line in template.splitlines()) + "lora_r: 16\n")
    out = tmp_path / "imported.yaml"
    out.write_text(to_preset(read(f), tmp_path))
    cfg = load_config(out)
    assert cfg.model.chat_template == template + "\n" and cfg.lora.r == 16
    assert "r: 16  # from lora_r" in out.read_text()


def test_train_refuses_a_template_it_cannot_read_before_the_run_exists(tmp_path):
    runs = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "rankwise.tui.cli", "train", "--preset", "demo-cpu", "--runs-dir",
                           str(runs), "--set", f"model.chat_template={tmp_path / 'missing.jinja'}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "model.chat_template: cannot read" in done.stderr and "Traceback" not in done.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_train_says_a_base_model_needs_a_template_for_chat_rows_before_the_run_exists(tmp_path):
    runs = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "rankwise.tui.cli", "train", "--preset", "demo-cpu", "--runs-dir",
                           str(runs), "--set", f"model.name={base_model_folder(tmp_path)}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "needs a tokenizer with a chat template" in done.stderr
    assert "model.chat_template: chatml" in done.stderr and not runs.exists()
    assert chat_templates.folder_has_template(ASSETS / "tiny-llama")


@pytest.mark.slow
def test_a_base_model_trains_on_chat_rows_in_chatml_and_is_asked_in_it(tmp_path):
    """A real run of the tiny model with its chat template removed (a base model): the chat rows train in ChatML from a
    template file the run keeps a copy of, and the run's chat loads the tokenizer with it (the format it trained in)."""
    from train_helpers import only_run, tail_log, train

    from rankwise.trainer.chat import load_base

    folder, template, runs = base_model_folder(tmp_path), tmp_path / "mine.jinja", tmp_path / "runs"
    template.write_text(chat_templates.CHATML)  # a file (chatml by name differs only in where the text comes from)
    out = train(runs, "--set", f"model.name={folder}", "--set", f"model.chat_template={template}",
                "--set", "train.max_steps=2")
    run = only_run(runs)
    assert out.returncode == 0, out.stderr[-3000:] + tail_log(run)
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    cfg = load_config(run / "config.yaml")
    assert cfg.model.chat_template == str(run / "chat_template.jinja")  # the run's own copy
    template.unlink()  # chat and merge do not need the original
    _, tokenizer, _ = load_base(run, cfg)
    assert tokenizer.chat_template == chat_templates.CHATML
