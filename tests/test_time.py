"""The time, cost, host RAM and disk planner (advisor/time.py, calibration.py, host_plan.py, pricing.py).

Hardware and hosts are data; the calibration run is a real run directory written through the
event classes (trainer/events.py) and rundir's config writer, as the worker writes one.
"""
import json
import subprocess
import sys
from dataclasses import replace

import pytest

from rankwise.advisor.calibration import from_runs
from rankwise.advisor.config import RunConfig, with_values
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.fit import assess
from rankwise.advisor.forecast import forecast, sweep_cost
from rankwise.advisor.hardware import Host, planned, speed_of
from rankwise.advisor.host_plan import CHECKPOINT_EXTRA, PROCESS_GPU, SHARD_BYTES, plan_host
from rankwise.advisor.model import load_model
from rankwise.advisor.pricing import price_for
from rankwise.advisor.time import DataShape, micro_batch_seconds, plan_time, rate
from rankwise.advisor.units import GIB
from rankwise.trainer.events import EventSink
from rankwise.trainer.rundir import SUMMARY, write_json

A100 = lambda: planned(gpu="A100-80GB")  # noqa: E731
HOST = Host(16, 256 * GIB, 200 * GIB, 2000 * GIB, "/runs")


def cfg_of(**patch) -> RunConfig:
    base = {"method": "lora", "train.max_steps": 100, "train.micro_batch": 1, "train.grad_accum": 8,
            "train.max_seq_len": 2048, "data.packing": True}
    return with_values(RunConfig(), {**base, **patch})


def planned_time(model="llama-3.1-8b", hw=A100, attention=None, calibration=(), **patch):
    spec, cfg, h = load_model(model), cfg_of(**patch), hw()
    fit = assess(spec, cfg, h)
    return plan_time(spec, cfg, fit, h, calibration=calibration, attention=attention)


def test_twice_the_steps_twice_the_time():
    one, two = planned_time(**{"train.max_steps": 100}), planned_time(**{"train.max_steps": 200})
    assert two.step_s == one.step_s
    assert two.train_s == pytest.approx(2 * one.train_s)
    assert two.tokens == 2 * one.tokens
    assert two.setup_s == one.setup_s  # loading does not grow with the steps


def test_epochs_over_scanned_rows():
    """steps from epochs: ceil(rows / (micro_batch · GPUs)) // grad_accum per epoch, as the HF Trainer counts."""
    spec, h = load_model("llama-3.1-8b"), A100()
    cfg = with_values(RunConfig(), {"method": "lora", "train.micro_batch": 2, "train.grad_accum": 4, "train.epochs": 3})
    fit = assess(spec, cfg, h)
    t = plan_time(spec, cfg, fit, h, DataShape(1000, 300, 600, "scan"))
    assert t.steps == 3 * (500 // 4)
    assert t.tokens == int(3 * 1000 * 300)
    unknown = plan_time(spec, cfg, fit, h)  # epochs over data nobody scanned: no total
    assert unknown.steps is None and unknown.total_s is None and unknown.step_s > 0


def _per_token(L: int, attention: str) -> float:
    t = planned_time(attention=attention, **{"train.max_seq_len": L})
    return t.step_s / (L * 8)


def test_long_sequences_superlinear_with_eager_about_linear_with_sdpa():
    sdpa = _per_token(16384, "sdpa") / _per_token(1024, "sdpa")
    eager = _per_token(16384, "eager") / _per_token(1024, "eager")
    assert 1.0 < sdpa < 1.5  # the causal kernel's quadratic FLOPs are a fraction of an 8B's linears
    assert eager > 2.0  # the L×L scores through memory dominate (beside the linear activation traffic)
    assert eager > 2 * sdpa


def test_checkpointing_adds_the_recompute():
    spec, h = load_model("llama-3.1-8b"), A100()
    on, off = cfg_of(), cfg_of(**{"train.grad_checkpointing": False})
    fon, foff = assess(spec, on, h), assess(spec, off, h)
    a = micro_batch_seconds(spec, fon, _device(h), 2048)
    b = micro_batch_seconds(spec, foff, _device(h), 2048)
    # by hand: the recomputed forward is 2 FLOPs per decoder-layer weight per token (lm_head is
    # not checkpointed), 2 per adapter weight, over the device's sustained FLOP/s
    body = sum(l.params for l in spec.linears if l.family != "lm_head")
    adapter = spec.lora_params("standard", 16)
    from rankwise.advisor.speeds import GPU_HF

    sustained = 312e12 * GPU_HF.efficiency
    assert a["compute"] - b["compute"] == pytest.approx(2048 * (2 * body + 2 * adapter) / sustained)
    ratio = planned_time().step_s / planned_time(**{"train.grad_checkpointing": False}).step_s
    # a frozen base's forward + backward is ~4N FLOPs a token (no weight gradients), so recomputing
    # the forward (2N) adds up to half; the output head and the per-step costs do not recompute
    assert 1.35 < ratio < 1.5


def _device(h):
    from rankwise.advisor.speeds import Device

    return Device.of(h)


def test_quantized_base_is_slower_and_faster_gpu_is_faster():
    assert planned_time(method="qlora").step_s > planned_time().step_s
    assert planned_time(hw=lambda: planned(gpu="H100")).step_s < planned_time().step_s
    assert speed_of("NVIDIA A100-SXM4-80GB")[0] == "A100-80GB"
    assert speed_of("NVIDIA GeForce RTX 4090")[0] == "RTX4090"
    assert speed_of("declared 24 GiB GPU")[0] is None
    # a model is matched as whole words: an L40 is not the L4, an RTX A4000 not the A40
    for nvml, table in (("NVIDIA L40", "L40"), ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"),
                        ("NVIDIA RTX A4000", "RTXA4000"), ("NVIDIA A40", "A40"), ("NVIDIA H100 NVL", "H100-94GB"),
                        ("NVIDIA RTX 6000 Ada Generation", "RTX6000ADA"), ("Tesla V100-SXM2-16GB", "V100-16GB")):
        assert speed_of(nvml)[0] == table, nvml
    assert speed_of("NVIDIA GeForce RTX 4080")[0] == "RTX4080"
    assert speed_of("NVIDIA GeForce RTX 4070 Ti")[0] is None  # not in the table: planned as the default card, said


# ----------------------------------------------------------------------------- calibration


def _record_run(root, run_id, cfg: RunConfig, step_s: float, device_name: str, steps=20, method="lora",
                device="cuda"):
    """A finished run dir as the worker writes it: config.yaml, events through EventSink, summary.json."""
    d = root / run_id
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    sink = EventSink(d / "events.jsonl")
    t0 = 1_800_000_000.0
    sink.emit("start", time=t0, run_id=run_id, model=cfg.model.name, method=method, device=device,
              max_steps=steps, device_name=device_name)
    for s in range(2, steps + 1, 2):
        sink.emit("step", time=t0 + 5 + s * step_s, step=s, max_steps=steps, loss=1.0)
    sink.emit("end", time=t0 + 10 + steps * step_s, status="finished", step=steps)
    sink.close()
    write_json(d / SUMMARY, {"status": "finished", "step": steps, "method": method, "device": device,
                             "runtime_s": 12 + steps * step_s, "micro_batch": cfg.train.micro_batch,
                             "grad_accum": cfg.train.grad_accum})
    return d


def test_calibration_moves_the_estimate_toward_a_recorded_run(tmp_path):
    base = planned_time()
    cfg = cfg_of(**{"model.name": "llama-3.1-8b"})
    _record_run(tmp_path, "slow-a100", cfg, 3 * base.step_s, "NVIDIA A100-SXM4-80GB")
    _record_run(tmp_path, "other-gpu", cfg, 10 * base.step_s, "NVIDIA H100 80GB HBM3")  # not this GPU
    _record_run(tmp_path, "other-method", cfg_of(**{"model.name": "llama-3.1-8b", "method": "qlora"}),
                10 * base.step_s, "NVIDIA A100-SXM4-80GB", method="qlora")
    points = from_runs(tmp_path)
    assert {p.run_id for p in points} == {"slow-a100", "other-gpu", "other-method"}
    cal = planned_time(calibration=points)
    assert cal.calibrated_from == ("slow-a100",)
    assert cal.step_s == pytest.approx(3 * base.step_s, rel=1e-6)  # this very shape: the measurement itself
    assert cal.efficiency == pytest.approx(base.efficiency / 3, rel=1e-6)
    assert any("calibrated ×3.00" in a and "slow-a100" in a for a in cal.assumptions)
    assert cal.setup_s == pytest.approx(12, abs=0.01)  # runtime minus its steps
    # a similar shape (70B is too far from 8B; a 3B is within 4×) borrows the same correction
    near = planned_time(model="llama-3.2-3b", calibration=points)
    far = planned_time(model="llama-3.1-70b", calibration=points)
    assert near.calibrated_from == ("slow-a100",) and far.calibrated_from == ()
    assert base.calibrated_from == ()


def test_calibration_skips_runs_that_cannot_teach(tmp_path):
    cfg = cfg_of(**{"model.name": "llama-3.1-8b"})
    d = _record_run(tmp_path, "failed", cfg, 1.0, "NVIDIA A100-SXM4-80GB")
    write_json(d / SUMMARY, {"status": "failed", "step": 3, "device": "cuda"})
    _record_run(tmp_path, "no-gpu-name", cfg, 1.0, None)
    (tmp_path / "not-a-run").mkdir()
    assert from_runs(tmp_path) == [] and from_runs(tmp_path / "missing") == []


# ----------------------------------------------------------------------------- host RAM and disk


def test_7b_merge_ram_and_disk_by_hand():
    spec = load_model("llama-2-7b")
    assert spec.total_params == 6_738_415_616  # Llama 2 7B's published parameter count
    # defaults: r 16 on q,k,v,o; save_total_limit 2
    cfg = with_values(RunConfig(), {"method": "lora", "model.name": "llama-2-7b"})
    hw = planned(gpu="A100-80GB", host=HOST)
    h = plan_host(spec, cfg, assess(spec, cfg, hw), hw)
    adapter_params = 32 * 4 * 16 * (4096 + 4096)  # layers × q,k,v,o × r × (d_in + d_out)
    assert adapter_params == 16_777_216
    assert h.adapter_bytes == 4 * adapter_params  # fp32
    assert h.merged_bytes == 2 * 6_738_415_616  # the merged model in 16-bit
    # merge.py on a GPU machine: the base in bf16 on the CPU + the adapter + one 5 GB shard being written
    assert h.merge_bytes == PROCESS_GPU + 13_476_831_232 + 67_108_864 + SHARD_BYTES
    assert h.load_bytes == PROCESS_GPU + SHARD_BYTES  # low-memory loading: one shard at a time
    assert h.load_full_bytes == PROCESS_GPU + 2 * 13_476_831_232
    # a checkpoint: adapter (fp32) + AdamW's two fp32 moments + the small files; three on disk at once
    assert h.checkpoint_bytes == 67_108_864 + 8 * adapter_params + CHECKPOINT_EXTRA
    assert h.checkpoints == 3 and h.disk_bytes == 3 * h.checkpoint_bytes + 67_108_864
    assert not h.ram_short and not h.disk_short


def test_small_host_raises_the_red_flags():
    from rankwise.advisor.redflags import check

    spec = load_model("llama-2-7b")
    cfg = with_values(RunConfig(), {"method": "lora", "model.name": "llama-2-7b", "train.lr": 2e-4,
                                    "train.save_total_limit": 2})
    tiny = replace(planned(gpu="A100-80GB"), host=Host(4, 8 * GIB, 4 * GIB, GIB // 2, "/small"), source="probe")
    got = {f.code: f for f in check(cfg, spec, tiny)}
    assert got["host-ram-short"].severity == "error" and "GiB available" in got["host-ram-short"].message
    assert got["disk-short"].severity == "error" and "/small" in got["disk-short"].message
    assert got["disk-short"].patch == {"train.save_total_limit": 1}
    roomy = replace(tiny, host=HOST)
    assert not {"host-ram-short", "disk-short"} & {f.code for f in check(cfg, spec, roomy)}
    declared = planned(gpu="A100-80GB", host=tiny.host)  # planning for another machine: this host is not judged
    assert not {"host-ram-short", "disk-short"} & {f.code for f in check(cfg, spec, declared)}


def test_sharded_save_gathers_the_full_model():
    spec = load_model("llama-3.1-70b")
    cfg = with_values(RunConfig(), {"method": "qlora", "model.name": "llama-3.1-70b", "distributed.gpus": 2,
                                    "distributed.strategy": "fsdp"})
    hw = planned(gpu="A100-80GB", gpus=2, host=HOST)
    h = plan_host(spec, cfg, assess(spec, cfg, hw), hw)
    assert h.save_bytes == 2 * PROCESS_GPU + 2 * spec.total_params  # two processes; rank 0 gathers the model
    assert h.train_bytes == 2 * PROCESS_GPU


def test_each_fsdp_rank_reads_a_16_bit_base_into_host_ram():
    """transformers 5.24 reads the weights on every rank (tests/test_host_load.py measures it): a 16-bit 70B over
    8 GPUs of one machine needs 8 x 141 GB of host RAM to load; a 4-bit base streams shard by shard to each GPU."""
    spec = load_model("llama-3.1-70b")
    hw = planned(gpu="A100-80GB", gpus=8, host=HOST)
    got = {}
    for method in ("lora", "qlora"):
        cfg = with_values(RunConfig(), {"method": method, "model.name": "llama-3.1-70b", "distributed.gpus": 8,
                                        "distributed.strategy": "fsdp"})
        got[method] = plan_host(spec, cfg, assess(spec, cfg, hw), hw)
    assert got["lora"].load_bytes == 8 * (PROCESS_GPU + 2 * spec.total_params)
    assert got["qlora"].load_bytes == 8 * (PROCESS_GPU + SHARD_BYTES)
    assert any("every rank reads the whole 16-bit model" in n for n in got["lora"].notes)


def test_zero3_reads_a_16_bit_base_on_rank_0_only():
    """Under zero.Init (the worker builds TrainingArguments first) transformers 5.24 reads the checkpoint on rank 0
    and puts the others' state dict on meta: one whole 16-bit model on the host, not one per rank."""
    spec = load_model("llama-3.1-70b")
    hw = planned(gpu="A100-80GB", gpus=8, host=HOST)
    cfg = with_values(RunConfig(), {"method": "lora", "model.name": "llama-3.1-70b", "distributed.gpus": 8,
                                    "distributed.strategy": "deepspeed"})
    h = plan_host(spec, cfg, assess(spec, cfg, hw), hw)
    b16 = 2 * spec.total_params
    assert 8 * PROCESS_GPU + b16 <= h.load_bytes < 8 * PROCESS_GPU + b16 + 8
    assert any("rank 0 reads the whole 16-bit model" in n for n in h.notes)


# ----------------------------------------------------------------------------- cost


def test_cost_from_price_user_config_and_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert price_for("A100-80GB", 2.5) == (2.5, "--price")
    assert price_for("A100-80GB")[0] == 1.79  # the default list price
    assert price_for("cpu") == (None, "no GPU")
    (tmp_path / "rankwise").mkdir()
    (tmp_path / "rankwise" / "config.yaml").write_text("prices:\n  NVIDIA A100-SXM4-80GB: 1.10\n")
    assert price_for("A100-80GB")[0] == 1.10
    (tmp_path / "rankwise" / "config.yaml").write_text("prices: [1, 2]\n")
    with pytest.raises(RankwiseError, match="must be a mapping"):
        price_for("A100-80GB")
    (tmp_path / "rankwise" / "config.yaml").write_text("prices: {H100: !!python/object:os.system ls}\n")
    with pytest.raises(RankwiseError, match="not valid YAML"):  # safe_load refuses objects
        price_for("A100-80GB")
    with pytest.raises(RankwiseError, match="negative"):
        price_for("A100-80GB", -1.0)


def test_cost_of_a_run_and_of_a_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    spec = load_model("llama-3.1-8b")
    hw = planned(gpu="A100-80GB", gpus=2, host=HOST)
    trials = []
    for r in (8, 16, 32):
        cfg = cfg_of(**{"lora.r": r, "distributed.gpus": 2})
        trials.append(forecast(spec, cfg, assess(spec, cfg, hw), hw, price=2.0, runs_dir=tmp_path))
    for f in trials:
        assert f.time.cost == pytest.approx(2.0 * 2 * f.time.total_s / 3600)
    total = sweep_cost(trials)
    assert total["trials"] == 3 and total["cost"] == pytest.approx(sum(f.time.cost for f in trials), abs=0.01)


# ----------------------------------------------------------------------------- where it shows


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "rankwise.tui.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120, env={**__import__("os").environ, "XDG_CONFIG_HOME": str(cwd)})


@pytest.mark.parametrize("command", [["estimate", "--model", "llama-3.1-8b"],
                                     ["advise", "--model", "llama-3.1-8b", "--task", "chat", "--samples", "2000"]])
def test_json_has_time_and_host(command, tmp_path):
    p = cli(*command, "--gpu", "A100-80GB", "--price", "2.5", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    for key in ("tokens_per_s", "step_s", "total_s", "tokens", "calibrated_from", "cost"):
        assert key in d["time"], key
    assert d["time"]["tokens_per_s"] > 0 and d["time"]["calibrated_from"] == []
    assert d["host"]["ram_gib"] > 0 and d["host"]["disk_gib"] > 0
    if d["time"]["total_s"] is not None:
        assert d["time"]["cost"]["total"] == pytest.approx(2.5 * d["time"]["total_s"] / 3600, abs=0.01)
    text = cli(*command, "--gpu", "A100-80GB", cwd=tmp_path)
    assert "time " in text.stdout and "host RAM" in text.stdout and "disk" in text.stdout


def test_panel_eta_planned_before_steps_measured_after():
    from rankwise.trainer.events import Start, Step
    from rankwise.tui.runview import RunView

    view = RunView()
    view.update(Start(time=100.0, max_steps=10, planned_s=50.0))
    assert view.eta() == 50.0 and view.eta_planned
    view.update(Step(time=110.0, step=2, max_steps=10, eta_s=40.0))
    assert view.eta() == 40.0 and not view.eta_planned
    plain = RunView()
    plain.update(Start(time=100.0, max_steps=10))
    assert plain.eta() is None and not plain.eta_planned


@pytest.fixture
def anyio_backend():
    return "asyncio"  # Textual runs on asyncio


@pytest.mark.anyio
async def test_advice_screen_shows_the_line_and_learns_from_a_run(tmp_path, monkeypatch):
    """The Advice screen's line under the bars (Pilot), calibrated once an L4 run of the shape is recorded."""
    from textual.widgets import Static
    from tui_support import L4, NOW, SMALL_CATALOG, gpu_presets, text_of

    from rankwise.tui.app import build_app

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for method in ("lora", "qlora"):  # whichever method the advice picks, one run has its shape
        cfg = with_values(RunConfig(), {"model.name": "llama-3.1-8b", "method": method, "train.max_seq_len": 2048})
        _record_run(tmp_path / "runs", f"l4-{method}", cfg, 9.0, "NVIDIA L4", method=method)
    for runs, calibrated in ((tmp_path / "none", False), (tmp_path / "runs", True)):
        app = build_app(hardware=L4, runs_dir=runs, catalog=SMALL_CATALOG, presets=gpu_presets(), clock=lambda: NOW)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press(*"llama-3.1-8b", "ctrl+n")
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            mem = text_of(pilot.app.screen.query_one("#mem", Static))
            assert "time " in mem and "tok/s" in mem and "host RAM" in mem and "disk" in mem
            assert ("calibrated" in mem) is calibrated, mem


def test_train_prints_the_plan_before_launch(tmp_path, capsys):
    from rankwise.advisor.loader import load_config
    from rankwise.advisor.presets import resolve_preset
    from rankwise.tui.commands.train import _plan_line

    _plan_line(load_config(resolve_preset("demo-cpu")), tmp_path / "runs")
    err = capsys.readouterr().err
    assert err.startswith("plan: peak ~") and "60 steps" in err and "host RAM" in err and "disk" in err


def test_every_named_gpu_has_a_speed_and_a_price():
    from rankwise.advisor.hardware import GPU_SPEED, GPU_TABLE
    from rankwise.advisor.pricing import DEFAULT_PRICES

    assert set(GPU_SPEED) == set(GPU_TABLE) and set(DEFAULT_PRICES) <= set(GPU_SPEED)
    assert all(s.tflops > 0 and s.bandwidth_gbs > 0 and s.source for s in GPU_SPEED.values())
    from rankwise.advisor.pricing import price_for

    unpriced = sorted(set(GPU_SPEED) - set(DEFAULT_PRICES))
    assert unpriced and all(price_for(n) == (None, "no price for this GPU: give --price") for n in unpriced)
    assert price_for(unpriced[0], 0.5) == (0.5, "--price")


def test_the_configs_attention_upcast_and_dora_options():
    """train.attention, quant.kbit_upcast and DoRA change the planned work as the stack does."""
    sdpa, eager = planned_time(**{"train.max_seq_len": 8192}), planned_time(**{"train.max_seq_len": 8192,
                                                                             "train.attention": "eager"})
    assert eager.step_s > 1.5 * sdpa.step_s  # the config's attention, not an argument
    upcast = planned_time(method="qlora")
    kept = planned_time(method="qlora", **{"quant.kbit_upcast": False})
    assert kept.step_s < upcast.step_s and kept.step_s > planned_time().step_s  # dequantizing still costs
    dora = planned_time(method="dora")
    assert dora.step_s > planned_time().step_s and dora.parts["memory"] > planned_time().parts["memory"]


def test_activation_traffic_by_hand_and_its_share_grows_as_models_shrink():
    """Llama 3.1 8B, LoRA on q,k,v,o with dropout, 16-bit: per token per layer forward, RMSNorm 2·28·h,
    RoPE 10·2·(q + kv), attention IO 2·(2q + 2kv), residuals 6·2·h, SwiGLU 5·2·i, LoRA dropout 5·d_in and
    scale+add 10·d_out per adapted linear."""
    from rankwise.advisor.time import activation_bytes

    spec, h = load_model("llama-3.1-8b"), A100()
    fit = assess(spec, cfg_of(), h)
    plan = fit.estimate.plan
    lora = 5 * 4096 + 10 * 4096 + 2 * (5 * 4096 + 10 * 1024) + 5 * 4096 + 10 * 4096
    by_hand = 2 * 28 * 4096 + 10 * 2 * (4096 + 1024) + 2 * (2 * 4096 + 2 * 1024) + 6 * 2 * 4096 + 5 * 2 * 14336 + lora
    assert activation_bytes(spec, plan, spec.resolve_targets("standard")) == by_hand
    share = {}
    for name in ("llama-3.2-1b", "llama-3.1-8b"):
        s = load_model(name)
        parts = micro_batch_seconds(s, assess(s, with_values(cfg_of(), {"model.name": name}), h), _device(h), 2048)
        share[name] = parts["activations"] / sum(parts.values())
    assert share["llama-3.2-1b"] > share["llama-3.1-8b"] > 0


def test_trained_weights_add_their_gradient_gemms_to_a_micro_batch():
    """A full fine-tune's backward also computes each trained weight's gradient: 2 FLOPs a weight a token."""
    from rankwise.advisor.config import RunConfig, with_values
    from rankwise.advisor.fit import assess
    from rankwise.advisor.hardware import resolve
    from rankwise.advisor.model import load_model
    from rankwise.advisor.speeds import Device
    from rankwise.advisor.time import micro_batch_seconds

    spec = load_model("llama-3.2-1b")
    hw = resolve(None, None, "A100-80GB")
    fit = assess(spec, with_values(RunConfig(), {"method": "lora", "train.max_seq_len": 1024}), hw)
    device = Device.of(hw)
    lora = micro_batch_seconds(spec, fit, device, 1024)
    full = micro_batch_seconds(spec, fit, device, 1024, trained=spec.total_params)
    tokens = fit.estimate.plan.micro_batch * 1024
    peak = lora["compute"] and device.tflops * 1e12 * device.stack.efficiency
    assert abs((full["compute"] - lora["compute"]) - 2 * spec.total_params * tokens / peak) < 1e-9
    assert full["memory"] > lora["memory"]  # the gradients written


def _mixer(kind: str):
    """A tiny model of `kind` with a frozen base (as under LoRA): one of its recurrent mixers, and its hidden size."""
    import torch
    from test_linear_attention import _config, _kimi_config
    from transformers import AutoModelForCausalLM, FalconMambaConfig, JambaConfig, MambaConfig

    small = {"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 262}
    cfg = {"mamba": lambda: MambaConfig(**small, state_size=8, time_step_rank=8),
           "falcon_mamba": lambda: FalconMambaConfig(**small, state_size=8, time_step_rank=8),
           "jamba": lambda: JambaConfig(**small, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                                        attn_layer_period=2, attn_layer_offset=1, num_experts=1, mamba_d_state=8,
                                        mamba_dt_rank=8),
           "qwen3_5": _config, "kimi_linear": _kimi_config}[kind]()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16).requires_grad_(False)
    layer = (model.backbone if kind in ("mamba", "falcon_mamba") else model.model).layers[0]
    mixer = {"jamba": "mamba", "qwen3_5": "linear_attn", "kimi_linear": "self_attn"}.get(kind, "mixer")
    return getattr(layer, mixer), cfg.hidden_size


@pytest.mark.parametrize("kind, model_type", [("Mamba1", "mamba"), ("Mamba1", "falcon_mamba"), ("Mamba1", "jamba"),
                                              ("Gated DeltaNet", "qwen3_5"), ("Kimi Delta Attention", "kimi_linear")])
def test_the_torch_fallbacks_launch_what_the_time_model_counts(kind, model_type):
    """The recurrent layers' torch fallbacks loop in Python over tokens (Mamba1) or 64-token chunks (the delta rules),
    so their time is their kernel launches: the non-view aten ops one mixer dispatches in forward and in backward, at
    two lengths a batch of 2 (each op takes the whole batch), grow by speeds.FALLBACK_LOOPS' per unit exactly, from its
    fixed part (Mamba1's, small, left out). Counted at dispatch (TorchDispatchMode) on the CPU: a GPU launches the
    same ops."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from rankwise.advisor.speeds import FALLBACK_LOOPS

    class Ops(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += not (func.is_view or torch.Tag.view_copy in func.tags)
            return func(*args, **(kwargs or {}))

    mixer, hidden = _mixer(model_type)
    unit, forward, backward = FALLBACK_LOOPS[kind]
    units = (3, 5) if unit == 1 else (2, 4)  # whole chunks past the first
    counts = []
    for n in units:
        x = torch.randn(2, n * unit if unit > 1 else 8 * n, hidden, dtype=torch.bfloat16, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with Ops() as f:
                y = mixer(x)
            y = y[0] if isinstance(y, tuple) else y
            with Ops() as b:
                y.float().sum().backward()
        counts.append((f.n, b.n))
    (f_a, b_a), (f_b, b_b) = counts
    step = (units[1] - units[0]) * (8 if unit == 1 else 1)
    assert ((f_b - f_a) / step, (b_b - b_a) / step) == (forward[1], backward[1])
    if unit > 1:  # the fixed parts (counted at batch 1) within 1% of the measured total
        assert f_a == pytest.approx(forward[0] + forward[1] * units[0], rel=0.01)
        assert b_a == pytest.approx(backward[0] + backward[1] * units[0], rel=0.01)
    else:
        assert 0 < f_a - 5 * 24 <= 100 and 0 < b_a - 13 * 24 <= 100  # the fixed part left out: small


def test_the_torch_fallbacks_set_the_step_time_without_their_kernels():
    """Falcon-Mamba-7B QLoRA at 2048 tokens on an H100 without mamba-ssm: each micro-batch adds its loop's launches,
    2048 tokens x 64 layers x (2 x 5 forward with the recompute + 13 backward) at the stack's ~10 µs an op (~30 s,
    several times the micro-batch's FLOP time); with mamba-ssm's scan, none. Qwen3.5-9B's 24 Gated DeltaNet layers
    without flash-linear-attention: 32 chunks each; Llama: none."""
    from rankwise.advisor.hardware import resolve
    from rankwise.advisor.speeds import GPU_HF, Device, loop_ops

    hw = resolve(None, None, "H100-80GB")
    device = Device.of(hw)
    spec = load_model("tiiuae/falcon-mamba-7b")
    fit = assess(spec, with_values(RunConfig(), {"method": "qlora", "train.max_seq_len": 2048}), hw)
    assert fit.estimate.plan.grad_checkpointing and fit.estimate.plan.mamba_kernel == "torch"
    parts = micro_batch_seconds(spec, fit, device, 2048)
    assert parts["scan_loop"] == pytest.approx(2048 * 64 * (2 * 5 + 13) * GPU_HF.op_s)
    assert parts["scan_loop"] > 3 * sum(v for k, v in parts.items() if k != "scan_loop")
    kernel = replace(fit, estimate=replace(fit.estimate, plan=replace(fit.estimate.plan, mamba_kernel="mamba_ssm")))
    assert "scan_loop" not in micro_batch_seconds(spec, kernel, device, 2048)
    qwen = load_model("Qwen/Qwen3.5-9B")
    fit = assess(qwen, with_values(RunConfig(), {"method": "qlora", "train.max_seq_len": 2048}), hw)
    assert qwen.linear_attention.layers == 24
    assert loop_ops("Gated DeltaNet", 2048, 2) == 2 * (88 + 21 * 32) + 128 + 43 * 32
    assert micro_batch_seconds(qwen, fit, device, 2048)["scan_loop"] == pytest.approx(
        24 * loop_ops("Gated DeltaNet", 2048, 2) * GPU_HF.op_s)
    assert "scan_loop" not in micro_batch_seconds(load_model("llama-3.1-8b"), fit, device, 2048)


@pytest.mark.parametrize("tps, text", [(12_400.4, "12,400 tok/s"), (99.5, "99.5 tok/s"), (3.24, "3.2 tok/s"),
                                       (0.0412, "0.041 tok/s")])
def test_a_slow_rate_keeps_its_digits(tps, text):
    """A CPU plan for a big model runs under 1 token a second: it read "0 tok/s"."""
    assert rate(tps) == text


@pytest.mark.parametrize("s, text", [(3.14, "3.1 s/step"), (0.254, "0.25 s/step"), (701_879.0, "8d 2h/step"),
                                     (95.0, "1m 35s/step")])
def test_a_long_step_reads_as_a_duration(s, text):
    """`rankwise presets` without a GPU planned a 70B QLoRA step on the CPU: it read "701879.0 s/step"."""
    from rankwise.advisor.time import per_step

    assert per_step(s) == text
