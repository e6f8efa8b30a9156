"""Out of memory during training: the worker halves the micro-batch and keeps the effective batch (up to
MAX_OOM_RETRIES times, one process only), then gives up with what to change."""
from __future__ import annotations

import math

from rankwise.advisor.methods import LEANEST, METHODS

MAX_OOM_RETRIES = 3


class OOMGiveUp(Exception):
    """CUDA ran out of memory and halving the micro-batch did not help (or cannot)."""


def halve(micro: int, accum: int) -> tuple[int, int]:
    """Half the micro-batch, the same effective batch (rounded up when micro is odd)."""
    new = max(1, micro // 2)
    return new, math.ceil(micro * accum / new)


def oom_message(est, gpu_bytes, micro: int, accum: int, retries: int, cfg, prequantized: bool = False) -> str:
    """What to change after the last OOM retry. A pre-quantized (GPTQ/AWQ) base is never told to
    switch to the 4-bit method: bitsandbytes does not quantize it again."""
    gib = 2 ** 30
    where = f"the {gpu_bytes / gib:.1f} GiB GPU" if gpu_bytes else "this device"
    head = (f"out of memory at micro_batch {micro} (grad_accum {accum}) after {retries} "
            f"retr{'y' if retries == 1 else 'ies'}; estimated peak {est.peak_gib:.1f} GiB on {where}" if est else
            f"out of memory at micro_batch {micro} after {retries} retries on {where}")
    fixes = []
    if cfg.train.standard_loss:  # the chunked loss: the same loss and gradients, less memory
        saved = ""
        if est is not None and est.components.get("logits_loss"):  # bytes a logit: the stack's loss vs chunked's
            from rankwise.advisor.activations import chunked_bytes_a_logit

            a = est.plan.dtype_bytes
            share = 1 - chunked_bytes_a_logit(a) / est.plan.stack.logits_bytes(a)
            saved = f", ~{share * est.components['logits_loss'] / gib:.1f} GiB less at the loss"
        fixes.append(f"train.loss: chunked (the same loss, its fp32 work a chunk at a time{saved})")
    if cfg.method != LEANEST and not prequantized:
        fixes.append(f"method: {LEANEST} ({METHODS[LEANEST].base} base weights)")
    if not cfg.train.grad_checkpointing:
        fixes.append("train.grad_checkpointing: true")
    if not cfg.train.activation_offload:  # the same training, the checkpointed inputs in host RAM
        fixes.append("train.activation_offload: true (the checkpointed activations in host RAM, slower steps)")
    fixes.append(f"a shorter train.max_seq_len (now {cfg.train.max_seq_len})")
    fixes.append("a smaller lora.r or fewer target modules")
    return head + "\nto fit, try " + "; ".join(fixes) + " (`rankwise estimate` shows the effect)"
