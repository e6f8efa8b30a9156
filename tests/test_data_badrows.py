"""Bad rows at scale: a 200k-row file with 1% broken lines stops at once naming the first bad
rows (the pre-flight scan and the build alike); with data.skip_bad_rows the build counts them,
with the rows only the tokenizer rejects, in the same single pass."""
import json
from pathlib import Path

import pytest

from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError
from rankwise.trainer.data_build import build_datasets
from rankwise.trainer.start import check_rows

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "presets" / "assets" / "tiny-llama"


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(TINY)


def write(path: Path, rows: int, long_prompt_every: int | None = None) -> Path:
    """`rows` prompt/completion lines; every 100th is broken JSON, and every `long_prompt_every`th
    has a prompt longer than max_seq_len 64 (only the tokenizer can tell its answer is cut away)."""
    with open(path, "w") as fh:
        for n in range(1, rows + 1):
            if n % 100 == 0:
                fh.write('{"prompt": "broken\n')
            elif long_prompt_every and n % long_prompt_every == 0:
                fh.write(json.dumps({"prompt": "p" * 80, "completion": "c"}) + "\n")
            else:
                fh.write(json.dumps({"prompt": f"Echo {n}: ", "completion": f"{n}"}) + "\n")
    return path


def cfg(path, **data):
    return RunConfig.model_validate({"data": {"path": str(path), **data}, "train": {"max_seq_len": 64}})


def test_200k_rows_with_1_percent_broken_stop_naming_the_first_bad_rows(tok, tmp_path):
    path = write(tmp_path / "big.jsonl", 200_000)
    with pytest.raises(RankwiseError) as e:  # the pre-flight scan, before a run dir exists
        check_rows("data.path", str(path), cfg(path))
    assert e.value.message.startswith(f"{path}:100: not valid JSON")
    assert f"(and 1999 more bad rows: {path}:200: not valid JSON" in e.value.message and f"{path}:300:" in e.value.message
    with pytest.raises(RankwiseError, match=r"big\.jsonl:100: not valid JSON"):  # the build stops at the first
        build_datasets(cfg(path), tok)


def test_skipping_counts_read_and_tokenizer_rejections_in_one_pass(tok, tmp_path):
    path = write(tmp_path / "d.jsonl", 20_000, long_prompt_every=150)
    train, _, report = build_datasets(cfg(path, skip_bad_rows=True), tok)
    broken, cut = 200, len([n for n in range(150, 20_001, 150) if n % 100])
    assert report.skipped_rows == broken + cut and report.train_rows == 20_000 - broken - cut == len(train)
    first = report.skipped_examples[:3]
    assert first[0].startswith(f"{path}:100: not valid JSON") and first[2].startswith(f"{path}:200: not valid JSON")
    assert first[1] == (f"{path}:150: the response is cut away entirely: the prompt alone is 80 tokens, over "
                        "train.max_seq_len 64 (raise max_seq_len or shorten the prompt)")
