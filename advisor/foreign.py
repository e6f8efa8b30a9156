"""Other tools' configs → RunConfig, so `rankwise check` can read them.

`load_any(path)` reads a rankwise preset, an axolotl YAML or a LLaMA-Factory YAML, told
apart by their keys. Keys that map are translated (and a value that maps but is invalid is
an error at the foreign file's line); keys that are other tools' own settings are ignored
with a note. A file that is neither foreign kind is validated as a rankwise preset, so an
unknown key there is an error naming the closest valid key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from . import config
from .config import RunConfig, set_key
from .errors import ConfigError, Problem, RankwiseError
from .loader import anchor_paths, parse_yaml, read_text, validate

RANKWISE_KEYS = set(RunConfig.model_fields)
AXOLOTL_MARKS = {"base_model", "adapter", "lora_r", "lora_alpha", "lora_target_modules", "lora_target_linear",
                 "micro_batch_size", "sequence_len", "load_in_4bit", "load_in_8bit", "datasets", "num_epochs",
                 "sample_packing", "lr_scheduler", "val_set_size"}
LLAMAFACTORY_MARKS = {"model_name_or_path", "finetuning_type", "lora_rank", "lora_target", "cutoff_len",
                      "per_device_train_batch_size", "quantization_bit", "stage", "template", "num_train_epochs",
                      "lr_scheduler_type", "dataset", "do_train"}

# scheduler names of HF transformers (both tools use them) that rankwise's three cover
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant", "constant_with_warmup": "constant",
              "cosine_with_min_lr": "cosine", "cosine_with_restarts": "cosine"}
OPTIMS = {"adamw_torch": "adamw_torch", "adamw_torch_fused": "adamw_torch", "adamw_hf": "adamw_torch",
          "adamw_bnb_8bit": "adamw_8bit", "adamw_8bit": "adamw_8bit", "paged_adamw_8bit": "paged_adamw_8bit",
          "paged_adamw_32bit": "adamw_torch"}

Mapper = Callable[[Any, dict, list], None]  # (value, out-dict of dotted keys, notes)


def _to(dotted: str, convert: Callable[[Any], Any] = lambda v: v) -> Mapper:
    def put(value, out, notes):
        out[dotted] = convert(value)
    return put


def _targets(value, out, notes):
    if isinstance(value, str):
        value = "all-linear" if value.strip() in ("all", "all-linear") else [v.strip() for v in value.split(",") if v.strip()]
    out.setdefault("lora.target_modules", value)


def _scheduler(value, out, notes):
    mapped = SCHEDULERS.get(str(value), value)
    if mapped != value and str(value) not in config.SCHEDULERS:
        notes.append(f"scheduler {value!r} checked as {mapped!r}")
    out["train.scheduler"] = mapped


def _optimizer(value, out, notes):
    if str(value) in OPTIMS:
        out["train.optimizer"] = OPTIMS[str(value)]
    else:
        notes.append(f"optimizer {value!r} has no rankwise equivalent: memory checked with the method's default")


def _bf16(value, out, notes):
    if value is True:
        out["train.precision"] = "bf16"
    elif value == "auto":
        out["train.precision"] = "auto"
    elif value not in (False, None):
        out["train.precision"] = value  # invalid: reported at its line


def _fp16(value, out, notes):
    if value is True:
        out.setdefault("train.precision", "fp16")


def _steps(dotted: str) -> Mapper:
    def put(value, out, notes):
        if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
            return  # both tools use -1/0 for "unset"
        out[dotted] = value
    return put


def _ax_adapter(value, out, notes):
    if value == "lora":
        out.setdefault("method", "lora")  # load_in_4bit may already have made it QLoRA
    elif value == "qlora":
        out["method"] = value
    elif value in (None, ""):
        notes.append("no adapter: a full fine-tune; checked as LoRA")
    else:
        out["method"] = value  # invalid: reported at its line


def _ax_4bit(value, out, notes):
    if value is True:
        out["method"] = "qlora"


def _ax_8bit(value, out, notes):
    if value is True:
        notes.append("load_in_8bit (8-bit LoRA) is not modelled: checked as 16-bit LoRA")


def _ax_linear(value, out, notes):
    if value is True:
        out["lora.target_modules"] = "all-linear"


def _ax_gc(value, out, notes):
    out["train.grad_checkpointing"] = bool(value) if not isinstance(value, str) else value.lower() not in ("false", "no", "0")


def _ax_datasets(value, out, notes):
    if isinstance(value, list) and value and isinstance(value[0], dict) and value[0].get("path"):
        out["data.path"] = str(value[0]["path"])
        if len(value) > 1:
            notes.append(f"{len(value)} datasets: only the first ({value[0]['path']}) is checked")


def _ax_val(value, out, notes):
    if isinstance(value, (int, float)) and 0 < value < 1:
        out["data.val_ratio"] = value
    elif value:
        notes.append(f"val_set_size {value} is a row count: rankwise uses data.val_ratio")


AXOLOTL: dict[str, Mapper] = {
    "base_model": _to("model.name"), "adapter": _ax_adapter, "load_in_4bit": _ax_4bit, "load_in_8bit": _ax_8bit,
    "lora_r": _to("lora.r"), "lora_alpha": _to("lora.alpha"), "lora_dropout": _to("lora.dropout"),
    "lora_target_modules": _targets, "lora_target_linear": _ax_linear, "peft_use_rslora": _to("lora.use_rslora"),
    "learning_rate": _to("train.lr"), "lr_scheduler": _scheduler, "micro_batch_size": _to("train.micro_batch"),
    "gradient_accumulation_steps": _to("train.grad_accum"), "sequence_len": _to("train.max_seq_len"),
    "gradient_checkpointing": _ax_gc, "optimizer": _optimizer, "num_epochs": _to("train.epochs"),
    "max_steps": _steps("train.max_steps"), "warmup_steps": _steps("train.warmup_steps"),
    "warmup_ratio": _to("train.warmup_ratio"), "bf16": _bf16, "fp16": _fp16,
    "trust_remote_code": _to("model.trust_remote_code"), "datasets": _ax_datasets, "val_set_size": _ax_val,
    "sample_packing": _to("data.packing"), "weight_decay": _to("train.weight_decay"),
    "max_grad_norm": _to("train.max_grad_norm"), "seed": _to("train.seed"), "logging_steps": _to("train.logging_steps"),
    "save_steps": _steps("train.save_steps"), "eval_steps": _steps("train.eval_steps"),
}


def _lf_type(value, out, notes):
    if value == "lora":
        out.setdefault("method", "lora")
    else:
        notes.append(f"finetuning_type {value!r} is not LoRA: checked as LoRA")


def _lf_quant(value, out, notes):
    if value in (4, "4"):
        out["method"] = "qlora"
    elif value in (8, "8"):
        notes.append("quantization_bit 8 (8-bit LoRA) is not modelled: checked as 16-bit LoRA")
    elif value not in (None, ""):
        out["method"] = f"quantization_bit {value}"  # invalid: reported at its line


def _lf_no_gc(value, out, notes):
    if value is True:
        out["train.grad_checkpointing"] = False


def _lf_dataset(value, out, notes):
    notes.append(f"dataset {value!r} names LLaMA-Factory dataset_info.json entries: data checks skipped")


LLAMAFACTORY: dict[str, Mapper] = {
    "model_name_or_path": _to("model.name"), "finetuning_type": _lf_type, "quantization_bit": _lf_quant,
    "lora_rank": _to("lora.r"), "lora_alpha": _to("lora.alpha"), "lora_dropout": _to("lora.dropout"),
    "lora_target": _targets, "use_rslora": _to("lora.use_rslora"), "learning_rate": _to("train.lr"),
    "lr_scheduler_type": _scheduler, "per_device_train_batch_size": _to("train.micro_batch"),
    "gradient_accumulation_steps": _to("train.grad_accum"), "cutoff_len": _to("train.max_seq_len"),
    "num_train_epochs": _to("train.epochs"), "max_steps": _steps("train.max_steps"),
    "warmup_ratio": _to("train.warmup_ratio"), "warmup_steps": _steps("train.warmup_steps"), "bf16": _bf16,
    "fp16": _fp16, "trust_remote_code": _to("model.trust_remote_code"), "dataset": _lf_dataset,
    "disable_gradient_checkpointing": _lf_no_gc, "optim": _optimizer, "weight_decay": _to("train.weight_decay"),
    "max_grad_norm": _to("train.max_grad_norm"), "seed": _to("train.seed"), "logging_steps": _to("train.logging_steps"),
    "save_steps": _steps("train.save_steps"), "eval_steps": _steps("train.eval_steps"),
}
KINDS = {"axolotl": AXOLOTL, "llama-factory": LLAMAFACTORY}


class _Recording(dict):
    """A dict that remembers which keys were set (to locate each mapped value)."""

    def __init__(self):
        super().__init__()
        self.touched: list[str] = []

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.touched.append(key)

    def setdefault(self, key, value=None):
        if key not in self:
            self[key] = value
        return self[key]


def detect(data: Any) -> str:
    """rankwise | axolotl | llama-factory, by which tool's keys the mapping uses."""
    if not isinstance(data, dict):
        return "rankwise"
    keys = set(map(str, data))
    ax, lf = len(keys & AXOLOTL_MARKS), len(keys & LLAMAFACTORY_MARKS)
    if max(ax, lf) == 0 or (keys <= RANKWISE_KEYS):
        return "rankwise"
    return "axolotl" if ax >= lf else "llama-factory"


def translate(data: dict, kind: str) -> tuple[dict, dict[str, str], list[str]]:
    """Foreign mapping → (nested rankwise dict, dotted rankwise key → foreign key, notes)."""
    table = KINDS[kind]
    flat = _Recording()
    origin: dict[str, str] = {}
    notes: list[str] = []
    ignored = []
    for key, value in data.items():
        mapper = table.get(str(key))
        if mapper is None:
            ignored.append(str(key))
            continue
        mapper(value, flat, notes)
        origin.update(dict.fromkeys(flat.touched, str(key)))
        flat.touched.clear()
    if ignored:
        notes.append(f"ignored {len(ignored)} {kind} key{'s' if len(ignored) > 1 else ''} with no rankwise "
                     f"equivalent (other tools' settings): {', '.join(ignored)}")
    nested: dict = {}
    for dotted, value in flat.items():
        set_key(nested, dotted, value)
    return nested, origin, notes


def load_any(path: str | Path) -> tuple[RunConfig, str, list[str]]:
    """Any supported config file → (RunConfig, kind, notes). Invalid values raise a
    ConfigError located at the file's lines."""
    path = Path(path)
    if not path.exists() and not str(path).endswith((".yaml", ".yml")) and "/" not in str(path):
        from .presets import resolve_preset  # a shipped preset's name, as `train --preset` takes

        path = resolve_preset(str(path))
    source = str(path)
    data, lines = parse_yaml(read_text(path, "config"), source)
    kind = detect(data)
    if kind == "rankwise":
        return validate(anchor_paths(data, path.parent), source, lines), kind, []
    nested, origin, notes = translate(data, kind)
    # locate each rankwise key at the foreign key it came from
    where = {tuple(dotted.split(".")): lines.get((foreign,), 0) for dotted, foreign in origin.items()}
    where = {k: v for k, v in where.items() if v}
    try:
        cfg = validate(nested, source, where)
    except ConfigError as e:
        problems = []
        for p in e.problems:
            dotted = p.message.split(":")[0]
            foreign = origin.get(dotted)
            msg = f"{foreign} (→ {p.message})" if foreign else p.message
            problems.append(Problem(p.where, msg, p.hint))
        raise ConfigError(problems=problems, source=f"{source} ({kind})") from None
    return cfg, kind, notes
