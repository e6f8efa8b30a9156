"""When a run saves and evaluates: the one answer the worker passes to the HF Trainer and the time planner counts.

`train.save_steps` / `train.eval_steps` give intervals in optimizer steps; `train.saves_per_epoch` /
`train.evals_per_epoch` (axolotl's keys) give counts per epoch, resolved against the steps an epoch takes:
every floor(steps an epoch / N) steps, so that an epoch holds at least N and the last one falls within an
interval of the epoch's end. axolotl rounds up instead (utils/config/__init__.py: save_steps = 1 /
(saves_per_epoch × num_epochs) of the run, which HF turns into ceil(max_steps × that)), which loses the last
one whenever N does not divide the epoch: 4 an epoch of 5,938 steps is every 1,485 steps, 3 evaluations;
rankwise makes it every 1,484, 4. A per-epoch count takes precedence over the interval beside it (ignored.py
says so). Unset eval cadence: at each save.

The HF Trainer evaluates when the global step is a multiple of the eval interval (DefaultFlowCallback), and not
again at the end of training, so a run of S steps evaluates S // eval_steps times. Steps an epoch are HF's
(transformers 5 Trainer.set_initial_training_values): ceil(micro-batches an epoch / grad_accum), at least 1.
No torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import TrainSection


def steps_per_epoch(sequences: int, per_step_batch: int, grad_accum: int) -> int:
    """Optimizer steps an epoch of `sequences` takes at `per_step_batch` sequences a micro-batch (all ranks)."""
    batches = math.ceil(sequences / per_step_batch)
    return max(1, math.ceil(batches / grad_accum))


@dataclass(frozen=True)
class Cadence:
    save_steps: int
    eval_steps: int

    def evaluations(self, steps: int) -> int:
        """How many evaluations a run of `steps` optimizer steps makes (with validation data)."""
        return steps // self.eval_steps


def every(per_epoch: int | None, count: int) -> int | None:
    """The interval of `count` events an epoch of `per_epoch` steps (None: the epoch is not known)."""
    return None if per_epoch is None else max(1, per_epoch // count)


def resolve(train: "TrainSection", per_epoch: int | None) -> Cadence:
    """The save and eval intervals of `train` for epochs of `per_epoch` steps (None: not known, so a per-epoch
    count falls back to the interval beside it)."""
    save = (every(per_epoch, train.saves_per_epoch) if train.saves_per_epoch else None) or train.save_steps
    evaluate = (every(per_epoch, train.evals_per_epoch) if train.evals_per_epoch else None) \
        or train.eval_steps or save
    return Cadence(save, evaluate)
