"""bench/advice_quality.py end to end in its --quick mode: the synthetic world, a pretrained tiny
Llama (cached in a temp folder), LoRA trials for the advised configs and the grid, the regret table."""
from __future__ import annotations

import math
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "advice_quality.py"


def _table(out: str) -> list[list[str]]:
    """The regret table's rows (task, advice, ..., loss, best, gap, regret, followed, lr swept, ok)."""
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("task ") and "regret" in l) + 2
    rows = []
    for line in lines[start:]:
        if not line.strip() or line.startswith("("):
            break
        rows.append(line.split())
    return rows


@pytest.mark.slow
def test_quick_mode_prints_a_finite_regret_per_task(tmp_path):
    env = dict(os.environ, RANKWISE_BENCH_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--jobs", "1"], capture_output=True, text=True,
                          env=env, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _table(done.stdout)
    assert sorted(r[0] for r in rows) == ["extraction", "format", "knowledge"]  # one advice ("now") per eval set
    for r in rows:
        loss, best, gap, regret = float(r[-7]), float(r[-6]), float(r[-5]), float(r[-4].rstrip("%"))
        assert math.isfinite(loss) and math.isfinite(best) and math.isfinite(regret)
        assert best <= loss and regret >= 0  # the best is over the grid and the advised configs alike
        assert abs(gap - (loss - best)) <= 0.0015  # in nats, each printed to three decimals
        # the quick model is 48 wide: the advice gives a learning-rate sweep, picked on its validation rows
        assert float(r[-3].rstrip("%")) >= 0 and r[-1] in ("yes", "no")
    assert done.stdout.count("its sweep picked lr") == 3
    # the advice says to validate new facts on questions about trained facts (data.val_path), and the
    # knowledge runs are given them: a fifth of the held-out entities' questions, out of the extraction set
    # (as many as the advice's floor asks, up to half the held-out entities: 10 of the quick world's 20, 3 questions each)
    assert "val_path: 30 questions about trained facts" in done.stdout and "extraction 30" in done.stdout
    assert any(p.name.startswith("base-") for p in (tmp_path / "cache").iterdir())  # the pretrained base is kept
    # again with a smaller grid (one lr instead of two: 8 trials, not 14) in two trial processes: the base
    # is cached, whatever the grid, and the advised config's loss is the same trial's loss as in one process
    again = subprocess.run([sys.executable, str(BENCH), "--quick", "--tasks", "format", "--lrs", "1e-2",
                            "--jobs", "2", "--redraws", "1"], capture_output=True, text=True, env=env, timeout=1200)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "base model: cached in" in again.stdout and "2 trial processes" in again.stdout
    assert "kernels" not in again.stdout + again.stderr
    [row] = _table(again.stdout)
    assert row[0] == "format" and row[-7] == next(r for r in rows if r[0] == "format")[-7]
    assert row[-3] == next(r for r in rows if r[0] == "format")[-3]  # its sweep's trials are the same trials too
    # one redraw: the followed advice and the first draw's best grid configs, trained again on another draw of the
    # trials; the first draw's column is this run's own followed loss and grid results
    lines = again.stdout.splitlines()
    at = next(i for i, l in enumerate(lines) if l.strip().startswith("format ") and "followed (lr" in l)
    block = lines[at:at + 5]
    picked = next(l for l in lines if "its sweep picked lr" in l)
    mine = [float(x) for x in block[0].split(")")[-1].split()[:2]]
    assert mine[0] == float(picked.split("→")[1]) and mine[1] != mine[0] and math.isfinite(mine[1])
    rows = [l for l in block[1:] if "mean" in l and "regret" not in l]
    assert len(rows) == 3  # three contenders, best first: the first is the grid's best of the first draw
    losses = [[float(x) for x in l.split("ep=")[1].split()[1:3]] for l in rows]
    assert losses[0][0] == float(row[-6]) and [v[0] for v in losses] == sorted(v[0] for v in losses)
    means = [float(l.split("mean")[1]) for l in rows]
    assert all(abs(m - v[1]) <= 0.0015 for m, v in zip(means, losses))  # one fresh draw: its mean is that draw
    [verdict] = [l for l in block if "regret of the means" in l]
    r = float(verdict.split("regret of the means")[1].split("%")[0]) / 100
    assert abs(r - (mine[1] - min(means)) / min(means)) <= 0.002 and verdict.split()[-1] in ("yes", "no")
    # the α study on the cached base: at the quick grid's rank (4), α = 32 against α = 2r = 8 (at 1e-2 and at its
    # extra doubling, 2e-2) on two paired draws, both eval sets of the knowledge task, in place of the grid
    # (one process: trial processes would each import torch and peft again for six tiny runs)
    study = subprocess.run([sys.executable, str(BENCH), "--quick", "--tasks", "knowledge", "--lrs", "1e-2",
                            "--jobs", "1", "--alpha-study", "2"], capture_output=True, text=True, env=env, timeout=1200)
    assert study.returncode == 0, study.stderr[-3000:]
    assert "α study: 6 runs" in study.stdout and "Regret of the advised config" not in study.stdout
    rows = [l for l in study.stdout.splitlines() if l.strip().startswith("4 ")]
    assert len(rows) == 2  # knowledge and extraction
    for row in rows:
        (fixed, lr_fixed), (twice, lr_twice) = re.findall(r"(\d+\.\d+) \((\S+?)(?:, edge)?\)", row)
        diff = float(re.search(r"([+-]\d+\.\d+) ± \d+\.\d+", row).group(1))
        assert abs(diff - (float(fixed) - float(twice))) <= 0.0015
        assert lr_fixed == "1e-2" and lr_twice in ("1e-2", "2e-2")
        assert row.endswith(("ahead", "cannot tell"))


def _bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("advice_quality", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["advice_quality"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_trials_that_train_the_same_thing_share_one_run():
    from rankwise.advisor.config import RunConfig, with_values
    from rankwise.advisor.model import load_model

    aq = _bench()
    spec, mode = load_model("llama-3.2-1b"), aq.MODES["full"]
    cfg = RunConfig()
    trials = aq.grid(spec, mode, mode.lrs)
    advised = aq.Trial("all-linear", 32, 32.0, 2e-3, 10.0, "advised now")
    todo, same = aq.distinct_runs([(cfg, t) for t in trials] + [(cfg, advised)])
    # at r=16 alpha = 2r is the fixed alpha 32: all-linear and attention-only at r=16, each epoch and rate, once
    assert len(todo) == len(trials) - 2 * len(mode.epochs) * len(mode.lrs)
    fixed = aq.Trial("all-linear", 32, 32.0, 2e-3, 10.0, "fixed")
    assert same[fixed] == [fixed, advised]  # the advised config at a grid rate is that grid trial
    assert sorted(map(repr, (t for ts in same.values() for t in ts))) == sorted(map(repr, trials + [advised]))
    other = with_values(cfg, {"lora.dropout": 0.1})  # another advice's config trains something else
    todo, same = aq.distinct_runs([(cfg, fixed), (other, advised)])
    assert len(todo) == 2


def test_an_advice_asks_for_a_val_path_by_its_to_supply_or_an_older_ones_reason():
    aq = _bench()
    assert aq.asks_val_path({"to_supply": ["data.val_path"], "reasons": {}})
    assert not aq.asks_val_path({"to_supply": [], "reasons": {"data.val_ratio": "... set data.val_path ..."}})
    assert aq.asks_val_path({"reasons": {"data.val_ratio": "... set data.val_path to rows ..."}})  # before to_supply
    assert not aq.asks_val_path({"reasons": {"data.val_ratio": "0.05 of the rows held out"}})


def test_the_validation_questions_reach_the_advices_floor_in_whole_entities_from_the_extraction_set():
    from rankwise.advisor.recommend import VAL_ROWS

    aq = _bench()
    world = aq.World(aq.MODES["full"])
    _, held, val = world.task("knowledge", aq.MODES["full"])
    per = len(world.attrs)
    assert len(val) < VAL_ROWS  # World.task's fifth of the held-out entities is short of it
    grown, rest = aq.enough_to_validate(val, held["extraction"], per)
    assert len(grown) == -(-VAL_ROWS // per) * per and grown[:len(val)] == val
    assert grown + rest == val + held["extraction"]  # nothing lost, nothing asked twice
    entity = {tuple(world.question(e, a).prompt): e for e in world.new for a in world.attrs}
    asked = [{entity[tuple(r.prompt)] for r in rows} for rows in (grown, rest)]
    assert not asked[0] & asked[1]  # an entity validates or is extracted, not both
    assert len(asked[0]) * per == len(grown) and len(asked[1]) * per == len(rest)  # each with all its questions
    # a world too small for the floor keeps half its held-out entities for extraction
    small, few = aq.enough_to_validate(val[:per], held["extraction"][:3 * per], per)
    assert (len(small), len(few)) == (2 * per, 2 * per)


def _tiny(aq):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    world = aq.World(aq.MODES["quick"])
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(world.vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
                      tie_word_embeddings=False, pad_token_id=0)
    return world, LlamaForCausalLM(cfg)


def test_the_fine_tunes_loss_without_a_mask_is_the_masked_loss_on_right_padded_rows():
    aq = _bench()
    world, model = _tiny(aq)
    rows = [world.statement(e, "city") for e in world.known[:6]] + [world.question(e, "job") for e in world.known[:6]]
    ids, mask, labels = aq.batch(rows, 0)
    assert (mask == 0).any()  # rows of two lengths: padded
    model.eval()
    assert float(aq.tuned_loss(model, ids, labels)) == pytest.approx(float(aq.loss_of(model, ids, mask, labels)),
                                                                     rel=1e-6)
    ids[mask == 0] = 5  # whatever the pads hold, the scored positions do not see them
    assert float(aq.tuned_loss(model, ids, labels)) == pytest.approx(float(aq.loss_of(model, ids, mask, labels)),
                                                                     rel=1e-6)


def test_a_fine_tune_evaluates_at_the_workers_cadence_and_not_again_at_the_end():
    from rankwise.advisor.config import RunConfig, with_values
    from rankwise.advisor.model import spec_from_config

    aq = _bench()
    world, model = _tiny(aq)
    train = [world.statement(e, "city") for e in world.known[:40]]
    val = [world.question(e, "city") for e in world.known[:8]]
    cfg = with_values(RunConfig(), {"train.micro_batch": 4, "train.grad_accum": 1, "train.evals_per_epoch": 4,
                                    "train.stop_on": [], "data.val_ratio": 0.0, "data.val_path": aq.VAL_PATH,
                                    "lora.dropout": 0.0})
    spec = spec_from_config("tiny", "built here", model.config.to_dict())
    out = aq.finetune(model, spec, aq.Trial("all-linear", 4, 8.0, 1e-3, 1.0), cfg, train, {"q": val}, val)
    # 40 rows at 4 a step: 10 steps an epoch, 4 evaluations an epoch -> every 10 // 4 = 2 steps: 5, none at the end
    assert out[aq.EVALS] == 5
    assert math.isfinite(out["q"]) and math.isfinite(out[aq.VAL])


def test_a_fine_tune_stops_where_the_doctors_overfitting_rule_fires_on_its_log():
    """The bench's stop is the worker's: the eval loss rising while the train loss falls (memorizing) stops the
    run and keeps the best adapter; the eval loss rising while the train loss rises too (a rate too high) does not."""
    import torch

    from rankwise.advisor.config import RunConfig, with_values
    from rankwise.advisor.model import spec_from_config

    aq = _bench()
    world, model = _tiny(aq)
    people, values = world.known[:8], aq.ATTRIBUTES["city"][2]

    def told(e, shift):  # the statement of e's city, shifted `shift` values along
        row, v = world.statement(e, "city"), world.facts[e]["city"]
        other = world.vocab[values[(values.index(v) + shift) % len(values)]]
        return aq.Row(row.prompt, [other if c == world.vocab[v] else c for c in row.completion], row.scored)

    known = [told(e, 0) for e in people]
    ids, _, labels = aq.batch(known, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(100):  # the base learns these facts
        aq.tuned_loss(model, ids, labels).backward()
        opt.step(), opt.zero_grad()
    train = [told(e, 1) for e in people]  # the fine-tune teaches other values: the known rows' loss rises
    spec = spec_from_config("tiny", "built here", model.config.to_dict())
    runs = {}
    for lr in (1e-2, 0.3):
        for stop in ([], ["overfitting"]):
            cfg = with_values(RunConfig(), {
                "train.micro_batch": 4, "train.grad_accum": 1, "train.evals_per_epoch": 2, "train.logging_steps": 1,
                "train.stop_on": stop, "data.val_ratio": 0.0, "data.val_path": aq.VAL_PATH, "lora.dropout": 0.0})
            runs[lr, bool(stop)] = aq.finetune(model, spec, aq.Trial("all-linear", 8, 16.0, lr, 10.0), cfg, train,
                                               {"known": known}, known)
    # 8 rows at 4 a step, 10 epochs: 20 steps, an evaluation every 2 // 2 = 1 step
    assert runs[1e-2, False][aq.EVALS] == runs[0.3, False][aq.EVALS] == 20
    assert runs[1e-2, True][aq.EVALS] < 20 and runs[1e-2, True][aq.STOPPED] == 1.0  # memorizing: stopped
    assert runs[1e-2, True]["known"] < runs[1e-2, False]["known"]  # with an earlier adapter, better on these rows
    # at 0.3 the first evaluations rise far above the best too, but the train loss rises with them: not stopped
    assert runs[0.3, True] == runs[0.3, False] and runs[0.3, True][aq.STOPPED] == 0.0


def test_a_base_is_keyed_by_what_pretrains_it_not_by_the_grid_or_the_tasks(monkeypatch):
    from dataclasses import replace

    aq = _bench()
    mode = aq.MODES["full"]
    world = aq.World(mode)
    key = aq.base_key(world, mode)
    assert aq.base_key(world, replace(mode, lrs=(1e-3,), ranks=(4,), epochs=(3.0,))) == key  # the grid's fields
    assert "def pretrain_rows(" in aq.base_code() and "def statement(" in aq.base_code()
    assert "def task(" not in aq.base_code()  # how the fine-tuning tasks are split does not make another base
    assert aq.base_key(world, replace(mode, pretrain_steps=mode.pretrain_steps + 1)) != key
    assert aq.base_key(world, replace(mode, hidden=2 * mode.hidden)) != key
    monkeypatch.setattr(aq, "SEED", aq.SEED + 1)
    assert aq.base_key(aq.World(mode, seed=aq.SEED), mode) != key  # another seed pretrains another base


def test_a_config_that_is_two_conditions_best_contends_once():
    aq = _bench()
    fixed = aq.Trial("all-linear", 16, 32.0, 2e-3, 10.0, "fixed")
    twin = aq.Trial("all-linear", 16, 32.0, 2e-3, 10.0, "2r")  # at r=16 α=2r is α=32: the same run
    advised = aq.Trial("all-linear", 32, 32.0, 4e-3, 10.0, "advised now")
    other = aq.Trial("all-linear", 32, 32.0, 4e-3, 10.0, "advised git:abc")  # another revision's: not a contender
    att = aq.Trial("standard", 64, 128.0, 1e-3, 10.0, "2r")
    worst = aq.Trial("standard", 4, 32.0, 1e-3, 10.0, "fixed")
    o = {"best": {aq.condition(t): (t, v) for t, v in
                  ((fixed, 1.0), (twin, 1.0), (advised, 0.9), (other, 0.5), (att, 1.2), (worst, 3.0))}}
    got = aq.contenders_of(o)
    assert got[0] == advised and aq.trains(got[1]) == aq.trains(fixed) and got[2] == att  # best first, each once
    assert len(got) == aq.CONTENDERS


def test_the_regret_of_the_means_carries_the_paired_draws_standard_error():
    """Each draw is one split, init and order for every config, so the error is that of the per-draw differences:
    luck a draw gives both configs drops out. The first draw (where the contenders were picked) is left out."""
    aq = _bench()
    best = aq.Trial("all-linear", 64, 128.0, 1e-3, 10.0, "2r")
    # first draw, then three fresh ones: differences 0.2, 0.0, 0.4 (mean 0.2, stdev 0.2); the draws move both
    d = {"followed": [(2e-3, 9.0), (2e-3, 1.2), (2e-3, 2.0), (4e-3, 1.4)],
         "contenders": {best: [0.1, 1.0, 2.0, 1.0]}}
    fm, got, bm = aq.redraw_verdict(d)
    assert got == best and math.isclose(fm, 4.6 / 3) and math.isclose(bm, 4 / 3)
    assert math.isclose(aq.regret_error(d, best, bm), 0.2 / math.sqrt(3) / bm)
    # an unpaired error of the two means would be far larger: each mean's draws spread by ~0.4-0.6
    assert aq.regret_error(d, best, bm) < statistics.stdev([1.2, 2.0, 1.4]) / math.sqrt(3) / bm
    one = {"followed": d["followed"][:2], "contenders": {best: [0.1, 1.0]}}
    assert aq.regret_error(one, best, 1.0) is None  # one fresh draw: no error to give


def test_the_alpha_study_pairs_each_couplings_best_mean_rate_by_draw(monkeypatch, capsys):
    """Each coupling is taken at the rate with its lowest mean over the draws, and the difference is paired draw by
    draw. The trial runner is replaced by a table of losses: what is tested is the study's bookkeeping, not training
    (the quick run in test_quick_mode_prints_a_finite_regret_per_task trains it)."""
    from rankwise.advisor.config import RunConfig

    aq = _bench()
    mode = aq.replace(aq.MODES["quick"], ranks=(4, 16, 32), lrs=(1e-3, 2e-3))
    # loss(draw k, trial): α = 2r = 64 at r=32 (tried from one halving below the rates) is 0.1 ahead on every draw at
    # 1e-3; at r=4 α = 8 is best at its extra doubling, 4e-3, and behind α = 32 on draws 0 and 1, ahead on draw 2
    # (no verdict)
    table = {(32, 32.0, 1e-3): [1.0, 1.4, 1.2], (32, 32.0, 2e-3): [1.1, 1.5, 1.3],
             (32, 64.0, 5e-4): [1.0, 1.4, 1.2], (32, 64.0, 1e-3): [0.9, 1.3, 1.1], (32, 64.0, 2e-3): [2.0, 2.0, 2.0],
             (4, 32.0, 1e-3): [2.0, 2.0, 2.0], (4, 32.0, 2e-3): [1.5, 1.6, 1.7],
             (4, 8.0, 1e-3): [3.0, 3.0, 3.0], (4, 8.0, 2e-3): [2.9, 2.9, 2.9], (4, 8.0, 4e-3): [1.6, 1.8, 1.5],
             (16, 32.0, 1e-3): [1.3, 1.3, 1.3], (16, 32.0, 2e-3): [1.2, 1.2, 1.2]}
    cfg = RunConfig()
    draws = {cfg.train.seed + k * aq.REDRAW_SEED: k for k in range(3)}
    ran = []

    def runner(jobs, *args):
        for c, t in jobs:
            ran.append((t.r, t.alpha, t.lr))
            v = table[(t.r, t.alpha, t.lr)][draws[c.train.seed]]
            yield t, {"knowledge": v, "extraction": v + 1}

    monkeypatch.setattr(aq, "run_trials", runner)
    adv = aq.Trial("all-linear", 32, 32.0, 2e-3, 10.0, "advised now")
    out = aq.alpha_study(cfg, adv, mode, None, None, [], {"knowledge": [], "extraction": []}, [], 1, 3, print)
    assert sorted(ran) == sorted(k for k in table for _ in range(3))  # r=16: α = 2r is α = 32, one run
    got = out[0]["ranks"]
    assert got[32]["fixed"][:2] == (1e-3, statistics.fmean([1.0, 1.4, 1.2]))
    assert got[32]["2r"][0] == 1e-3 and not got[32]["2r"][3]  # inside its rates: 5e-4 was tried
    assert got[4]["2r"][0] == 4e-3 and got[4]["2r"][3]  # at the edge of its rates
    assert list(got[16]) == ["fixed"]
    aq.study_report(out)
    rows = {l.split()[0]: l for l in capsys.readouterr().out.splitlines() if l[:6].strip().isdigit()}
    assert "+0.100 ± 0.000" in rows["32"] and rows["32"].endswith("α = 2r ahead")  # 0.1 on every draw
    assert "(4e-3, edge)" in rows["4"]
    assert rows["4"].endswith("cannot tell")  # -0.1, -0.2, +0.2: mean -0.033, SE 0.12
    assert "(same run)" in rows["16"] and "±" not in rows["16"]


def test_the_loraplus_study_tries_each_ratio_down_to_the_rates_its_b_would_run_at(monkeypatch, capsys):
    """The advised config without LoRA+ and with each ratio, paired by draw: a ratio λ also tries halvings below the
    bottom rate down to bottom / λ (B's rate at the plain optimum), and 16 drops the top rate. Bookkeeping only: the
    trial runner is a table of losses (the fine-tune below trains with the ratio)."""
    from rankwise.advisor.config import RunConfig

    aq = _bench()
    mode = aq.replace(aq.MODES["quick"], lrs=(1e-3, 2e-3))
    adv = aq.Trial("all-linear", 32, 32.0, 2e-3, 10.0, "advised now")
    # LoRA+ 4 is best at 5e-4, 0.2 ahead on every draw; LoRA+ 16 at its lowest rate, 2.5e-4, ahead on two draws of three
    table = {(None, 1e-3): [1.0, 1.2, 1.4], (None, 2e-3): [1.1, 1.3, 1.5],
             (4.0, 5e-4): [0.8, 1.0, 1.2], (4.0, 1e-3): [0.9, 1.1, 1.3], (4.0, 2e-3): [2.0, 2.0, 2.0],
             (16.0, 2.5e-4): [0.7, 1.5, 1.1], (16.0, 5e-4): [0.9, 1.6, 1.3], (16.0, 1e-3): [3.0, 3.0, 3.0]}
    cfg = RunConfig()
    draws = {cfg.train.seed + k * aq.REDRAW_SEED: k for k in range(3)}
    ran = []

    def runner(jobs, *args):
        for c, t in jobs:
            assert (t.targets, t.r, t.alpha, t.epochs) == ("all-linear", 32, 32.0, 10.0)  # the advice's, but the rate
            ran.append((t.loraplus, t.lr))
            v = table[(t.loraplus, t.lr)][draws[c.train.seed]]
            yield t, {"knowledge": v}

    monkeypatch.setattr(aq, "run_trials", runner)
    out = aq.loraplus_study(cfg, adv, mode, None, None, [], {"knowledge": []}, [], 1, 3, print)
    assert sorted(ran, key=repr) == sorted((k for k in table for _ in range(3)), key=repr)
    got = out[0]["ranks"][32]
    assert list(got) == ["plain", "lora+4", "lora+16"]
    assert got["plain"][:2] == (1e-3, statistics.fmean([1.0, 1.2, 1.4])) and got["plain"][3]
    assert got["lora+4"][0] == 5e-4 and got["lora+16"][0] == 2.5e-4
    aq.study_report(out)
    [row] = [l for l in capsys.readouterr().out.splitlines() if l.strip().startswith("32 ")]
    four, sixteen = re.findall(r"([+-]\d+\.\d+) ± (\d+\.\d+)  ([^|]+?)(?= +[+-]\d|$)", row)
    assert four[:2] == ("+0.200", "0.000") and four[2] == "LoRA+ 4 ahead"
    m = statistics.fmean([0.3, -0.3, 0.3])  # 1.0-0.7, 1.2-1.5, 1.4-1.1
    assert float(sixteen[0]) == pytest.approx(m, abs=5e-4) and sixteen[2] == "cannot tell"


def test_a_fine_tune_runs_b_at_the_trials_loraplus_ratio():
    """finetune builds peft's LoRA+ optimizer from the trial's ratio (else the config's): a ratio trains B faster
    than plain LoRA at the same rate and draw, and ratio 1 is plain LoRA."""
    from rankwise.advisor.config import RunConfig, with_values
    from rankwise.advisor.model import spec_from_config

    aq = _bench()
    world, model = _tiny(aq)
    train = [world.statement(e, "city") for e in world.known[:16]]
    cfg = with_values(RunConfig(), {"train.micro_batch": 4, "train.grad_accum": 1, "train.stop_on": [],
                                    "data.val_ratio": 0.0, "lora.dropout": 0.0})
    spec = spec_from_config("tiny", "built here", model.config.to_dict())
    held = {"q": [world.question(e, "city") for e in world.known[:8]]}
    runs = {x: aq.finetune(model, spec, aq.Trial("all-linear", 4, 8.0, 1e-3, 1.0, loraplus=x), cfg, train, held)["q"]
            for x in (None, 1.0, 16.0)}
    assert runs[None] == runs[1.0]
    assert runs[16.0] != runs[None]
    # the config's ratio where the trial has none
    again = aq.finetune(model, spec, aq.Trial("all-linear", 4, 8.0, 1e-3, 1.0),
                        with_values(cfg, {"lora.loraplus_lr_ratio": 16.0}), train, held)["q"]
    assert again == runs[16.0]


@pytest.mark.parametrize("flags", [["--alpha-study", "2", "--loraplus-study", "2"], ["--loraplus-study", "2", "--redraws", "1"]])
def test_the_studies_and_the_redraws_run_one_at_a_time(flags, capsys):
    aq = _bench()
    with pytest.raises(SystemExit) as e:
        aq.main(["--quick", *flags])
    assert e.value.code == 2 and "one at a time" in capsys.readouterr().err


@pytest.mark.parametrize("ratios", ["1,4", "x", "0.5"])
def test_the_loraplus_ratios_must_be_above_one(ratios, capsys):
    aq = _bench()
    with pytest.raises(SystemExit) as e:
        aq.main(["--quick", "--loraplus-study", "2", "--loraplus-ratios", ratios])
    assert e.value.code == 2 and "ratios above 1" in capsys.readouterr().err
