"""The Advice screen's form: which config keys it shows (`FIELDS`, the choices from the schema's
enumerations), each field's widget id, and how a value is shown in the form and read back from it."""
from __future__ import annotations

from pathlib import Path

from rankwise.advisor.config import (ATTENTIONS, BIASES, FSDP_SHARDINGS, KERNELS, LORA_INITS, LOSS_MODES, OFFLOADS,
                                     OPTIMIZER_CHOICES, PRECISIONS, SCHEDULERS, STRATEGIES, TARGET_SETS)
from rankwise.advisor.methods import METHOD_NAMES

# (dotted key, label, choices or None for a typed value); the choices are the schema's enumerations
FIELDS: tuple[tuple[str, str, tuple | None], ...] = (
    ("method", "method", ("auto",) + METHOD_NAMES),
    ("lora.r", "rank", None),
    ("lora.alpha", "alpha", None),
    ("lora.target_modules", "target modules", None),
    ("lora.target_parameters", "expert params", None),  # an MoE's fused expert tensors (peft target_parameters)
    ("lora.dropout", "dropout", None),
    ("lora.bias", "bias", BIASES),
    ("lora.init", "init", LORA_INITS),
    ("train.lr", "learning rate", None),
    ("train.scheduler", "schedule", SCHEDULERS),
    ("train.micro_batch", "micro-batch", None),
    ("train.grad_accum", "grad accum", None),
    ("train.max_seq_len", "seq len", None),
    ("train.grad_checkpointing", "grad checkpoint", ("on", "off")),
    ("train.activation_offload", "act. offload", ("off", "on")),
    ("train.optimizer", "optimizer", OPTIMIZER_CHOICES),
    ("train.loss", "loss", LOSS_MODES),
    ("train.precision", "precision", PRECISIONS),
    ("train.attention", "attention", ATTENTIONS),
    ("train.kernels", "kernels", KERNELS),
    # several GPUs: the estimate is per GPU; a combination the trainer refuses (offload on one GPU) shows its message
    # where the bars were, as `rankwise check` says it
    ("distributed.gpus", "GPUs", None),
    ("distributed.strategy", "strategy", ("auto",) + STRATEGIES),
    ("distributed.offload", "offload", OFFLOADS),
    ("distributed.fsdp_sharding", "FSDP sharding", FSDP_SHARDINGS),
    ("distributed.deepspeed_config", "DeepSpeed JSON", None),  # a path; empty: none (DeepSpeed's own sizes)
)


ON_OFF = ("train.grad_checkpointing", "train.activation_offload")  # booleans shown as on / off


def wid(key: str) -> str:
    return "f-" + key.replace(".", "--")


def shown(key: str, value) -> str:
    if key in ON_OFF:
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(value)
    if value is None:
        return ""
    if key == "train.lr":
        return f"{value:g}"
    return str(value)


def parsed(key: str, text: str):
    """Form text → the value for the schema (pydantic validates and converts the rest)."""
    text = text.strip()
    if key in ON_OFF:
        return text == "on"
    if key == "lora.target_modules":
        if text in TARGET_SETS:
            return text
        return [p.strip() for p in text.split(",") if p.strip()]
    if key == "lora.target_parameters":
        return [p.strip() for p in text.split(",") if p.strip()]
    if text == "" and key in ("lora.alpha", "distributed.deepspeed_config"):
        return None
    if key == "distributed.deepspeed_config":
        return str(Path(text).expanduser().resolve())  # typed here: relative to the current directory
    if key == "distributed.gpus" and text.isdigit():
        return int(text)  # the schema takes a count or auto, not the digits as text
    return text


def preset_path(answer: str, folder: Path) -> Path:
    """The save dialog's answer: a bare name is `folder/NAME.yaml` (listed on Presets); a path is
    kept, with `.yaml` added when it has no suffix."""
    answer = answer.strip()
    if "/" not in answer and not answer.startswith("~"):
        return folder / (answer if answer.endswith((".yaml", ".yml")) else f"{answer}.yaml")
    path = Path(answer).expanduser()
    return path if path.suffix in (".yaml", ".yml") else path.with_name(path.name + ".yaml")
