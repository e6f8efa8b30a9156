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


def _comment_lines(text: str, reading: Reading) -> str:
    """Each `key: value` line of the dump with `# from <foreign key>` (or the tool's default)."""
    out, stack = [], []
    for line in text.splitlines():
        stripped = line.lstrip()
        if not stripped or stripped.startswith("-") or ":" not in stripped:
            out.append(line)
            continue
        depth = (len(line) - len(stripped)) // 2
        key = stripped.split(":", 1)[0]
        stack = stack[:depth] + [key]
        dotted = ".".join(stack)
        note = ""
        if dotted in reading.origin:
            note = f"  # from {reading.origin[dotted]}"
        elif dotted in reading.defaulted:
            note = f"  # {reading.tool.label}'s default ({reading.defaulted[dotted].source})"
        out.append(line + note if not stripped.endswith(":") else line)
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
    return head + _comment_lines(body, reading) + "\n" + tail
