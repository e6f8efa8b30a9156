"""The TUI driven the Textual way: run_test at 80×24, Pilot key presses, hardware as data."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, OptionList, Select, Static

from rankwise.tui.app import build_app
from tui_support import A100, L4, NO_GPU, NOW, SMALL_CATALOG, app_for, fake_run, gpu_presets, settle, text_of

SIZE = (80, 24)
pytestmark = pytest.mark.anyio  # anyio (installed) runs the async tests on asyncio


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    """The machine's own Hugging Face cache must not change what Setup lists."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))


@pytest.fixture
def anyio_backend():
    return "asyncio"  # Textual runs on asyncio


async def to_advice(pilot, model="llama-3.1-8b", task="chat"):
    """On Setup: type to filter the catalog, pick the task, go to Advice and wait for it."""
    await pilot.press(*model)
    select = pilot.app.screen.query_one("#task", Select)
    select.value = task
    await pilot.press("ctrl+n")
    await settle(pilot)
    return pilot.app.screen


async def set_field(pilot, key: str, value: str):
    from rankwise.tui.screens.advice_form import wid

    box = pilot.app.screen.query_one(f"#{wid(key)}", Input)
    box.focus()
    await pilot.press("ctrl+u", *value)
    await pilot.pause()


async def test_setup_shows_gpus_host_and_filters_catalog(tmp_path):
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        hw = text_of(pilot.app.screen.query_one("#hw", Static))
        assert "GPU0" in hw and "NVIDIA L4" in hw and "2.0/22.0 GiB used" in hw
        assert "16 cores" in hw and "64.0 GiB" in hw
        models = pilot.app.screen.query_one("#models", OptionList)
        assert models.option_count == len(SMALL_CATALOG)
        await pilot.press(*"llama")
        assert [models.get_option_at_index(i).id for i in range(models.option_count)] == ["llama-3.2-1b", "llama-3.1-8b"]


async def test_no_gpu_state_then_plan_for_a_declared_gpu(tmp_path):
    async with app_for(tmp_path, hardware=NO_GPU).run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "No GPU found" in text_of(pilot.app.screen.query_one("#hw", Static))
        pilot.app.screen.query_one("#gpu-mem", Input).value = "24GiB"
        pilot.app.screen.query_one("#gpus", Input).value = "2"
        pilot.app.screen.query_one("#model", Input).focus()
        advice = await to_advice(pilot)
        assert advice.hardware.gpu_count == 2 and advice.hardware.gpu_bytes == 24 * 1024 ** 3
        assert "/ 24.0 GiB" in text_of(advice.query_one("#mem", Static))


async def test_bad_planned_gpu_is_said_on_setup(tmp_path):
    async with app_for(tmp_path, hardware=NO_GPU).run_test(size=SIZE) as pilot:
        await settle(pilot)
        pilot.app.screen.query_one("#gpu-name", Input).value = "A1000"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(pilot.app.screen).__name__ == "SetupScreen"
        said = text_of(pilot.app.screen.query_one("#plan-error", Static))  # next to the plan fields
        assert "unknown GPU" in said and "--gpu" not in said  # in the TUI's words, not the CLI's


def instruction_rows(tmp_path: Path, n: int) -> Path:
    data = tmp_path / "d.jsonl"
    data.write_text("".join('{"instruction": "say %d", "output": "%d"}\n' % (i, i) for i in range(n)))
    return data


async def pick_dataset(pilot, data: Path) -> None:
    """Type `data` into Setup's dataset field and wait for its scan."""
    pilot.app.screen.query_one("#dataset", Input).focus()
    await pilot.press(*str(data))
    await pilot.pause(0.6)  # the scan is debounced
    await settle(pilot)


async def test_dataset_scan_runs_in_a_worker_and_shows_rows(tmp_path):
    data = instruction_rows(tmp_path, 40)
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await pick_dataset(pilot, data)
        scan = text_of(pilot.app.screen.query_one("#scan", Static))
        assert "40 rows" in scan and "instruction" in scan


async def test_advice_plans_the_steps_the_commands_plan_on_a_big_file(tmp_path):
    """The Advice screen scans the data once for its time line; it reads as many rows as the commands do
    (forecast.data_scan). It read 5,000 where they read 20,000: 297 steps on a screen, 1,188 from `advise`."""
    from rankwise.advisor.forecast import forecast
    from rankwise.tui.screens.advice import AdviceScreen

    data = instruction_rows(tmp_path, 8000)
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await pick_dataset(pilot, data)
        await pilot.press("ctrl+n")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, AdviceScreen) and screen.cfg.data.path == str(data)
        judged = screen.judged[screen.chosen]
        on_screen = screen._forecast(judged).time
        assert on_screen.steps == forecast(screen.spec, screen.cfg, judged, screen.hardware).time.steps
        epochs = screen.cfg.train.epochs
        assert on_screen.evaluations == screen.cfg.train.evals_per_epoch * epochs  # all 8,000 rows: whole epochs
        assert on_screen.steps == -(-7600 // screen.cfg.train.effective_batch) * epochs  # 5% held out


async def test_advice_bars_are_at_the_datas_longest_row_as_advise_says(tmp_path):
    """The Advice screen's bars, the CLI's `advise --dataset` and `check` all estimate at the rows' longest row
    (advisor/lengths.py), and the screen says so under the bars."""
    from rankwise.advisor.dataset import advice_inputs, scan_for_model
    from rankwise.advisor.recommend import advise

    data = instruction_rows(tmp_path, 50)
    async with app_for(tmp_path, hardware=NO_GPU).run_test(size=SIZE) as pilot:
        await settle(pilot)
        pilot.app.screen.query_one("#gpu-mem", Input).value = "24GiB"
        await pick_dataset(pilot, data)
        pilot.app.screen.query_one("#model", Input).focus()
        advice = await to_advice(pilot, task="instruction")
        judged = advice.judged[advice.chosen]
        cli = advise(advice.spec, advice.hardware, "instruction",
                     **advice_inputs(scan_for_model(data, advice.spec), advice.spec))
        assert judged.at_data and judged.estimate.plan.seq_len < advice.cfg.train.max_seq_len
        assert judged.estimate.peak_bytes == cli.estimates[advice.chosen].peak_bytes
        assert "peak at the data's longest row" in text_of(advice.query_one("#mem", Static))


@pytest.mark.slow
async def test_dataset_token_check_runs_in_its_own_process(tmp_path):
    """A picked dataset is also tokenized with the model's tokenizer (`rankwise check --data` in a
    subprocess, so the TUI stays torch-free): trained share and masking problems show on Setup."""
    from rankwise.advisor.presets import presets_dir

    data = instruction_rows(tmp_path, 40)
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        screen = pilot.app.screen
        screen.query_one("#model", Input).focus()
        await pilot.press(*str(presets_dir() / "assets" / "tiny-llama"))
        await pick_dataset(pilot, data)
        scan = ""
        for _ in range(50):  # the scan worker, then the check worker it starts: wait on each
            await settle(pilot)
            scan = text_of(screen.query_one("#scan", Static))
            if "trained" in scan or "token check" in scan:
                break
        assert "40 rows" in scan
        assert "% trained" in scan and "0 rows with nothing trained" in scan, scan
        assert "stand-in" not in scan  # the tiny model's own tokenizer was used


async def test_catalog_model_and_task_give_advice(tmp_path):
    from rankwise.advisor.model import load_model
    from rankwise.advisor.recommend import advise

    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot, "llama-3.1-8b", "chat")
        assert type(screen).__name__ == "AdviceScreen"
        expected = advise(load_model("llama-3.1-8b"), L4, "chat")
        assert screen.cfg.lora.r == expected.config.lora.r
        assert screen.query_one("#f-lora--r", Input).value == str(expected.config.lora.r)
        assert screen.query_one("#f-method", Select).value == expected.config.method
        mem = text_of(screen.query_one("#mem", Static))
        assert "LoRA" in mem and "QLoRA" in mem and "/ 22.0 GiB" in mem
        # the reason for the focused value is shown
        await set_field(pilot, "lora.r", str(expected.config.lora.r))
        assert expected.reasons["lora.r"][:30] in text_of(screen.query_one("#reason", Static))


async def test_rank_edit_moves_memory_and_flags(tmp_path):
    async with app_for(tmp_path, hardware=A100).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot, "llama-3.1-8b", "instruction")
        before = {m: e.components["lora_params"] for m, e in screen.estimates.items()}
        mem_before = text_of(screen.query_one("#mem", Static))
        codes_before = {f.code for f in screen.findings}
        await set_field(pilot, "lora.r", "512")
        await set_field(pilot, "lora.alpha", "1024")
        await set_field(pilot, "lora.dropout", "0.3")
        assert screen.cfg.lora.r == 512
        assert all(screen.estimates[m].components["lora_params"] > before[m] for m in before)
        assert text_of(screen.query_one("#mem", Static)) != mem_before
        codes = {f.code for f in screen.findings}
        assert "high-rank-high-dropout" in codes and "high-rank-high-dropout" not in codes_before
        flags = screen.query_one("#flags", OptionList)
        assert any("high-rank-high-dropout" in str(flags.get_option_at_index(i).prompt)
                   for i in range(flags.option_count))


async def test_invalid_value_is_marked_and_keeps_last_good_config(tmp_path):
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot)
        r = screen.cfg.lora.r
        await set_field(pilot, "lora.r", "abc")
        assert screen.cfg.lora.r == r
        assert screen.query_one("#row-f-lora--r").has_class("invalid")
        assert "lora.r" in text_of(screen.query_one("#reason", Static))


async def test_apply_a_red_flag_fix(tmp_path):
    async with app_for(tmp_path, hardware=A100).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot, "llama-3.1-8b", "instruction")
        await set_field(pilot, "lora.alpha", "4")
        finding = next(f for f in screen.findings if f.code == "alpha-below-rank")
        assert finding.patch
        flags = screen.query_one("#flags", OptionList)
        flags.focus()
        flags.highlighted = screen.findings.index(finding)
        await pilot.pause()
        assert "why:" in text_of(screen.query_one("#flag-detail", Static))
        await pilot.press("ctrl+f")
        await pilot.pause()
        for key, value in finding.patch.items():
            section, name = key.split(".")
            assert getattr(getattr(screen.cfg, section), name) == value
        assert "alpha-below-rank" not in {f.code for f in screen.findings}
        assert screen.query_one("#f-lora--alpha", Input).value == str(screen.cfg.lora.alpha)


async def test_distributed_fields_show_what_train_would_refuse_and_fix_it(tmp_path):
    """GPUs, strategy, offload and FSDP sharding are on the form; offload on one GPU is the red flag train's refusal
    names (distributed-setting), and its fix puts the form back to a run the launcher starts."""
    async with app_for(tmp_path, hardware=A100).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot, "llama-3.1-8b", "instruction")
        assert screen.query_one("#f-distributed--gpus", Input).value == str(screen.cfg.distributed.gpus)
        screen.query_one("#f-distributed--offload", Select).value = "params_and_optimizer"
        await pilot.pause()
        assert screen.cfg.distributed.offload == "params_and_optimizer"
        finding = next(f for f in screen.findings if f.code == "distributed-setting")
        assert finding.severity == "error" and "one plain process" in finding.message
        flags = screen.query_one("#flags", OptionList)
        flags.focus()
        flags.highlighted = screen.findings.index(finding)
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert screen.cfg.distributed.offload == "none"
        assert screen.query_one("#f-distributed--offload", Select).value == "none"
        assert "distributed-setting" not in {f.code for f in screen.findings}
        await set_field(pilot, "distributed.gpus", "3")
        assert screen.cfg.distributed.gpus == 3 and not screen.invalid  # digits are a count


async def test_save_writes_a_preset_the_schema_accepts(tmp_path):
    from rankwise.advisor.loader import load_config

    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot)
        await set_field(pilot, "lora.r", "24")
        await pilot.press("ctrl+s")
        await pilot.pause()
        path = tmp_path / "mine.yaml"
        box = pilot.app.screen.query_one("#path", Input)
        box.value = str(path)
        await pilot.press("enter")
        await pilot.pause()
        assert load_config(path).lora.r == 24
        assert pilot.app.screen is screen


async def test_training_options_are_form_fields_the_estimate_and_the_preset_follow(tmp_path):
    """init, precision, attention and kernels are on the form: eager attention's score tensors show in the
    estimate, and what is chosen is what the saved preset (and so the run) holds."""
    from rankwise.advisor.loader import load_config
    from rankwise.tui.screens.advice_form import wid

    async with app_for(tmp_path, hardware=A100).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot, "llama-3.1-8b", "instruction")
        before = {m: e.peak_bytes for m, e in screen.estimates.items()}
        chosen = {"train.attention": "eager", "train.precision": "pure_bf16", "lora.init": "pissa",
                  "train.kernels": "liger"}
        for key, value in chosen.items():
            screen.query_one(f"#{wid(key)}", Select).value = value
            await pilot.pause()
        assert screen.cfg.train.attention == "eager" and screen.cfg.train.kernels == "liger"
        assert all(screen.estimates[m].peak_bytes != before[m] for m in before)
        await pilot.press("ctrl+s")
        await pilot.pause()
        path = tmp_path / "options.yaml"
        pilot.app.screen.query_one("#path", Input).value = str(path)
        await pilot.press("enter")
        await pilot.pause()
        saved = load_config(path)
        assert (saved.train.attention, saved.train.precision, saved.lora.init, saved.train.kernels) == (
            "eager", "pure_bf16", "pissa", "liger")


async def test_presets_show_fit_and_flags_on_this_gpu(tmp_path):
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await settle(pilot)
        screen = pilot.app.screen
        table = screen.query_one(DataTable)
        assert table.row_count == len(gpu_presets())
        fits = {r["name"]: r["fit"] for r in screen.rows}
        assert fits["llama3.1-70b-qlora-2x80gb"] == "wont-fit"  # a 70B does not fit one L4
        assert set(fits.values()) <= {"fits", "tight", "wont-fit"}
        assert str(table.get_row_at(0)[0]) == "1"
        await pilot.press("e")
        await settle(pilot)
        assert type(pilot.app.screen).__name__ == "AdviceScreen"
        cfg = pilot.app.screen.cfg  # the first row's preset, loaded as it is
        assert (cfg.name, cfg.model.name) == (screen.rows[0]["name"], screen.rows[0]["model"])


async def test_runs_list_summary_and_attach(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "demo-cpu-20260101-000000", steps=5)
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await settle(pilot)
        screen = pilot.app.screen
        row = [str(c) for c in screen.query_one(DataTable).get_row_at(0)]
        assert row[:4] == ["demo-cpu-20260101-000000", "finished", "5/5", "1.5000"]
        assert row[4] == "10m ago"  # started 600 s before the frozen clock (`rankwise runs` says the same)
        detail = text_of(screen.query_one("#run-detail", Static))
        assert "final loss 1.5000" in detail and "best eval 2.2000" in detail and "vs estimate 0.05 GiB" in detail
        await pilot.press("enter")
        await settle(pilot)
        run = pilot.app.screen
        assert type(run).__name__ == "RunScreen"
        assert run.view.step == 5 and run.view.status == "finished"
        train, evals = run.query_one("#plot").points
        assert [s for s, _ in train] == [1, 2, 3, 4, 5] and evals == ((5, 2.2),)
        await pilot.press("d")
        await pilot.pause()
        assert type(pilot.app.screen).__name__ == "RunsScreen"


async def test_stop_asks_first(tmp_path):
    runs = tmp_path / "runs"
    d = fake_run(runs, "r1", finished=True)
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        pilot.app.attach(d)
        await settle(pilot)
        await pilot.press("x")
        await pilot.pause()
        assert type(pilot.app.screen).__name__ == "ConfirmScreen"
        await pilot.press("n")
        await pilot.pause()
        assert type(pilot.app.screen).__name__ == "RunScreen"


def test_tui_process_never_imports_torch(tmp_path):
    """Drive every screen in a fresh interpreter; torch/transformers/peft must stay out of it."""
    code = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
        from tui_support import L4, SMALL_CATALOG, gpu_presets, fake_run
        from pathlib import Path
        from rankwise.tui.app import build_app
        runs = Path({str(tmp_path)!r}) / "runs"
        fake_run(runs, "r1")
        async def main():
            app = build_app(hardware=L4, runs_dir=runs, catalog=SMALL_CATALOG, presets=gpu_presets())
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press(*"llama-3.1-8b", "ctrl+n")
                await app.workers.wait_for_complete()
                await pilot.press("ctrl+o"); await app.workers.wait_for_complete()
                await pilot.press("ctrl+r"); await app.workers.wait_for_complete(); await pilot.pause()
                await pilot.press("enter"); await app.workers.wait_for_complete(); await pilot.pause()
                assert type(app.screen).__name__ == "RunScreen", app.screen
        asyncio.run(main())
        heavy = sorted(m for m in ("torch", "transformers", "peft", "bitsandbytes", "accelerate") if m in sys.modules)
        print("HEAVY", heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY []" in out.stdout


async def watch_run(pilot, limit_s: float = 400.0) -> set:
    """Wait for the Run screen's run to end (the worker imports torch, then trains); the steps seen."""
    import time

    from rankwise.tui.screens.run import RunScreen

    seen, deadline = set(), time.monotonic() + limit_s
    while time.monotonic() < deadline:
        await pilot.pause(0.1)
        screen = pilot.app.screen
        if isinstance(screen, RunScreen) and screen.view is not None:
            seen.add(screen.view.step)
            if screen.view.status in ("finished", "failed", "interrupted"):
                break
    return seen


@pytest.mark.slow
async def test_launch_demo_cpu_with_one_key_then_detach_and_reattach(tmp_path):
    """A real training process: `1` on Presets starts demo-cpu detached; steps arrive on the Run screen."""
    from rankwise.advisor.presets import shipped
    from rankwise.tui.screens.run import RunScreen

    app = build_app(hardware=NO_GPU, runs_dir=tmp_path / "runs", catalog=SMALL_CATALOG,
                    presets={"demo-cpu": shipped()["demo-cpu"]})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await settle(pilot)
        await pilot.press("1")
        seen_steps = await watch_run(pilot)
        screen = app.screen
        assert isinstance(screen, RunScreen), "the launch never attached"
        assert screen.view.status == "finished", screen.view.error
        assert screen.view.step == 60 and len(seen_steps - {0, 60}) >= 2  # steps arrived one by one
        train, _evals = screen.query_one("#plot").points
        assert len(train) >= 10 and train[-1][1] < train[0][1]  # the loss curve is drawn and falls
        run_id = screen.run_dir.name
        assert (tmp_path / "runs" / run_id / "events.jsonl").is_file()

        await pilot.press("d")
        await pilot.pause()
        assert type(app.screen).__name__ == "PresetsScreen"
        await pilot.press("ctrl+r")
        await settle(pilot)
        runs = app.screen
        row = [str(c) for c in runs.query_one(DataTable).get_row_at(0)]
        assert row[0] == run_id and row[1] == "finished" and row[2] == "60/60"
        assert "final loss" in text_of(runs.query_one("#run-detail", Static))
        await pilot.press("enter")
        await settle(pilot)
        again = app.screen
        assert isinstance(again, RunScreen) and again.run_dir.name == run_id and again.view.step == 60


async def test_arrow_keys_in_the_filter_pick_a_model(tmp_path):
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await pilot.press(*"llama", "down")
        await pilot.pause()
        assert pilot.app.screen.chosen_model() == "llama-3.1-8b"
        assert "llama-3.1-8b" in str(pilot.app.screen.query_one("#model-title").content)


async def test_no_color_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        assert pilot.app.no_color
        await pilot.press("ctrl+o")
        await settle(pilot)
        table = pilot.app.screen.query_one(DataTable)
        words = {str(table.get_row_at(i)[4]) for i in range(table.row_count)}
        assert words and words <= {"fits", "tight", "won't fit"}  # the fit is said in words, not only colour


@pytest.mark.slow
async def test_edit_a_preset_in_advice_and_launch_it(tmp_path):
    """`e` on Presets → Advice; change the rank; ^l writes a preset and trains it in its own process."""
    from rankwise.advisor.loader import load_config
    from rankwise.advisor.presets import shipped
    from rankwise.tui.screens.run import RunScreen

    runs = tmp_path / "runs"
    app = build_app(hardware=NO_GPU, runs_dir=runs, catalog=SMALL_CATALOG,
                    presets={"demo-cpu": shipped()["demo-cpu"]})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        await set_field(pilot, "lora.r", "8")
        assert app.screen.cfg.lora.r == 8
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert "r=8" in app.screen.question  # the one-line confirmation of what starts
        await pilot.press("y")
        await watch_run(pilot)
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.view.status == "finished", screen.view
        written = list((runs / ".launched").glob("demo-cpu-*.yaml"))
        assert len(written) == 1 and load_config(written[0]).lora.r == 8
        assert load_config(screen.run_dir / "config.yaml").lora.r == 8


async def test_a_failing_worker_is_shown_not_swallowed(tmp_path):
    def boom():
        raise OSError("disk went away")

    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        from textual.worker import WorkerFailed

        worker = pilot.app.run_worker(boom, thread=True, group="scan", exit_on_error=False)
        with pytest.raises(WorkerFailed):
            await worker.wait()
        await pilot.pause()
        assert pilot.app.is_running
        assert any(n.severity == "error" and "disk went away" in n.message for n in pilot.app._notifications)


async def test_saved_presets_join_the_shipped_ones(tmp_path):
    from rankwise.advisor.presets import shipped

    app = build_app(hardware=L4, runs_dir=tmp_path / "runs", catalog=SMALL_CATALOG)
    async with app.run_test(size=SIZE) as pilot:
        await to_advice(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("enter")  # the default path: <runs>/presets/<model>-<task>.yaml
        await pilot.pause()
        assert (tmp_path / "runs" / "presets" / "llama-3.1-8b-chat.yaml").is_file()
        await pilot.press("ctrl+o")
        await settle(pilot)
        names = [r["name"] for r in app.screen.rows]
        assert names == [*shipped(), "presets/llama-3.1-8b-chat"]


@pytest.mark.slow
async def test_stop_a_live_run_after_confirming(tmp_path):
    """x then y on a live run: the worker checkpoints and ends as interrupted."""
    import time

    from rankwise.advisor.loader import load_config
    from rankwise.advisor.presets import shipped
    from rankwise.tui.launch import write_preset
    from rankwise.advisor.config import with_values
    from rankwise.tui.screens.run import RunScreen

    long = with_values(load_config(shipped()["demo-cpu"]), {"train.max_steps": 5000})
    preset = write_preset(long, tmp_path / "long-demo.yaml")
    app = build_app(hardware=NO_GPU, runs_dir=tmp_path / "runs", catalog=SMALL_CATALOG, presets={"long": preset})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await settle(pilot)
        await pilot.press("enter")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            await pilot.pause(0.1)
            s = app.screen
            if isinstance(s, RunScreen) and s.view is not None and s.view.step >= 4:
                break
        run = app.screen
        assert isinstance(run, RunScreen) and run.view.status == "running"
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        await watch_run(pilot, limit_s=120)
        assert run.view.status == "interrupted" and 4 <= run.view.step < 5000
        assert run.view.checkpoint is not None


async def test_models_in_the_local_hf_cache_are_offered(tmp_path, monkeypatch):
    import shutil

    from rankwise.advisor.presets import presets_dir

    repo = tmp_path / "hub" / "models--acme--tiny-chat"
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    shutil.copy(presets_dir() / "assets" / "tiny-llama" / "config.json", snap / "config.json")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"acme")
        await pilot.pause()
        assert pilot.app.screen.chosen_model() == "acme/tiny-chat"
        advice = await to_advice(pilot, model="")
        assert advice.spec is not None and advice.spec.total_params > 0
        assert advice.cfg.model.name == "acme/tiny-chat"


async def test_runs_stop_only_offers_running_runs(tmp_path):
    fake_run(tmp_path / "runs", "done-1", finished=True)
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.press("x")
        await pilot.pause()
        assert type(pilot.app.screen).__name__ == "RunsScreen"  # no dialog for a finished run
        assert any("only a running run" in n.message for n in pilot.app._notifications)


async def test_s_on_presets_starts_a_sweep_through_the_same_checks(tmp_path):
    """`s` goes to the sweep launcher, which checks the input first: a GPU preset whose model has no
    weights here is refused on screen, nothing starts and the Presets screen stays. (No GPU: on the L4
    the sweep is refused sooner, as no rank of the first preset fits it.)"""
    async with app_for(tmp_path, hardware=NO_GPU).run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await settle(pilot)
        screen = pilot.app.screen
        await pilot.press("s")
        await settle(pilot)
        assert pilot.app.screen is screen
        errors = [n.message for n in pilot.app._notifications if n.severity == "error"]
        assert errors and "catalog" in errors[-1]
        assert not (tmp_path / "runs" / "sweeps").exists()  # refused before its folder is made


# ---- issue 16: what is on screen is what runs; keys land where they were typed


def tiny_model() -> str:
    """The shipped tiny model: a local folder with weights, so launch is on."""
    from pathlib import Path

    import rankwise.tui as tui_pkg

    return str(Path(tui_pkg.__file__).resolve().parents[1] / "presets" / "assets" / "tiny-llama")


async def test_save_and_launch_refuse_while_a_field_is_invalid(tmp_path):
    """`rank 8x` on screen: ^s and ^l refuse, name the rank and focus it; nothing is written."""
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot, tiny_model())
        screen.cfg = screen.cfg.model_copy(update={"data": screen.cfg.data.model_copy(update={"path": "x.jsonl"})})
        await set_field(pilot, "lora.r", "8x")
        pilot.app.screen.query_one("#f-lora--dropout", Input).focus()
        for key, word in (("ctrl+s", "not saved"), ("ctrl+l", "not launched")):
            await pilot.press(key)
            await pilot.pause()
            assert pilot.app.screen is screen, f"{key} opened a dialog over an invalid form"
            assert screen.focused is screen.query_one("#f-lora--r", Input)
            said = [n.message for n in pilot.app._notifications]
            assert any(word in m and "rank is invalid" in m for m in said), said
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.yaml"))


async def test_stale_bars_and_flags_say_so(tmp_path):
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot)
        assert "last valid value" not in text_of(screen.query_one("#mem", Static))
        await set_field(pilot, "lora.r", "8x")
        assert "showing the last valid value" in text_of(screen.query_one("#mem", Static))
        assert "last valid value" in str(screen.query_one("#flags-title").content)
        await set_field(pilot, "lora.r", "8")
        assert "last valid value" not in text_of(screen.query_one("#mem", Static))
        assert "last valid value" not in str(screen.query_one("#flags-title").content)


async def test_launch_confirms_method_rank_and_fit_in_one_line(tmp_path):
    from rankwise.tui.screens.dialogs import ConfirmScreen

    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot, tiny_model())
        screen.cfg = screen.cfg.model_copy(update={"data": screen.cfg.data.model_copy(update={"path": "x.jsonl"})})
        await set_field(pilot, "lora.r", "24")
        await pilot.press("ctrl+l")
        await pilot.pause()
        dialog = pilot.app.screen
        assert isinstance(dialog, ConfirmScreen)
        assert "\n" not in dialog.question
        assert "r=24" in dialog.question and "LoRA" in dialog.question and "NVIDIA L4" in dialog.question
        assert "tiny-llama" in dialog.question
        assert any(w in dialog.question for w in ("fits", "tight", "won't fit"))
        await pilot.press("n")
        await pilot.pause()
        assert pilot.app.screen is screen
        assert not (tmp_path / "runs" / ".launched").exists()  # nothing started, nothing written


async def test_save_dialog_takes_a_name(tmp_path):
    from rankwise.advisor.loader import load_config

    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await to_advice(pilot)
        await set_field(pilot, "lora.r", "24")
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("ctrl+u", *"mychat", "enter")
        await pilot.pause()
        path = tmp_path / "runs" / "presets" / "mychat.yaml"
        assert load_config(path).lora.r == 24


async def burst(pilot, *keys: str):
    """Keys as SSH delivers typed-ahead input: all in the app's queue at once, no pause between."""
    from textual import events

    app = pilot.app
    for key in keys:
        char = key if len(key) == 1 else None
        name = {".": "full_stop", "/": "slash", "-": "minus", "_": "underscore", "~": "tilde"}.get(key, key)
        event = events.Key(name, char)
        event.set_sender(app)
        app._driver.send_message(event)
    await pilot.pause()
    await settle(pilot)
    while app._keys or (app._key_feeder is not None and not app._key_feeder.done()):
        await pilot.pause()
    await settle(pilot)


async def test_a_burst_on_advice_lands_field_by_field(tmp_path):
    """`C-u 512 Tab Tab Tab 0.3` in one burst: rank 512, dropout 0.3, and ^s saves rank 512."""
    async with app_for(tmp_path, hardware=A100).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot, "llama-3.1-8b", "instruction")
        screen.query_one("#f-lora--r", Input).focus()
        await pilot.pause()
        await burst(pilot, "ctrl+u", "5", "1", "2", "tab", "tab", "tab", "ctrl+u", "0", ".", "3")
        assert screen.query_one("#f-lora--r", Input).value == "512"
        assert screen.query_one("#f-lora--dropout", Input).value == "0.3"
        assert screen.cfg.lora.r == 512 and screen.cfg.lora.dropout == 0.3


async def test_a_burst_on_setup_lands_field_by_field(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "hi", "output": "there"}\n')
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await burst(pilot, "8", "b", "enter", "tab", *str(data), "tab", "1", "0", "M")
        screen = pilot.app.screen
        assert screen.query_one("#model", Input).value == "8b"
        assert screen.query_one("#dataset", Input).value == str(data)
        assert screen.query_one("#budget", Input).value == "10M"


async def test_keys_after_a_screen_change_go_to_the_new_screen(tmp_path):
    """`C-n 64`: Advice opens for the model typed (not '8b64') and 64 goes to its focused field."""
    from rankwise.tui.screens.advice import AdviceScreen

    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await burst(pilot, "8", "b", "ctrl+n", "ctrl+u", "6", "4")
        screen = pilot.app.screen
        assert isinstance(screen, AdviceScreen) and screen.spec.name.endswith("8b") or "8b" in screen.request.model
        assert screen.request.model == "llama-3.1-8b"
        assert screen.query_one("#f-lora--r", Input).value == "64" and screen.cfg.lora.r == 64


async def test_a_digit_after_ctrl_o_launches_not_types(tmp_path):
    from rankwise.tui.screens.presets import PresetsScreen

    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await burst(pilot, "ctrl+o", "2")
        assert isinstance(pilot.app.screen, PresetsScreen) or pilot.app.screen_stack[1:2]
        setup = pilot.app.screen_stack[1]
        assert setup.query_one("#model", Input).value == ""
        assert pilot.app.screen_stack[2:3] and isinstance(pilot.app.screen_stack[2], PresetsScreen)
        assert pilot.app.screen_stack[2].query_one(DataTable).cursor_row == 1  # `2` picked the second preset


async def test_runs_screen_reads_on_from_offsets_and_repaints_only_on_change(tmp_path):
    from rankwise.trainer.events import EventSink

    runs = tmp_path / "runs"
    fake_run(runs, "done-1", steps=5)
    live = fake_run(runs, "live-1", steps=3, finished=False, t0=NOW - 30)
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await settle(pilot)
        screen = pilot.app.screen
        assert screen.renders == 1
        screen.reload()
        await settle(pilot)
        assert screen.renders == 1  # nothing changed: the table is not rebuilt
        watch = screen.watch
        assert runs / "done-1" in watch._done  # an ended run is not read again
        fold, tail = watch._folds[runs / "live-1"]
        assert tail._pos == (live / "events.jsonl").stat().st_size  # read up to the end, once
        sink = EventSink(live / "events.jsonl")
        sink.emit("step", step=4, max_steps=3, loss=1.5, lr=1e-4, grad_norm=1.0, time=NOW - 1)
        sink.close()
        screen.reload()
        await settle(pilot)
        assert screen.renders == 2
        row = [str(c) for c in screen.query_one(DataTable).get_row(str("live-1"))]
        assert row[2].startswith("4/") and row[3] == "1.5000"


async def test_focus_is_a_mark_not_only_a_colour_and_titles_are_not_error_red(tmp_path, monkeypatch):
    from textual.color import Color

    from rankwise.tui.style import css_variables

    monkeypatch.setenv("NO_COLOR", "1")
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        model, dataset = screen.query_one("#model", Input), screen.query_one("#dataset", Input)
        assert screen.focused is model
        assert model.styles.border_left[0] == "outer" and dataset.styles.border_left[0] in ("blank", "")
        dataset.focus()
        await pilot.pause()
        assert dataset.styles.border_left[0] == "outer" and model.styles.border_left[0] in ("blank", "")
        red = Color.parse(css_variables()["severity-error"])
        for title in screen.query(".title"):
            assert title.styles.color.rgb != red.rgb


async def test_f2_is_a_second_back_key_and_esc_on_an_edited_form_asks(tmp_path):
    from rankwise.tui.screens.advice import AdviceScreen
    from rankwise.tui.screens.dialogs import ConfirmScreen
    from rankwise.tui.screens.setup import SetupScreen

    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot)
        await pilot.press("f2")  # nothing edited: straight back
        await pilot.pause()
        assert isinstance(pilot.app.screen, SetupScreen)
        await pilot.press("ctrl+n")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, AdviceScreen)
        await set_field(pilot, "lora.r", "24")
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmScreen) and "edits" in pilot.app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert pilot.app.screen is screen and screen.cfg.lora.r == 24
        await pilot.press("escape", "y")
        await pilot.pause()
        assert isinstance(pilot.app.screen, SetupScreen)


async def test_ctrl_w_sweeps_and_is_not_delete_word_in_a_field(tmp_path):
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot)
        await set_field(pilot, "lora.r", "24")
        await pilot.press("ctrl+w")
        await pilot.pause()
        assert screen.query_one("#f-lora--r", Input).value == "24"
        said = [n.message for n in pilot.app._notifications]
        assert any("the sweep is off" in m and "no weights" in m for m in said), said  # the sweep answered


async def test_ctrl_w_sweeps_the_advices_first_sweep_ranks_and_rates(tmp_path):
    """^w on Advice starts the sweep `rankwise advise` prints as the first sweep: its ranks, and for a model
    narrower than the learning rate's sources measured (the 64-wide demo model) its rates at each rank."""
    from rankwise.advisor.coupling import lrs_text
    from rankwise.tui.screens.dialogs import ConfirmScreen

    data = instruction_rows(tmp_path, 200)
    async with app_for(tmp_path, hardware=NO_GPU).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pick_dataset(pilot, data)
        pilot.app.screen.query_one("#model", Input).focus()
        screen = await to_advice(pilot, tiny_model(), "domain")
        first = screen.advice
        assert first is not None and first.first_sweep and len(first.first_lrs) > 1
        from rankwise.tui.screens.advice import notes_text

        assert "data.val_path" in notes_text(first).plain  # new facts: the validation advice, which has no field
        await pilot.press("ctrl+w")
        for _ in range(100):  # the sweep is sized in a worker, then asked
            await settle(pilot)
            if isinstance(pilot.app.screen, ConfirmScreen):
                break
        dialog = pilot.app.screen
        assert isinstance(dialog, ConfirmScreen)
        ranks = ", ".join(map(str, first.first_sweep))
        assert f"{len(first.first_sweep) * len(first.first_lrs)} trials (r={ranks} × lr {lrs_text(first.first_lrs)})" \
            in dialog.question, dialog.question
        await pilot.press("n")
        await settle(pilot)
        assert not (tmp_path / "runs" / "sweeps").exists()  # refused: nothing started


async def test_f1_shows_the_keys(tmp_path):
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert pilot.app.screen.query("HelpPanel")
        await pilot.press("f1")
        await pilot.pause()
        assert not pilot.app.screen.query("HelpPanel")


async def test_the_selected_flags_fix_is_on_screen_at_80x24(tmp_path):
    async with app_for(tmp_path, hardware=A100).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot, "llama-3.1-8b", "instruction")
        await set_field(pilot, "lora.alpha", "4")
        finding = next(f for f in screen.findings if f.code == "alpha-below-rank")
        flags = screen.query_one("#flags", OptionList)
        flags.highlighted = screen.findings.index(finding)
        await pilot.pause()
        svg = pilot.app.export_screenshot().replace("&#160;", " ")
        assert "(^f applies it)" in svg and "fix: " in svg


async def test_setup_errors_sit_by_their_field_and_advice_does_not_open(tmp_path):
    from rankwise.tui.screens.setup import SetupScreen

    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        await pilot.press(*"no-such-model")
        screen.query_one("#dataset", Input).value = str(tmp_path / "missing.jsonl")
        screen.query_one("#budget", Input).value = "lots"
        screen.query_one("#model", Input).focus()
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(pilot.app.screen, SetupScreen)  # Advice did not open
        assert "no-such-model" in text_of(screen.query_one("#model-error", Static))
        assert "missing.jsonl" in text_of(screen.query_one("#dataset-error", Static))
        assert "budget" in text_of(screen.query_one("#setup-error", Static))
        assert text_of(screen.query_one("#plan-error", Static)) == ""
        assert screen.focused is screen.query_one("#model", Input)


async def test_a_failed_launch_leaves_nothing_in_launched(tmp_path):
    """A local model and a dataset that went away after Advice: the launch is refused in words,
    and the preset it would have run is removed again."""
    from pathlib import Path

    import rankwise.tui as tui_pkg

    model = Path(tui_pkg.__file__).resolve().parents[1] / "presets" / "assets" / "tiny-llama"
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot, str(model))
        gone = str(tmp_path / "gone.jsonl")
        screen.cfg = screen.cfg.model_copy(update={"data": screen.cfg.data.model_copy(update={"path": gone})})
        await pilot.press("ctrl+l")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        said = [n.message for n in pilot.app._notifications if n.severity == "error"]
        assert said and "hint:   hint:" not in said[-1] and not said[-1].startswith("error:"), said
        launched = tmp_path / "runs" / ".launched"
        assert not launched.exists() or not any(launched.iterdir())
        assert pilot.app.screen is screen


async def test_launch_is_off_with_a_reason_for_a_model_without_weights(tmp_path):
    async with app_for(tmp_path).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot)  # llama-3.1-8b from the catalog: the architecture only
        assert screen.check_action("launch", ()) is None  # dimmed; ^w stays live (never delete-word) and refuses
        said = [n.message for n in pilot.app._notifications]
        assert any("no weights on this machine" in m for m in said), said
        screen.cfg = screen.cfg.model_copy(update={"data": screen.cfg.data.model_copy(update={"path": "x.jsonl"})})
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert pilot.app.screen is screen  # no confirmation of a launch that can only fail


async def test_a_deepspeed_file_on_the_form_is_estimated_or_said(tmp_path):
    """The DeepSpeed JSON field: beside strategy deepspeed on 2 GPUs the bars count its buckets; a path that is not
    there is said where the bars were (no crash); beside another strategy the field is marked invalid."""
    fixture = Path(__file__).parent / "fixtures" / "deepspeed" / "z3-auto.json"
    async with app_for(tmp_path, hardware=A100).run_test(size=SIZE) as pilot:
        screen = await to_advice(pilot, "llama-3.1-8b", "instruction")
        await set_field(pilot, "distributed.deepspeed_config", str(fixture))
        assert screen.invalid and "distributed.deepspeed_config" in screen.invalid  # strategy is not deepspeed yet
        await set_field(pilot, "distributed.gpus", "2")
        screen.query_one("#f-distributed--strategy", Select).value = "deepspeed"
        await pilot.pause()
        assert not screen.invalid and screen.cfg.distributed.deepspeed_config == str(fixture)
        est = screen.estimates[screen.chosen]
        assert est.plan.ds_config == str(fixture) and est.components["zero3_grad_bucket"] == 4096 * 4096 * 2
        await set_field(pilot, "distributed.deepspeed_config", str(tmp_path / "nope.json"))
        assert "not found" in text_of(screen.query_one("#mem", Static)) and screen.estimates == {}


def test_setup_says_bytes_where_a_stand_in_counted_them():
    """Without the model's tokenizer, `check --data` counts with a byte-level stand-in: Setup calls those counts
    bytes (they are several times the model's tokens, and the plans count ~4 characters a token) and leaves out a
    truncation count measured in them; with the model's tokenizer, tokens and truncation as counted."""
    from rankwise.tui.setup_view import datacheck_text

    report = {"tokens": 100, "trained_tokens": 46, "token_p50": 305, "token_p95": 310, "no_trained_rows": 0,
              "truncated_rows": 4, "max_seq_len": 256, "findings": []}
    stand_in = datacheck_text({**report, "tokenizer": "byte stand-in"}).plain
    assert stand_in.startswith("bytes p50 305, p95 310 · 46% trained") and "truncated at" not in stand_in
    assert "byte-level stand-in" in stand_in
    model = datacheck_text({**report, "tokenizer": "model"}).plain
    assert model.startswith("tokens p50 305") and "4 truncated at 256" in model
