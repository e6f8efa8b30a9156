"""Bytes autograd keeps for backward inside one module: the measurement behind the hybrid layers' counts
(test_linear_attention.py, test_mamba.py)."""


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
