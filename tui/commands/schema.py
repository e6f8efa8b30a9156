"""`rankwise schema`: the preset JSON Schema, for editors that validate YAML."""
from __future__ import annotations

import json
from pathlib import Path

from rankwise.advisor.config import json_schema
from rankwise.advisor.errors import RankwiseError


def register(sub) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of presets (for editor validation)")
    p.add_argument("--out", metavar="FILE", help="write it to FILE instead of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    text = json.dumps(json_schema(), indent=2) + "\n"
    if not args.out:
        print(text, end="")
        return 0
    try:
        Path(args.out).write_text(text)
    except OSError as e:
        raise RankwiseError(f"cannot write {args.out}: {e.strerror}", "choose a writable path") from None
    print(f"wrote {args.out}")
    return 0
