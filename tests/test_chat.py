"""rankwise chat on a real tiny run (the session's demo run), and samples while training."""
from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from rankwise.trainer import rundir
from rankwise.tui.cli import main

QUESTION = "What is the capital of Canada?"
TINY = Path(__file__).resolve().parent.parent / "presets" / "assets" / "tiny-llama"
GREEDY = ["--temperature", "0", "--max-new-tokens", "24"]


def chat(capsys, run_dir, *args) -> tuple[int, str, str]:
    code = main(["chat", run_dir.name, "--runs-dir", str(run_dir.parent), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def answer(out: str, who: str) -> str:
    line = next(l for l in out.splitlines() if l.startswith(f"{who}> "))
    return line[len(who) + 2:].strip()


def test_prompt_answers_from_the_adapter_and_from_the_base_and_they_differ(demo_run, capsys):
    code, out, err = chat(capsys, demo_run, "--prompt", QUESTION, *GREEDY)
    assert code == 0, err
    adapter = answer(out, "adapter")
    code, out, err = chat(capsys, demo_run, "--prompt", QUESTION, "--base", *GREEDY)
    assert code == 0, err
    base = answer(out, "base")
    assert adapter and base and adapter != base  # the trained adapter changed what the model says


def test_greedy_answers_repeat_and_a_seed_fixes_sampling(demo_run, capsys):
    first = answer(chat(capsys, demo_run, "--prompt", QUESTION, *GREEDY)[1], "adapter")
    assert answer(chat(capsys, demo_run, "--prompt", QUESTION, *GREEDY)[1], "adapter") == first
    sampled = ["--prompt", QUESTION, "--temperature", "1.5", "--top-p", "1", "--max-new-tokens", "24"]
    a = answer(chat(capsys, demo_run, *sampled, "--seed", "3")[1], "adapter")
    assert answer(chat(capsys, demo_run, *sampled, "--seed", "3")[1], "adapter") == a


def test_both_shows_both_answers_to_the_same_prompt(demo_run, rankwise_cmd):
    alone = subprocess.run(rankwise_cmd + ["chat", demo_run.name, "--runs-dir", str(demo_run.parent), "--prompt",
                                           QUESTION, *GREEDY], capture_output=True, text=True, timeout=300)
    talk = "\n".join(["/both", QUESTION, "/base", QUESTION, "/quit", "never read"]) + "\n"
    out = subprocess.run(rankwise_cmd + ["chat", demo_run.name, "--runs-dir", str(demo_run.parent), *GREEDY],
                         input=talk, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert [l.split("> ")[0] for l in lines if "> " in l] == ["base", "adapter", "base"]
    assert answer(out.stdout, "adapter") == answer(alone.stdout, "adapter")  # /both's adapter answer is the adapter's
    assert answer(out.stdout, "adapter") != answer(out.stdout, "base")
    assert "[both answers]" in out.stderr and "[base answers]" in out.stderr


def test_a_checkpoint_adapter_answers(demo_run, capsys):
    step = rundir.complete_checkpoints(demo_run)[0][0]
    code, out, err = chat(capsys, demo_run, "--checkpoint", str(step), "--prompt", QUESTION, *GREEDY)
    assert code == 0, err
    assert answer(out, "adapter")


@pytest.mark.parametrize("args, message", [
    (["no-such-run"], "no run 'no-such-run'"),
    (["{run}", "--checkpoint", "999"], "has no complete checkpoint 999"),
    (["{run}", "--top-p", "0"], "bad generation settings"),
])
def test_bad_input_exits_2_with_a_message(demo_run, capsys, args, message):
    args = [a.format(run=demo_run.name) for a in args]
    code = main(["chat", *args, "--runs-dir", str(demo_run.parent), "--prompt", "hi"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_a_run_without_its_final_adapter_exits_2_naming_the_checkpoints(demo_run, tmp_path, capsys):
    import shutil

    runs = tmp_path / "runs"
    copy = runs / demo_run.name
    shutil.copytree(demo_run, copy)
    shutil.rmtree(copy / rundir.ADAPTER)
    code = main(["chat", copy.name, "--runs-dir", str(runs), "--prompt", "hi"])
    err = capsys.readouterr().err
    assert code == 2 and "has no final adapter" in err and "--checkpoint N" in err


# ------------------------------------------------------------------ samples while training

@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory):
    from train_helpers import only_run, train

    runs = tmp_path_factory.mktemp("sampled") / "runs"
    out = train(runs, "--set", "train.sample_every=4", "--set", "train.max_steps=8")
    assert out.returncode == 0, out.stderr[-3000:]
    return only_run(runs)


@pytest.mark.slow
def test_samples_are_events_of_the_run_at_every_sample_step(sampled_run):
    from train_helpers import events

    evs = events(sampled_run)
    samples = [e for e in evs if e["type"] == "sample"]
    assert sorted({s["step"] for s in samples}) == [4, 8]
    per_step = [s for s in samples if s["step"] == 4]
    assert 1 <= len(per_step) <= 3 and all(s["prompt"] and s["reference"] for s in per_step)
    order = [e["type"] for e in evs]
    assert order.index("sample") < order.index("end")  # written while training, not after it
    assert all(isinstance(s["text"], str) for s in samples)


@pytest.mark.slow
def test_the_panel_and_attach_show_the_newest_samples(sampled_run, rankwise_cmd):
    from rankwise.trainer.events import Sample, read_events, typed
    from rankwise.tui.panel import RunView, plain_line, render

    view = RunView(run_dir=sampled_run)
    for e in read_events(sampled_run / "events.jsonl"):
        view.update(typed(e) if typed(e) else e)
    assert view.samples and {s.step for s in view.samples} == {8}
    buf = io.StringIO()
    Console(file=buf, width=80, color_system=None).print(render(view))
    assert "samples at step 8" in buf.getvalue() and view.samples[0].prompt[:20] in buf.getvalue()
    assert plain_line(view.samples[0]).startswith("sample step 8: ")
    assert isinstance(view.samples[0], Sample)
    out = subprocess.run(rankwise_cmd + ["attach", sampled_run.name, "--runs-dir", str(sampled_run.parent),
                                         "--json-events"], capture_output=True, text=True, timeout=120)
    shown = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    assert [e for e in shown if e["type"] == "sample"] == [e for e in read_events(sampled_run / "events.jsonl")
                                                        if e["type"] == "sample"]


def _named_prompts(tmp_path) -> dict[str, str]:
    """train.sample_prompts as a list and as a file of the same prompt (blank lines skipped)."""
    (tmp_path / "prompts.txt").write_text(f"\n{QUESTION}\n\n")
    return {"list": json.dumps([QUESTION]), "file": str(tmp_path / "prompts.txt")}


def test_named_sample_prompts_as_a_list_or_a_file_are_the_same_prompts(tmp_path):
    """Both forms, given as `--set` gives them, name the same rows to sample (the worker's sample_rows);
    the run below trains with the file form."""
    from transformers import AutoTokenizer

    from rankwise.advisor.loader import load_config
    from rankwise.advisor.presets import resolve_preset
    from rankwise.trainer.prompts import sample_rows

    tok = AutoTokenizer.from_pretrained(TINY)
    rows = {given: sample_rows(load_config(resolve_preset("demo-cpu"), [f"train.sample_prompts={value}"]), tok, None)
            for given, value in _named_prompts(tmp_path).items()}
    assert [(r.prompt, r.reference) for r in rows["list"]] == [(QUESTION, None)]
    assert [(r.prompt, r.prompt_ids) for r in rows["file"]] == [(r.prompt, r.prompt_ids) for r in rows["list"]]


@pytest.mark.slow
def test_named_sample_prompts_are_answered_at_each_evaluation(tmp_path):
    from train_helpers import events, only_run, train

    runs = tmp_path / "runs"
    out = train(runs, "--set", "train.max_steps=4", "--set", "train.eval_steps=2",
                "--set", f"train.sample_prompts={_named_prompts(tmp_path)['file']}")
    assert out.returncode == 0, out.stderr[-3000:]
    evs = events(only_run(runs))
    samples = [e for e in evs if e["type"] == "sample"]
    assert [s["step"] for s in samples] == [e["step"] for e in evs if e["type"] == "eval"] == [2, 4]
    assert {s["prompt"] for s in samples} == {QUESTION} and all(s.get("reference") is None for s in samples)


@pytest.mark.slow
def test_a_qlora_run_is_chatted_with_on_its_4bit_base(qlora_run, capsys):
    from rankwise.trainer.chat import Bench

    run = qlora_run[0]  # the session's demo-cpu-qlora run (conftest.py)
    bench = Bench.open(run)
    bases = {type(m.base_layer).__name__ for _, m in bench.model.named_modules() if hasattr(m, "base_layer")}
    quant = {getattr(m.base_layer.weight, "quant_type", None) for _, m in bench.model.named_modules()
             if hasattr(m, "base_layer")}
    assert bases == {"Linear4bit"} and quant == {"nf4"}  # as the run trained it
    code, out, err = chat(capsys, run, "--prompt", QUESTION, *GREEDY)
    assert code == 0, err
    assert answer(out, "adapter")
