"""advisor/knee.py on synthetic sweep curves: the knee, overfitting and stability signals."""
from __future__ import annotations

import math
import random

import pytest

from rankwise.advisor import knee
from rankwise.advisor.textplot import plot

RANKS = (4, 8, 16, 32, 64)


def curve(rank: int, final_val: float, steps: int = 40, overfit: bool = False, spikes: tuple = (),
          status: str = "complete") -> knee.Curve:
    """Train loss falling smoothly from 3.0 towards 0.8·final_val; eval every 8 steps ending at final_val.
    overfit: train keeps falling fast while eval turns up after its best in the middle."""
    train = []
    for s in range(1, steps + 1):
        floor = 0.3 if overfit else 0.8 * final_val
        loss = floor + (3.0 - floor) * math.exp(-s / 8)
        if s in spikes:
            loss *= 1.8
        train.append((s, loss))
    evals = []
    for s in range(8, steps + 1, 8):
        frac = s / steps
        if overfit:  # best at the middle, back up to final_val at the end
            v = final_val - 0.15 * math.sin(math.pi * frac)
        else:
            v = final_val + (2.8 - final_val) * math.exp(-s / 8) * (1 - frac)
        evals.append((s, v))
    return knee.Curve(rank, status, tuple(train), tuple(evals))


def curves_for(vals: list[float], overfit_from: int | None = None) -> list[knee.Curve]:
    return [curve(r, v, overfit=overfit_from is not None and r >= overfit_from) for r, v in zip(RANKS, vals)]


def _noisy() -> list[float]:
    rng = random.Random(7)
    plateau = 1.70
    return [2.0, 1.8] + [plateau * (1 + rng.uniform(-0.004, 0.004)) for _ in range(3)]


@pytest.mark.parametrize("name, vals, overfit_from, want_knee, want_rec, words", [
    ("flat", [1.5, 1.5, 1.5, 1.5, 1.5], None, 4, 4, "r=4 is the knee"),
    ("steadily improving", [2.0 * 0.95 ** i for i in range(5)], None, None, 64, "no knee in the tested ranks"),
    ("saturating", [2.0, 1.8, 1.7, 1.69, 1.685], None, 16, 16, "r=16 is the knee"),
    ("noisy plateau", _noisy(), None, 16, 16, "r=16 is the knee"),
    ("overfitting at high rank", [2.0, 1.8, 1.7, 1.72, 1.80], 64, 16, 16, "r=16 is the knee"),
])
def test_knee_on_synthetic_sweeps(name, vals, overfit_from, want_knee, want_rec, words):
    a = knee.analyse(curves_for(vals, overfit_from))
    assert a.knee_rank == want_knee, (name, a.reason)
    assert a.recommended_rank == want_rec
    assert words in a.reason
    assert a.common_step == 40
    if overfit_from:
        r64 = next(r for r in a.results if r.rank == 64)
        assert r64.gap_growing
        assert any("r=64" in n and "overfitting" in n for n in a.notes)
        assert not next(r for r in a.results if r.rank == 16).gap_growing


def test_threshold_moves_the_knee():
    vals = [2.0, 1.8, 1.7, 1.66, 1.64]  # 32→64: 1.2% per doubling; 16→32: 2.4%
    assert knee.analyse(curves_for(vals), threshold=0.02).knee_rank == 32
    assert knee.analyse(curves_for(vals), threshold=0.05).knee_rank == 16  # 8→16 gains 5.6%
    assert knee.analyse(curves_for(vals), threshold=0.06).knee_rank == 8


def test_a_noisy_neighbour_does_not_hide_a_later_gain():
    # 8→16 is flat by noise, but 8→32 is a big gain: 8 is not the knee
    assert knee.knee([(4, 2.0), (8, 1.8), (16, 1.79), (32, 1.5), (64, 1.49)]) == 32


def test_spikes_and_roughness():
    smooth = curve(16, 1.7)
    spiky = curve(16, 1.7, spikes=(20, 30))
    assert knee.stability(smooth.train)[0] == 0 and knee.result(smooth, 40).stable
    spikes, rough = knee.stability(spiky.train)
    assert spikes == 2 and not knee.result(spiky, 40).stable
    jagged = tuple((s, 1.5 + (0.4 if s % 2 else -0.4)) for s in range(1, 41))
    assert knee.stability(jagged)[1] > knee.ROUGH
    assert knee.stability(smooth.train[:5]) == (0, None)  # too short to judge


def test_pruned_and_skipped_ranks_are_reported_not_used():
    cs = curves_for([2.0, 1.8, 1.7, 1.69, 1.685])[2:]
    cs.append(curve(4, 2.6, steps=24, status="pruned"))
    cs.append(knee.Curve(128, "skipped", note="estimated peak 90 GiB > 80 GiB GPU"))
    a = knee.analyse(cs)
    assert a.knee_rank == 16 and "r=4 stopped early" in a.reason
    assert a.common_step == 40  # the pruned trial's shorter run does not pull the common step down
    assert any("r=128: skipped: estimated peak" in n for n in a.notes)
    assert knee.analyse([knee.Curve(8, "failed", note="boom")]).recommended_rank is None


def test_refine_ranks():
    assert knee.refine_ranks(16, [4, 8, 16, 32, 64]) == [12, 20, 24]
    assert knee.refine_ranks(4, [4, 8]) == [3, 5, 6]
    assert knee.refine_ranks(2, [2]) == [3]


def test_threshold_must_be_a_fraction():
    with pytest.raises(ValueError):
        knee.analyse(curves_for([1.5] * 5), threshold=2)


def test_plot_puts_ranks_on_a_log2_axis():
    lines = plot([(4, 2.0), (16, 1.7), (64, 1.68)], width=41, height=5, log2x=True)
    axis = lines[-1]
    # equal spacing per doubling: 4, 16, 64 at columns 0, 20, 40 of the plot area
    offset = lines[0].index("┤") + 1
    assert [axis.index(t) - offset for t in ("4", "16", "64")] == [0, 20 - 1, 40 - 1]
    assert lines[0].rstrip().endswith("┤●")  # the highest loss (r=4) at the top left
    assert lines[4].rstrip().endswith("●") and lines[4].count("●") == 2  # 1.7 and 1.68 share the bottom row
    assert plot([], log2x=True) == ["(nothing to plot)"]


@pytest.mark.parametrize("rec, full, want", [
    (16, {16: 1.50, 64: 1.49}, 16),  # the larger rank is better by 0.3% per doubling: not worth it
    (16, {16: 1.50, 64: 1.30}, 64),  # 6.7% per doubling at full length: the short sweep undersold it
    (16, {8: 1.49, 16: 1.50}, 8),  # a smaller rank that is as good or better wins
    (16, {8: 1.60, 16: 1.50}, 16),
])
def test_full_length_validation_decides_between_the_top_two(rec, full, want):
    assert knee.validated_pick(rec, full) == want


def test_validation_pair_is_the_recommendation_and_the_best_other():
    a = knee.analyse(curves_for([2.0, 1.8, 1.7, 1.69, 1.685]))
    assert a.recommended_rank == 16 and knee.validation_pair(a) == [16, 64]
