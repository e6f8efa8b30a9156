"""Settings the resolved config will not use, each said as an info finding with why.

A setting that is ignored warns rather than raises (STYLE: "three kinds of problem"): the
run works, but not as the file reads. `redflags.run_rules` runs these `RULES` beside its own,
so `rankwise check`, `advise`, the Advice screen and the worker's log show them. Info
findings never change an exit code.

"Written" means the user (or the tool that built the config) set the key: pydantic's
`model_fields_set` of its section, not a comparison with the schema's default, so
`epochs: 1` beside `max_steps: 200` is said although 1 is the default (`with_values` and the
recommender keep unset fields unset, so their configs say only what they chose). `quant.*`
and `distributed.strategy` also ask for a value other than the default: the QLoRA defaults or
`strategy: auto` written out in a one-GPU LoRA preset describe what would be used, not a wish.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from pydantic import BaseModel

from .finding import Finding
from .methods import METHODS

if TYPE_CHECKING:
    from .redflags import Context


def _written(section: BaseModel, name: str) -> bool:
    return name in section.model_fields_set


def _non_default(section: BaseModel, name: str) -> bool:
    return _written(section, name) and getattr(section, name) != type(section).model_fields[name].default


def _quantized_base(method: str) -> bool:
    """Whether `method` quantizes the base (methods.py), the only case that reads `quant.*`."""
    return METHODS[method].quantized


def quant_unused(ctx: Context) -> Finding | None:
    if _quantized_base(ctx.method):
        return None
    q = ctx.cfg.quant
    keys = [name for name in type(q).model_fields if _non_default(q, name)]
    if not keys:
        return None
    said = ", ".join(f"quant.{k} {getattr(q, k)}" for k in keys)
    how = ctx.method_note if ctx.cfg.method == "auto" else f"method {ctx.cfg.method}"
    return Finding("ignored-quant", "info", f"{said}: ignored, the base is not quantized ({how})",
                   "quant.* configures the 4-bit (bitsandbytes) base of QLoRA; LoRA loads the base in 16-bit, "
                   "so these settings change nothing",
                   "remove them, or set method: qlora if you meant a 4-bit base")


def warmup_ratio_overridden(ctx: Context) -> Finding | None:
    t = ctx.cfg.train
    if not _written(t, "warmup_ratio") or t.warmup_steps is None:
        return None
    return Finding("ignored-warmup-ratio", "info",
                   f"train.warmup_ratio {t.warmup_ratio:g}: ignored, train.warmup_steps {t.warmup_steps} sets the warmup",
                   "warmup_steps overrides warmup_ratio: the run warms up for exactly that many steps",
                   "keep one of them: remove train.warmup_ratio, or remove train.warmup_steps to warm up by ratio")


def epochs_overridden(ctx: Context) -> Finding | None:
    t = ctx.cfg.train
    if not _written(t, "epochs") or t.max_steps is None:
        return None
    return Finding("ignored-epochs", "info",
                   f"train.epochs {t.epochs:g}: ignored, train.max_steps {t.max_steps} sets the length",
                   "max_steps overrides epochs: the run stops after that many optimizer steps, however many "
                   "passes over the data that is",
                   "keep one of them: remove train.epochs, or remove train.max_steps to train by epochs")


def eval_steps_without_validation(ctx: Context) -> Finding | None:
    t, d = ctx.cfg.train, ctx.cfg.data
    key = next((k for k in ("evals_per_epoch", "eval_steps") if _written(t, k) and getattr(t, k) is not None), None)
    if key is None or d.val_path or d.val_ratio > 0:
        return None
    return Finding("ignored-eval-steps", "info",
                   f"train.{key} {getattr(t, key)}: ignored, there is no validation data",
                   "evaluation needs data.val_path or data.val_ratio; without either the run never evaluates",
                   "hold out validation rows with data.val_ratio: 0.05 (or give data.val_path), "
                   f"or remove train.{key}", {"data.val_ratio": 0.05})


def interval_overridden(ctx: Context) -> Finding | None:
    """A per-epoch count beside the step interval it replaces (advisor/cadence.py: the count wins)."""
    t = ctx.cfg.train
    pairs = [(count, interval) for count, interval in (("saves_per_epoch", "save_steps"),
                                                      ("evals_per_epoch", "eval_steps"))
             if getattr(t, count) is not None and _written(t, interval) and getattr(t, interval) is not None]
    if not pairs:
        return None
    said = ", ".join(f"train.{interval} {getattr(t, interval)}" for _, interval in pairs)
    by = " and ".join(f"train.{count} {getattr(t, count)}" for count, _ in pairs)
    return Finding("ignored-step-interval", "info", f"{said}: ignored, {by} sets the cadence",
                   "a count per epoch is resolved against the steps an epoch takes and replaces the interval "
                   "(axolotl refuses the two together)",
                   "keep one of them: remove the interval, or the per-epoch count to save or evaluate by steps")


def unused_by_format(ctx: Context) -> Finding | None:
    """Settings a declared data.format never reads: a chat template for rows rendered as written (prompt_completion,
    text), training on the inputs of text rows (trained whole already)."""
    m, d = ctx.cfg.model, ctx.cfg.data
    unused = ([f"model.chat_template (data.format {d.format}: rows are not rendered with a chat template)"]
              if m.chat_template and d.format in ("prompt_completion", "text") else [])
    unused += (["data.train_on_inputs (data.format text: a text row is trained whole already)"]
               if d.train_on_inputs and d.format == "text" else [])
    if not unused:
        return None
    return Finding("ignored-by-format", "info", f"{'; '.join(unused)}: ignored",
                   "chat templates render chat and instruction rows; prompt_completion and text rows are trained as "
                   "written, and a text row has no prompt to mask",
                   "remove the setting, or set data.format to the rows' format if it was meant for them")


def strategy_single_process(ctx: Context) -> Finding | None:
    dist = ctx.cfg.distributed
    if not _non_default(dist, "strategy") or ctx.gpus > 1:
        return None
    return Finding("ignored-strategy", "info",
                   f"distributed.strategy {dist.strategy}: ignored, the run trains on one GPU",
                   "DDP, FSDP and DeepSpeed share work across several processes; on one GPU "
                   f"(distributed.gpus {dist.gpus} here) the run is one plain process",
                   "set distributed.gpus (or `rankwise train --gpus N`) to train on several GPUs, "
                   "or remove distributed.strategy")


def replaced_by_deepspeed(ctx: Context) -> Finding | None:
    """A DeepSpeed file with an optimizer or scheduler section: DeepSpeed builds that one (advisor/deepspeed_file.py),
    whatever train.optimizer / train.scheduler say."""
    from . import deepspeed_file
    from .errors import RankwiseError

    path = ctx.cfg.distributed.deepspeed_config
    if not path:
        return None
    try:
        f = deepspeed_file.read(path)
    except RankwiseError:  # an unreadable file is said where the estimate refuses it
        return None
    unused = ([f"train.optimizer {ctx.cfg.resolved_optimizer(ctx.method)} (the file's {f.optimizer})"]
              if f.optimizer else []) + ([f"train.scheduler {ctx.cfg.train.scheduler} (the file's {f.scheduler})"]
                                         if f.scheduler else [])
    if not unused:
        return None
    return Finding("ignored-by-deepspeed", "info", f"{', '.join(unused)}: ignored, {path} names its own",
                   "with an optimizer or scheduler section in its DeepSpeed config, the HF Trainer lets DeepSpeed "
                   "build that one from the file; the estimate counts DeepSpeed's Adam/AdamW (two fp32 moments)",
                   "remove the section from the file to use rankwise's settings, or keep it knowingly")


RULES: list[Callable[[Context], Finding | None]] = [
    quant_unused, warmup_ratio_overridden, epochs_overridden, eval_steps_without_validation, interval_overridden,
    strategy_single_process, replaced_by_deepspeed, unused_by_format,
]
