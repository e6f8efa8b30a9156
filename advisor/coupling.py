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
# Below the narrowest model those sweeps measured (Llama-3.2-1B, hidden 2048) the table has no row.
# Tinker's formula-based get_lr (tinker-cookbook @9dfcc3a, hyperparam_utils.py) scales the LoRA rate
# with width as (2000 / hidden) ** e, e calibrated per family: 0.781 on Llama, 0.0775 on Qwen. Applied
# to narrower models that is an extrapolation, and on bench/advice_quality.py's 64-wide Llama it
# overshot: x15 (7.5e-3) trained worse than the 1-3B rate on two of three eval sets (the optimum there
# was ~3e-3, x6). So the rate stays the table's; the reason says the optimum may be higher and by how
# much the formula would say (`width_factor`), and gives the sweep to run (`lr_grid`): doublings from the
# table's rate up to the formula's, the two bounds the evidence gives for such a model.
WIDTH_REF = 2048
WIDTH_EXPONENT = 0.781  # Llama
FAMILY_WIDTH_EXPONENT = {"qwen": 0.0775}  # model_type prefix -> exponent
BAND = (1 / 20, 8.0)  # lr-out-of-range: an order-of-magnitude mistake, not a tuning choice (measured lr
# curves are flat within a few x of their optimum; 20x below barely moves, 8x above spikes or diverges)


def width_exponent(model_type: str | None) -> float:
    return next((v for k, v in FAMILY_WIDTH_EXPONENT.items() if (model_type or "").startswith(k)), WIDTH_EXPONENT)


def width_factor(hidden: int | None, model_type: str | None = None) -> float:
    """How much a model narrower than WIDTH_REF raises the learning rate (1.0 at WIDTH_REF and wider)."""
    if not hidden or hidden >= WIDTH_REF:
        return 1.0
    return (WIDTH_REF / hidden) ** width_exponent(model_type)


def width_hint(params: int | float | None, hidden: int | None, model_type: str | None = None) -> float:
    """The width factor `reason` quotes as a hint (1.0: none; no hint when the model size is unknown)."""
    return width_factor(hidden, model_type) if params else 1.0


def width_claims(params: int | float | None, hidden: int | None, model_type: str | None = None) -> tuple[str, ...]:
    """The registry claim behind that hint, when `reason` gives it."""
    return ("tinker-lr-width",) if width_hint(params, hidden, model_type) != 1.0 else ()


def lr_grid(params: int | float | None, r: int, alpha: float = ALPHA, rslora: bool = False, *,
            hidden: int | None = None, model_type: str | None = None) -> list[float]:
    """The learning rates to sweep for a model narrower than the sources measured: from the advised rate
    (the table's, coupled to alpha) up to what Tinker's width scaling would say, doubling, the top itself
    last. Empty where the advised rate stands on measurements (WIDTH_REF wide and wider) or where the
    formula moves it by less than 1.2x (Qwen's exponent below ~1,000 wide)."""
    low = learning_rate(params, r, alpha, rslora)
    top = float(f"{low * width_hint(params, hidden, model_type):.2g}")
    if top < low * 1.2:
        return []
    out = [low]
    while out[-1] * 2 <= top / 1.2:
        out.append(float(f"{out[-1] * 2:.2g}"))
    return out + [top]


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


def lr_text(lr: float) -> str:
    """A learning rate as papers write it: 2e-4, 1.4e-4, 7.5e-3 (two significant figures at most)."""
    return f"{lr:.1e}".replace(".0e", "e").replace("e-0", "e-").replace("e+0", "e")


def lrs_text(lrs, sep: str = ", ") -> str:
    """A learning-rate grid as papers write its rates: 5e-4, 1e-3, 7.5e-3."""
    return sep.join(map(lr_text, lrs))


def size_text(params: int | float | None) -> str:
    if not params:
        return "model size unknown"
    if params >= 1e9:
        return f"{params / 1e9:.1f}B parameters"
    return f"{params / 1e6:.0f}M parameters" if params >= 1e7 else f"{params / 1e6:.2g}M parameters"


def reason(params: int | float | None, r: int, alpha: float = ALPHA, rslora: bool = False, *,
           hidden: int | None = None, model_type: str | None = None) -> str:
    """Why `learning_rate(...)` is what it is, in one line."""
    lr = learning_rate(params, r, alpha, rslora)
    base = lr_text(size_lr(params))
    text = f"{base} for {size_text(params)} at alpha = {ALPHA:g}, the same at every rank and for LoRA and QLoRA"
    factor = width_hint(params, hidden, model_type)
    if factor != 1.0:
        text += (f" (hidden size {hidden}, narrower than any model the sources measured: the best rate may be "
                 f"higher; Tinker's width scaling, ({WIDTH_REF}/{hidden})^{width_exponent(model_type):g}, would say "
                 f"x{factor:.2g}, unverified this far out" + (
                     f": sweep it, rankwise sweep --lrs {lrs_text(grid, ',')})" if (grid := lr_grid(
                         params, r, alpha, rslora, hidden=hidden, model_type=model_type)) else ")"))
    eq = equivalent_alpha(r, alpha, rslora)
    if eq != ALPHA:
        text += f"; alpha {'·√r ' if rslora else ''}= {eq:g} scales it by √(32/{eq:g}): {lr_text(lr)}"
    return text
