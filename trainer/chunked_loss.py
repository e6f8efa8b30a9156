"""train.loss: chunked — the causal-LM cross-entropy one chunk of logits at a time, in fp32, never on an fp32 copy
of them all.

transformers' loss (loss/loss_utils.py ForCausalLMLoss) runs `logits.float()` on the whole (batch, seq, vocab)
tensor and cross_entropy keeps the fp32 log_softmax for backward: at the loss's backward peak three fp32
vocab-sized tensors are alive (advisor/plan.py, the HF stack: 12 bytes a logit beside the 16-bit logits). Here
the 16-bit logits are cut into CHUNKS pieces of rows; each piece is upcast, its log-sum-exp taken and its loss
summed, then dropped. Only the per-row log-sum-exp (fp32, one per token) is kept; backward recomputes each
piece's softmax from the 16-bit logits and writes its gradient, in the logits' dtype, into one gradient tensor.
Alive at the peak (backward): the 16-bit logits, their 16-bit gradient and one piece's two fp32 temporaries:
2 + 2 + 8 / CHUNKS bytes a logit (advisor/activations.chunked_loss_bytes). The idea is torchtune's
CEWithChunkedOutputLoss (pytorch/torchtune#1390), which axolotl ships as `chunked_cross_entropy`; written here as
an autograd Function so that no compiler is needed for the saving (theirs relies on torch.compile not to keep
each chunk's fp32 log_softmax).

The loss is transformers' exactly: labels shifted by one with ignore_index -100 padding the end, summed over the
supervised tokens and divided by the Trainer's `num_items_in_batch` (the supervised tokens of the whole
accumulated batch, so the Trainer does not divide by the accumulation steps again), or their mean without it.
Used through the HF Trainer's `compute_loss_func` (trainer/worker.py).
"""
from __future__ import annotations

import torch

from rankwise.advisor.activations import CHUNKS  # pieces of rows: the estimate counts one piece's fp32 work

IGNORE = -100


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of `logits` (rows x vocab, any float dtype) against `targets` (rows, IGNORE skipped)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, chunks: int) -> torch.Tensor:
        rows = logits.shape[0]
        step = max(1, -(-rows // chunks))
        lse = torch.empty(rows, dtype=torch.float32, device=logits.device)
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        for start in range(0, rows, step):
            part = logits[start:start + step].float()  # the piece in fp32 (dropped before the next)
            tgt = targets[start:start + step]
            part_lse = torch.logsumexp(part, dim=-1)
            lse[start:start + step] = part_lse
            keep = tgt != IGNORE
            picked = part.gather(1, tgt.clamp(min=0).unsqueeze(1)).squeeze(1)
            total += ((part_lse - picked) * keep).sum()
            del part
        ctx.save_for_backward(logits, targets, lse)
        ctx.step = step
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor):
        logits, targets, lse = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for start in range(0, logits.shape[0], ctx.step):
            # a copy even when the logits are fp32 already: the piece is worked on in place
            probs = logits[start:start + ctx.step].to(torch.float32, copy=True)
            probs.sub_(lse[start:start + ctx.step].unsqueeze(1)).exp_()  # the piece's softmax
            tgt = targets[start:start + ctx.step]
            keep = (tgt != IGNORE).unsqueeze(1).to(probs.dtype)
            probs.scatter_add_(1, tgt.clamp(min=0).unsqueeze(1), -keep)  # softmax - one-hot at the target
            grad[start:start + ctx.step] = probs.mul_(keep).mul_(grad_total)
        return grad, None, None


def chunked_causal_lm_loss(outputs, labels: torch.Tensor, num_items_in_batch=None, chunks: int = CHUNKS) -> torch.Tensor:
    """The HF Trainer's `compute_loss_func`: transformers' causal-LM loss on `outputs.logits`, chunk by chunk."""
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    vocab = logits.shape[-1]
    shifted = torch.nn.functional.pad(labels, (0, 1), value=IGNORE)[..., 1:].to(logits.device)
    total = _ChunkedCrossEntropy.apply(logits.reshape(-1, vocab), shifted.reshape(-1), chunks)
    if num_items_in_batch is not None:
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(total.device)
        return total / num_items_in_batch
    return total / (shifted != IGNORE).sum().clamp(min=1)
