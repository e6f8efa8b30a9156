"""train.activation_offload: the decoder's saved activations wait in host RAM during the step.

With gradient checkpointing, what autograd saves inside the decoder (the model's body, `get_decoder()`) is each
checkpointed layer's input (torch.utils.checkpoint saves the inputs it will recompute from) and the final norm's.
Here the decoder's forward runs under torch.autograd.graph.save_on_cpu: each saved tensor is copied to host RAM as it
is saved (pinned on a GPU) and copied back when backward needs it, so the GPU holds one layer's input at a time
instead of every layer's (advisor/memory.py). The head and the loss run outside it: their vocabulary-sized tensors
stay on the GPU (as TRL's and torchtune's OffloadActivations keep the output head's: moving them would cost more
PCIe time than the memory is worth for the step's peak, which they set either way). A forward without gradients
(evaluation, samples) is left alone. The copies are not overlapped with compute (advisor/time.py counts them).
"""
from __future__ import annotations


def offload_decoder_activations(model) -> None:
    """Enter save_on_cpu as the decoder's forward starts (with gradients on) and leave it as it returns."""
    import torch

    decoder = model.get_base_model().get_decoder() if hasattr(model, "get_base_model") else model.get_decoder()
    active: list = []

    def enter(module, args):
        while active:  # a forward that raised (an OOM the run retries) never reached `leave`
            active.pop().__exit__(None, None, None)
        if torch.is_grad_enabled():
            ctx = torch.autograd.graph.save_on_cpu(pin_memory=torch.cuda.is_available())
            ctx.__enter__()
            active.append(ctx)

    def leave(module, args, output):
        if active:
            active.pop().__exit__(None, None, None)

    decoder.register_forward_pre_hook(enter)
    decoder.register_forward_hook(leave)
