"""`rankwise check --data`: a dataset as training sees it, through the trainer's own data path."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "presets" / "assets" / "tiny-llama"
CHAT = ROOT / "presets" / "assets" / "demo-chat.jsonl"


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rankwise.tui.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120, env=None)


def write_rows(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_masks_exactly_as_training_does():
    """The trained-token count is the trainer's own (build_datasets on the same file and tokenizer)."""
    from transformers import AutoTokenizer

    from rankwise.advisor.config import RunConfig
    from rankwise.trainer.data_build import build_datasets
    from rankwise.trainer.datacheck import check_data

    tok = AutoTokenizer.from_pretrained(TINY)
    cfg = RunConfig.model_validate({"data": {"path": str(CHAT)}, "train": {"max_seq_len": 40}})
    _, _, report = build_datasets(cfg, tok)
    c = check_data(CHAT, str(TINY), max_seq_len=40)
    assert c.tokenizer == "model" and c.format == "chat" and c.rows == 64
    assert (c.trained_tokens, c.tokens, c.truncated_rows) == (report.supervised_tokens, report.train_tokens,
                                                               report.truncated_rows)
    assert 0 < c.truncated_into_response <= c.truncated_rows
    assert c.token_p50 <= c.token_p95 <= c.token_max


def test_all_responses_cut_away_is_an_error_naming_the_rows(tmp_path):
    """Prompts longer than max_seq_len: no response token survives, the check says which rows."""
    data = write_rows(tmp_path / "long-prompts.jsonl",
                      [{"prompt": "Tell me about the weather in some detail please. " * 3 + f"#{i}",
                        "completion": " Sunny."} for i in range(5)])
    out = cli("check", "--data", data, "--model", TINY, "--max-seq-len", "32", "--json")
    assert out.returncode == 3, out.stderr
    c = json.loads(out.stdout)
    assert c["trained_tokens"] == 0 and c["no_trained_rows"] == 5
    assert c["no_trained"] == [f"{data}:{n}" for n in range(1, 6)]
    assert [f["code"] for f in c["findings"] if f["severity"] == "error"] == ["no-trained-tokens"]
    out = cli("check", "--data", data, "--model", TINY, "--max-seq-len", "32")
    assert out.returncode == 3 and f"{data}:1" in out.stdout and "no-trained-tokens" in out.stdout


def test_some_rows_without_trained_tokens_and_truncated_responses(tmp_path):
    long = {"prompt": "x" * 60, "completion": " y"}
    short = {"prompt": "Q: 2+2?", "completion": " A: 4, as anyone who can count knows very well."}
    data = write_rows(tmp_path / "mixed.jsonl", [short, long, {"prompt": "Q: 3+3?", "completion": " 6" * 20}])
    out = cli("check", "--data", data, "--model", TINY, "--max-seq-len", "40", "--json")
    assert out.returncode == 0, out.stderr
    c = json.loads(out.stdout)
    found = {f["code"]: f for f in c["findings"]}
    assert c["no_trained"] == [f"{data}:2"]
    assert found["rows-without-trained-tokens"]["severity"] == "warning"
    assert c["truncated_into_response"] == 3  # rows 1 and 3 keep part of their answer, row 2 none
    assert found["truncated-responses"]["severity"] == "warning"
    assert found["truncated-responses"]["patch"] == {"train.max_seq_len": 64}


def test_bad_empty_and_duplicate_rows_are_named(tmp_path):
    row = {"instruction": "Say hi.", "output": "Hi."}
    data = write_rows(tmp_path / "rows.jsonl", [row, row, {"instruction": "Say bye.", "output": ""}, "{not json",
                                                {"instruction": "Count.", "output": "1 2 3"}])
    out = cli("check", "--data", data, "--model", TINY, "--json")
    assert out.returncode == 0, out.stderr
    c = json.loads(out.stdout)
    assert (c["rows"], c["usable_rows"], c["bad_rows"], c["empty_rows"], c["duplicate_rows"]) == (5, 3, 2, 1, 1)
    assert c["duplicates"] == [f"{data}:2 (same as {data}:1)"]
    assert any(b.startswith(f"{data}:3: empty 'output'") for b in c["bad"])
    assert any(b.startswith(f"{data}:4: not valid JSON") for b in c["bad"])
    found = {f["code"]: f for f in c["findings"]}
    assert found["duplicate-rows"]["severity"] == "warning"  # 1 of 3 usable rows
    assert found["bad-rows"]["patch"] == {"data.skip_bad_rows": True}


def test_preview_marks_trained_tokens_with_brackets_off_a_terminal():
    out = cli("check", "--data", CHAT, "--model", TINY)
    assert out.returncode == 0, out.stderr
    assert "[[The capital of Canada is Ottawa.</s>]]" in out.stdout
    assert "What is the capital of Canada?" in out.stdout.split("[[")[0] + out.stdout  # the prompt, unmarked
    assert "\x1b[" not in out.stdout


def test_preview_in_json():
    out = cli("check", "--data", CHAT, "--model", TINY, "--json")
    first = json.loads(out.stdout)["preview"][0]
    assert first["where"] == f"{CHAT}:1"
    assert first["marked"].endswith("[[The capital of Canada is Ottawa.</s>]]\n")
    assert [s["text"] for s in first["segments"] if s["trained"]] == ["The capital of Canada is Ottawa.</s>"]


@pytest.mark.parametrize("model", ["llama-3.1-8b", None])
def test_byte_stand_in_is_said(model):
    out = cli("check", "--data", CHAT, *(["--model", model] if model else []), "--json")
    assert out.returncode == 0, out.stderr
    c = json.loads(out.stdout)
    assert c["tokenizer"] == "byte stand-in" and "byte-level stand-in" in c["tokenizer_note"]
    assert "byte-tokenizer" in {f["code"] for f in c["findings"]}


def test_a_preset_gives_model_format_and_max_seq_len():
    out = cli("check", "demo-cpu", "--data", CHAT, "--json")
    assert out.returncode == 0, out.stderr
    c = json.loads(out.stdout)
    assert c["tokenizer"] == "model" and c["max_seq_len"] == 128 and Path(c["model"]).name == "tiny-llama"


@pytest.mark.parametrize("args,message", [
    (["--data", "missing.jsonl", "--model", str(TINY)], "data file not found"),
    (["--data", str(CHAT), "--model", "no-such-model-xyz"], "unknown model"),
    (["--data", str(CHAT), "--max-seq-len", "2"], "--max-seq-len 2 is too small"),
    ([], "check needs a config FILE, or --data"),
])
def test_bad_input_exits_2(args, message):
    out = cli("check", *args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_check_without_data_imports_no_torch():
    """`check` without --data stays on the advice path: no torch, no transformers. It reads the preset's own rows
    for the length its peak is judged at, in the model's tokens through the `tokenizers` library (9 ms to import),
    as `estimate --preset` does."""
    code = ("import sys, io, contextlib\nfrom rankwise.tui import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()): rc = cli.main(['check', 'demo-cpu', '--json'])\n"
            "print(rc, ','.join(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0"]


def test_a_byte_stand_in_judges_truncation_at_four_bytes_a_token(tmp_path):
    """Rows of ~3,500 characters: ~875 tokens as the plans count them, so max_seq_len 2048 cuts none of them; the
    stand-in's 3,500 bytes were judged against 2,048 and every response was reported cut. At max_seq_len 512
    (2,048 bytes) they are cut."""
    rows = tmp_path / "long.jsonl"
    rows.write_text("".join(json.dumps({"instruction": f"q{i}", "output": "answer " * 500}) + "\n" for i in range(20)))
    for seq, cut in ((2048, 0), (512, 20)):
        c = json.loads(cli("check", "--data", rows, "--model", "llama-3.1-8b", "--max-seq-len", seq, "--json").stdout)
        assert c["tokenizer"] == "byte stand-in" and c["token_max"] > seq
        assert c["truncated_rows"] == c["truncated_into_response"] == cut
        assert ("truncated-responses" in {f["code"] for f in c["findings"]}) == bool(cut)


def test_a_scan_stopped_at_its_limit_still_finds_a_jsonl_files_longest_row(tmp_path, monkeypatch):
    """The rest of a plain JSONL file is searched for its longest lines (longest.longest_lines, a line split across
    reads included); a compressed file is not, and says only the rows read."""
    import gzip

    from rankwise.advisor import dataset, longest
    from rankwise.advisor.lengths import scanned
    from rankwise.advisor.tokens import local_tokenizer
    from rankwise.tui.setup_view import scan_text

    rows = [{"messages": [{"role": "user", "content": "hi " * 3}, {"role": "assistant", "content": "ok"}]}] * 300
    rows[250] = {"messages": [{"role": "user", "content": "long " * 400}, {"role": "assistant", "content": "ok"}]}
    rows[280] = {"messages": [{"role": r, "content": "t"} for r in ["user", "assistant"] * 75]}  # turns, not text
    text = "\n".join(json.dumps(r) for r in rows)  # no newline after the last row
    plain = tmp_path / "chat.jsonl"
    plain.write_text(text)
    monkeypatch.setattr(longest, "COUNT_CHUNK", 97)  # rows cross reads
    tok = local_tokenizer(str(Path(__file__).resolve().parent.parent / "presets" / "assets" / "tiny-llama"))
    for kwargs in ({}, {"tokenizer": tok}):
        whole, part = dataset.scan(plain, **kwargs), dataset.scan(plain, limit=100, **kwargs)
        assert not part.complete and part.rows == 100 and part.longest_of == 300
        assert (part.max_chars, part.max_tokens, part.max_with_turns, part.turns_of_longest) == \
               (whole.max_chars, whole.max_tokens, whole.max_with_turns, whole.turns_of_longest)
        assert part.median_chars == whole.median_chars  # the percentiles stay the rows read
        assert part.turns_of_longest == (2 if kwargs else 150)  # in characters the 150 turns' template tokens win
        assert scanned(part) == "; the longest of all 300 rows, the p95 of the first 100"
    assert str(scan_text(part)).startswith("300 rows (100 scanned)") and "of all rows" in str(scan_text(part))
    assert [n for n, _ in longest.longest_lines(plain, 100, k=2)] == [251, 281]
    assert longest.longest_lines(plain, 251, k=1)[0][0] == 281  # after `skip` lines only

    packed = tmp_path / "chat.jsonl.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    part = dataset.scan(packed, limit=100)
    assert part.longest_of is None and part.max_chars < 100
    assert scanned(part) == "; only the first 100 rows were scanned"


def test_a_folder_of_jsonl_shards_gives_its_longest_row_past_the_shard_the_scan_stopped_in(tmp_path):
    from rankwise.advisor import dataset

    folder = tmp_path / "shards"
    folder.mkdir()
    for i, longest in enumerate((None, 40, 75)):  # the scan stops in shard 1; shard 2 holds the longest row
        folder.joinpath(f"part-{i}.jsonl").write_text("".join(
            json.dumps({"text": "w " * (300 if j == longest else 2)}) + "\n" for j in range(100)))
    whole, part = dataset.scan(folder), dataset.scan(folder, limit=150)
    assert part.rows == 150 and part.longest_of == 300 and part.max_chars == whole.max_chars > 500
    assert dataset.scan(folder, limit=250).max_chars == whole.max_chars  # stopped in the last shard, before its row

    (folder / "part-1.jsonl").unlink()  # a compressed shard left unread: only the rows read, said as such
    import gzip
    (folder / "part-1.jsonl.gz").write_bytes(gzip.compress(b'{"text": "short"}\n'))
    part = dataset.scan(folder, limit=50)
    assert part.longest_of is None and part.max_chars < 500


def _chats(n: int, long_at: dict[int, int]) -> list[dict]:
    """`n` two-message conversations; row i (0-based) in `long_at` has that many words in its answer."""
    return [{"messages": [{"role": "user", "content": f"q{i}"},
                          {"role": "assistant", "content": "w " * long_at.get(i, 2)}], "id": i} for i in range(n)]


@pytest.mark.parametrize("kind", ["parquet", "saved dataset"])
def test_parquet_and_a_saved_datasets_longest_row_past_the_rows_scanned(tmp_path, kind):
    """Arrow data: each row's text bytes summed through the messages' list of structs, a batch at a time; the scan's
    limit falls inside a row group / record batch, and the longest row lies in a later one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rankwise.advisor import dataset, longest

    rows = _chats(700, {30: 50, 450: 900, 620: 300})  # the row in the rows read is shorter than the one past them
    table = pa.Table.from_pylist(rows)
    if kind == "parquet":
        path = tmp_path / "chat.parquet"
        pq.write_table(table, path, row_group_size=128)
    else:
        path = tmp_path / "saved"
        path.mkdir()
        names = []
        for k, part in enumerate((table.slice(0, 250), table.slice(250))):
            names.append({"filename": f"data-{k:05d}-of-00002.arrow"})
            with pa.OSFile(str(path / names[-1]["filename"]), "wb") as sink:
                with pa.ipc.new_stream(sink, table.schema) as writer:
                    for batch in part.to_batches(max_chunksize=100):
                        writer.write_batch(batch)
        (path / "state.json").write_text(json.dumps({"_data_files": names}))
    whole, part = dataset.scan(path), dataset.scan(path, limit=140)
    assert part.rows == 140 and part.longest_of == 700
    assert part.max_chars == whole.max_chars >= 1800 and part.max_with_turns == whole.max_with_turns
    found = longest.arrow_longest(table.to_batches(max_chunksize=64), skip=140, k=2)
    assert [n for _, n, _ in found] == [451, 621] and [r["id"] for *_, r in found] == [450, 620]
    assert found[0][0] == len("q450") + len("user") + len("assistant") + len("w " * 900)  # every string's bytes


def test_the_longest_rows_search_is_kept_per_file_version_bounded_and_handed_out_as_copies(tmp_path):
    from rankwise.advisor import longest

    f = tmp_path / "d.jsonl"
    f.write_text("".join(json.dumps({"text": "w " * (i + 1)}) + "\n" for i in range(30)))
    first = longest.longest_rows(f, 10)
    assert max(n for _, n, _ in first) == 30
    first[-1][2]["text"] = "prepared in place"
    assert longest.longest_rows(f, 10)[-1][2]["text"] == "w " * 30  # a copy, not the kept rows
    with open(f, "a") as fh:  # a new version of the file: searched again
        fh.write(json.dumps({"text": "w " * 99}) + "\n")
    assert max(n for _, n, _ in longest.longest_rows(f, 10)) == 31
    for skip in range(longest.LONGEST_KEPT + 3):
        longest.longest_rows(f, skip)
    assert len(longest._LONGEST) <= longest.LONGEST_KEPT
