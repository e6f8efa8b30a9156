"""The worker's FSDP path on the CPU: two ranks started as accelerate's launcher starts them, with the environment
accelerate launch gives rankwise's FSDP config (train_helpers.fsdp_env), train LoRA and QLoRA (bnb_4bit_quant_storage
in the compute dtype, the 4-bit layers flattened into FSDP units) to the end and save the adapter in full."""
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
    assert of_type(events(run), "end")[-1]["status"] == "finished"
    assert any(c.name == "checkpoint-12" for c in (run / "checkpoints").iterdir())
    shapes = adapter_shapes(run)  # FULL_STATE_DICT: gathered from both ranks' shards
    assert shapes and all(0 not in s for s in shapes.values())
    assert shapes["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"] == (16, 128)
