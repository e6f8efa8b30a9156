"""Measurements on tiny hybrid models (test_linear_attention.py, test_mamba.py): the bytes autograd keeps for backward
inside one module, behind the hybrid layers' counts, and what packing does to a packed example's logits."""


def saved_in(model, module, seq: int, vocab: int = 500) -> int:
    """Bytes of the tensors autograd saves inside `module` (parameters excluded; each storage once) in one forward of
    `seq` random tokens under bf16 autocast."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    inside, saved = {"on": False}, {}
    module.register_forward_pre_hook(lambda m, a: inside.__setitem__("on", True))
    module.register_forward_hook(lambda m, a, o: inside.__setitem__("on", False))

    def pack(t):
        if inside["on"] and t.numel() and t.untyped_storage().data_ptr() not in params:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(0, vocab, (1, seq))
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids)
    return sum(saved.values())


def lora_model(model, targets):
    """`model` in bf16 under LoRA r=8 (no dropout) on `targets`, in training mode."""
    import torch
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(model.to(torch.bfloat16), LoraConfig(r=8, lora_dropout=0.0, target_modules=targets))
    model.train()
    return model


def qlora_model(cfg, path, targets, keep: tuple[str, ...] = ()):
    """`cfg` built with random weights (seed 0), saved to `path` and loaded under QLoRA as rankwise loads it: NF4 with
    double quant (bitsandbytes on the CPU), the linears in `keep` left 16-bit (methods.skip_modules), peft's
    prepare_model_for_kbit_training (its fp32 upcast), LoRA r=8 (no dropout) on `targets`, in training mode."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from rankwise.advisor.methods import skip_modules

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16, **skip_modules(keep))
    model = prepare_model_for_kbit_training(
        AutoModelForCausalLM.from_pretrained(path, quantization_config=quant, dtype=torch.bfloat16),
        use_gradient_checkpointing=False)
    model = get_peft_model(model, LoraConfig(r=8, lora_dropout=0.0, target_modules=targets))
    model.train()
    return model


def packed_vs_alone(model, vocab: int = 500) -> float:
    """The largest logit difference on a 7-token example, run alone and packed after a 10-token one with position_ids
    restarting at it (rankwise's packing, no attention mask): ~0 where every layer keeps packed examples apart."""
    import torch

    a, b = torch.randint(0, vocab, (1, 10)), torch.randint(0, vocab, (1, 7))
    with torch.no_grad():
        alone = model(input_ids=b, use_cache=False).logits
        positions = torch.cat([torch.arange(10), torch.arange(7)])[None]
        packed = model(input_ids=torch.cat([a, b], 1), position_ids=positions, use_cache=False).logits[:, 10:]
    return (alone - packed).abs().max().item()
