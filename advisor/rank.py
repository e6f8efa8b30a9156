"""The rank: the task's band as the prior, a capacity check against the data's trained tokens, and the
model's width as the ceiling (ModelSpec.low_rank_cap). `recommend.advise` and the sweep's too-short check
(trainer/sweep_plan.py) read it."""
from __future__ import annotations

from .model import ModelSpec
from .units import human_count

# Rank bands by how far the task moves the model's behaviour. The LoRA paper (Hu et al.
# 2021, §7.2) found r = 1–8 enough for GLUE-style adaptation; QLoRA (Dettmers et al. 2023)
# used r = 64 on all linears for instruction tuning; code/maths/domain continued training
# needs the higher ranks (Biderman et al. 2024, "LoRA Learns Less and Forgets Less").
BANDS: dict[str, tuple[int, int]] = {
    "classification": (4, 8), "format": (4, 8), "style": (4, 8),
    "instruction": (16, 32), "chat": (16, 32),
    "domain": (64, 128), "code": (64, 128), "reasoning": (64, 128),
}
NEW_KNOWLEDGE = ("domain", "code", "reasoning")
# Capacity (TML 2025 "LoRA Without Regret": LoRA matches full fine-tuning until the data's
# information exceeds the adapter's). rankwise's arithmetic, status "derived": an adapter holds
# ~2 bits per trainable parameter (TML's estimate) and a fine-tune's data is taken to carry at most
# ~1 bit per trained token beyond what the base already predicts (an assumption); trained tokens
# above 2x the trainable parameters make the plan look capacity-limited.
BITS_PER_PARAM = 2.0
BITS_PER_TOKEN = 1.0
WIDE_RANK = 256  # code/reasoning, capacity-limited: Biderman et al. 2024 recommend r = 256 for code


def trained_tokens(rows: int | None, seq_len: int, row_tokens: int | None,
                   share: float | None = None) -> tuple[int | None, str]:
    """The distinct tokens the run trains on (rows x tokens a row the loss reads) and how they were counted: what
    the capacity check weighs against the adapter. Epochs are left out: a second pass repeats the same information,
    and the capacity argument (TML 2025) is about the information in the data. `share`: of a row's text, what the
    loss reads with the prompt masked (DatasetScan.trained_share; None: all of it)."""
    if rows is None:
        return None, "no data size given"
    if row_tokens and share is not None and share < 1:
        per = max(1, round(min(row_tokens, seq_len) * share))
        how = f"the responses: {share:.0%} of the median row length, the prompt is not trained on"
    elif row_tokens:
        per, how = min(row_tokens, seq_len), "median row length"
    else:
        per, how = seq_len // 2, f"half of max_seq_len {seq_len} a row (lengths unknown; pass --dataset)"
    return rows * per, f"{rows:,} rows × ~{per:,} tokens ({how}; epochs repeat them)"


def capacity(trainable: int) -> int:
    """The trained tokens an adapter of `trainable` parameters holds (BITS_PER_PARAM, BITS_PER_TOKEN above)."""
    return int(trainable * BITS_PER_PARAM / BITS_PER_TOKEN)


def capacity_limited(tokens: int | None, trainable: int) -> bool:
    """More information in the data than the adapter holds (BITS_PER_PARAM, BITS_PER_TOKEN above)."""
    return tokens is not None and tokens * BITS_PER_TOKEN > trainable * BITS_PER_PARAM


def choose(task: str, spec: ModelSpec, targets: str, tokens: int | None, how: str,
          parameters: list[str] | tuple[str, ...] = ()) -> tuple[int, str, list[str]]:
    """The task band's lower end as the prior; its upper end when the data's trained tokens exceed
    the lower end's capacity; neither above the rank at which LoRA stops being low-rank on this model
    (ModelSpec.low_rank_cap). Returns (r, why, notes)."""
    band_lo, band_hi = BANDS[task]
    top = spec.low_rank_cap
    lo, hi = min(band_lo, top), min(band_hi, top)
    why = f"{task} sits in the {band_lo}–{band_hi} rank band (the guide's prior)"
    if hi < band_hi:
        why += (f", capped to {hi}: this model is {spec.hidden_size} wide, and above r = {spec.low_rank_limit} an "
                f"adapter on a {spec.hidden_size}×{spec.hidden_size} projection holds more parameters than the "
                "projection itself (no longer low-rank)")
    if tokens is None:
        return lo, why + "; no data size given, so the lower end (pass --dataset or --samples for the capacity check)", []
    at_lo = spec.lora_params(targets, lo, parameters)
    over = capacity_limited(tokens, at_lo)
    why += (f"; capacity check: ~{human_count(tokens)} trained tokens ({how}) {'exceed' if over else 'fit'} r = "
            f"{lo}'s ~{human_count(capacity(at_lo))}-token capacity")
    r = lo
    if over and hi > lo:
        why, r = why + ": the upper end", hi
    return r, why, _limited(task, spec, tokens, spec.lora_params(targets, r, parameters), r, band_hi)


def _limited(task: str, spec: ModelSpec, tokens: int, trainable: int, r: int, band_hi: int) -> list[str]:
    """The note when the data's trained tokens exceed the chosen rank's capacity (none when they fit)."""
    if not capacity_limited(tokens, trainable):
        return []
    head = (f"capacity-limited: ~{human_count(tokens)} trained tokens exceed even r = {r}'s "
            f"~{human_count(capacity(trainable))}-token capacity (TML 2025)")
    if r < band_hi:  # capped by the model's width
        return [head + f": a higher rank would no longer be low-rank on this {spec.hidden_size}-wide model; more "
                       "epochs, or full fine-tuning of a model this small"]
    wider = (f"; code/reasoning at r = {WIDE_RANK} if memory allows (Biderman et al. 2024)"
             if task in NEW_KNOWLEDGE and spec.low_rank_cap >= WIDE_RANK else "")
    return [head + f": a higher rank should still help{wider}; sweep it"]


def first_sweep(task: str, r: int, r_max: int | None, top: int) -> list[int]:
    """The first sweep's ranks: around the band, within the budget's r_max and the model's low-rank cap."""
    lo, hi = BANDS[task]
    ranks = {min(x, top) for x in (max(1, lo // 2), lo, hi, hi * 2, r)}
    if len(ranks) < 3:  # the model's width cut the band short: the ranks below its cap instead
        ranks |= {max(1, top // 2), max(1, top // 4)}
    return sorted(x for x in ranks if r_max is None or x <= r_max)
