"""When a run saves and evaluates (advisor/cadence.py): train.saves_per_epoch / evals_per_epoch resolved against the
epoch, the same in the worker (a real run of the tiny model), the time planner (evaluation seconds in the total), the
calibration (evaluations left out of the measured step) and the advice (a cadence per epoch, not per 100 steps)."""
import pytest

from rankwise.advisor import cadence
from rankwise.advisor.calibration import from_runs
from rankwise.advisor.config import RunConfig, with_values
from rankwise.advisor.fit import assess
from rankwise.advisor.hardware import planned
from rankwise.advisor.model import load_model
from rankwise.advisor.recommend import EVALS_PER_EPOCH, advise
from rankwise.advisor.speeds import Device
from rankwise.advisor.time import DataShape, micro_batch_seconds, plan_time
from rankwise.trainer.events import EventSink
from rankwise.trainer.rundir import SUMMARY, write_json

from train_helpers import events, of_type, only_run, summary, train


@pytest.mark.parametrize("sequences,batch,accum,expected", [
    (58, 8, 1, 8), (64, 8, 1, 8), (65, 8, 1, 9), (1000, 2, 4, 125), (1001, 2, 4, 126), (9, 8, 4, 1), (1, 8, 1, 1)])
def test_steps_per_epoch_rounds_up_as_the_hf_trainer(sequences, batch, accum, expected):
    # transformers 5 Trainer.set_initial_training_values: len(dataloader) // accum + (remainder > 0), at least 1
    batches = -(-sequences // batch)
    assert cadence.steps_per_epoch(sequences, batch, accum) == expected \
        == max(1, batches // accum + (batches % accum > 0))


def _train(**values):
    return with_values(RunConfig(), {f"train.{k}": v for k, v in values.items()}).train


def test_per_epoch_counts_take_the_place_of_the_intervals():
    assert cadence.resolve(_train(), 1000) == cadence.Cadence(100, 100)  # defaults: save every 100, evaluate at each
    assert cadence.resolve(_train(eval_steps=30), 1000) == cadence.Cadence(100, 30)
    assert cadence.resolve(_train(evals_per_epoch=4), 1000) == cadence.Cadence(100, 250)
    assert cadence.resolve(_train(evals_per_epoch=3), 1000) == cadence.Cadence(100, 333)  # at least 3 an epoch
    # 4 an epoch of 5,938 steps: every 1,484, the 4th two steps before the end (axolotl's ceil, 1,485, makes 3)
    assert cadence.resolve(_train(evals_per_epoch=4), 5938).evaluations(5938) == 4
    assert cadence.resolve(_train(saves_per_epoch=2, save_steps=7), 1000) == cadence.Cadence(500, 500)
    both = cadence.resolve(_train(saves_per_epoch=2, evals_per_epoch=8, eval_steps=3), 1000)
    assert both == cadence.Cadence(500, 125)
    assert cadence.resolve(_train(evals_per_epoch=4), 3) == cadence.Cadence(100, 1)  # never below one step
    # the epoch unknown (no data scanned): the intervals beside the counts
    assert cadence.resolve(_train(evals_per_epoch=4, saves_per_epoch=2, save_steps=50), None) == cadence.Cadence(50, 50)
    assert cadence.Cadence(100, 250).evaluations(1000) == 4 and cadence.Cadence(100, 250).evaluations(999) == 3


# ----------------------------------------------------------------------------- the worker


@pytest.mark.slow
def test_a_run_evaluates_and_saves_per_epoch(tmp_path):
    """demo-cpu: 58 training rows at micro-batch 8 are 8 steps an epoch; 3 evaluations an epoch = every 2 steps,
    2 saves an epoch = every 4, and a checkpoint at each evaluation (the best is chosen among those). One epoch
    exactly, so the tokens trained are the training rows' tokens: the evaluations' are not counted."""
    r = train(tmp_path, "--set", "train.max_steps=8", "--set", "train.evals_per_epoch=3",
              "--set", "train.saves_per_epoch=2", "--set", "train.logging_steps=1",
              "--set", "train.save_total_limit=10", quick=False)
    assert r.returncode == 0, r.stderr[-3000:]
    run = only_run(tmp_path)
    evs = events(run)
    start = of_type(evs, "start")[0]
    assert (start["train_rows"], start["micro_batch"], start["grad_accum"]) == (58, 8, 1)
    evals = of_type(evs, "eval")
    assert [e["step"] for e in evals] == [2, 4, 6, 8]
    assert all(e["runtime_s"] > 0 for e in evals)
    assert sorted({e["step"] for e in of_type(evs, "checkpoint")}) == [2, 4, 6, 8]
    assert summary(run)["trained_tokens"] == start["train_tokens"]


# ----------------------------------------------------------------------------- the time planner


def _plan(data: DataShape, calibration=(), **train):
    spec, h = load_model("llama-3.1-8b"), planned(gpu="A100-80GB")
    base = {"method": "lora", "train.micro_batch": 2, "train.grad_accum": 4, "train.epochs": 1, "data.val_ratio": 0.05}
    cfg = with_values(RunConfig(), {**base, **{f"train.{k}": v for k, v in train.items()}})
    fit = assess(spec, cfg, h)
    return spec, fit, h, plan_time(spec, cfg, fit, h, data, calibration=calibration)


def test_an_evaluation_is_one_forward_over_the_validation_rows():
    spec, fit, h, _ = _plan(DataShape(9500, 300, 600, "scan", val_rows=500))
    device = Device.of(h)
    forward = sum(micro_batch_seconds(spec, fit, device, 600, forward_only=True).values())
    step = sum(micro_batch_seconds(spec, fit, device, 600).values())
    # under checkpointing training runs a forward, a recompute and a backward (twice a forward's FLOPs): ~4 forwards
    assert 3 < step / forward < 5


def test_evaluation_seconds_are_in_the_total():
    data = DataShape(9500, 300, 600, "scan", val_rows=500)
    *_, per_epoch = _plan(data, evals_per_epoch=4)
    assert per_epoch.steps == 1188  # ceil(ceil(9500 / 2) / 4)
    assert per_epoch.evaluations == 4  # every ceil(1188 / 4) = 297 steps
    assert per_epoch.total_s == pytest.approx(per_epoch.setup_s + per_epoch.train_s + per_epoch.eval_s)
    assert any("4 evaluations of 500 validation rows (every 297 steps)" in a for a in per_epoch.assumptions)
    # the ETA before step 1 (the worker's start event): the steps and the evaluations
    assert per_epoch.seconds_for(per_epoch.steps) == round(per_epoch.train_s + per_epoch.eval_s, 1)
    assert per_epoch.seconds_for(per_epoch.steps // 2) == pytest.approx((per_epoch.train_s + per_epoch.eval_s) / 2,
                                                                        abs=0.1)
    *_, every_100 = _plan(data, eval_steps=100)
    assert every_100.evaluations == 11
    assert every_100.eval_s == pytest.approx(per_epoch.eval_s * 11 / 4)
    *_, twice = _plan(DataShape(9500, 300, 600, "scan", val_rows=1000), evals_per_epoch=4)
    assert twice.eval_s == pytest.approx(2 * per_epoch.eval_s)  # 500 vs 250 micro-batches of 2 rows
    assert per_epoch.to_dict()["eval_s"] == round(per_epoch.eval_s, 1) and per_epoch.to_dict()["evaluations"] == 4
    *_, none = _plan(DataShape(9500, 300, 600, "scan"))  # no validation rows: nothing to evaluate
    assert none.eval_s is None and none.total_s == pytest.approx(none.setup_s + none.train_s)


def test_the_scan_splits_off_the_validation_rows():
    from rankwise.advisor.dataset import DatasetScan

    scan = DatasetScan("d.jsonl", 10_000, "instruction", (), 0, 800, 1600, 1600, 0, median_tokens=200, p95_tokens=400)
    spec = load_model("llama-3.1-8b")
    split = DataShape.from_scan(scan, with_values(RunConfig(), {"data.val_ratio": 0.05}), spec)
    assert (split.rows, split.val_rows) == (9500, 500)
    apart = DataShape.from_scan(scan, with_values(RunConfig(), {"data.val_path": "val.jsonl"}), spec)
    assert (apart.rows, apart.val_rows) == (10_000, None)  # a val_path is not scanned: no evaluation time


# ----------------------------------------------------------------------------- calibration


def _record_run(root, cfg: RunConfig, step_s: float, eval_s: float, steps=20):
    """A finished GPU run as the worker writes it, with an evaluation of `eval_s` seconds after every 4th step."""
    d = root / "evaluated"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    sink = EventSink(d / "events.jsonl")
    t = 1_800_000_000.0
    sink.emit("start", time=t, run_id=d.name, model=cfg.model.name, method="lora", device="cuda", max_steps=steps,
              device_name="NVIDIA A100-SXM4-80GB")
    t += 5
    for s in range(1, steps + 1):
        t += step_s
        sink.emit("step", time=t, step=s, max_steps=steps, loss=1.0)
        if s % 4 == 0:
            t += eval_s
            sink.emit("eval", time=t, step=s, eval_loss=1.0, runtime_s=eval_s)
    sink.emit("end", time=t + 5, status="finished", step=steps)
    sink.close()
    write_json(d / SUMMARY, {"status": "finished", "step": steps, "method": "lora", "device": "cuda",
                             "runtime_s": t + 10 - 1_800_000_000.0, "micro_batch": cfg.train.micro_batch,
                             "grad_accum": cfg.train.grad_accum})


def test_calibration_leaves_the_evaluations_out_of_the_step(tmp_path):
    cfg = with_values(RunConfig(), {"model.name": "llama-3.1-8b", "method": "lora", "train.max_steps": 20,
                                    "train.micro_batch": 2, "train.grad_accum": 4})
    spec, h = load_model("llama-3.1-8b"), planned(gpu="A100-80GB")
    planned_step = plan_time(spec, cfg, assess(spec, cfg, h), h).step_s
    _record_run(tmp_path, cfg, 2 * planned_step, eval_s=50 * planned_step)
    [point] = from_runs(tmp_path)
    # steps 1..20: 19 step intervals, four evaluations between the first and the last step event (after 4, 8, 12, 16;
    # the one after step 20 comes after the last step event)
    assert point.measured_step_s == pytest.approx(2 * planned_step)
    assert point.factor == pytest.approx(2.0)
    # and the evaluation time of a calibrated plan scales by the same factor
    data = DataShape(9500, 300, 600, "scan", val_rows=500)
    *_, plain = _plan(data, evals_per_epoch=4)
    *_, calibrated = _plan(data, calibration=[point], evals_per_epoch=4)
    assert calibrated.calibrated_from == ("evaluated",)
    assert calibrated.eval_s == pytest.approx(2 * plain.eval_s)


# ----------------------------------------------------------------------------- the advice


def test_the_advice_evaluates_per_epoch_and_says_why():
    a = advise(load_model("llama-3.1-8b"), planned("80GiB"), "chat", dataset_rows=100_000)
    assert a.config.train.evals_per_epoch == EVALS_PER_EPOCH and a.config.train.eval_steps is None
    assert a.statuses["train.evals_per_epoch"] == "derived"
    assert "does not grow with the data" in a.reasons["train.evals_per_epoch"]
    # a cadence the user chose stays
    kept = advise(load_model("llama-3.1-8b"), planned("80GiB"), "chat", dataset_rows=100_000,
                  base=with_values(RunConfig(), {"train.eval_steps": 500}))
    assert kept.config.train.eval_steps == 500 and kept.config.train.evals_per_epoch is None
