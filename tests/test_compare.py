"""rankwise compare on the session's real demo run: the held-out rows training held out, response
losses under base and adapter, generations, --against, prompts files, exit 2."""
from __future__ import annotations

import json
import random
import shutil

import pytest
import yaml

from rankwise.trainer import rundir
from rankwise.tui.cli import main

FAST = ["--max-new-tokens", "12"]


def compare(capsys, runs, *args) -> tuple[int, str, str]:
    code = main(["compare", *args, "--runs-dir", str(runs), *FAST])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def result(demo_run):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["compare", demo_run.name, "--runs-dir", str(demo_run.parent), "--json", *FAST])
    assert code == 0
    return json.loads(buf.getvalue())


def held_out_answers(run_dir) -> list[str]:
    """The assistant answers of the rows training held out, by the documented rule (data.val_ratio
    of the usable rows, drawn with train.seed), worked out here from the data file."""
    cfg = rundir.load_config(run_dir)
    rows = [json.loads(l) for l in open(cfg.data.path, encoding="utf-8") if l.strip()]
    n_val = max(1, round(len(rows) * cfg.data.val_ratio))
    held = sorted(random.Random(cfg.train.seed).sample(range(len(rows)), n_val))
    return [rows[k]["messages"][-1]["content"] for k in held]


def test_json_has_the_documented_keys(result):
    assert {"base_loss", "adapter_loss", "rows"} <= set(result)
    for row in result["rows"]:
        assert set(row) == {"prompt", "reference", "base", "adapter", "base_loss", "adapter_loss"}


def test_the_rows_are_the_ones_training_held_out(demo_run, result):
    assert [r["reference"] for r in result["rows"]] == held_out_answers(demo_run)
    questions = {json.loads(l)["messages"][0]["content"] for l in open(rundir.load_config(demo_run).data.path)}
    assert all(r["prompt"] in questions for r in result["rows"])  # the user turn, template markers decoded away


def test_the_adapter_lowers_the_response_loss(result):
    assert result["adapter_loss"] < result["base_loss"]
    assert sum(r["adapter_loss"] < r["base_loss"] for r in result["rows"]) > len(result["rows"]) / 2
    assert all(isinstance(r["base"], str) and isinstance(r["adapter"], str) for r in result["rows"])


@pytest.mark.slow
def test_the_adapter_loss_is_the_runs_own_eval_loss_at_full_batch(lora_run, capsys):
    """One evaluation batch holds every held-out row when micro_batch ≥ their count: the Trainer's
    eval loss is then the token mean compare computes, over the same masked tokens. The session's
    LoRA run (conftest.py): micro_batch 8 for the 6 held-out rows, the last evaluation at its last step."""
    from train_helpers import events

    run = lora_run[0]
    code, out, err = compare(capsys, run.parent, run.name, "--json")
    assert code == 0, err
    last_eval = [e for e in events(run) if e["type"] == "eval"][-1]
    assert last_eval["step"] == 16 == [e for e in events(run) if e["type"] == "end"][-1]["step"]
    assert json.loads(out)["adapter_loss"] == pytest.approx(last_eval["eval_loss"], rel=1e-4)


def test_text_leads_with_the_summary_then_the_table(demo_run, result, capsys):
    code, out, err = compare(capsys, demo_run.parent, demo_run.name, "--n", "2")
    assert code == 0, err
    head = " ".join(out.split("┏")[0].split())
    assert head.startswith("the adapter lowers response perplexity from ")
    assert " on 2 held-out rows " in head and "prompt" in out and "adapter" in out


def test_against_compares_two_adapters_of_the_same_base(demo_run, result, capsys):
    code, out, err = compare(capsys, demo_run.parent, demo_run.name, "--against", demo_run.name, "--json", "--n", "3")
    assert code == 0, err
    got = json.loads(out)
    assert got["against"] == demo_run.name and got["against_loss"] == pytest.approx(got["adapter_loss"])
    assert all(r["against"] == r["adapter"] for r in got["rows"]) and len(got["rows"]) == 3


def _copy(demo_run, runs, name, **changes):
    copy = runs / name
    shutil.copytree(demo_run, copy)
    cfg = yaml.safe_load((copy / rundir.CONFIG).read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        cfg[section][key] = value
    (copy / rundir.CONFIG).write_text(yaml.safe_dump(cfg))
    return copy


def test_against_another_base_exits_2(demo_run, tmp_path, capsys):
    runs = tmp_path / "runs"
    _copy(demo_run, runs, "mine")
    other_model = tmp_path / "other-model"
    shutil.copytree(rundir.load_config(demo_run).model.name, other_model)
    _copy(demo_run, runs, "theirs", model__name=str(other_model))
    code, out, err = compare(capsys, runs, "mine", "--against", "theirs")
    assert code == 2 and "not the same base" in err and "Traceback" not in err


def test_no_held_out_rows_exits_2_and_a_prompts_file_works_instead(demo_run, tmp_path, capsys):
    runs = tmp_path / "runs"
    _copy(demo_run, runs, "noval", data__val_ratio=0.0)
    code, out, err = compare(capsys, runs, "noval")
    assert code == 2 and "held out no validation rows" in err and "--prompts" in err
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is the capital of Canada?\n\nWhat is 2 plus 3?\n")
    code, out, err = compare(capsys, runs, "noval", "--prompts", str(prompts), "--json")
    assert code == 0, err
    got = json.loads(out)
    assert [r["prompt"] for r in got["rows"]] == ["What is the capital of Canada?", "What is 2 plus 3?"]
    assert got["base_loss"] is None and all(r["reference"] is None and r["adapter"] is not None for r in got["rows"])


def test_a_data_file_of_prompts_is_masked_as_training_masks(demo_run, tmp_path, capsys):
    lines = open(rundir.load_config(demo_run).data.path).read().splitlines()[:4]
    data = tmp_path / "extra.jsonl"
    data.write_text("\n".join(lines) + "\n")
    code, out, err = compare(capsys, demo_run.parent, demo_run.name, "--prompts", str(data), "--json")
    assert code == 0, err
    got = json.loads(out)
    assert [r["reference"] for r in got["rows"]] == [json.loads(l)["messages"][-1]["content"] for l in lines]
    assert got["adapter_loss"] < got["base_loss"]


@pytest.mark.parametrize("args, message", [(["no-such-run"], "no run 'no-such-run'"),
                                           (["{run}", "--n", "0"], "--n must be at least 1"),
                                           (["{run}", "--prompts", "/nonexistent.txt"], "no such file")])
def test_bad_input_exits_2(demo_run, capsys, args, message):
    code, out, err = compare(capsys, demo_run.parent, *[a.format(run=demo_run.name) for a in args])
    assert code == 2 and message in err and "Traceback" not in err
