"""train.activation_offload (trainer/activation_offload.py): the decoder's saved tensors, under gradient checkpointing
each layer's input, go through save_on_cpu and the head's and loss's do not; the estimate moves those inputs to host
RAM and counts the copies' time; the option needs checkpointing; axolotl's and TRL's keys map to it; a real run logs
the standard run's losses."""
import pytest
import torch
from peft import LoraConfig, get_peft_model
from train_helpers import events, of_type, only_run, tail_log, train
from transformers import LlamaConfig, LlamaForCausalLM

from rankwise.advisor.config import RunConfig
from rankwise.advisor.foreign import read
from rankwise.advisor.memory import GIB, Plan, estimate
from rankwise.advisor.model import load_model
from rankwise.trainer.activation_offload import offload_decoder_activations

LAYERS = 3


def _model():
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=LAYERS, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=97)
    model = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.train()
    return model


def _step(model):
    """Loss, LoRA gradients, and the shapes of what reached the saved-tensor hooks outside save_on_cpu."""
    ids = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(1))
    seen = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: seen.append(tuple(t.shape)) or t, lambda t: t):
        out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return out.loss.item(), grads, seen


def test_the_decoders_saved_inputs_go_through_save_on_cpu_and_the_loss_is_unchanged():
    loss, grads, seen = _step(_model())
    model = _model()
    offload_decoder_activations(model)
    loss_off, grads_off, seen_off = _step(model)
    hidden = (2, 9, 64)
    # every checkpointed layer's input reached the outer hooks without offload; none with it
    assert seen.count(hidden) >= LAYERS and seen_off.count(hidden) < seen.count(hidden) - LAYERS + 1
    assert (18, 97) in seen_off  # the loss's (2 x 9 rows of the vocabulary) stay on the device
    assert loss_off == pytest.approx(loss, rel=1e-6)
    assert all(torch.allclose(grads_off[n], grads[n], atol=1e-7) for n in grads)
    with torch.no_grad():  # an evaluation forward is left alone, and nothing stays entered after a forward
        model(input_ids=torch.zeros(1, 4, dtype=torch.long))
    _, _, again = _step(model)
    assert again == seen_off


def test_the_estimate_moves_the_checkpointed_inputs_to_host_ram():
    spec = load_model("llama-3.1-8b")
    on = estimate(spec, Plan("qlora", seq_len=16384, activation_offload=True))
    off = estimate(spec, Plan("qlora", seq_len=16384))
    inputs = 16384 * spec.num_layers * spec.hidden_size * 4  # the fp32 residual stream of the kbit upcast
    assert on.host_activation_bytes == inputs == 8 * GIB
    assert off.components["activations"] - on.components["activations"] == inputs - 16384 * spec.hidden_size * 4
    assert any("activation offload" in a for a in on.assumptions)
    with pytest.raises(ValueError, match="grad_checkpointing"):
        RunConfig.model_validate({"train": {"activation_offload": True, "grad_checkpointing": False}})


@pytest.mark.parametrize("text,on", [("activation_offloading: true\n", True), ("activation_offloading: legacy\n", True),
                                     ("gradient_checkpointing: offload\n", True), ("", False)])
def test_axolotls_activation_offloading_maps_to_it(tmp_path, text, on):
    f = tmp_path / "axolotl.yaml"
    gc = "" if text.startswith("gradient") else "gradient_checkpointing: true\n"
    f.write_text("base_model: meta-llama/Llama-3.1-8B\nadapter: qlora\nload_in_4bit: true\nsequence_len: 8192\n"
                 + gc + text)
    r = read(f)
    assert r.cfg.train.activation_offload is on and r.cfg.train.grad_checkpointing
    assert not any(s.code == "not-modelled" and "offload" in s.message for s in r.said)


def test_trls_activation_offloading_maps_to_it(tmp_path):
    f = tmp_path / "trl.yaml"
    f.write_text("model_name_or_path: meta-llama/Llama-3.1-8B\nuse_peft: true\nactivation_offloading: true\n"
                 "gradient_checkpointing: true\nmax_length: 4096\n")
    assert read(f).cfg.train.activation_offload is True
    f.write_text(f.read_text().replace("gradient_checkpointing: true", "gradient_checkpointing: false"))
    r = read(f)  # every saved activation then: said, not a config rankwise refuses
    assert not r.cfg.train.activation_offload and any(s.key == "activation_offloading" for s in r.said)


@pytest.mark.slow
def test_a_run_with_activation_offload_trains_with_the_standard_losses(tmp_path):
    """The demo preset with checkpointing, twice: the offloaded run logs the same losses and finishes."""
    logged = {}
    for on in (False, True):
        runs = tmp_path / str(on)
        p = train(runs, "--set", "train.grad_checkpointing=true", "--set", f"train.activation_offload={str(on).lower()}")
        run = only_run(runs)
        assert p.returncode == 0, p.stderr[-2000:] + tail_log(run)
        logged[on] = [e["loss"] for e in of_type(events(run), "step") if e.get("loss") is not None]
        assert of_type(events(run), "end")[-1]["status"] == "finished"
    assert len(logged[True]) == len(logged[False]) >= 3
    assert logged[True] == pytest.approx(logged[False], rel=1e-5)


def test_it_is_the_first_fix_offered_before_shorter_sequences():
    """Llama-3.1-8B QLoRA at 12,288 tokens with the chunked loss: ~24.4 GiB on an RTX 4090. Moving the 32
    checkpointed inputs (6 GiB of fp32 residual stream) to host RAM fits it without changing what is trained, so it
    comes before shorter sequences; with checkpointing off the fix turns both on."""
    from rankwise.advisor import fit
    from rankwise.advisor.hardware import planned

    spec, hw = load_model("llama-3.1-8b"), planned(gpu="RTX4090")
    cfg = RunConfig.model_validate({"model": {"name": "llama-3.1-8b"}, "method": "qlora",
                                    "train": {"max_seq_len": 12288, "loss": "chunked"}})
    assert fit.assess(spec, cfg, hw, method="qlora").verdict == "wont-fit"
    first = next(s for s in fit.suggest_fixes(spec, hw, cfg, "qlora") if s["fit"] == "fits")
    assert first["patch"] == {"train.activation_offload": True}
    off = cfg.model_copy(update={"train": cfg.train.model_copy(update={"grad_checkpointing": False})})
    patches = [s["patch"] for s in fit.suggest_fixes(spec, hw, off, "qlora")]
    assert {"train.activation_offload": True, "train.grad_checkpointing": True} in patches


def test_the_oom_message_offers_it_until_it_is_on():
    from rankwise.trainer.oom import oom_message

    est = estimate(load_model("llama-3.1-8b"), Plan("lora", seq_len=8192))
    text = oom_message(est, 24 * 2 ** 30, 1, 8, 2, RunConfig.model_validate({"method": "lora"}))
    assert "train.activation_offload: true" in text
    assert text.index("activation_offload") < text.index("shorter train.max_seq_len")
    on = RunConfig.model_validate({"method": "lora", "train": {"activation_offload": True}})
    assert "activation_offload" not in oom_message(est, 24 * 2 ** 30, 1, 8, 2, on)


def test_llamafactorys_unsloth_checkpointing_maps_to_it(tmp_path):
    """use_unsloth_gc: LLaMA-Factory's UnslothGradientCheckpointing moves each checkpointed layer's input to the CPU
    in forward and back in backward, as train.activation_offload does; it was said as not modelled."""
    f = tmp_path / "lf.yaml"
    f.write_text("model_name_or_path: llama-3.2-1b\nstage: sft\nfinetuning_type: lora\nuse_unsloth_gc: true\n")
    r = read(f)
    assert r.cfg.train.activation_offload and r.cfg.train.grad_checkpointing
    assert not any(s.key == "use_unsloth_gc" for s in r.said) and r.origin["train.activation_offload"] == "use_unsloth_gc"
    f.write_text(f.read_text() + "disable_gradient_checkpointing: true\n")  # unused without checkpointing
    r = read(f)
    assert not r.cfg.train.activation_offload and not r.cfg.train.grad_checkpointing
