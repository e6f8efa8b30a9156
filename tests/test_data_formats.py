"""The formats people bring: ShareGPT, tool calls, content parts, preference data, compressed
files, folders of shards, data.columns and a forced data.format.

Real tokenizer (the shipped tiny byte-level Llama; a tool-aware template is set on a copy), real
files in tmp_path; the trained-on tokens are decoded and compared with the answers.
"""
import gzip
import json
from pathlib import Path

import pytest

from rankwise.advisor.config import RunConfig
from rankwise.advisor.dataset import scan
from rankwise.advisor.readers import iter_rows
from rankwise.advisor.errors import RankwiseError
from rankwise.trainer.data import IGNORE
from rankwise.trainer.data_build import build_datasets

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "presets" / "assets" / "tiny-llama"
# A template that renders tools and tool calls the way tool-aware templates do (Qwen2.5, Llama 3.1
# read message.tool_calls and write each call's arguments as JSON).
TOOL_TEMPLATE = (
    "{{ bos_token }}{% if tools %}<|tools|>\n{{ tools | tojson }}{{ eos_token }}\n{% endif %}"
    "{% for m in messages %}<|{{ m['role'] }}|>\n{% if m['content'] %}{{ m['content'] }}{% endif %}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<call>{{ c.function.name }} {{ c.function.arguments | tojson }}"
    "</call>{% endfor %}{% endif %}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(TINY)


@pytest.fixture(scope="module")
def tool_tok():
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(TINY)
    t.chat_template = TOOL_TEMPLATE
    return t


def cfg(path, **data):
    train = data.pop("train", {"max_seq_len": 512})
    return RunConfig.model_validate({"data": {"path": str(path), **data}, "train": train})


def write_jsonl(path, rows, opener=open):
    with opener(path, "wt") as fh:
        fh.write("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def trained(tok, ex):
    """Decoded runs of consecutive trained-on tokens, EOS markers dropped."""
    runs, cur = [], []
    for lab in ex["labels"] + [IGNORE]:
        if lab == IGNORE:
            if cur:
                runs.append(tok.decode(cur).replace(tok.eos_token, ""))
            cur = []
        else:
            cur.append(lab)
    return runs


SHAREGPT = {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Capital of France?"},
                              {"from": "gpt", "value": "Paris"}, {"from": "human", "value": "And Italy?"},
                              {"from": "gpt", "value": "Rome"}]}


def test_sharegpt_maps_roles_keeps_system_and_trains_every_answer(tok, tmp_path):
    train, _, report = build_datasets(cfg(write_jsonl(tmp_path / "d.jsonl", [SHAREGPT])), tok)
    assert report.format == "sharegpt"
    text = tok.decode(train[0]["input_ids"])
    assert "<|system|>\nBe brief." in text and "<|user|>\nCapital of France?" in text
    assert trained(tok, train[0]) == ["Paris", "Rome"]


def test_content_parts_are_joined_and_non_text_parts_refused(tok, tmp_path):
    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Say"}, {"type": "text", "text": "hi"}]},
                        {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}]}
    train, _, _ = build_datasets(cfg(write_jsonl(tmp_path / "d.jsonl", [row])), tok)
    assert "<|user|>\nSay\nhi" in tok.decode(train[0]["input_ids"]) and trained(tok, train[0]) == ["hi"]
    image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]},
                          {"role": "assistant", "content": "a cat"}]}
    p = write_jsonl(tmp_path / "img.jsonl", [row, image])
    with pytest.raises(RankwiseError, match=r"img.jsonl:2: message 1 content part 1 is of type 'image_url'"):
        build_datasets(cfg(p), tok)


TOOL_ROW = {"tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
            "messages": [{"role": "user", "content": "Weather in Oslo?"},
                         {"role": "assistant", "content": "Let me look.", "tool_calls": [
                             {"id": "c1", "type": "function",
                              "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "-3C, snow"},
                         {"role": "assistant", "content": "It is -3C and snowing."}]}


def test_tool_calls_are_rendered_and_trained_and_tool_results_masked(tool_tok, tmp_path):
    null_content = json.loads(json.dumps(TOOL_ROW))
    null_content["messages"][1]["content"] = None
    train, _, _ = build_datasets(cfg(write_jsonl(tmp_path / "d.jsonl", [TOOL_ROW, null_content])), tool_tok)
    text = tool_tok.decode(train[0]["input_ids"])
    assert '<|tools|>\n[{"type": "function"' in text and "-3C, snow" in text
    # text AND the call are trained on (the call is no longer dropped); the tool's result is not
    assert trained(tool_tok, train[0]) == ['Let me look.<call>weather {"city": "Oslo"}</call>', "It is -3C and snowing."]
    assert trained(tool_tok, train[1]) == ['<call>weather {"city": "Oslo"}</call>', "It is -3C and snowing."]


def test_tool_calls_through_a_template_without_tools_is_a_clear_error(tok, tmp_path):
    with pytest.raises(RankwiseError) as e:
        build_datasets(cfg(write_jsonl(tmp_path / "d.jsonl", [TOOL_ROW])), tok)
    assert "d.jsonl:1: an assistant turn calls tools (weather)" in e.value.message
    assert f"chat template of {TINY}" in e.value.message and "supports tools" in e.value.hint


def test_sharegpt_function_call_and_observation(tool_tok, tmp_path):
    row = {"conversations": [{"from": "human", "value": "Weather?"},
                             {"from": "function_call", "value": "{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}"},
                             {"from": "observation", "value": "snow"}, {"from": "gpt", "value": "Snow."}],
           "tools": "[{\"name\": \"weather\"}]"}
    train, _, _ = build_datasets(cfg(write_jsonl(tmp_path / "d.jsonl", [row])), tool_tok)
    assert trained(tool_tok, train[0]) == ['<call>weather {"city": "Oslo"}</call>', "Snow."]


@pytest.mark.parametrize("row, use", [
    ({"prompt": "Q?", "chosen": "good", "rejected": "bad"}, "data.columns: {completion: chosen}"),
    ({"chosen": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "good"}],
      "rejected": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "bad"}]},
     "data.columns: {messages: chosen}"),
    ({"prompt": "Q?", "messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "good"}],
      "chosen": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "good"}],
      "rejected": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "bad"}]}, "data.format: chat"),
])
def test_preference_data_is_explained_not_trained(tok, tmp_path, row, use):
    p = write_jsonl(tmp_path / "pref.jsonl", [row])
    with pytest.raises(RankwiseError) as e:
        build_datasets(cfg(p), tok)
    assert "this is preference data" in e.value.message and "does not learn from preferences" in e.value.message
    assert use in e.value.hint
    assert scan(p).format == "preference"


def test_columns_map_field_names_and_train_the_chosen_answers(tok, tmp_path):
    p = write_jsonl(tmp_path / "qa.jsonl", [{"question": "Capital of France?", "answer": "Paris"}])
    train, _, report = build_datasets(cfg(p, columns={"instruction": "question", "output": "answer"}), tok)
    assert report.format == "instruction" and trained(tok, train[0]) == ["Paris"]
    pref = write_jsonl(tmp_path / "pref.jsonl", [{"prompt": "Q?", "chosen": "good", "rejected": "bad"}])
    train, _, report = build_datasets(cfg(pref, columns={"completion": "chosen"}), tok)
    assert report.format == "prompt_completion" and trained(tok, train[0]) == ["good"]


def test_forced_format_reads_sharegpt_named_as_such(tok, tmp_path):
    row = dict(SHAREGPT, text="a stray text field")  # auto would still pick sharegpt; text would train the field
    train, _, report = build_datasets(cfg(write_jsonl(tmp_path / "d.jsonl", [row]), format="sharegpt"), tok)
    assert report.format == "sharegpt" and trained(tok, train[0]) == ["Paris", "Rome"]
    _, _, report = build_datasets(cfg(write_jsonl(tmp_path / "t.jsonl", [row]), format="text"), tok)
    assert report.format == "text"


def test_gzipped_jsonl_counts_lines_of_the_text(tok, tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl.gz", [SHAREGPT, "{broken", SHAREGPT], opener=gzip.open)
    assert [n for n, _ in iter_rows(p, bad="yield")] == [1, 2, 3]
    with pytest.raises(RankwiseError, match=r"d.jsonl.gz:2: not valid JSON"):
        build_datasets(cfg(p), tok)
    train, _, report = build_datasets(cfg(p, skip_bad_rows=True), tok)
    assert report.train_rows == 2 and report.skipped_examples[0].startswith(f"{p}:2:")
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(p.read_bytes()[:-12])
    with pytest.raises(RankwiseError, match="cannot decompress the file"):
        list(iter_rows(cut, bad="yield"))


def test_folder_of_parquet_shards_reads_the_train_split(tok, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    data = tmp_path / "snapshot" / "data"
    data.mkdir(parents=True)
    rows = [{"instruction": f"Echo {k}", "input": "", "output": f"{k}"} for k in range(5)]
    pq.write_table(pa.Table.from_pylist(rows[:3]), data / "train-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(rows[3:] + [{"instruction": "Echo x", "input": "", "output": ""}]),
                   data / "train-00001-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist([{"instruction": "held", "input": "", "output": "out"}]),
                   data / "test-00000-of-00001.parquet")
    (tmp_path / "snapshot" / "README.md").write_text("a dataset card")
    with pytest.raises(RankwiseError, match=r"train-00001-of-00002.parquet row 3: empty 'output'"):
        build_datasets(cfg(tmp_path / "snapshot"), tok)
    train, _, report = build_datasets(cfg(tmp_path / "snapshot", skip_bad_rows=True), tok)
    assert report.train_rows == 5 and [trained(tok, ex) for ex in train] == [[f"{k}"] for k in range(5)]


@pytest.mark.slow
def test_the_new_formats_train_the_tiny_model(tok, tmp_path):
    """ShareGPT, content parts, a .jsonl.gz and a folder of parquet shards each make a training
    set whose collated batches give the tiny model a finite loss that a few steps lower."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoModelForCausalLM

    from rankwise.trainer.data import make_collator

    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
                          {"role": "assistant", "content": [{"type": "text", "text": "Paris"}]}]}
    shards = tmp_path / "shards"
    shards.mkdir()
    pq.write_table(pa.Table.from_pylist([{"conversations": SHAREGPT["conversations"]}] * 4),
                   shards / "train-00000.parquet")
    files = {"sharegpt": write_jsonl(tmp_path / "s.jsonl", [SHAREGPT] * 4),
             "parts": write_jsonl(tmp_path / "p.jsonl", [parts] * 4),
             "gz": write_jsonl(tmp_path / "g.jsonl.gz", [SHAREGPT] * 4, opener=gzip.open), "shards": shards}
    for name, path in files.items():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(TINY)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        train, _, _ = build_datasets(cfg(path), tok)
        assert trained(tok, train[0]) in (["Paris", "Rome"], ["Paris"]), name
        batch = make_collator(tok)(train)
        losses = []
        for _ in range(4):
            loss = model(**batch).loss
            losses.append(loss.item())
            loss.backward()
            opt.step()
            opt.zero_grad()
        assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], (name, losses)


def test_the_direct_template_renderer_writes_what_apply_chat_template_writes(tok, tool_tok):
    """Rendering skips apply_chat_template's per-call normalizing for plain string messages; the
    text must be the same for every prefix of every demo conversation, with and without the
    generation prompt (tool calls and tools still go through apply_chat_template)."""
    from rankwise.trainer.data import _direct_renderer, _renderer
    for t in (tok, tool_tok):
        assert _direct_renderer(t) is not None
        for line in (ROOT / "presets" / "assets" / "demo-chat.jsonl").read_text().splitlines():
            msgs = json.loads(line)["messages"]
            assert _renderer(t, msgs, None) is _direct_renderer(t)
            for n in range(1, len(msgs) + 1):
                for gen in (False, True):
                    assert _direct_renderer(t)(msgs[:n], gen) == t.apply_chat_template(msgs[:n], tokenize=False,
                                                                                        add_generation_prompt=gen)
