"""A preset whose data is on this machine is judged at that data's lengths on every surface.

The collator pads each batch to its longest row (trainer/data.py make_collator), so a run's peak is set by the
data's longest row, truncated at max_seq_len, not by max_seq_len itself. `estimate --preset`, `check`, `presets`,
the sweep's fit check, `train`'s gate and its plan line all judge the fit there (forecast.data_lengths), and all
the same way; without the data they judge at max_seq_len, as before.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from rankwise.advisor import fit, hardware
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.forecast import data_lengths
from rankwise.advisor.hardware import Gpu
from rankwise.advisor.loader import load_config
from rankwise.advisor.model import load_model
from rankwise.tui.commands.presets import describe

TINY = Path(__file__).resolve().parent.parent / "presets" / "assets" / "tiny-llama"


def _rows(path: Path, words: int, n: int = 40) -> Path:
    path.write_text("".join(json.dumps({"text": f"row {i} " + "word " * words}) + "\n" for i in range(n)))
    return path


def _preset(tmp_path: Path, model: str, data: str, **train) -> Path:
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump({"name": "mine", "model": {"name": model}, "task": "chat", "method": "lora",
                                 "data": {"path": data}, "lora": {"r": 16},
                                 "train": {"max_seq_len": 8192, "micro_batch": 8, **train}}))
    return p


def _json(cmd: list[str]) -> dict:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode in (0, 3), r.stderr  # check exits 3 on an error-level finding
    return json.loads(r.stdout)


def test_estimate_check_and_presets_judge_a_presets_data_at_its_longest_row(rankwise_cmd, tmp_path):
    """8B LoRA at 8 × 8,192 tokens does not fit 24 GiB; at the data's ~300-token rows it does. Every command says
    the same peak, and says why; with the data gone they all judge at max_seq_len again."""
    _rows(tmp_path / "train.jsonl", words=200)
    preset = _preset(tmp_path, "llama-3.1-8b", "train.jsonl")
    gpu = ["--gpu-mem", "24GiB"]
    est = _json(rankwise_cmd + ["estimate", "--preset", str(preset), "--json"] + gpu)
    chk = _json(rankwise_cmd + ["check", str(preset), "--json"] + gpu)
    row = describe("mine", preset, hardware.planned("24GiB"))  # a row of `rankwise presets` and the Presets screen

    seq = est["lengths"]["seq_len"]
    assert est["lengths"]["max_seq_len"] == 8192 and 200 < seq < 400 and est["plan"]["seq_len"] == seq
    assert "longest row" in est["lengths"]["note"] and "train.jsonl" in est["lengths"]["note"]
    assert est["fit"] == chk["fit"] == row["fit"] == "fits"
    assert chk["estimate"]["peak_bytes"] == est["peak_bytes"]
    assert round(est["peak_bytes"] / 2 ** 30, 3) == row["peak_gib"]
    assert chk["lengths"] == est["lengths"] == row["lengths"]
    assert not [f for f in chk["findings"] if f["code"] == "wont-fit"]
    assert any("longest row" in n for n in chk["notes"])

    (tmp_path / "train.jsonl").unlink()  # the data is not on this machine: max_seq_len, the old answer
    est = _json(rankwise_cmd + ["estimate", "--preset", str(preset), "--json"] + gpu)
    chk = _json(rankwise_cmd + ["check", str(preset), "--json"] + gpu)
    assert "lengths" not in est and chk["lengths"] is None and est["plan"]["seq_len"] == 8192
    assert est["fit"] == chk["fit"] == "wont-fit"
    assert {"wont-fit", "data-not-found"} <= {f["code"] for f in chk["findings"]}


def test_rows_longer_than_max_seq_len_are_judged_at_max_seq_len(tmp_path):
    spec = load_model("llama-3.1-8b")
    _rows(tmp_path / "long.jsonl", words=3000)
    cfg = load_config(_preset(tmp_path, "llama-3.1-8b", "long.jsonl", max_seq_len=1024))
    lengths = data_lengths(cfg, spec)
    assert lengths is not None and lengths.seq_len == 1024 and not lengths.shorter
    assert "truncated to max_seq_len 1,024" in lengths.note
    judged, plain = fit.assess(spec, cfg, None, lengths=lengths), fit.assess(spec, cfg, None)
    assert judged.peak_gib == plain.peak_gib and not judged.at_data


def test_shorter_sequences_are_suggested_below_the_datas_length(tmp_path):
    """Halving max_seq_len from 8,192 saves nothing on ~300-token rows: the suggestions halve the data's length."""
    spec = load_model("llama-3.1-8b")
    _rows(tmp_path / "train.jsonl", words=1200)
    cfg = load_config(_preset(tmp_path, "llama-3.1-8b", "train.jsonl"))
    lengths = data_lengths(cfg, spec)
    hw = hardware.planned("12GiB")
    seqs = [s["patch"]["train.max_seq_len"] for s in fit.suggest_fixes(spec, hw, cfg, "lora", lengths)
            if s["patch"] and list(s["patch"]) == ["train.max_seq_len"]]
    assert seqs == [lengths.seq_len // 2, lengths.seq_len // 4] and lengths.seq_len < 2048
    plain = [s["patch"]["train.max_seq_len"] for s in fit.suggest_fixes(spec, hw, cfg, "lora")
             if s["patch"] and list(s["patch"]) == ["train.max_seq_len"]]
    assert plain == [4096, 2048]


@pytest.mark.parametrize("words,refused", [(20, False), (600, True)])
def test_train_refuses_at_the_datas_longest_row(tmp_path, monkeypatch, words, refused):
    """`train`'s gate (trainer/start.check_inputs) on a GPU sized between the tiny model's peak at short rows and
    at max_seq_len: short rows start, rows that reach max_seq_len are refused. The GPU is the one fake (NVML's
    answer); the data, the model and the estimate are real."""
    from rankwise.trainer import start

    spec = load_model(str(TINY))
    cfg = load_config(_preset(tmp_path, str(TINY), str(_rows(tmp_path / "rows.jsonl", words)),
                              max_seq_len=512, micro_batch=64, grad_checkpointing=False))
    at_max = fit.assess(spec, cfg, hardware.planned("80GiB"), method="lora").estimate.peak_bytes
    gpu_bytes = int(at_max * 0.97)
    short = fit.assess(spec, cfg, None, method="lora", lengths=data_lengths(cfg, spec)).estimate.peak_bytes
    assert short <= fit.HEADROOM * gpu_bytes or refused  # the sizes the test relies on
    monkeypatch.setattr(hardware, "probe_gpus", lambda: ((Gpu(0, "NVIDIA Fake", gpu_bytes),), "560.0", "12.6", ()))
    if refused:
        with pytest.raises(RankwiseError, match="will not fit"):
            start.check_inputs(cfg)
    else:
        start.check_inputs(cfg)


def test_advise_estimates_at_the_datas_rows_as_check_judges_its_preset(rankwise_cmd, tmp_path):
    """`advise --dataset` sizes max_seq_len from the rows' p95 (a power of two, at least 256) and estimates at their
    longest row; the preset it writes gets the same peak from `check` and `estimate`."""
    data = _rows(tmp_path / "rows.jsonl", words=40, n=300)
    gpu = ["--gpu-mem", "24GiB"]
    preset = tmp_path / "advised.yaml"
    adv = _json(rankwise_cmd + ["advise", "--model", "llama-3.1-8b", "--task", "instruction", "--dataset", str(data),
                                "--write-preset", str(preset), "--json"] + gpu)
    seq, limit = adv["lengths"]["seq_len"], adv["config"]["train"]["max_seq_len"]
    assert seq == adv["estimate"]["plan"]["seq_len"] < limit == adv["lengths"]["max_seq_len"]
    assert adv["lengths"]["note"] in adv["notes"]
    chk = _json(rankwise_cmd + ["check", str(preset), "--json"] + gpu)
    est = _json(rankwise_cmd + ["estimate", "--preset", str(preset), "--json"] + gpu)
    assert adv["estimate"]["peak_bytes"] == chk["estimate"]["peak_bytes"] == est["peak_bytes"]
    assert adv["lengths"] == chk["lengths"] == est["lengths"]


def test_the_worker_judges_the_fit_again_at_the_tokenized_longest_sequence(tmp_path):
    """Before the start the rows' text and a template allowance (12 tokens, 5 more a message past two) are counted;
    the worker, once the data is tokenized (a chat template that writes a 40-character banner around each of 20
    two-letter messages: over 800 bytes, cut at 512, where 142 were planned), judges the fit again and stops a run
    that no longer fits, before the model loads. The declared GPU sits between the two peaks."""
    from transformers import AutoTokenizer

    from rankwise.advisor import redflags
    from rankwise.advisor.chat_templates import apply
    from rankwise.trainer.data_build import build_datasets
    from rankwise.trainer.events import EventSink
    from rankwise.trainer.worker import tokenized_fit

    rows = tmp_path / "chat.jsonl"
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": "ab"} for i in range(20)]
    rows.write_text("".join(json.dumps({"messages": turns}) + "\n" for _ in range(20)))
    banner = tmp_path / "banner.jinja"
    banner.write_text("{% for m in messages %}==================== {{ m['role'] }} ====================\n"
                      "{{ m['content'] }}{{ eos_token }}\n{% endfor %}")
    spec = load_model(str(TINY))
    cfg = load_config(_preset(tmp_path, str(TINY), str(rows), max_seq_len=512, micro_batch=64,
                              grad_checkpointing=False), [f"model.chat_template={banner}"])
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    apply(tokenizer, cfg.model.chat_template)  # as the worker does before the data
    _, _, report = build_datasets(cfg, tokenizer)
    planned = data_lengths(cfg, spec)
    assert planned.seq_len == 40 + 5 * 18 + 12 and report.longest == 512  # the template tokens the allowance missed

    def peak(n: int) -> int:
        return fit.assess(spec, cfg, None, method="lora", lengths=replace(planned, longest=n)).estimate.peak_bytes

    gpu = hardware.planned(f"{(peak(planned.seq_len) / fit.HEADROOM + peak(report.longest)) / 2 / 2**30:.4f}GiB")
    ctx = redflags.context(cfg, spec, gpu, lengths=planned)
    assert ctx.fit == "fits"
    sink = EventSink(tmp_path / "events.jsonl")
    with pytest.raises(RankwiseError, match="tokenized data's longest sequence"):
        tokenized_fit(spec, cfg, gpu, ctx, report, sink, force=False)
    forced = tokenized_fit(spec, cfg, gpu, ctx, report, sink, force=True)  # --force: on, at the exact length
    assert forced.plan.seq_len == report.longest and forced.peak_bytes == peak(report.longest)
    said = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert any("longest training sequence is" in e.get("message", "") for e in said)


def test_estimate_dataset_none_plans_every_row_at_max_seq_len(rankwise_cmd):
    """The preset's data sets the length by default, and the assumptions say how to plan for longer rows than it
    has (the text only: `lengths` in --json is the same on every command)."""
    base = rankwise_cmd + ["estimate", "--preset", "demo-cpu"]
    at_data, padded = _json(base + ["--json"]), _json(base + ["--json", "--dataset", "none"])
    assert at_data["plan"]["seq_len"] < padded["plan"]["seq_len"] == 128 and "lengths" not in padded
    assert at_data["peak_bytes"] < padded["peak_bytes"]
    said = subprocess.run(base, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "400"})
    assert said.returncode == 0 and "`--dataset none` estimates every row at max_seq_len" in said.stdout


def test_a_conversation_is_planned_with_its_turns(tmp_path):
    """A chat template's tokens grow with the messages (~5 each for Llama 3 and ChatML): the longest row is planned
    with 5 template tokens a message past the first two, counted by the model's tokenizer or at ~4 characters a
    token. 80 two-letter messages on the tiny model: 160 tokens of text, 562 planned (cut at 512), 481 tokenized
    by its real template; before, 172 were planned."""
    from transformers import AutoTokenizer

    from rankwise.trainer.data_build import build_datasets

    rows = tmp_path / "chat.jsonl"
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": "ab"} for i in range(80)]
    rows.write_text("".join(json.dumps({"messages": turns}) + "\n" for _ in range(20)))
    cfg = load_config(_preset(tmp_path, str(TINY), str(rows), max_seq_len=1024))
    planned = data_lengths(cfg, load_model(str(TINY)))
    _, _, report = build_datasets(cfg, AutoTokenizer.from_pretrained(TINY))
    assert planned.seq_len == 160 + 5 * 78 + 12 >= report.longest == 481
    assert "5 tokens a message past the first two, 80 messages" in planned.note
    long = tmp_path / "long.jsonl"  # a catalog model, no tokenizer here: characters / 4, the same allowance
    long.write_text(json.dumps({"messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": "x" * 400}
                                             for i in range(10)]}) + "\n")
    cfg = load_config(_preset(tmp_path, "llama-3.1-8b", str(long)))
    assert data_lengths(cfg, load_model("llama-3.1-8b")).seq_len == 4000 // 4 + 5 * 8 + 12


def _big(path: Path, rows: int, longest_at: int, words: int = 900) -> Path:
    """`rows` short rows, one long one at row `longest_at` (1-based), past what a scan reads (dataset.SCAN_ROWS)."""
    with open(path, "w") as fh:
        for i in range(1, rows + 1):
            fh.write(json.dumps({"text": f"row {i} " + "word " * (words if i == longest_at else 3)}) + "\n")
    return path


def test_a_big_jsonl_files_longest_row_counts_past_the_rows_scanned(rankwise_cmd, tmp_path):
    """A scan reads the first SCAN_ROWS rows; the longest row of a plain JSONL file is still the whole file's, so a
    row the scan did not read cannot make the run longer than every command planned. `estimate --preset`,
    `estimate --dataset` on the same file and `check` give one peak, at that row."""
    from rankwise.advisor.dataset import SCAN_ROWS

    _big(tmp_path / "train.jsonl", SCAN_ROWS + 500, longest_at=SCAN_ROWS + 321)
    preset = _preset(tmp_path, "llama-3.1-8b", "train.jsonl", max_seq_len=2048, micro_batch=2)
    gpu = ["--gpu-mem", "24GiB"]
    est = _json(rankwise_cmd + ["estimate", "--preset", str(preset), "--json"] + gpu)
    named = _json(rankwise_cmd + ["estimate", "--preset", str(preset), "--dataset", str(tmp_path / "train.jsonl"),
                                  "--json"] + gpu)
    chk = _json(rankwise_cmd + ["check", str(preset), "--json"] + gpu)
    seq = est["lengths"]["seq_len"]
    assert seq > 900 * 5 / 4  # the long row's ~4,500 characters at ~4 a token, not the short rows' ~20 tokens
    assert est["peak_bytes"] == named["peak_bytes"] == chk["estimate"]["peak_bytes"]
    assert est["lengths"] == named["lengths"] == chk["lengths"]
    assert f"the longest of all {SCAN_ROWS + 500:,} rows, the p95 of the first {SCAN_ROWS:,}" in est["lengths"]["note"]


def test_advise_on_a_big_file_reads_what_the_commands_read(rankwise_cmd, tmp_path):
    """`advise --dataset` scans as every plan does (the first SCAN_ROWS rows, the whole file's row count and longest
    row), so the preset it writes is judged by `check` at the lengths and the peak the advice showed."""
    from rankwise.advisor.dataset import SCAN_ROWS

    data = _big(tmp_path / "train.jsonl", SCAN_ROWS + 500, longest_at=SCAN_ROWS + 321, words=300)
    preset = tmp_path / "advised.yaml"
    gpu = ["--gpu-mem", "24GiB"]
    adv = _json(rankwise_cmd + ["advise", "--model", "llama-3.1-8b", "--task", "chat", "--dataset", str(data),
                                "--write-preset", str(preset), "--json"] + gpu)
    assert f"{SCAN_ROWS + 500:,} rows, the first {SCAN_ROWS:,} scanned" in adv["notes"][0]
    assert f"the longest of all {SCAN_ROWS + 500:,} rows, the p95 of the first {SCAN_ROWS:,}" in adv["lengths"]["note"]
    long_row = len(f"row {SCAN_ROWS + 321} " + "word " * 300)
    assert f"({long_row:,} characters" in adv["lengths"]["note"]  # the row past those read, not the short rows
    chk = _json(rankwise_cmd + ["check", str(preset), "--json"] + gpu)
    assert chk["lengths"] == adv["lengths"]
    assert chk["estimate"]["peak_bytes"] == adv["estimate"]["peak_bytes"]
