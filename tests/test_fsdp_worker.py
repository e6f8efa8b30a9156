"""The worker's sharded path on the CPU: two ranks started as accelerate's launcher starts them, with the environment
accelerate launch gives rankwise's FSDP config (train_helpers.fsdp_env), train LoRA and QLoRA to the end and save the
adapter in full.

What this covers and what it does not: accelerate applies ACCELERATE_USE_FSDP only to GPU-like devices (accelerate
state.py: the FSDP switch sits under the MULTI_GPU/.../MULTI_NEURON branch), so on the CPU the Trainer runs the two
ranks as DDP (MULTI_CPU over gloo), which the worker logs and warns about. What is tested is the worker's side of a
sharded launch: the model loaded as for FSDP (bnb_4bit_quant_storage in the compute dtype, no k-bit upcast), the
ranks' collectives, stopping and saving. FSDP's own wrapping, sharding and state-dict gathering need a GPU
(bench/gpu_fsdp_probe.py; bench/fsdp_cpu_probe.py wraps by hand on the CPU)."""
import pytest
from train_helpers import adapter_shapes, events, fsdp_env, of_type, run_ranks, tail_log

from rankwise.advisor.model import load_model
from rankwise.trainer.launch import decoder_layer_class

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("preset", ["demo-cpu", "demo-cpu-qlora"])
def test_two_fsdp_ranks_train_and_save_the_whole_adapter(tmp_path, preset):
    from rankwise.advisor.loader import load_config
    from rankwise.advisor.presets import resolve_preset

    spec = load_model(load_config(resolve_preset(preset)).model.name)
    p, run = run_ranks(tmp_path / "runs", preset, fsdp_env(decoder_layer_class(spec.config)))
    assert p.returncode == 0, p.stderr[-2000:] + tail_log(run)
    log = (run / "train.log").read_text()
    assert "rank 1 rankwise.worker: run" in log and "finished at step 12" in log
    # the engine as it ran, said: DDP over gloo here (see the module's docstring), never a silent "FSDP"
    assert "distributed: MULTI_CPU, 2 ranks" in log and "launched for FSDP/ZeRO-3 but the Trainer runs MULTI_CPU" in log
    assert of_type(events(run), "end")[-1]["status"] == "finished"
    assert any(c.name == "checkpoint-12" for c in (run / "checkpoints").iterdir())
    shapes = adapter_shapes(run)  # the whole adapter, saved once
    assert shapes and all(0 not in s for s in shapes.values())
    assert shapes["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"] == (16, 128)
