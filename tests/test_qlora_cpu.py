"""QLoRA on the CPU keeps training correctly after an evaluation: bitsandbytes' CPU inference repacking, which
drops the gradient through the frozen 4-bit layers, is kept off (trainer/loading.py keep_4bit_trainable_on_cpu)."""
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "presets" / "assets" / "tiny-llama"


def _grads_before_and_after_an_eval(fix: bool):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from rankwise.trainer.loading import keep_4bit_trainable_on_cpu

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(
        TINY, quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                     bnb_4bit_compute_dtype=torch.float32),
        dtype=torch.float32, device_map={"": "cpu"})
    layers = keep_4bit_trainable_on_cpu(base) if fix else None
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    ids = torch.randint(0, 96, (2, 16))

    def grad():
        model.train()
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        return model.base_model.model.model.layers[0].self_attn.q_proj.lora_A["default"].weight.grad.clone()

    before = grad()
    model.eval()
    with torch.no_grad():  # what the Trainer's evaluation does
        model(input_ids=ids)
    return before, grad(), layers


def test_an_evaluation_does_not_change_the_gradient_of_the_first_layers_adapters():
    before, after, layers = _grads_before_and_after_an_eval(fix=True)
    assert layers is not None
    torch.testing.assert_close(after, before)


def test_without_it_this_cpu_would_train_on_a_wrong_gradient():
    """The reason for the fix, on CPUs where bitsandbytes repacks (AVX512-BF16); elsewhere nothing to show."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    probe = AutoModelForCausalLM.from_pretrained(
        TINY, quantization_config=BitsAndBytesConfig(load_in_4bit=True), dtype=torch.float32, device_map={"": "cpu"})
    if not any(getattr(m, "support_avx512bf16_for_cpu", False) for m in probe.modules()):
        pytest.skip("bitsandbytes does not repack 4-bit weights on this CPU")
    before, after, _ = _grads_before_and_after_an_eval(fix=False)
    assert (after - before).abs().max() > 0.1 * before.abs().max()
