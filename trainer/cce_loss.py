"""train.loss: cce — Cut Cross-Entropy (Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
ICLR 2025; the cut-cross-entropy package, apple/ml-cross-entropy): the causal-LM loss computed from the last hidden
states and the output head's weight, block by block in on-chip memory. Neither the vocabulary-sized logits nor their
gradient exist in GPU memory (advisor/activations.fused_loss_bytes: the estimate's "fused" loss, as Liger's).

How it is put in: the causal LM's `forward` is replaced on the instance (under peft's wrapper, which calls it with the
batch and the Trainer's loss kwargs). With labels it runs the decoder (`get_decoder()`), then
`linear_cross_entropy(hidden, head.weight, labels, shift=True, reduction="sum")` with the model's final logit softcap
(Gemma 2), and returns that sum over the supervised tokens divided as transformers' ForCausalLMLoss divides it: by
the Trainer's `num_items_in_batch` when given, else by the count of supervised tokens. No logits are returned.
Without labels (generation, samples) the model's own forward runs.

Runs where the package's Triton kernels do: an NVIDIA GPU with `pip install 'rankwise[kernels]'` (kernel_options
in worker.py says so before anything loads, exit 2). The head must be the plain frozen Linear: a LoRA on lm_head or
lm_head in modules_to_save changes the weight the loss would read (refused, exit 2).
"""
from __future__ import annotations

import types
from typing import Callable

from rankwise.advisor.errors import RankwiseError

# torch and transformers are imported in the functions: the worker imports this module to check options before it
# loads them (kernel_options), and that check must stay quick

IGNORE = -100


REFERENCE_ENV = "RANKWISE_TEST_CCE_REFERENCE"  # test seam: the reference below in place of the GPU kernels


def reference_loss(e, c, targets, ignore_index=IGNORE, softcap=None, reduction="mean", shift=False):
    """Cut Cross-Entropy's definition (its doc.py: `F.cross_entropy((e @ c.T).float(), targets)`, with the shift
    and softcap it describes), logits and all: what its kernels compute without holding them. The CPU's stand-in
    for the package's Triton kernels (REFERENCE_ENV)."""
    import torch

    if shift:
        e, targets = e[..., :-1, :], targets[..., 1:]
    logits = (e @ c.T).float()
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    return torch.nn.functional.cross_entropy(logits.flatten(0, -2), targets.flatten(), ignore_index=ignore_index,
                                             reduction=reduction)


def _package_loss() -> Callable:
    import os

    if os.environ.get(REFERENCE_ENV):
        return reference_loss
    from cut_cross_entropy import linear_cross_entropy

    return linear_cross_entropy


def plain_head(model):
    """The output head (a torch Linear) the loss reads the weight of; a head peft wraps or trains is refused."""
    import torch

    head = model.get_output_embeddings()
    if type(head) is not torch.nn.Linear or head.bias is not None:
        raise RankwiseError("train.loss cce reads the output head's weight, and this run trains or adapts lm_head "
                            f"({type(head).__name__})",
                            "remove lm_head from lora.target_modules and lora.modules_to_save, or set "
                            "train.loss: chunked")
    return head


def use_cce(causal_lm, loss: Callable | None = None) -> None:
    """Replace `causal_lm.forward` (the transformers *ForCausalLM inside peft's wrapper) by one whose loss is Cut
    Cross-Entropy's. `loss`: the linear-cross-entropy function (the package's; a test on a CPU passes a reference
    of the same signature, since the package's kernels need a GPU)."""
    import torch
    from transformers.modeling_outputs import CausalLMOutputWithPast

    plain_head(causal_lm)
    lce = loss or _package_loss()
    original = causal_lm.forward
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)

    def forward(self, input_ids=None, attention_mask=None, labels=None, logits_to_keep=0, **kwargs):
        if labels is None:
            return original(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=logits_to_keep,
                            **kwargs)
        items = kwargs.pop("num_items_in_batch", None)
        out = self.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        hidden = out.last_hidden_state
        labels = labels.to(hidden.device)
        total = lce(hidden, plain_head(self).weight, labels, ignore_index=IGNORE, softcap=softcap, reduction="sum",
                    shift=True)
        if items is None:
            items = (labels[..., 1:] != IGNORE).sum().clamp(min=1)
        elif torch.is_tensor(items):
            items = items.to(total.device)
        return CausalLMOutputWithPast(loss=total / items, logits=None, hidden_states=out.hidden_states,
                                      attentions=out.attentions)

    causal_lm.forward = types.MethodType(forward, causal_lm)
