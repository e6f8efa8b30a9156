"""Findings in the file's language: the foreign key and its line, the fix as the tool's keys;
and what only a foreign file can say (a preference stage, a config written for several GPUs).

`localize(finding, reading)` turns a rankwise `Finding` (or a `Said` about a foreign key) into a
dict for `check`: the finding's fields, plus `keys` ([{key, line}] in the file), `set` (the fix
as the tool's keys, for `rankwise check FILE --set KEY=VALUE`) and the message with rankwise's
dotted keys written as the tool's where the value reads the same on both sides.
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import yaml

from ..finding import Finding
from .mapping import Said

if TYPE_CHECKING:
    from ..fit import Fit
    from .reading import Reading

PAIR = re.compile(r"\b((?:model|data|lora|quant|train|distributed)\.[a-z_]+|method)=([^,;\s]+)")
DOTTED = re.compile(r"\b(?:model|data|lora|quant|train|distributed|output)\.[a-z_]+\b|\bmethod\b")
# Preference tuning learns at far lower rates than SFT: DPO used 1e-6 (Rafailov et al. 2023, App. B;
# TRL DPOConfig learning_rate default 1e-6), Zephyr 5e-7 (Tunstall et al. 2023); LoRA DPO runs go
# up to ~5e-5 (LLaMA-Factory examples/train_lora: 5e-6).
PREFERENCE_LR = (1e-7, 5e-5)
STAGE_WHY = {
    "paired": "each step runs the chosen and the rejected answer through the model: about twice the "
              "activations of plain SFT at the same micro-batch (estimated so here)",
    "unpaired": "each example is a desirable or undesirable answer with a KL reference pass: more "
                "activation memory than SFT at the same micro-batch",
    "online": "the run generates answers (rollouts) as it trains: generation memory and time are not estimated",
}


def foreign_key(reading: "Reading", dotted: str) -> str | None:
    """The tool's key for a rankwise key: the one the file used, else the tool's usual key."""
    if dotted in reading.origin:
        return reading.origin[dotted]
    tool = reading.tool
    if tool is None:
        return None
    if dotted in tool.reverse:
        from ..config import get_key

        keys = list(tool.reverse[dotted](get_key(reading.cfg, dotted)))  # the keys that would say its value
        return keys[0] if keys else None
    return tool.renames.get(dotted)


def foreign_patch(reading: "Reading", patch: dict | None) -> dict | None:
    """A rankwise patch ({"lora.alpha": 32}) → the tool's keys ({"lora_alpha": 32})."""
    if not patch or reading.tool is None:
        return patch
    tool, out = reading.tool, {}
    for dotted, value in patch.items():
        if dotted in tool.reverse:
            out.update(tool.reverse[dotted](value))
        elif dotted in reading.origin and tool.renames.get(dotted) == reading.origin[dotted]:
            out[reading.origin[dotted]] = value
        elif dotted in tool.renames:
            out[tool.renames[dotted]] = value
        else:
            out[dotted] = value  # no tool key: rankwise's own (check --set takes both)
    return out


def _speak(text: str, reading: "Reading") -> str:
    """rankwise's dotted keys in `text` written as the tool's, where the value reads the same."""
    tool = reading.tool

    def swap(m: re.Match) -> str:
        dotted = m.group(0)
        used = reading.origin.get(dotted)
        if used and getattr(tool.table.get(used), "dotted", None) == dotted:
            return used
        return tool.renames.get(dotted, dotted)
    def swap_pair(m: re.Match) -> str:  # "train.optimizer=paged_adamw_8bit" → the tool's keys and values
        dotted, raw = m.group(1), m.group(2)
        if dotted not in tool.reverse:
            return m.group(0)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            return m.group(0)
        return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                         for k, v in tool.reverse[dotted](value).items())
    return DOTTED.sub(swap, PAIR.sub(swap_pair, text)) if tool else text


def localize(f: Finding | Said, reading: "Reading") -> dict:
    """One finding as `check` prints it for this file."""
    if isinstance(f, Said):
        d = {"code": f.code, "severity": f.severity, "message": f.message, "why": f.why, "fix": f.fix,
             "patch": None, "set": f.patch, "keys": [{"key": f.key, "line": reading.line(f.key)}]}
        return d
    d = f.to_dict()
    if reading.tool is None:
        d["set"], d["keys"] = f.patch, []
        return d
    mentioned = list(dict.fromkeys([m.group(0) for m in DOTTED.finditer(f.message + " " + f.fix)]
                                   + list(f.patch or {})))
    keys = []
    for dotted in mentioned:
        key = reading.origin.get(dotted)
        if key:
            keys.append({"key": key, "line": reading.line(key)})
        elif dotted in reading.defaulted:
            keys.append({"key": foreign_key(reading, dotted), "line": None,
                         "default": f"unset: {reading.tool.label}'s default {reading.defaulted[dotted].value!r} "
                                    f"({reading.defaulted[dotted].source})"})
    d.update(message=_speak(f.message, reading), fix=_speak(f.fix, reading), set=foreign_patch(reading, f.patch),
             keys=[k for k in keys if k["key"]])
    return d


def stage_findings(reading: "Reading", findings: list[Finding]) -> tuple[list[Finding], list[Said]]:
    """A preference stage: the lr band is preference tuning's, not SFT's; say what memory it adds."""
    tool, stage = reading.tool, reading.stage
    if tool is None or not stage or stage not in tool.preference:
        return findings, []
    kind = tool.preference[stage]
    lr = reading.cfg.train.lr
    lo, hi = PREFERENCE_LR
    kept = [f for f in findings if not (f.code == "lr-out-of-range" and lo <= lr <= hi)]
    band = f"learning rates for preference tuning are {lo:g}-{hi:g} (DPO: 1e-6; TRL's default)"
    msg = f"{tool.stage_key}: {stage}: a preference stage ({kind}); {band}"
    if not lo <= lr <= hi:
        msg += f"; learning_rate {lr:g} is outside it"
    return kept, [Said("preference-stage", "info", tool.stage_key, msg, STAGE_WHY[kind],
                       "keep the learning rate in the preference band; judge the memory with the doubled "
                       "micro-batch shown" if kind == "paired" else "keep the learning rate in the preference band")]


def estimated_cfg(reading: "Reading", cfg):
    """The config the memory estimate judges: a paired preference stage (or a reward model's pairs) runs chosen
    and rejected answers together, twice the sequences of the micro-batch."""
    tool = reading.tool
    paired = reading.paired_rows or (tool is not None and tool.preference.get(reading.stage) == "paired")
    if tool is None or not paired:
        return cfg
    from ..config import with_values

    return with_values(cfg, {"train.micro_batch": cfg.train.micro_batch * 2})


def multi_gpu(reading: "Reading", judged: "Fit | None", gpus_needed: int | None) -> Said | None:
    """A config written for several GPUs (FSDP, DeepSpeed) judged on one: say `--gpus N`."""
    strategy = reading.cfg.distributed.strategy
    if reading.tool is None or strategy in ("auto", "ddp") or judged is None or judged.gpus > 1 \
            or judged.verdict == "fits":
        return None
    key = reading.origin.get("distributed.strategy", "")
    need = f"it fits on {gpus_needed}" if gpus_needed else "it does not fit on up to 8 of these GPUs either"
    return Said("multi-gpu-config", "warning" if judged.verdict == "wont-fit" else "info", key,
                f"{key}: written for several GPUs ({strategy}) but judged on one ({judged.verdict}); {need}",
                "sharding splits weights, gradients and optimizer states across GPUs: one GPU holds everything",
                f"check as it will run: rankwise check FILE --gpus {gpus_needed or 8}")
