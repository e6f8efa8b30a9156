"""The data pipeline: readers, format detection, prompt masking, bad rows, packing, collator.

Real tokenizer (the shipped tiny byte-level Llama), real files written to tmp_path.
"""
import csv
import json
from pathlib import Path

import pytest

from rankwise.advisor.config import RunConfig
from rankwise.advisor.dataset import BadRow, detect_format, scan
from rankwise.advisor.readers import iter_rows
from rankwise.advisor.errors import RankwiseError
from rankwise.trainer.data import IGNORE, _render, make_collator
from rankwise.trainer.data_arrow import pack
from rankwise.trainer.data_build import build_datasets
from rankwise.trainer.data_encoder import _encode_pieces

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "presets" / "assets"
ROWS = [{"instruction": "Say hi", "input": "", "output": "hi"},
        {"instruction": "Add", "input": "1 2", "output": "3"},
        {"instruction": "Echo", "input": "x", "output": "x x"}]


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(ASSETS / "tiny-llama")


@pytest.fixture
def plain_tok():
    """The same tokenizer without a chat template (a base model's)."""
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(ASSETS / "tiny-llama")
    t.chat_template = None
    return t


def cfg(path, **data):
    train = data.pop("train", {})
    return RunConfig.model_validate({"data": {"path": str(path), **data}, "train": train})


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def spans(tok, ex):
    """Decoded runs of consecutive trained-on label tokens."""
    runs, cur = [], []
    for lab in ex["labels"] + [IGNORE]:
        if lab == IGNORE:
            if cur:
                runs.append(tok.decode(cur))
            cur = []
        else:
            cur.append(lab)
    return runs


# --------------------------------------------------------------------------- readers

def write_hf_folder(folder, rows, stream=True):
    """The layout Dataset.save_to_disk writes: state.json, dataset_info.json, IPC-stream .arrow shards."""
    import pyarrow as pa
    folder.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    names = []
    for k, part in enumerate((table.slice(0, 2), table.slice(2))):
        name = f"data-{k:05d}-of-00002.arrow"
        with pa.OSFile(str(folder / name), "wb") as sink:
            writer = (pa.ipc.new_stream if stream else pa.ipc.new_file)(sink, table.schema)
            writer.write_table(part)
            writer.close()
        names.append({"filename": name})
    (folder / "state.json").write_text(json.dumps({"_data_files": names, "_fingerprint": "x", "_split": "train"}))
    (folder / "dataset_info.json").write_text(json.dumps({"features": {}}))
    return folder


def test_jsonl_rows_are_line_numbers(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], "", ROWS[1]])
    assert list(iter_rows(p)) == [(1, ROWS[0]), (3, ROWS[1])]


def test_json_list_and_data_key_and_jsonl_in_json(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    (tmp_path / "b.json").write_text(json.dumps({"data": ROWS}))
    write_jsonl(tmp_path / "c.json", ROWS)
    for name in ("a.json", "b.json", "c.json"):
        assert [r for _, r in iter_rows(tmp_path / name)] == ROWS, name
    assert [n for n, _ in iter_rows(tmp_path / "a.json")] == [1, 2, 3]


def test_csv_rows_count_like_a_spreadsheet(tmp_path):
    p = tmp_path / "d.csv"
    with open(p, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["instruction", "input", "output"])
        w.writeheader()
        w.writerows(ROWS)
    got = list(iter_rows(p))
    assert [n for n, _ in got] == [2, 3, 4]  # the header is spreadsheet row 1
    assert [r for _, r in got] == ROWS


def test_csv_cells_longer_than_the_csv_module_default(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text\n\"" + "word " * 40_000 + "\"\n")
    assert [len(r["text"]) for _, r in iter_rows(p)] == [200_000]


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    assert list(iter_rows(tmp_path / "d.parquet")) == list(enumerate(ROWS, start=1))


@pytest.mark.parametrize("stream", [True, False])
def test_saved_hf_dataset_folder(tmp_path, stream):
    folder = write_hf_folder(tmp_path / "ds", ROWS, stream=stream)
    assert list(iter_rows(folder)) == list(enumerate(ROWS, start=1))


def test_saved_hf_dataset_dict_uses_train_split(tmp_path):
    write_hf_folder(tmp_path / "dd" / "train", ROWS)
    (tmp_path / "dd" / "dataset_dict.json").write_text(json.dumps({"splits": ["train"]}))
    assert [r for _, r in iter_rows(tmp_path / "dd")] == ROWS


@pytest.mark.parametrize("make, expect", [
    (lambda p: p / "missing.jsonl", "data file not found"),
    (lambda p: (p / "d.txt").write_text("x") and p / "d.txt", "unsupported data file type"),
    (lambda p: (p / "d.json").write_text("{broken") and p / "d.json", "d.json:1: not valid JSON"),
    (lambda p: (p / "d.json").write_text('"just a string"') and p / "d.json", "expected a JSON list"),
    (lambda p: (p / "d.parquet").write_text("not parquet") and p / "d.parquet", "not a readable parquet file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "a folder without data files"),
])
def test_unreadable_files_name_the_file(tmp_path, make, expect):
    path = make(tmp_path)
    with pytest.raises(RankwiseError) as e:
        list(iter_rows(path))
    assert expect in e.value.message and path.name in e.value.message


def test_broken_json_line_raises_or_yields(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], '{"instruction": "x", ', "[1, 2]", ROWS[1]])
    with pytest.raises(RankwiseError, match=r"d\.jsonl:2: not valid JSON"):
        list(iter_rows(p))
    got = list(iter_rows(p, bad="yield"))
    assert [n for n, _ in got] == [1, 2, 3, 4]
    assert isinstance(got[1][1], BadRow) and "not valid JSON" in got[1][1].reason
    assert isinstance(got[2][1], BadRow) and "got a list" in got[2][1].reason


@pytest.mark.parametrize("row, fmt", [
    ({"messages": []}, "chat"),
    ({"instruction": "a", "input": "", "output": "b"}, "instruction"),
    ({"instruction": "a", "output": "b"}, "instruction"),
    ({"prompt": "a", "completion": "b"}, "prompt_completion"),
    ({"text": "a"}, "text"),
    ({"messages": [], "text": "a"}, "chat"),
    ({"prompt": "a"}, None),
    ({"question": "a", "answer": "b"}, None),
    ({}, None),
])
def test_detect_format(row, fmt):
    assert detect_format(row) == fmt


def test_scan_reports_shape_and_problems(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", ROWS + [{"instruction": "x"}, "not json"])
    s = scan(p)
    assert (s.rows, s.format, s.bad_rows) == (5, "instruction", 2)
    assert s.fields == ("instruction", "input", "output")
    assert (s.min_chars, s.max_chars) == (len("Add" "1 2" "3"), len("Echo" "x" "x x"))
    assert s.first_problems == [f"{p}:4: missing field 'output'", f"{p}:5: not valid JSON (Expecting value at column 1)"]
    assert scan(p, limit=2).rows == 2 and not scan(p, limit=2).complete


@pytest.mark.parametrize("rows, share", [
    (ROWS, (2 + 1 + 3) / sum(len(r["instruction"] + r["input"] + r["output"]) for r in ROWS)),  # the outputs
    ([{"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "ab"},
                    {"role": "assistant", "content": "cdef"}, {"role": "user", "content": "g"},
                    {"role": "assistant", "content": "hi"}]}], 6 / 12),  # every assistant turn
    ([{"prompt": "Q: 1+1?", "completion": " 2"}], 2 / 9),
    ([{"text": "all of it"}], 1.0),
])
def test_scan_counts_the_share_the_loss_reads(tmp_path, rows, share):
    """What the loss reads with the prompt masked (the advice's capacity check counts those tokens), as a share of
    the rows' characters: the tokenizer then counts the rows whole, as before."""
    p = write_jsonl(tmp_path / "d.jsonl", rows)
    assert scan(p).trained_share == round(share, 4)
    assert scan(p, tokenizer=_tiny_tokenizer()).trained_share == round(share, 4)


def _tiny_tokenizer():
    from rankwise.advisor.tokens import local_tokenizer
    return local_tokenizer(str(ASSETS / "tiny-llama"))


def test_rows_are_counted_without_parsing_where_that_is_cheap(tmp_path):
    import gzip

    from rankwise.advisor.readers import count_rows
    lines = "".join(json.dumps(r) + "\n" for r in ROWS)
    (tmp_path / "d.jsonl").write_text("\n" + lines + "\n" + lines + json.dumps(ROWS[0]))  # blank lines, no last newline
    assert count_rows(tmp_path / "d.jsonl") == 7 == sum(1 for _ in iter_rows(tmp_path / "d.jsonl"))
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist(ROWS * 5), tmp_path / "d.parquet")
    assert count_rows(tmp_path / "d.parquet") == 15
    assert count_rows(write_hf_folder(tmp_path / "saved", ROWS * 2)) == 6
    shards = tmp_path / "shards"
    shards.mkdir()
    for k in range(3):
        (shards / f"train-{k:05d}-of-00003.jsonl").write_text(lines)
    assert count_rows(shards) == 9
    (tmp_path / "d.csv").write_text("instruction,output\nsay,\"two\nlines\"\nx,y\n")  # a quoted cell spans lines
    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress((lines + "\n" + lines).encode()))
    (tmp_path / "d.json").write_text(json.dumps({"data": ROWS * 4}))
    assert (count_rows(tmp_path / "d.csv"), count_rows(tmp_path / "d.jsonl.gz"), count_rows(tmp_path / "d.json")) == (2, 6, 12)
    assert count_rows(tmp_path / "missing.jsonl") is None


def test_the_row_count_bench_runs():
    import subprocess
    import sys
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "row_count.py"), "--rows", "3000", "--gz"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "count_rows:" in done.stdout and "(3,000 rows)" in done.stdout


def test_big_compressed_or_csv_files_are_not_read_to_count_them(tmp_path, monkeypatch):
    from rankwise.advisor import dataset, readers
    small, p = tmp_path / "small.csv", tmp_path / "d.csv"
    small.write_text("instruction,output\n" + "a,b\n" * 10)
    p.write_text("instruction,output\n" + "a,b\n" * 100)
    monkeypatch.setattr(readers, "COUNT_READ_BYTES", 100)
    assert readers.count_rows(small) == 10 and readers.count_rows(p) is None
    quick = scan(p, limit=10)
    assert quick.total_rows is None and quick.usable_rows() == 10
    assert dataset.scan_note(quick, "m").startswith(f"{p}: the first 10 rows scanned, the file holds more")


def test_a_scan_that_stops_early_plans_the_whole_file(tmp_path):
    """The quick scan reads the first rows for lengths; the rows of the whole file are counted, so the plan's steps and
    the advice's row count are the file's, not a lower bound."""
    from rankwise.advisor.dataset import advice_inputs, scan_note
    from rankwise.advisor.model import load_model
    from rankwise.advisor.time import DataShape
    p = write_jsonl(tmp_path / "d.jsonl", (ROWS + [{"instruction": "x"}]) * 50)  # 200 rows, 50 bad
    quick, whole = scan(p, limit=20), scan(p)
    assert (quick.rows, quick.total_rows, quick.complete) == (20, 200, False) and whole.total_rows is None
    assert quick.usable_rows() == whole.usable_rows() == 150
    assert scan(p, limit=20, count_all=False).total_rows is None  # a length profile only (calibration)
    assert advice_inputs(quick)["dataset_rows"] == advice_inputs(whole)["dataset_rows"] == 200
    assert "200 rows, the first 20 scanned" in scan_note(quick, "m")
    c = cfg(p, val_ratio=0.1)
    assert DataShape.from_scan(quick, c, load_model("llama-3.2-1b")).rows == 150 - 15


def test_scan_before_the_format_is_known(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", ["{oops", {"x": 1}] + [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}])
    s = scan(p)
    assert (s.rows, s.format, s.bad_rows) == (3, "chat", 2)
    assert s.first_problems[0].startswith(f"{p}:1: not valid JSON") and "['x']" in s.first_problems[1]


# --------------------------------------------------------------------------- masking

def test_chat_masks_everything_but_the_answer(tok):
    train, val, rep = build_datasets(cfg(ASSETS / "demo-chat.jsonl"), tok)
    first = json.loads((ASSETS / "demo-chat.jsonl").read_text().splitlines()[0])
    assert rep.format == "chat" and rep.train_rows == 64 and val is None
    assert spans(tok, train[0]) == [first["messages"][1]["content"] + "</s>"]
    assert tok.decode(train[0]["input_ids"]) == tok.apply_chat_template(first["messages"], tokenize=False)


def test_multi_turn_chat_trains_on_every_assistant_turn(tok, tmp_path):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"}]
    train, _, _ = build_datasets(cfg(write_jsonl(tmp_path / "d.jsonl", [{"messages": msgs}])), tok)
    assert spans(tok, train[0]) == ["Hello.</s>", "4</s>"]
    assert train[0]["input_ids"][0] == tok.bos_token_id


def test_template_that_rewrites_earlier_turns_falls_back_to_finding_the_answer(tmp_path):
    """Like Qwen3 dropping earlier reasoning: the prefix render differs, so each answer is found
    in the text, after the question (which here quotes the answer)."""
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(ASSETS / "tiny-llama")
    t.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] if loop.last or m['role'] != "
                       "'assistant' else m['content'] + ' (earlier)' }}</s>\n{% endfor %}"
                       "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    msgs = [{"role": "user", "content": "Say ok"}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "Again: ok"}, {"role": "assistant", "content": "ok"}]
    train, _, _ = build_datasets(cfg(write_jsonl(tmp_path / "d.jsonl", [{"messages": msgs}])), t)
    assert spans(t, train[0]) == ["ok", "ok</s>"]
    assert t.decode(train[0]["input_ids"]).startswith("<|user|>\nSay ok</s>\n<|assistant|>\nok (earlier)</s>")


def test_instruction_through_the_chat_template(tok, tmp_path):
    train, _, rep = build_datasets(cfg(write_jsonl(tmp_path / "d.jsonl", ROWS)), tok)
    assert rep.format == "instruction"
    assert [spans(tok, ex) for ex in train] == [["hi</s>"], ["3</s>"], ["x x</s>"]]
    assert tok.decode(train[1]["input_ids"]).startswith("<s><|user|>\nAdd\n\n1 2</s>")


def test_instruction_without_a_chat_template_uses_alpaca(plain_tok, tmp_path):
    train, _, _ = build_datasets(cfg(write_jsonl(tmp_path / "d.jsonl", ROWS)), plain_tok)
    assert [spans(plain_tok, ex) for ex in train] == [["hi</s>"], ["3</s>"], ["x x</s>"]]
    assert plain_tok.decode(train[1]["input_ids"]) == "### Instruction:\nAdd\n\n### Input:\n1 2\n\n### Response:\n3</s>"


def test_prompt_completion_and_text(tok, tmp_path):
    p = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "Q: 1+1?\nA:", "completion": " 2"}])
    train, _, rep = build_datasets(cfg(p), tok)
    assert rep.format == "prompt_completion" and spans(tok, train[0]) == [" 2</s>"]
    assert tok.decode(train[0]["input_ids"]) == "Q: 1+1?\nA: 2</s>"
    train, _, rep = build_datasets(cfg(write_jsonl(tmp_path / "t.jsonl", [{"text": "free text"}])), tok)
    assert rep.format == "text" and train[0]["labels"] == train[0]["input_ids"]
    assert tok.decode(train[0]["input_ids"]) == "free text</s>"


def test_masking_with_a_sentencepiece_style_vocabulary(tmp_path):
    """Llama-2/Mistral-style tokens carry their leading space ("▁Paris"): the response token
    that starts with the space is trained on, the prompt's tokens are not."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer, raw.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    raw.train_from_iterator(["Q: What is the capital?\nA: Paris", "The capital is Paris."] * 20,
                            trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<s>", "</s>"]))
    sp = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    p = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "Q: What is the capital?\nA:", "completion": " Paris"}])
    train, _, _ = build_datasets(cfg(p), sp)
    trained = [sp.convert_ids_to_tokens(lab) for lab in train[0]["labels"] if lab != IGNORE]
    assert trained == ["▁Paris", "</s>"]
    assert "▁Paris" not in sp.convert_ids_to_tokens(train[0]["input_ids"][:-2])


def test_declared_format_overrides_detection(tok, tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"text": "t", "prompt": "p", "completion": "c"}])
    _, _, rep = build_datasets(cfg(p, format="text"), tok)
    assert rep.format == "text"


def test_slow_path_pieces_match_offsets(tok):
    """Tokenizers without offsets tokenize pieces; on a byte-level vocab both must agree."""
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo."},
            {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Yo!"}]
    r = _render(tok, "chat", "x", {"messages": msgs}, True)
    enc = tok(r.text, add_special_tokens=False, return_offsets_mapping=True)
    from rankwise.trainer.data_encoder import _labels_from_offsets
    assert _encode_pieces(tok, r) == (enc["input_ids"], _labels_from_offsets(enc["input_ids"], enc["offset_mapping"], r.spans))


def test_rust_fast_path_matches_the_transformers_wrapper(tok):
    """tokenizer.json may enable padding/truncation; the fast path must not pad or cut,
    must give the wrapper's ids and offsets, and must leave the user's tokenizer alone."""
    from transformers import AutoTokenizer

    from rankwise.trainer.data_encoder import _batch_encoder
    texts = ["<s><|user|>\nhi</s>\n", "a much longer text with é and 日本", ""]
    enc = tok(texts, add_special_tokens=False, return_offsets_mapping=True)
    padded = AutoTokenizer.from_pretrained(ASSETS / "tiny-llama")
    padded.backend_tokenizer.enable_padding(length=64, pad_id=0, pad_token="<pad>")
    padded.backend_tokenizer.enable_truncation(max_length=4)
    got = _batch_encoder(padded)(texts)
    assert [list(i) for i, _ in got] == enc["input_ids"]
    assert [list(map(tuple, o)) for _, o in got] == [list(map(tuple, o)) for o in enc["offset_mapping"]]
    assert padded.backend_tokenizer.padding["length"] == 64 and padded.backend_tokenizer.truncation["max_length"] == 4


def test_chat_without_template_is_a_clear_error(plain_tok):
    with pytest.raises(RankwiseError, match="needs a tokenizer with a chat template"):
        build_datasets(cfg(ASSETS / "demo-chat.jsonl"), plain_tok)


# --------------------------------------------------------------------------- lengths, split, packing

def test_truncation_is_counted_and_a_cut_away_response_is_a_bad_row(tok, tmp_path):
    rows = [{"prompt": "p", "completion": "c" * 40}, {"prompt": "p" * 40, "completion": "c"}, {"prompt": "p", "completion": "c"}]
    p = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(RankwiseError, match=r"d\.jsonl:2: the response is cut away entirely"):
        build_datasets(cfg(p, train={"max_seq_len": 16}), tok)
    train, _, rep = build_datasets(cfg(p, skip_bad_rows=True, train={"max_seq_len": 16}), tok)
    assert (rep.train_rows, rep.truncated_rows, rep.skipped_rows) == (2, 1, 1)
    assert all(len(ex["input_ids"]) <= 16 for ex in train)
    assert spans(tok, train[0]) == ["c" * 15]  # cut: no EOS


def test_packing_places_whole_examples_best_fit_with_restarting_positions(tok):
    c = cfg(ASSETS / "demo-chat.jsonl", train={"max_seq_len": 128})
    plain, _, rep = build_datasets(c, tok)
    c.data.packing = True
    packed, _, prep = build_datasets(c, tok)
    assert prep.packed and prep.train_sequences == len(packed) < len(plain)
    assert all(len(ex["input_ids"]) <= 128 for ex in packed)
    pieces = []  # cut each sequence where its positions restart: the examples, whole
    for ex in packed:
        starts = [k for k, pos in enumerate(ex["position_ids"]) if pos == 0] + [len(ex["input_ids"])]
        assert ex["position_ids"] == [k - s for s, e in zip(starts, starts[1:]) for k in range(s, e)]
        pieces += [(tuple(ex["input_ids"][s:e]), tuple(ex["labels"][s:e])) for s, e in zip(starts, starts[1:])]
    assert sorted(pieces) == sorted((tuple(e["input_ids"]), tuple(e["labels"])) for e in plain)
    assert prep.supervised_tokens == rep.supervised_tokens and prep.train_tokens == rep.train_tokens
    assert prep.packing_efficiency == round(rep.train_tokens / (len(packed) * 128), 4) and prep.packing_efficiency > 0.8


def test_best_fit_fills_the_fullest_sequence_that_still_has_room():
    from rankwise.trainer.data_arrow import best_fit
    assert best_fit([5, 3, 4, 2, 1], 6) == [[0, 4], [2, 3], [1]]  # 5+1, 4+2, 3 (not 5, 4, 3+2+1)
    assert sorted(map(sorted, best_fit([6, 6, 2, 9], 9))) == [[0], [1, 2], [3]]
    exs = [{"input_ids": [1, 2, 3], "labels": [IGNORE, 2, 3]}, {"input_ids": [4, 5], "labels": [IGNORE, 5]}]
    assert pack(exs, 5) == [{"input_ids": [1, 2, 3, 4, 5], "labels": [IGNORE, 2, 3, IGNORE, 5],
                             "position_ids": [0, 1, 2, 0, 1]}]


def test_packed_examples_do_not_attend_to_each_other(tok):
    """The tiny model's logits for an example packed behind another equal its logits alone:
    restarting position_ids (no attention mask) keep the packed examples apart."""
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(ASSETS / "tiny-llama").eval()
    a = {"input_ids": tok("The capital of France", add_special_tokens=False)["input_ids"]}
    b = {"input_ids": tok("is Paris", add_special_tokens=False)["input_ids"]}
    for ex in (a, b):
        ex["labels"] = list(ex["input_ids"])
    collate = make_collator(tok)
    packed = pack([a, b], 64)[0]
    batch = collate([packed])
    assert "attention_mask" not in batch
    with torch.no_grad():
        together = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
        alone = model(**{k: v for k, v in collate([b]).items() if k != "labels"}).logits[0]
    at = next(k for k in range(1, len(packed["input_ids"])) if packed["input_ids"][k:k + len(b["input_ids"])]
              == b["input_ids"] and packed["position_ids"][k] == 0)  # where b starts in the packed sequence
    assert torch.allclose(together[at:at + len(b["input_ids"])], alone, atol=1e-5)


def test_val_ratio_split_is_deterministic_by_seed(tok):
    c = cfg(ASSETS / "demo-instruct.jsonl", val_ratio=0.25)
    t1, v1, rep = build_datasets(c, tok)
    t2, v2, _ = build_datasets(c, tok)
    assert (rep.train_rows, rep.val_rows) == (48, 16) and v1 == v2 and t1 == t2
    c.train.seed = 7
    _, v3, _ = build_datasets(c, tok)
    assert v3 != v1 and len(v3) == 16


def test_val_path_and_max_rows(tok, tmp_path):
    val = write_jsonl(tmp_path / "val.jsonl", ROWS)
    train, v, rep = build_datasets(cfg(ASSETS / "demo-instruct.jsonl", val_path=str(val), max_rows=10), tok)
    assert (rep.train_rows, rep.val_rows, len(v)) == (10, 3, 3)
    assert spans(tok, v[2]) == ["x x</s>"]


# --------------------------------------------------------------------------- bad rows

BAD = [
    ({"instruction": "a", "input": ""}, "missing field 'output'"),
    ({"instruction": "a", "output": 3}, "field 'output' should be a string, got a number"),
    ({"instruction": "a", "output": "  "}, "empty 'output'"),
    ('{"instruction": "a", "output": ', "not valid JSON"),
    ([1, 2], "expected a JSON object per line, got a list"),
]


@pytest.mark.parametrize("row, reason", BAD)
def test_bad_row_names_file_row_and_fix(tok, tmp_path, row, reason):
    p = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], ROWS[1], row if isinstance(row, (dict, str)) else json.dumps(row)])
    with pytest.raises(RankwiseError) as e:
        build_datasets(cfg(p), tok)
    assert e.value.message.startswith(f"{p}:3: ") and reason in e.value.message
    assert "data.skip_bad_rows: true" in e.value.hint


@pytest.mark.parametrize("msgs, reason", [
    ([{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}], "message 2 has unknown role 'bot'"),
    ([{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}], "message 1 content should be a string"),
    ([{"role": "user", "content": ["q"]}, {"role": "assistant", "content": "a"}], "message 1 content part 1 should be an object"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}], "empty assistant response"),
    ([{"role": "user", "content": "q"}], "no assistant message"),
    ("hello", "'messages' should be a non-empty list"),
])
def test_bad_chat_rows(tok, tmp_path, msgs, reason):
    p = write_jsonl(tmp_path / "d.jsonl", [{"messages": msgs}])
    with pytest.raises(RankwiseError, match=reason):
        build_datasets(cfg(p), tok)


def test_skip_bad_rows_counts_them(tok, tmp_path):
    rows = [ROWS[0]] + [r if isinstance(r, (dict, str)) else json.dumps(r) for r, _ in BAD] + [ROWS[1]]
    p = write_jsonl(tmp_path / "d.jsonl", rows)
    train, _, rep = build_datasets(cfg(p, skip_bad_rows=True), tok)
    assert (rep.train_rows, rep.skipped_rows) == (2, len(BAD))
    assert [s.split(": ", 1)[0] for s in rep.skipped_examples] == [f"{p}:{n}" for n in range(2, 7)]
    assert rep.to_dict()["skipped_rows"] == len(BAD)


def test_csv_ragged_row(tok, tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("instruction,input,output\nSay hi,,hi\nAdd,1,2,3\nEcho,x,x x\n")
    with pytest.raises(RankwiseError, match=r"d\.csv row 3: has 4 cells but the header has 3"):
        build_datasets(cfg(p), tok)
    _, _, rep = build_datasets(cfg(p, skip_bad_rows=True), tok)
    assert (rep.train_rows, rep.skipped_rows) == (2, 1)


def test_nothing_left_after_skipping_is_an_error(tok, tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a"}, {"instruction": "b", "output": ""}])
    with pytest.raises(RankwiseError, match="no usable training rows"):
        build_datasets(cfg(p, skip_bad_rows=True), tok)
    p = write_jsonl(tmp_path / "broken.jsonl", ["{", "{"])
    with pytest.raises(RankwiseError, match=r"no usable rows \(2 bad rows skipped\)"):
        build_datasets(cfg(p, skip_bad_rows=True), tok)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(RankwiseError, match="the file has no rows"):
        build_datasets(cfg(tmp_path / "empty.jsonl"), tok)


def test_a_row_of_another_format_says_so(tok, tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], {"text": "stray"}])
    with pytest.raises(RankwiseError, match=r"d\.jsonl:2: missing field 'instruction' \(this row looks like text data, "
                                            r"the file's format is instruction\)"):
        build_datasets(cfg(p), tok)


def test_sharegpt_rows_are_read_and_checked_by_turn(tok, tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"conversations": [{"from": "human", "value": "q"}]}])
    with pytest.raises(RankwiseError, match=r"d.jsonl:1: no assistant message"):
        build_datasets(cfg(p), tok)
    p = write_jsonl(tmp_path / "d.jsonl", [{"conversations": [{"from": "human", "value": "q"}, {"from": "bot", "value": "a"}]}])
    with pytest.raises(RankwiseError, match=r"turn 2 has unknown speaker 'bot'"):
        build_datasets(cfg(p), tok)


def test_unknown_format_and_missing_path(tok, tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(RankwiseError, match=r"cannot tell the data format from the fields \['answer', 'question'\]"):
        build_datasets(cfg(p), tok)
    with pytest.raises(RankwiseError, match="data file not found"):
        build_datasets(cfg(tmp_path / "nope.jsonl"), tok)
    with pytest.raises(RankwiseError, match="data.path is not set"):
        build_datasets(RunConfig(), tok)


# --------------------------------------------------------------------------- collator

def test_collator_pads_to_the_longest(tok):
    import torch
    batch = [{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    out = make_collator(tok)(batch)
    pad = tok.pad_token_id
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, pad, pad]]
    assert out["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert all(t.dtype == torch.long for t in out.values())


def test_examples_feed_the_tiny_model(tok):
    """A forward pass on collated (and on packed) examples gives a finite loss over the
    response tokens only: the shapes and the mask are what a causal LM expects."""
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(ASSETS / "tiny-llama")
    c = cfg(ASSETS / "demo-chat.jsonl", max_rows=8, train={"max_seq_len": 64})
    for packing in (False, True):
        c.data.packing = packing
        train, _, _ = build_datasets(c, tok)
        batch = make_collator(tok)(train[:4])
        with torch.no_grad():
            loss = model(**batch).loss
        assert torch.isfinite(loss) and 0 < loss.item() < 10
