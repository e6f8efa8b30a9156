"""`rankwise import FILE [--out PRESET] [--force] [--set KEY=VALUE]`: an axolotl, LLaMA-Factory or TRL
config → a rankwise preset (advisor/foreign/preset.py), validated so `rankwise train --preset` loads it."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("import", help="convert an axolotl, LLaMA-Factory or TRL config into a rankwise preset",
                       description="Write an axolotl, LLaMA-Factory or TRL YAML as a rankwise preset: model, data, "
                                   "method, LoRA, training and distributed settings, each commented with the key "
                                   "it came from; what has no equivalent is listed at the end.")
    p.add_argument("file", metavar="FILE", help="an axolotl, LLaMA-Factory or TRL YAML config")
    p.add_argument("--out", metavar="PRESET", help="write the preset here (default: print it)")
    p.add_argument("--force", action="store_true", help="let --out overwrite an existing file")
    p.add_argument("--set", dest="import_set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a value first: the file's own key or a rankwise key (repeatable)")
    p.set_defaults(func=run, set_key="import_set")


def run(args) -> int:
    from rankwise.advisor.errors import RankwiseError
    from rankwise.advisor.foreign import read
    from rankwise.advisor.foreign.preset import to_preset

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.force:
        raise RankwiseError(f"--out: {out} already exists", "pick another name or add --force")
    text = to_preset(read(args.file, args.import_set), out.parent if out else None)
    if out is None:
        print(text, end="")
        return 0
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise RankwiseError(f"cannot write {out}: {e.strerror}", "choose a writable path") from None
    print(f"wrote {out}: rankwise check {out} --gpu NAME, then rankwise train --preset {out}")
    return 0
