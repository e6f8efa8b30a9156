"""`advise --dataset` / `estimate --dataset` count rows in the model's own tokens (issue 17) when its
tokenizer is on this machine — through the `tokenizers` library, so the advice path stays torch-free —
and say when they fall back to ~4 characters a token."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rankwise.advisor.dataset import scan, scan_for_model
from rankwise.advisor.model import load_model
from rankwise.advisor.rowformat import prepare_row, row_text
from rankwise.advisor.tokens import local_tokenizer

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "presets" / "assets" / "tiny-llama"
CHAT = ROOT / "presets" / "assets" / "demo-chat.jsonl"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "rankwise.tui.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def flat(text):
    return " ".join(text.split())


def long_rows(path: Path, n: int = 40, chars: int = 1500) -> Path:
    """Chat rows whose answers are `chars` characters of varied text."""
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex".split()
    with path.open("w") as f:
        for i in range(n):
            answer = " ".join(words[(i + k) % len(words)] for k in range(chars // 5))[:chars]
            f.write(json.dumps({"messages": [{"role": "user", "content": f"question {i}"},
                                             {"role": "assistant", "content": answer}]}) + "\n")
    return path


def test_scan_counts_what_the_models_tokenizer_counts():
    from transformers import AutoTokenizer  # the reference: transformers' own tokenizer of the same folder

    reference = AutoTokenizer.from_pretrained(TINY)
    texts = []
    for line in CHAT.read_text().splitlines():
        good, _ = prepare_row(json.loads(line), "chat")
        texts.append(row_text(good, "chat"))
    counts = sorted(len(reference(t, add_special_tokens=False)["input_ids"]) for t in texts)
    found = scan(CHAT, tokenizer=local_tokenizer(TINY), tokenizer_name="tiny")
    assert found.max_tokens == counts[-1]
    assert found.p95_tokens == counts[min(len(counts) - 1, int(0.95 * len(counts)))]
    assert found.tokens_by == "tiny"
    assert found.max_chars == max(len(t) for t in texts)  # characters unchanged by the tokenizer


def test_no_local_tokenizer_counts_characters_only(tmp_path):
    spec = load_model("llama-3.1-8b")  # a catalog entry: no weights, no tokenizer on this machine
    assert spec.path is None and local_tokenizer(spec.path) is None
    found = scan_for_model(CHAT, spec)
    assert found.p95_tokens is None and found.tokens_by is None and found.p95_chars > 0
    assert local_tokenizer(tmp_path) is None  # a folder without tokenizer.json


def test_advise_sizes_max_seq_len_from_real_tokens(tmp_path):
    data = long_rows(tmp_path / "long.jsonl", chars=400)
    out = cli("advise", "--model", TINY, "--task", "chat", "--dataset", data, "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    found = scan(data, tokenizer=local_tokenizer(TINY))
    # tiny-llama's byte-level vocabulary: ~1 token a character, so ~400 tokens a row need 512 (its
    # max positions); 4 characters a token would have said 256 and truncated every row
    assert 256 < found.p95_tokens + 12 <= 512
    assert d["config"]["train"]["max_seq_len"] == 512
    assert "counted by the model's tokenizer" in d["reasons"]["train.max_seq_len"]
    assert any("lengths counted by" in n for n in d["notes"])


def test_advise_says_when_it_falls_back_to_characters(tmp_path):
    out = cli("advise", "--model", "llama-3.1-8b", "--task", "chat", "--dataset", CHAT, "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert "chars/token" in d["reasons"]["train.max_seq_len"]
    assert any("~4 characters a token" in n and "not on this machine" in n for n in d["notes"])


def test_estimate_dataset_counts_tokens(tmp_path):
    data = long_rows(tmp_path / "long.jsonl", n=10, chars=600)
    out = cli("estimate", "--model", TINY, "--dataset", data, "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    found = scan(data, tokenizer=local_tokenizer(TINY))
    assert "tokens by" in flat(d["lengths"]["note"])
    assert d["lengths"]["seq_len"] == found.max_tokens + 12  # + the template allowance (advisor/time.py)


@pytest.mark.parametrize("command", ["advise", "estimate"])
def test_counting_tokens_imports_no_torch(command):
    args = ["advise", "--model", str(TINY), "--task", "chat", "--dataset", str(CHAT), "--json"] if command == "advise" \
        else ["estimate", "--model", str(TINY), "--dataset", str(CHAT), "--json"]
    code = ("import sys, io, contextlib\nfrom rankwise.tui import cli\n"
            f"with contextlib.redirect_stdout(io.StringIO()): rc = cli.main({args!r})\n"
            "print(rc, ','.join(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0"]


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_advice_screen_reads_the_dataset_as_advise_does(tmp_path):
    """Setup → Advice with a dataset gives the CLI's answer: the same rows and token counts reach
    the recommender (the screen scans the file with the model's tokenizer, as the CLI does: advice_data)."""
    from rankwise.advisor.hardware import resolve
    from rankwise.tui.app import build_app
    from rankwise.tui.screens.setup import Request

    data = long_rows(tmp_path / "long.jsonl", n=300, chars=400)
    out = cli("advise", "--model", TINY, "--task", "chat", "--dataset", data, "--gpu-mem", "24GiB", "--json")
    assert out.returncode == 0, out.stderr
    want = json.loads(out.stdout)
    hw = resolve("24GiB", None, None)
    app = build_app(hardware=hw, runs_dir=tmp_path / "runs", catalog={}, presets={})
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_advice(Request(model=str(TINY), task="chat", hardware=hw, dataset=str(data)))
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        screen = pilot.app.screen
        notes = " ".join(str(screen.query_one("#notes").render()).split())
    assert screen.cfg.lora.r == want["config"]["lora"]["r"]
    assert screen.cfg.train.max_seq_len == want["config"]["train"]["max_seq_len"] == 512
    assert screen.reasons["train.max_seq_len"] == want["reasons"]["train.max_seq_len"]
    assert screen.reasons["lora.r"] == want["reasons"]["lora.r"]
    assert flat(want["notes"][0]) in notes and "300 rows" in notes


def test_a_big_scan_tokenizes_a_sample_and_the_longest_rows(tmp_path, monkeypatch):
    """Tokenizing is most of a scan's time: past TOKEN_SAMPLE rows the median and p95 come from a seeded sample and
    the longest row from the rows longest in characters. Here 1,500 rows, a sample of 400 and the 10 longest (the
    module's sizes, 2,000 and 256, made small so the test is quick): the longest is exact, the percentiles within
    a few per cent of tokenizing every row, and a second scan gives the same figures."""
    import random
    import statistics

    from rankwise.advisor import dataset
    from rankwise.advisor.tokens import token_lengths

    monkeypatch.setattr(dataset, "TOKEN_SAMPLE", 400)
    monkeypatch.setattr(dataset, "TOKEN_LONGEST", 10)
    rng = random.Random(1)
    rows = tmp_path / "rows.jsonl"
    texts = [" ".join(rng.choice(["alpha", "be", "gamma", "delta", "e"]) for _ in range(rng.randint(20, 300)))
             for _ in range(1500)]
    rows.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    tok = local_tokenizer(TINY)
    found = scan(rows, tokenizer=tok)
    every = sorted(token_lengths(tok, texts))
    assert found.tokens_sampled == 400 and found.max_tokens == every[-1]
    assert found.median_tokens == pytest.approx(statistics.median(every), rel=0.1)
    assert found.p95_tokens == pytest.approx(every[int(0.95 * len(every))], rel=0.05)
    again = scan(rows, tokenizer=tok)
    assert (again.median_tokens, again.p95_tokens, again.max_tokens) == (found.median_tokens, found.p95_tokens,
                                                                         found.max_tokens)
    small = scan(CHAT, tokenizer=tok)  # no more rows than the sample: every row, exact
    assert small.tokens_sampled is None
