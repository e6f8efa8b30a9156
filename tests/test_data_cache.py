"""The tokenized-data cache: a hit serves the same examples, any change to the file, the
tokenizer or a setting misses, a damaged entry is rebuilt, `rankwise cache` lists and clears,
and a resumed run reads the cache instead of tokenizing again (its train.log says so)."""
import json
import subprocess
from pathlib import Path

import pytest
from train_helpers import CLI, env, events, of_type, tail_log, train, wait_for

from rankwise.advisor.config import RunConfig
from rankwise.trainer import data_cache
from rankwise.trainer.data_build import build_arrow, build_datasets

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "presets" / "assets" / "tiny-llama"
ROWS = [{"messages": [{"role": "user", "content": f"What is {k}+{k}?"}, {"role": "assistant", "content": f"{2 * k}"}]}
        for k in range(40)]


@pytest.fixture
def tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(TINY)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKWISE_DATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def cfg(path, **data):
    train_ = data.pop("train", {"max_seq_len": 128})
    return RunConfig.model_validate({"data": {"path": str(path), "val_ratio": 0.1, **data}, "train": train_})


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class Builds:
    """data_build.build_arrow, counting how often the cache had to call it."""

    def __init__(self):
        self.calls = 0

    def __call__(self, cfg, tok, folder, progress):
        self.calls += 1
        return build_arrow(cfg, tok, folder, progress)


def test_hit_serves_the_same_examples_memory_mapped(tok, tmp_path, cache):
    c = cfg(write(tmp_path / "d.jsonl", ROWS))
    built = Builds()
    train, val, report, info = data_cache.prepare_data(c, tok, build=built)
    assert not info["hit"] and built.calls == 1 and Path(info["dir"]).parent == cache
    again, val2, report2, info2 = data_cache.prepare_data(c, tok, build=built)
    assert info2["hit"] and built.calls == 1 and report2.cache_hit and report2.cache_dir == info["dir"]
    fresh, fresh_val, fresh_report = build_datasets(c, tok)
    assert [again[i] for i in range(len(again))] == fresh and list(val2) == fresh_val
    assert report2.train_rows == fresh_report.train_rows == len(again) == 36 and report2.val_rows == 4


@pytest.mark.parametrize("change", ["content", "tokenizer", "chat template", "max_seq_len", "packing", "seed",
                                    "columns", "max_rows"])
def test_any_change_misses(tok, tmp_path, cache, change):
    path = write(tmp_path / "d.jsonl", ROWS)
    built = Builds()
    data_cache.prepare_data(cfg(path), tok, build=built)
    c = cfg(path)
    if change == "content":  # same size, same name: one answer changed
        write(path, ROWS[:-1] + [{"messages": [ROWS[-1]["messages"][0], {"role": "assistant", "content": "79"}]}])
    elif change == "tokenizer":
        tok.add_tokens(["<extra>"])
    elif change == "chat template":
        tok.chat_template = tok.chat_template.replace("<|", "<<|")
    elif change == "max_seq_len":
        c.train.max_seq_len = 64
    elif change == "packing":
        c.data.packing = True
    elif change == "seed":
        c.train.seed += 1
    elif change == "columns":
        c.data.columns = {"text": "unused"}
    elif change == "max_rows":
        c.data.max_rows = 20
    train, _, _, info = data_cache.prepare_data(c, tok, build=built)
    assert not info["hit"] and built.calls == 2
    assert [train[i] for i in range(len(train))] == build_datasets(c, tok)[0]


def test_progress_is_reported_while_building(tok, tmp_path, cache, monkeypatch):
    from rankwise.trainer import data_build
    monkeypatch.setattr(data_build, "PROGRESS_EVERY", 0.0)
    monkeypatch.setattr(data_build, "BATCH", 8)  # several batches from a small file
    seen = []
    data_cache.prepare_data(cfg(write(tmp_path / "d.jsonl", ROWS)), tok, progress=lambda *a: seen.append(a))
    rows = [r for r, _, _ in seen]
    assert rows == sorted(rows) and rows[-1] == 40 and len(seen) >= 5
    assert all(rate > 0 for _, _, rate in seen) and seen[-1][1] == 40
    assert any(total and 30 <= total <= 50 for _, total, _ in seen[:-1])  # estimated from the file's size


def _prepare_in_a_process(path, cache, out):
    import os
    os.environ["RANKWISE_DATA_CACHE"] = str(cache)
    from transformers import AutoTokenizer
    train, _, _, info = data_cache.prepare_data(cfg(path), AutoTokenizer.from_pretrained(TINY))
    out.put((info["hit"], len(train)))


def test_processes_of_one_run_build_once(tmp_path, cache):
    """Two processes asking at once (the ranks of a multi-process run, parallel sweep trials):
    one builds under the lock, the other waits and reads what it stored."""
    import multiprocessing as mp
    path = write(tmp_path / "d.jsonl", ROWS)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_prepare_in_a_process, args=(path, cache, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert results == [(False, 36), (True, 36)]
    assert len(data_cache.entries(cache)) == 1


def test_a_damaged_entry_is_built_again(tok, tmp_path, cache):
    c = cfg(write(tmp_path / "d.jsonl", ROWS))
    _, _, _, info = data_cache.prepare_data(c, tok)
    (Path(info["dir"]) / "train.arrow").write_bytes(b"not arrow")
    train, _, _, info = data_cache.prepare_data(c, tok)
    assert not info["hit"] and len(train) == 36


def test_cache_command_lists_and_clears(tok, tmp_path, cache):
    c = cfg(write(tmp_path / "d.jsonl", ROWS))
    _, _, _, info = data_cache.prepare_data(c, tok)
    e = env(RANKWISE_DATA_CACHE=str(cache))
    out = subprocess.run(CLI + ["cache", "--json"], capture_output=True, text=True, env=e, timeout=60)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert listed["dir"] == str(cache) and [x["dir"] for x in listed["entries"]] == [info["dir"]]
    out = subprocess.run(CLI + ["cache", "--clear"], capture_output=True, text=True, env=e, timeout=60)
    assert out.returncode == 0 and "removed 1" in out.stdout and not Path(info["dir"]).exists()


@pytest.mark.slow
def test_resume_reads_the_tokenized_data_from_the_cache(tmp_path):
    """A run stopped after a checkpoint and resumed: the data phase of the resumed session reads
    the cache (train.log says so) instead of building again."""
    import os
    import signal

    runs = tmp_path / "runs"
    # the run holds after step 3 (a checkpoint at 2 behind it) until the signal: it cannot end first
    e = {"RANKWISE_DATA_CACHE": str(tmp_path / "cache"), "RANKWISE_TEST_HOLD_IN": "training:3"}
    proc = train(runs, "--detach", "--set", "train.max_steps=8", "--set", "train.save_steps=2", extra_env=e)
    run = runs / proc.stdout.strip().splitlines()[-1]
    evs = wait_for(run, lambda evs: "test seam: holding" in tail_log(run))
    assert [c["step"] for c in of_type(evs, "checkpoint")] == [2]
    os.kill(of_type(evs, "start")[0]["pid"], signal.SIGTERM)
    evs = wait_for(run, lambda evs: of_type(evs, "end"))
    assert "data: built and stored in the cache" in (run / "train.log").read_text()
    assert of_type(evs, "end")[0]["status"] == "interrupted"
    e.pop("RANKWISE_TEST_HOLD_IN")
    again = train(runs, "--resume", run.name, preset=None, quick=False, extra_env=e)
    assert again.returncode == 0, again.stderr
    log = (run / "train.log").read_text()
    assert log.count("data: built and stored") == 1 and log.count("data: read from the cache") == 1
    ready = [ev for ev in of_type(events(run), "data") if ev["phase"] == "ready"]
    assert [ev["cached"] for ev in ready] == [False, True] and ready[1]["cache_dir"] == ready[0]["cache_dir"]
    assert "data ready: 58 training rows (from the cache)" in again.stdout  # the console says it too


def test_the_default_cache_lives_in_the_runs_dir_and_is_not_a_run(tmp_path, monkeypatch):
    """rankwise writes only where the user said runs go: without $RANKWISE_DATA_CACHE the cache is
    `<runs dir>/.data-cache`, and `rankwise runs` does not take it for a run."""
    from rankwise.trainer.data_cache import CACHE_DIR, cache_root
    from rankwise.trainer.runs import list_runs

    monkeypatch.delenv("RANKWISE_DATA_CACHE", raising=False)
    runs = tmp_path / "my-runs"
    assert cache_root(runs) == runs / CACHE_DIR
    assert cache_root() == Path("runs") / CACHE_DIR
    (runs / CACHE_DIR / "somekey").mkdir(parents=True)
    (runs / CACHE_DIR / "somekey" / "meta.json").write_text("{}")
    assert list_runs(runs) == []
