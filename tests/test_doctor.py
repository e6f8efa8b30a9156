"""The run doctor: each diagnosis fires on a stream that has the problem and stays quiet on its
near miss; real tiny runs provoked into failures fire the right code; `rankwise doctor`.

Synthetic streams are written as the worker writes them (checked by the event classes) and
read back through the real reader (`parse_line`: a NaN loss arrives as a step without one),
so the doctor sees exactly what it sees on a real log."""
from __future__ import annotations

import json
import math
import random
import re
import subprocess
from pathlib import Path

import pytest

from rankwise.advisor import doctor
from rankwise.trainer.events import build, parse_line, typed

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ building streams


def ev(type_: str, **fields) -> dict:
    build(type_, **fields)  # the worker could write it
    return {"type": type_, "time": 1.0, **fields}


def read(events: list[dict]) -> list[dict]:
    """Through the real reader, as `rankwise doctor` reads a log."""
    return [e for e in (parse_line(json.dumps(x)) for x in events) if e is not None]


def noisy(values, sigma: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [v + rng.gauss(0.0, sigma) for v in values]


def decay(n: int, start: float = 3.0, floor: float = 1.0, rate: float = 0.08) -> list[float]:
    """A healthy curve: fast fall, then levelling off."""
    return [floor + (start - floor) * math.exp(-rate * i) for i in range(n)]


def stream(losses, *, grads=None, rates=None, peaks=None, lrs=None, evals=(), ended=True, device="cuda",
           start_extra=None, max_steps=None, per_epoch=None) -> list[dict]:
    n = len(losses)
    max_steps = max_steps or n
    out = [ev("start", run_id="x", pid=123, model="m", method="lora", device=device, max_steps=max_steps,
              **(start_extra or {}))]
    evals = dict(evals)
    for i, loss in enumerate(losses, start=1):
        out.append(ev("step", step=i, max_steps=max_steps, loss=loss,
                      grad_norm=grads[i - 1] if grads else 1.0,
                      lr=lrs[i - 1] if lrs else 2e-4,
                      tokens_per_s=rates[i - 1] if rates else 1000.0,
                      peak_mem_bytes=peaks[i - 1] if peaks else 10 << 30,
                      **({"epoch": round(i / per_epoch, 4)} if per_epoch else {})))  # HF's fractional epoch
        if i in evals:
            out.append(ev("eval", step=i, eval_loss=evals[i]))
    if ended:
        out.append(ev("end", status="finished", step=n, final_loss=losses[-1]))
    return read(out)


def codes(events, **kw) -> dict[str, doctor.Diagnosis]:
    return {d.code: d for d in doctor.diagnose(events, **kw)}


HEALTHY = noisy(decay(60), 0.03)
FLAT_NOISE = 0.15


def _evals_over(train: list[float], evals: dict[int, float]) -> list[dict]:
    return stream(train, evals=evals.items())


def _with(values: list[float], at: int, value: float) -> list[float]:
    out = list(values)
    out[at - 1] = value
    return out


def _adapters(unused: dict) -> list[dict]:
    """A healthy stream with the worker's `adapters` event (trainer/callbacks.py AdapterUse) at step 3."""
    return stream(HEALTHY) + read([ev("adapters", step=3, adapters=8, unused=unused)])


# Each row: (code, severity when it fires, the stream that has the problem, its near miss).
CASES = {
    "loss-nan": (
        "error",
        lambda: stream(_with(HEALTHY, 30, math.nan)),
        lambda: stream(_with(HEALTHY, 30, 40.0)),  # huge but finite: a spike, not a NaN
    ),
    "loss-nan/grad": (
        "error",
        lambda: stream(HEALTHY, grads=_with([1.0] * 60, 30, math.inf)),
        lambda: stream(HEALTHY, grads=_with([1.0] * 60, 30, 1e6)),
    ),
    "loss-zero-masked": (
        "error",
        lambda: stream([0.0] * 20),
        lambda: stream(decay(40, start=2.0, floor=0.0, rate=0.3)),  # reaches ~0 by memorizing, not from the start
    ),
    "loss-zero-masked/share": (
        "warning",  # a few tokens still trained: error only when none is
        lambda: stream(HEALTHY, start_extra={"train_tokens": 10_000, "supervised_tokens": 50}),
        lambda: stream(HEALTHY, start_extra={"train_tokens": 10_000, "supervised_tokens": 200}),
    ),
    "loss-flat": (
        "warning",
        lambda: stream(noisy([3.0] * 30, FLAT_NOISE)),
        lambda: stream(noisy([3.0 - 0.03 * i for i in range(30)], FLAT_NOISE)),  # falls 0.9: a slow but real fall
    ),
    "loss-flat/warmup": (
        "warning",
        lambda: stream(noisy([3.0] * 30, FLAT_NOISE), lrs=[2e-4 * min(1.0, (i + 1) / 10) for i in range(30)]),
        # still warming up: only 8 of the logged steps ran at >= half the peak lr
        lambda: stream(noisy([3.0] * 30, FLAT_NOISE), lrs=[2e-4 * min(1.0, (i + 1) / 40) for i in range(30)]),
    ),
    "loss-spikes": (
        "warning",
        lambda: stream(_with(HEALTHY, 40, 3.0)),  # ~2.6x the band, far beyond the noise
        lambda: stream(_with(HEALTHY, 40, HEALTHY[39] * 1.15)),
    ),
    "loss-spikes/early": (
        "warning",
        lambda: stream([2.5, 3.4, 7.7, 10.2] + [5.0] * 16),  # demo-cpu at lr 5
        lambda: stream([2.5, 3.4, 4.6, 3.3] + decay(16, start=3.0)),  # a rough start, under twice its band
    ),
    "grad-explosion": (
        "warning",
        lambda: stream(HEALTHY, grads=_with(noisy([1.0] * 60, 0.1), 30, 15.0)),
        lambda: stream(HEALTHY, grads=_with(noisy([1.0] * 60, 0.1), 30, 5.0)),  # demo-cpu has such jumps
    ),
    "grad-explosion/growth": (
        "warning",
        lambda: stream(HEALTHY, grads=noisy([1.0] * 30, 0.1) + [4.0, 4.5, 5.0] + [1.0] * 27),
        lambda: stream(HEALTHY, grads=noisy([1.0] * 30, 0.1) + [4.0, 4.5] + [1.0] * 28),
    ),
    "overfitting": (
        "warning",
        lambda: _evals_over(decay(40), {8: 2.0, 16: 1.6, 24: 1.5, 32: 1.56, 40: 1.62}),
        lambda: _evals_over(decay(40), {8: 2.0, 16: 1.6, 24: 1.5, 32: 1.56, 40: 1.55}),  # one rise, then down
    ),
    "gap-widening": (
        "info",
        lambda: _evals_over(decay(40, floor=0.5), {10: 1.5, 20: 1.45, 30: 1.44, 40: 1.44}),
        lambda: _evals_over(decay(40, floor=1.2), {10: 1.5, 20: 1.45, 30: 1.44, 40: 1.44}),  # eval under train
    ),
    "underfitting": (
        "info",
        lambda: stream(noisy([3.0 - 0.04 * i for i in range(40)], 0.03)),
        lambda: stream(noisy(decay(40, rate=0.2), 0.03)),  # levelled off
    ),
    "underfitting/running": (
        "info",
        lambda: stream(noisy([3.0 - 0.04 * i for i in range(40)], 0.03)),
        lambda: stream(noisy([3.0 - 0.04 * i for i in range(40)], 0.03), ended=False, max_steps=100),
    ),
    "throughput-drop": (
        "warning",
        lambda: stream(HEALTHY, rates=noisy([1000.0] * 50, 50) + [400.0] * 10),
        lambda: stream(HEALTHY, rates=noisy([1000.0] * 50, 50) + [600.0] * 10),
    ),
    "throughput-drop/cpu": (
        "info",  # a CPU's rate follows whatever else the machine runs
        lambda: stream(HEALTHY, rates=noisy([1000.0] * 50, 50) + [400.0] * 10, device="cpu"),
        lambda: stream(HEALTHY, rates=noisy([1000.0] * 50, 50) + [600.0] * 10, device="cpu"),
    ),
    "memory-creep": (
        "warning",
        lambda: stream(HEALTHY, peaks=[int((10 + 0.05 * i) * 2**30) for i in range(60)]),
        # the longest batch arrives once (+20%), then the peak stays: no climb
        lambda: stream(HEALTHY, peaks=[10 << 30] * 40 + [12 << 30] * 20),
    ),
    "adapter-unused": (
        "warning",
        lambda: _adapters({"dt_proj": [4, 4]}),  # every dt_proj adapter: the forward reads dt_proj.weight bare
        lambda: _adapters({}),  # every adapter got its gradient
    ),
    "adapter-unused/experts": (
        "info",  # some of many: experts a few batches did not route to, or a layer that bypasses them
        lambda: _adapters({"w1": [2, 64]}),
        lambda: _adapters({"w1": [0, 64]}),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_fires_and_near_miss_is_quiet(case):
    code = case.split("/")[0]
    severity, bad, near = CASES[case]
    fired = codes(bad())
    assert code in fired, f"{code} did not fire; got {sorted(fired)}"
    assert fired[code].severity == severity
    d = fired[code]
    assert d.why and d.fix and d.message and d.evidence and isinstance(d.step, int)
    json.dumps(d.to_dict(), allow_nan=False)  # evidence is JSON as it is (no NaN)
    assert code not in codes(near()), f"{code} fired on its near miss"


def test_sweep_and_doctor_agree_on_a_log():
    """The sweep reads a trial's log into a curve plus the doctor's codes: its verdicts are the doctor's."""
    from rankwise.advisor import knee
    from rankwise.trainer.sweep_plan import curve_from_events

    for events, unstable, overfit in [
        (stream(HEALTHY, grads=_with([1.0] * 60, 30, 50.0)), True, False),  # grad-explosion: only the log shows it
        (stream(_with(HEALTHY, 30, math.nan)), True, False),  # a NaN the curve drops
        (_evals_over(decay(40), {8: 2.0, 16: 1.6, 24: 1.5, 32: 1.56, 40: 1.62}), False, True),
        (stream(HEALTHY), False, False),
    ]:
        train, evals = curve_from_events(events)
        codes = tuple(d.code for d in doctor.diagnose(events))
        r = knee.result(knee.Curve(16, "complete", tuple(train), tuple(evals), codes=codes), None)
        assert (not r.stable, r.gap_growing) == (unstable, overfit), codes
        assert (not r.stable) == bool(set(codes) & set(knee.UNSTABLE)) and r.gap_growing == ("overfitting" in codes)


def test_every_code_is_covered_and_nothing_else_is_produced():
    assert {c.split("/")[0] for c in CASES} == set(doctor.CODES)
    produced = set()
    for _, bad, near in CASES.values():
        produced |= set(codes(bad())) | set(codes(near()))
    assert produced <= set(doctor.CODES)
    assert len(doctor.RULES) == len(doctor.CODES)


def test_healthy_stream_is_quiet():
    curve = decay(60)
    evals = {s: curve[s - 1] + 0.1 for s in (10, 20, 30, 40, 50, 60)}  # eval follows train a little above
    assert codes(stream(HEALTHY, evals=evals.items(), grads=noisy([1.0] * 60, 0.2),
                        rates=noisy([1000.0] * 60, 100), peaks=[10 << 30] * 60)) == {}


def test_typed_events_read_the_same():
    events = stream(_with(HEALTHY, 40, 3.0), evals={8: 2.0, 16: 1.6, 24: 1.5, 32: 1.56, 40: 1.62}.items())
    as_typed = [t for t in map(typed, events) if t is not None]
    assert [d.to_dict() for d in doctor.diagnose(as_typed)] == [d.to_dict() for d in doctor.diagnose(events)]


def test_live_nan_is_seen_in_typed_events():
    """In the worker the emitted events still hold the NaN the reader would drop."""
    events = [build("start", max_steps=5)] + [build("step", step=i, loss=2.0 if i < 4 else math.nan)
                                             for i in range(1, 6)]
    (d,) = [d for d in doctor.diagnose(events) if d.code == "loss-nan"]
    assert d.step == 4 and d.evidence["loss"] == "nan" and d.evidence["last_finite_step"] == 3


def test_resumed_run_keeps_the_later_log():
    """Steps logged after the checkpoint a run resumed from are trained again; the new log wins."""
    first = stream(_with(HEALTHY[:30], 25, math.nan), ended=False, max_steps=60)
    resumed = [ev("start", run_id="x", pid=124, max_steps=60, resumed_from_step=20)]
    resumed += [ev("step", step=i, max_steps=60, loss=HEALTHY[i - 1], lr=2e-4, grad_norm=1.0) for i in range(21, 61)]
    assert "loss-nan" in codes(first)
    assert "loss-nan" not in codes(first + read(resumed))


def test_patches_use_the_run_config():
    from rankwise.advisor.config import RunConfig

    cfg = RunConfig.model_validate({"train": {"lr": 1e-8}, "lora": {"r": 8, "alpha": 16}})
    d = codes(stream(noisy([3.0] * 30, FLAT_NOISE)), cfg=cfg)["loss-flat"]
    assert d.patch == {"train.lr": 2e-4, "lora.alpha": 32.0}  # methods.py's LoRA lr, alpha doubled
    cfg = RunConfig.model_validate({"train": {"max_steps": 40}})
    d = codes(stream(noisy([3.0 - 0.04 * i for i in range(40)], 0.03)), cfg=cfg)["underfitting"]
    assert d.patch == {"train.max_steps": 80} and re.fullmatch(r"the loss was still falling at the end: [\d.]+ per "
                                                                r"100 steps over the last 13 logged steps \([\d.]+ on "
                                                                r"average\)", d.message), d.message
    cfg = RunConfig.model_validate({"train": {"lr": 5.0}})
    d = codes(stream(HEALTHY, grads=_with([1.0] * 60, 30, 50.0)), cfg=cfg)["grad-explosion"]
    assert d.patch == {"train.lr": 5e-4}  # halved, but no higher than the top of LoRA's usual band


def test_overfitting_from_the_first_evaluation_on_new_facts_names_the_split():
    """An eval loss never below its first value on a domain task with a random split: the split may hold
    facts no training row states (the advice's data.val_ratio reason); a later best, or a val_path, is plain
    overfitting."""
    from rankwise.advisor.config import RunConfig

    domain = RunConfig.model_validate({"task": "domain"})
    from_first = _evals_over(decay(40), {8: 2.0, 16: 2.1, 24: 2.2})
    d = codes(from_first, cfg=domain)["overfitting"]
    assert "data.val_path" in d.fix and "no training row states" in d.why
    assert "data.val_path" not in codes(from_first, cfg=RunConfig.model_validate({"task": "chat"}))["overfitting"].fix
    given = RunConfig.model_validate({"task": "domain", "data": {"val_path": "val.jsonl"}})
    assert "data.val_path" not in codes(from_first, cfg=given)["overfitting"].fix
    later = _evals_over(decay(40), {8: 2.0, 16: 1.6, 24: 1.5, 32: 1.56, 40: 1.62})
    assert "data.val_path" not in codes(later, cfg=domain)["overfitting"].fix


def test_overfitting_waits_an_epoch_of_training_off_the_best_whatever_the_eval_cadence():
    """Two rises within an epoch of the best are a local minimum's wobble when the loss falls again (the bench's
    runs of new facts, evaluated 4 times an epoch); rising on for an epoch is overfitting. A short run waits a
    quarter of itself. A log without the epoch (an older one) is judged by the rises alone, as before."""
    wobble = {35: 1.6, 40: 1.5, 45: 1.56, 50: 1.62, 55: 1.45, 60: 1.4}  # 20 steps an epoch, evaluated every 5
    assert doctor.read_run(stream(decay(80), evals=wobble.items(), per_epoch=20)).steps_per_epoch == 20
    assert "overfitting" not in codes(stream(decay(80), evals=wobble.items(), per_epoch=20))
    assert codes(stream(decay(80), evals=wobble.items()))["overfitting"].step == 50  # no epoch in the log
    rising = {35: 1.6, 40: 1.5, 45: 1.56, 50: 1.62, 55: 1.66, 60: 1.7}
    assert codes(stream(decay(80), evals=rising.items(), per_epoch=20))["overfitting"].step == 60  # an epoch on
    early = {10: 1.6, 15: 1.5, 20: 1.56, 25: 1.62}
    assert "overfitting" not in codes(stream(decay(80), evals=early.items(), per_epoch=20))
    # two epochs in all: a quarter of the run (10 steps) is the patience, and the run can still stop and keep its best
    assert codes(stream(decay(40), evals=early.items(), per_epoch=20))["overfitting"].step == 25


def test_recorded_diagnosis_is_kept():
    """A diagnosis the live run recorded stands even when the log alone does not show it again."""
    rec = {"type": "diagnosis", "time": 1.0, "code": "loss-nan", "severity": "error", "step": 7,
           "message": "the loss is NaN/Inf at step 7", "why": "w", "fix": "f", "evidence": {"loss": "nan"}}
    found = codes(stream(HEALTHY) + [rec])
    assert found["loss-nan"].step == 7 and doctor.worst(list(found.values())) == "error"
    # one the rules still see keeps the step it was first seen at, with the latest numbers
    rec = {**rec, "code": "loss-flat", "severity": "warning", "step": 12}
    found = codes(stream(noisy([3.0] * 30, FLAT_NOISE)) + [rec])
    assert found["loss-flat"].step == 12 and found["loss-flat"].evidence["steps"] == 30


def test_readme_lists_every_code():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("### `rankwise doctor RUN")
    section = readme[start:readme.index("\n### ", start + 1)]
    listed = set(re.findall(r"^- `([a-z-]+)`", section, re.M))
    assert listed == set(doctor.CODES)


# ------------------------------------------------------------------ rankwise doctor


def _write_run(runs: Path, rid: str, events: list[dict]) -> Path:
    d = runs / rid
    d.mkdir(parents=True)
    (d / "config.yaml").write_text("name: x\nmodel:\n  name: llama-3.2-1b\nlora:\n  r: 8\n  alpha: 16\n"
                                   "train:\n  lr: 1.0e-8\n")
    (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return d


def test_cli_json_and_exit_codes(tmp_path, rankwise_cmd):
    runs = tmp_path / "runs"
    _write_run(runs, "flat-1", stream(noisy([3.0] * 30, FLAT_NOISE)))
    _write_run(runs, "nan-1", stream(_with(HEALTHY, 30, math.nan)))
    _write_run(runs, "ok-1", stream(HEALTHY))

    def doctor_cli(*args):
        return subprocess.run(rankwise_cmd + ["doctor", "--runs-dir", str(runs), *args], capture_output=True,
                              text=True, timeout=60)

    out = doctor_cli("flat", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["run"] == "flat-1" and data["status"] == "finished"
    (d,) = data["diagnoses"]
    assert d["code"] == "loss-flat" and d["patch"] == {"train.lr": 2e-4, "lora.alpha": 32.0}
    out = doctor_cli("nan-1", "--json")
    assert out.returncode == 3 and json.loads(out.stdout)["diagnoses"][0]["code"] == "loss-nan"
    out = doctor_cli("nan-1")
    assert out.returncode == 3 and "loss-nan at step 30" in out.stdout and "fix:" in out.stdout
    out = doctor_cli("ok-1")
    assert out.returncode == 0 and "no diagnoses" in out.stdout
    out = doctor_cli("nope")
    assert out.returncode == 2 and "no run 'nope'" in out.stderr and "Traceback" not in out.stderr


# ------------------------------------------------------------------ real tiny runs


def _diagnosed_run(tmp_path, *args, preset="demo-cpu", quick=False):
    """Train, then ask `rankwise doctor RUN --json` as a user would: {code: diagnosis dict}."""
    from train_helpers import only_run, tail_log, train

    runs = tmp_path / "runs"
    out = train(runs, *args, preset=preset, quick=quick)
    assert out.returncode == 0, out.stderr[-3000:]
    run = only_run(runs)
    return _diagnosed(run), run, tail_log(run)


def _diagnosed(run):
    from train_helpers import CLI, env

    out = subprocess.run(CLI + ["doctor", run.name, "--runs-dir", str(run.parent), "--json"], capture_output=True,
                         text=True, timeout=120, env=env())
    assert out.returncode in (0, 3), out.stderr
    return {d["code"]: d for d in json.loads(out.stdout)["diagnoses"]}


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["demo-cpu", "demo-cpu-qlora"])
def test_demo_preset_at_its_settings_is_healthy(tmp_path, preset, request):
    if preset == "demo-cpu-qlora":  # the session's run of it at its settings (conftest.py; test_train, test_chat)
        from train_helpers import tail_log

        run = request.getfixturevalue("qlora_run")[0]
        found, log = _diagnosed(run), tail_log(run)
    else:
        found, run, log = _diagnosed_run(tmp_path, preset=preset)
    loud = {c: d["message"] for c, d in found.items() if d["severity"] != "info"}
    assert loud == {}, log


SHORT = ["--set", "train.logging_steps=1", "--set", "train.micro_batch=4", "--set", "train.save_steps=100"]


@pytest.mark.slow
def test_very_high_lr_spikes_and_explodes(tmp_path):
    found, _, log = _diagnosed_run(tmp_path, "--force", "--set", "train.lr=5", "--set", "train.max_steps=8", *SHORT)
    assert {"loss-spikes", "grad-explosion"} <= set(found), (sorted(found), log)


@pytest.mark.slow
def test_lr_near_zero_is_flat(tmp_path):
    found, _, log = _diagnosed_run(tmp_path, "--set", "train.lr=1e-8", "--set", "train.max_steps=16", *SHORT)
    assert "loss-flat" in found, (sorted(found), log)
    assert found["loss-flat"]["patch"]["train.lr"] == 2e-4  # from the run's config.yaml


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory):
    """Many epochs on a handful of rows (12, a third held out, an evaluation every 4 steps, up to 60 steps)
    with train.stop_on=[overfitting]: (run folder, the `rankwise train` process, `rankwise doctor RUN --json`)."""
    from train_helpers import CLI, env, only_run

    tmp_path = tmp_path_factory.mktemp("overfit")
    rows = (ROOT / "presets/assets/demo-chat.jsonl").read_text().splitlines()[:12]
    data = tmp_path / "few.jsonl"
    data.write_text("\n".join(rows) + "\n")
    runs = tmp_path / "runs"
    out = subprocess.run(CLI + ["train", "--preset", "demo-cpu", "--runs-dir", str(runs), "--set", f"data.path={data}",
                                "--set", "data.val_ratio=0.34", "--set", "train.max_steps=60", "--set",
                                "train.eval_steps=4", "--set", "train.save_steps=4", "--set", "train.logging_steps=2",
                                "--set", "train.micro_batch=4", "--set", "train.stop_on=[overfitting]"],
                         capture_output=True, text=True, timeout=600, env=env(), stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    run = only_run(runs)
    doctored = subprocess.run(CLI + ["doctor", run.name, "--runs-dir", str(runs), "--json"], capture_output=True,
                              text=True, timeout=120, env=env())
    assert doctored.returncode in (0, 3), doctored.stderr
    return run, out, json.loads(doctored.stdout)


@pytest.mark.slow
def test_many_epochs_on_a_handful_of_rows_overfit(overfit_run):
    """`rankwise doctor` reads it from the log afterwards (the run below, stopped once its live checkup saw it)."""
    from train_helpers import tail_log

    run, _, doctored = overfit_run
    found = {d["code"] for d in doctored["diagnoses"]}
    assert "overfitting" in found, (sorted(found), tail_log(run))


# ------------------------------------------------------------------ the live checkup (in the worker)


def _checkup(tmp_path, **train):
    from transformers import TrainerControl

    from rankwise.advisor.config import RunConfig
    from rankwise.trainer.checkup import Checkup, Watched
    from rankwise.trainer.events import EventSink, read_events

    sink = Watched(EventSink(tmp_path / "events.jsonl"))
    check = Checkup(sink, RunConfig.model_validate({"train": train}))
    sink.emit("start", max_steps=100)
    return sink, check, TrainerControl(), lambda: read_events(tmp_path / "events.jsonl")


def test_checkup_writes_each_diagnosis_once_and_stops_on_nan_without_a_save(tmp_path):
    sink, check, control, log = _checkup(tmp_path)
    for i, loss in enumerate(HEALTHY[:20], start=1):
        sink.emit("step", step=i, loss=loss, lr=2e-4, grad_norm=1.0)
        check.on_log(None, None, control)
    assert not control.should_training_stop and check.fired == set()
    sink.emit("step", step=21, loss=math.nan, lr=2e-4, grad_norm=math.nan)  # what the live process sees
    check.on_log(None, None, control)
    assert control.should_training_stop and not control.should_save  # NaN weights: nothing worth saving
    assert check.stopped.code == "loss-nan" and check.stopped.step == 21
    sink.emit("step", step=22, loss=math.nan, lr=2e-4)
    check.on_log(None, None, control)
    diag = [e for e in log() if e["type"] == "diagnosis"]
    assert [(d["code"], d["severity"], d["step"]) for d in diag] == [("loss-nan", "error", 21)]
    assert diag[0]["fix"] and diag[0]["evidence"]["loss"] == "nan"


def test_checkup_stop_on_saves_then_stops_and_nan_can_be_let_through(tmp_path):
    sink, check, control, _ = _checkup(tmp_path, stop_on=["loss-spikes"], stop_on_nan=False)
    for i, loss in enumerate(_with(HEALTHY, 40, 3.0)[:40], start=1):
        sink.emit("step", step=i, loss=loss, lr=2e-4, grad_norm=1.0)
        check.on_log(None, None, control)
        if i == 39:
            assert not control.should_training_stop
    assert control.should_training_stop and control.should_save and check.stopped.code == "loss-spikes"
    (tmp_path / "b").mkdir()
    sink, check, control, _ = _checkup(tmp_path / "b", stop_on_nan=False)
    sink.emit("step", step=1, loss=math.nan, lr=2e-4)
    check.on_log(None, None, control)
    assert "loss-nan" in check.fired and not control.should_training_stop


def test_checkup_of_a_resumed_run_sees_the_earlier_log(tmp_path):
    """A resumed run's doctor judges the whole run (a converged tail alone would look flat) and does not
    write a code the log already holds."""
    from rankwise.advisor.config import RunConfig
    from rankwise.trainer.checkup import Checkup, Watched
    from rankwise.trainer.events import EventSink

    before = stream(_with(HEALTHY[:40], 35, 3.0), ended=False, max_steps=60)
    before.append(ev("diagnosis", code="loss-spikes", severity="warning", step=35, message="m", fix="f"))
    sink = Watched(EventSink(tmp_path / "events.jsonl"), history=before)
    check = Checkup(sink, RunConfig())
    assert check.fired == {"loss-spikes"}
    sink.emit("start", max_steps=60, resumed_from_step=40)
    for i in range(41, 61):
        sink.emit("step", step=i, loss=HEALTHY[i - 1], lr=2e-4, grad_norm=1.0)
        check.on_log(None, None, __import__("transformers").TrainerControl())
    assert "loss-flat" not in check.fired  # the tail alone (steps 41-60) is nearly flat; the run is not
    assert "loss-flat" in codes(sink.kept[-21:])  # typed events, as the worker holds them
    assert not (tmp_path / "events.jsonl").read_text().count('"diagnosis"')


def test_checkup_history_is_bounded(tmp_path):
    from rankwise.trainer.checkup import FIRST_KEPT, RECENT_KEPT

    sink, check, _, _ = _checkup(tmp_path)
    for i in range(1, FIRST_KEPT + RECENT_KEPT + 200):
        sink.emit("step", step=i, loss=2.0, lr=2e-4)
    steps = [e.step for e in sink.kept if e.type == "step"]
    assert len(steps) == FIRST_KEPT + RECENT_KEPT
    assert steps[:FIRST_KEPT] == list(range(1, FIRST_KEPT + 1)) and steps[-1] == FIRST_KEPT + RECENT_KEPT + 199


def test_stop_on_takes_only_doctor_codes():
    from pydantic import ValidationError

    from rankwise.advisor.config import RunConfig

    assert RunConfig.model_validate({"train": {"stop_on": list(doctor.CODES)}}).train.stop_on == list(doctor.CODES)
    with pytest.raises(ValidationError, match="overfiting"):
        RunConfig.model_validate({"train": {"stop_on": ["overfiting"]}})


@pytest.mark.slow
def test_stop_on_overfitting_keeps_the_best_checkpoint(overfit_run):
    from train_helpers import summary

    run, out, doctored = overfit_run
    s = summary(run)
    evals = {e["step"]: e["eval_loss"] for e in read([json.loads(l) for l in (run / "events.jsonl").open()])
             if e["type"] == "eval"}
    assert s["stopped_by"]["code"] == "overfitting" and s["step"] == s["stopped_by"]["step"] < 60
    kept = s["adapter_from"]
    assert kept["eval_loss"] == min(evals.values()) and kept["step"] == min(evals, key=evals.get)
    assert (run / "adapter" / "adapter_model.safetensors").read_bytes() == \
        (Path(kept["checkpoint"]) / "adapter_model.safetensors").read_bytes()
    assert "diagnosis warning overfitting" in out.stdout  # the headless panel's plain lines
    assert doctored["stopped_by"] == s["stopped_by"]


@pytest.mark.slow
def test_responses_nearly_all_cut_fire_loss_zero_masked(tmp_path):
    """Prompts that fill max_seq_len leave one trained token per row: the doctor says the labels are masked,
    and `check --data` says which rows lose their response."""
    data = tmp_path / "long-prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{i:03d}" + "Q" * 124, "completion": " The answer."}) + "\n"
                            for i in range(16)))  # one byte-token each: 127 prompt tokens, then 1 of the answer
    found, _, log = _diagnosed_run(tmp_path, "--set", f"data.path={data}", "--set", "data.val_ratio=0",
                                   "--set", "train.max_seq_len=128", "--set", "train.max_steps=4", *SHORT)
    assert found["loss-zero-masked"]["severity"] == "warning", (sorted(found), log)
    assert found["loss-zero-masked"]["evidence"]["trained_share"] < 0.01


# ------------------------------------------------------------------ the Run screen (Pilot)


@pytest.fixture
def anyio_backend():
    return "asyncio"  # Textual runs on asyncio


@pytest.mark.anyio
async def test_run_screen_shows_diagnoses_newest_first_with_the_fix(tmp_path):
    import io

    from rich.console import Console
    from textual.widgets import Static
    from tui_support import NO_GPU, NOW, SMALL_CATALOG, fake_run

    from rankwise.trainer.events import EventSink
    from rankwise.tui.app import build_app

    run = fake_run(tmp_path / "runs", "flat-20260101-000000", steps=5, finished=False)
    sink = EventSink(run / "events.jsonl")  # what the worker's checkup writes
    flat = doctor.diagnose(stream(noisy([3.0] * 30, FLAT_NOISE)))
    spikes = doctor.diagnose(stream(_with(HEALTHY, 40, 3.0)))
    for d in flat + spikes:  # in the order a run would find them
        sink.emit("diagnosis", code=d.code, severity=d.severity, step=d.step, message=d.message, why=d.why,
                  fix=d.fix, evidence=d.evidence, patch=d.patch)
    sink.emit("end", status="finished", step=5)
    sink.close()
    app = build_app(hardware=NO_GPU, runs_dir=tmp_path / "runs", catalog=SMALL_CATALOG, clock=lambda: NOW)
    async with app.run_test(size=(120, 40)) as pilot:
        app.attach(run)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        screen = pilot.app.screen
        assert type(screen).__name__ == "RunScreen" and screen.view.status == "finished"
        assert [d.code for d in screen.view.current_diagnoses] == ["loss-spikes", "loss-flat"]  # newest first
        out = io.StringIO()
        Console(file=out, width=116, color_system=None).print(screen.query_one("#panel", Static).content)
        text = out.getvalue()
        assert "diagnoses (rankwise doctor)" in text
        assert text.index("loss-spikes (step 40)") < text.index("loss-flat (step 30)")
        assert "fix: raise train.lr or lora.alpha" in text
