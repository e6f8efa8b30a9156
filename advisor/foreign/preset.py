"""`rankwise import`: a foreign config written out as a rankwise preset.

`to_preset(reading, out_dir)` gives the YAML text: what the file set (and the tool's own defaults
it relied on, written out so the run trains as the tool would have), each value with a comment
naming the foreign key it came from, and a closing block listing what has no rankwise equivalent.
The text is validated by the schema before it is returned, so `rankwise train --preset` loads it.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from ..config import written
from ..errors import RankwiseError
from ..loader import parse_yaml, validate
from .reading import Reading

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def _data_path(reading: Reading, data: dict, out_dir: Path, trailer: list[str]) -> None:
    """Keep data.path when it is a local file rankwise can read (relative to the new preset's folder);
    a Hugging Face dataset id or a LLaMA-Factory dataset name is said instead."""
    path = (data.get("data") or {}).get("path")
    if not path:
        return
    src = Path(reading.source).parent / path
    local = Path(path) if Path(path).is_absolute() else src
    if local.exists() or str(path).endswith(DATA_SUFFIXES):
        data["data"]["path"] = os.path.relpath(local.resolve(), out_dir.resolve()) if local.exists() else str(path)
        return
    del data["data"]["path"]
    if not data["data"]:
        del data["data"]
    key = reading.origin.get("data.path", "datasets")
    trailer.append(f"{key}: {path} is not a local file (a Hugging Face dataset id?): download it to a "
                   ".jsonl/.parquet file and set data.path")


def _as_adapter(reading: Reading, data: dict) -> dict[str, str]:
    """A full fine-tune imported: rankwise trains adapters, so the preset trains LoRA on every linear (the full
    fine-tune trained them all) at rankwise's alpha and a LoRA learning rate for the model's size. A full
    fine-tune's rate would barely move an adapter: LoRA's optimal rate is about ten times full fine-tuning's
    ("LoRA Without Regret", Thinking Machines 2025; tinker-cookbook's get_lora_lr_over_full_finetune_lr).
    Returns the comments for the values it changed."""
    from ..coupling import ALPHA, learning_rate
    from ..model import load_model

    try:
        params = load_model(reading.cfg.model.name).total_params
    except RankwiseError:
        params = None  # unknown offline: the rate for an unknown size (coupling.UNKNOWN_SIZE_LR)
    lr, was = learning_rate(params, reading.cfg.lora.r, ALPHA), reading.cfg.train.lr
    data.setdefault("lora", {}).update(target_modules="all-linear", alpha=ALPHA)
    data.setdefault("train", {})["lr"] = lr
    size = f"{params / 1e9:.1f}B parameters" if params else "a model of unknown size"
    partial = reading.partial.key if reading.partial is not None else None  # freeze | unfrozen_parameters
    kind = "full" if partial is None else "freeze" if partial == "freeze" else "partial"
    what = ("a full fine-tune" if partial is None else
            "a partial fine-tune (LLaMA-Factory freeze: whole layers, the rest frozen)" if partial == "freeze" else
            f"a partial fine-tune ({reading.tool.label} {partial}: the parameters it names, the rest frozen)")
    return {"method": f"{reading.full} (line {reading.line(reading.full)}) trains no adapter: {what}; "
                      "rankwise trains adapters, so this is LoRA in its place",
            "lora.target_modules": ("every linear, as the full fine-tune trained them all" if partial is None else
                                    "every linear, an adapter on every layer where the freeze fine-tune trained a few "
                                    "whole ones" if partial == "freeze" else
                                    f"every linear, an adapter on every layer where {partial} trained what it names"),
            "lora.alpha": "rankwise's alpha at every rank (advisor/coupling.py)",
            "train.lr": f"a LoRA rate for {size}, not the {kind} fine-tune's "
                        f"{was:g} (LoRA's optimal rate is ~10x full "
                        "fine-tuning's: LoRA Without Regret, TML 2025)"}


def _one_line_keys(text: str) -> dict[int, str]:
    """Line (0-based) → dotted key, for each key of the dump whose value starts and ends on the key's own line:
    where a comment appended to the line stays a comment (inside a value that runs over several lines, a quoted
    template for one, it would become part of the value)."""
    keys: dict[int, str] = {}

    def walk(node, prefix: str) -> None:
        for k, v in node.value:
            dotted = f"{prefix}.{k.value}" if prefix else k.value
            if isinstance(v, yaml.MappingNode):
                walk(v, dotted)
            elif v.start_mark.line == k.start_mark.line == v.end_mark.line:
                keys[k.start_mark.line] = dotted

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if isinstance(root, yaml.MappingNode):
        walk(root, "")
    return keys


def _comment_lines(text: str, reading: Reading, said: dict[str, str] | None = None) -> str:
    """Each one-line `key: value` of the dump with `# from <foreign key>` (or the tool's default, or what `said`
    gives for a value the import chose)."""
    keys = _one_line_keys(text)
    out = []
    for n, line in enumerate(text.splitlines()):
        dotted, note = keys.get(n), ""
        if dotted is None:
            pass
        elif said and dotted in said:
            note = f"  # {said[dotted]}"
        elif dotted in reading.origin:
            note = f"  # from {reading.origin[dotted]}"
        elif dotted in reading.defaulted:
            note = f"  # {reading.tool.label}'s default ({reading.defaulted[dotted].source})"
        out.append(line + note)
    return "\n".join(out)


def to_preset(reading: Reading, out_dir: Path | None = None) -> str:
    """The preset's YAML text (validated)."""
    if reading.tool is None:
        raise RankwiseError(f"{reading.source} is already a rankwise preset", "use it as is: rankwise train --preset FILE")
    out_dir = out_dir or Path.cwd()
    data = written(reading.cfg)
    data.setdefault("method", reading.cfg.method if reading.cfg.method != "auto" else "lora")
    name = Path(reading.source).stem
    data = {"name": name, "description": f"imported from {Path(reading.source).name} ({reading.tool.label})", **data}
    trailer: list[str] = []
    said = _as_adapter(reading, data) if reading.full else None
    _data_path(reading, data, out_dir, trailer)
    for s in reading.said:
        line = reading.line(s.key)
        trailer.append(f"{s.key}{f' (line {line})' if line else ''}: {s.message.split(': ', 1)[-1]}")
    trailer += reading.notes
    if reading.unread:
        trailer.append(f"{reading.tool.label} settings with no effect on memory or advice, not carried over: "
                       + ", ".join(reading.unread))
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    validate(parse_yaml(body, "imported preset")[0], "imported preset")  # the schema accepts it
    head = (f"# Imported by `rankwise import` from {reading.source} ({reading.tool.label}, {reading.tool.layout} "
            "layout).\n# Run: rankwise check THIS_FILE --gpu NAME, then rankwise train --preset THIS_FILE\n")
    tail = "".join(f"#   {t}\n" for t in trailer)
    if tail:
        tail = "\n# No rankwise equivalent (not carried over, or said as a note):\n" + tail
    return head + _comment_lines(body, reading, said) + "\n" + tail
