"""rankwise's one alpha / learning-rate parametrisation, used by the recommender, the red flags and the sweep.

alpha is held at ALPHA = 32 at every rank (the update is scaled by 32/r: "LoRA Without Regret",
Thinking Machines 2025, and TRL's recipe hold alpha fixed). Under that parametrisation the best
learning rate hardly moves with rank (TML), so the learning rate is set by model size alone
(`SIZE_LR`) and the same for LoRA and QLoRA (QLoRA's own recipe changed it by model size, not by
quantization: 2e-4 for 7B/13B, 1e-4 for 33B/65B).

A config that sets alpha otherwise is judged through its fixed-alpha equivalent: alpha itself,
or alpha·sqrt(r) with rsLoRA (whose factor alpha/sqrt(r) equals alpha·sqrt(r)/r). A larger alpha
is a larger step at the same learning rate, so the fitting learning rate falls with it; rankwise
takes it as sqrt(32 / equivalent alpha). That exponent is rankwise's interpolation (status
"derived"): under Adam the first steps scale with alpha·lr, which alone would give 32/alpha,
while Biderman et al. 2024 only halved the learning rate when going to alpha = 2r = 512 at
r = 256, sixteen times the reference alpha. The red flag lr-out-of-range uses `band()` around it.
"""
from __future__ import annotations

import math

ALPHA = 32.0  # held at every rank (TML 2025 "LoRA Without Regret"; TRL's GRPO recipe uses 32)
# Peak learning rate at alpha = 32 by model size (parameters up to the bound). 1-3B: Tinker's sweep
# measured 1e-3 (tinker-cookbook hyperparam_utils.get_lr @02face3: Llama-3.2-1B/3B; tulu3, batch 128,
# 780 steps), rankwise takes half (the optimum is for their batch and data); up to 20B: 2e-4 (QLoRA
# 7B/13B; Tinker 3e-4 for Llama-3.1-8B, 1e-3 for Qwen3-8B: the family moves it too); above: 1e-4
# (QLoRA 33B/65B; Tinker 3e-4 for Llama-3.1-70B and Qwen3-32B).
SIZE_LR: tuple[tuple[float, float], ...] = ((3.5e9, 5e-4), (20e9, 2e-4), (math.inf, 1e-4))
UNKNOWN_SIZE_LR = 2e-4  # model size unknown: the 7B-13B value
BAND = (1 / 20, 8.0)  # lr-out-of-range: an order-of-magnitude mistake, not a tuning choice (measured lr
# curves are flat within a few x of their optimum; 20x below barely moves, 8x above spikes or diverges)


def size_lr(params: int | float | None) -> float:
    """The learning rate at alpha = 32 for a model of `params` parameters."""
    if not params:
        return UNKNOWN_SIZE_LR
    return next(lr for bound, lr in SIZE_LR if params <= bound)


def equivalent_alpha(r: int, alpha: float, rslora: bool = False) -> float:
    """The fixed-alpha value with the same update scale at this rank (alpha·sqrt(r) under rsLoRA)."""
    return alpha * math.sqrt(r) if rslora else alpha


def learning_rate(params: int | float | None, r: int, alpha: float = ALPHA, rslora: bool = False) -> float:
    """THE learning rate for a config: by model size, coupled to alpha (and rank, under rsLoRA).
    Two significant figures, as papers write them."""
    lr = size_lr(params) * math.sqrt(ALPHA / equivalent_alpha(r, alpha, rslora))
    return float(f"{lr:.2g}")


def band(lr: float) -> tuple[float, float]:
    """The learning rates around `lr` that red flags accept."""
    return lr * BAND[0], lr * BAND[1]


def size_text(params: int | float | None) -> str:
    if not params:
        return "model size unknown"
    return f"{params / 1e9:.1f}B parameters" if params >= 1e9 else f"{params / 1e6:.0f}M parameters"


def reason(params: int | float | None, r: int, alpha: float = ALPHA, rslora: bool = False) -> str:
    """Why `learning_rate(...)` is what it is, in one line."""
    lr = learning_rate(params, r, alpha, rslora)
    base = f"{size_lr(params):.0e}".replace("e-0", "e-")
    text = f"{base} for {size_text(params)} at alpha = {ALPHA:g}, the same at every rank and for LoRA and QLoRA"
    eq = equivalent_alpha(r, alpha, rslora)
    if eq != ALPHA:
        text += f"; alpha {'·√r ' if rslora else ''}= {eq:g} scales it by √(32/{eq:g}): {lr:g}"
    return text
