"""The parallel build: worker processes parse, check, render and tokenize JSONL lines, and the
parent takes every row's outcome back in file order, so bad rows, data.max_rows and the examples
are what one process reading the file row by row gives; masking from the tokens at span edges
equals masking from every token's offsets."""
import json
import random
from pathlib import Path

import pytest

from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError
from rankwise.trainer import data_build
from rankwise.trainer.data_build import build_datasets
from rankwise.trainer.data_encoder import _batch_encoder, _labels_from_offsets

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "presets" / "assets" / "tiny-llama"


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(TINY)


@pytest.fixture(scope="module")
def metaspace_tok():
    """A Llama-2/Mistral-style vocabulary: tokens carry their leading space ("▁Paris")."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer, raw.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    raw.train_from_iterator(["Q: What is the capital?\nA: Paris", "The capital is Paris, the city."] * 20,
                            trainers.BpeTrainer(vocab_size=150, special_tokens=["<unk>", "<s>", "</s>"]))
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture
def two_procs(monkeypatch):
    """Several small batches over two worker processes (the pool starts past INLINE_BATCHES)."""
    monkeypatch.setenv("RANKWISE_DATA_PROCS", "2")
    monkeypatch.setattr(data_build, "BATCH", 16)


def cfg(path, **data):
    train = data.pop("train", {"max_seq_len": 64})
    return RunConfig.model_validate({"data": {"path": str(path), **data}, "train": train})


@pytest.mark.parametrize("which", ["tok", "metaspace_tok"])
def test_masking_from_span_edges_equals_masking_from_every_offset(which, request):
    t = request.getfixturevalue(which)
    rng = random.Random(0)
    words = "the capital is Paris city What Q: A: \n  é 日本 </s> <s>".split(" ")
    texts = ["".join(rng.choice(words) + rng.choice(["", " ", "  ", "\n"]) for _ in range(rng.randint(0, 40)))
             for _ in range(300)]
    edges = _batch_encoder(t)(texts)
    full = t(texts, add_special_tokens=False, return_offsets_mapping=True)
    for text, (ids, offsets), expect in zip(texts, edges, full["offset_mapping"]):
        for _ in range(5):
            cuts = sorted(rng.randint(0, len(text)) for _ in range(2 * rng.randint(1, 3)))
            spans = list(zip(cuts[::2], cuts[1::2])) + [(len(text), len(text))] * rng.randint(0, 1)
            assert _labels_from_offsets(ids, offsets, spans) == _labels_from_offsets(ids, list(expect), spans), (text, spans)


def mixed(path: Path, rows: int) -> Path:
    """prompt/completion lines with, in turn, broken JSON, a prompt too long for max_seq_len 64
    (only the tokenizer can tell), a blank line and a row of the wrong format."""
    with open(path, "w") as fh:
        for n in range(1, rows + 1):
            if n % 41 == 0:
                fh.write('{"prompt": "broken\n')
            elif n % 29 == 0:
                fh.write(json.dumps({"prompt": "p" * 80, "completion": "c"}) + "\n")
            elif n % 37 == 0:
                fh.write("\n")
            elif n % 53 == 0:
                fh.write(json.dumps({"text": "stray"}) + "\n")
            else:
                fh.write(json.dumps({"prompt": f"Echo {n}: ", "completion": f"{n}"}) + "\n")
    return path


def test_the_first_bad_row_in_file_order_stops_the_build_whichever_check_finds_it(tok, tmp_path, two_procs):
    path = mixed(tmp_path / "d.jsonl", 400)  # line 29: the tokenizer's; line 41: the reader's
    with pytest.raises(RankwiseError) as e:
        build_datasets(cfg(path), tok)
    assert e.value.message.startswith(f"{path}:29: the response is cut away entirely")
    _, _, report = build_datasets(cfg(path, skip_bad_rows=True), tok)
    assert [x.split(": ")[0] for x in report.skipped_examples] == [f"{path}:{n}" for n in (29, 41, 53, 58, 82)]


@pytest.mark.parametrize("data", [{"skip_bad_rows": True}, {"skip_bad_rows": True, "max_rows": 100},
                                  {"skip_bad_rows": True, "max_rows": 28}, {"skip_bad_rows": True, "val_ratio": 0.1}])
def test_workers_build_what_one_process_builds(tok, tmp_path, monkeypatch, data):
    """A folder of JSONL shards (one gzipped) with bad rows of every kind: the same examples,
    counts and examples of bad rows from two worker processes as from the calling process alone."""
    import gzip
    folder = tmp_path / "shards"
    folder.mkdir()
    mixed(folder / "train-0.jsonl", 150)
    with gzip.open(folder / "train-1.jsonl.gz", "wb") as fh:
        fh.write(mixed(tmp_path / "b.jsonl", 120).read_bytes())
    monkeypatch.setenv("RANKWISE_DATA_PROCS", "1")
    alone = build_datasets(cfg(folder, **data), tok)
    monkeypatch.setenv("RANKWISE_DATA_PROCS", "2")
    monkeypatch.setattr(data_build, "BATCH", 16)
    parallel = build_datasets(cfg(folder, **data), tok)
    assert parallel == alone
    if "max_rows" in data:  # rows good to the reader count toward it, the prompts the tokenizer rejects too
        good = [n for n in range(1, 151) if n % 41 and n % 37 and n % 53][:data["max_rows"]]
        assert alone[2].train_rows == len([n for n in good if n % 29])



@pytest.mark.timeout(180)  # without the fix a worker killed mid-batch leaves the build waiting for its result
def test_a_ctrl_c_to_the_process_group_does_not_reach_the_workers(tok, tmp_path, two_procs, monkeypatch):
    """A terminal's Ctrl-C goes to every process of its group: the build's worker processes ignore it
    (the parent alone stops, and its pool finishes the batches queued). Interrupted, a worker died with
    its batch unfinished, or handed the interrupt back as a library's exception (CI: exit 1 for a Ctrl-C
    in data preparation). Here only the workers are signalled, at the first progress report: the build
    ends whole, and each signalled worker ended normally (exit 0, not a KeyboardInterrupt's 1)."""
    import multiprocessing
    import os
    import signal

    monkeypatch.setattr(data_build, "PROGRESS_EVERY", 0.0)
    path = mixed(tmp_path / "d.jsonl", 400)
    signalled = []

    def progress(rows, total, rate):
        if not signalled:
            signalled.extend(multiprocessing.active_children())
            for p in signalled:
                os.kill(p.pid, signal.SIGINT)

    with __import__("tempfile").TemporaryDirectory() as folder:
        report = data_build.build_arrow(cfg(path, skip_bad_rows=True), tok, Path(folder), progress)
    assert len(signalled) == 2 and [p.exitcode for p in signalled] == [0, 0]
    assert report.train_rows == len(build_datasets(cfg(path, skip_bad_rows=True), tok)[0])


@pytest.mark.timeout(180)
def test_a_ctrl_c_before_a_worker_is_ready_is_discarded(tok, tmp_path, two_procs, monkeypatch, capfd):
    """The pool is made with Ctrl-C blocked, so a signal that reaches a worker before its initializer has set
    it to be ignored (CI: a busy machine signalled one there, and it died with a traceback) waits, and is
    discarded as the initializer ignores it. Here the first worker signals itself just before the initializer."""
    import os
    import signal

    real, marker = data_build._deaf, tmp_path / "signalled"

    def signalled_first():
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGINT)  # what lands between the fork and the initializer
        real()

    monkeypatch.setattr(data_build, "_deaf", signalled_first)
    path = mixed(tmp_path / "d.jsonl", 400)
    with __import__("tempfile").TemporaryDirectory() as folder:
        report = data_build.build_arrow(cfg(path, skip_bad_rows=True), tok, Path(folder))
    assert marker.exists() and "Traceback" not in capfd.readouterr().err
    assert report.train_rows == len(build_datasets(cfg(path, skip_bad_rows=True), tok)[0])
