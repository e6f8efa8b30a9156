"""`rankwise check` over a folder of axolotl / LLaMA-Factory configs: can it be trusted as a gate?

Runs `rankwise check FILE --gpu NAME --json` in-process (the CLI's own `main`, so exit codes
and error handling are the real ones) over every *.yml/*.yaml under DIR and prints:
files, tracebacks (uncaught exceptions), the share with a fit answer (fits/tight/wont-fit; those
bounded from the size a model's name states, advisor/size_bound.py, counted apart),
exit codes, findings per code, and the foreign keys left unread (neither mapped nor reported).

    python3 bench/foreign_configs.py DIR [--gpu RTX4090] [--show-unread] [--show-errors] [--show-unchecked]

The corpus is the two projects' example LoRA/QLoRA configs, fetched outside the repository
(see the issue's closing note for the commits).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import traceback
from collections import Counter
from pathlib import Path

FIT_ANSWERS = ("fits", "tight", "wont-fit")
IGNORED_NOTE = re.compile(r"^ignored \d+ \S+ keys? with no rankwise equivalent[^:]*: (.*)$")


def _unread(d: dict) -> list[str]:
    if "unread" in d:  # the structured field, when `check --json` gives one
        return list(d["unread"])
    for note in d.get("notes", []):
        m = IGNORED_NOTE.match(note)
        if m:
            return [k.strip() for k in m.group(1).split(",")]
    return []


def check_one(path: Path, gpu: str) -> dict:
    from rankwise.tui import cli

    out, err = io.StringIO(), io.StringIO()
    result = {"file": str(path), "rc": None, "traceback": None, "json": None, "stderr": ""}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result["rc"] = cli.main(["check", str(path), "--gpu", gpu, "--json"])
    except BaseException:  # noqa: BLE001 — counting uncaught exceptions is the point
        result["traceback"] = traceback.format_exc()
    result["stderr"] = err.getvalue()
    if result["rc"] in (0, 3):
        try:
            result["json"] = json.loads(out.getvalue())
        except ValueError:
            result["traceback"] = result["traceback"] or "stdout is not JSON:\n" + out.getvalue()[:400]
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--gpu", default="RTX4090", help="GPU to judge fit against (default RTX4090)")
    p.add_argument("--show-unread", action="store_true", help="list each file's unread keys")
    p.add_argument("--show-errors", action="store_true", help="print stderr of exit-2 files")
    p.add_argument("--show-unchecked", action="store_true",
                   help="every cause of a missing fit answer with its files (default: the 15 most common causes)")
    args = p.parse_args(argv)
    files = sorted(f for f in args.dir.rglob("*") if f.suffix in (".yml", ".yaml") and f.is_file())
    if not files:
        print(f"no YAML files under {args.dir}", file=sys.stderr)
        return 2
    results = [check_one(f, args.gpu) for f in files]
    rcs = Counter(r["rc"] for r in results)
    tracebacks = [r for r in results if r["traceback"]]
    answered = [r for r in results if r["json"] and r["json"].get("fit") in FIT_ANSWERS]
    bounded = [r for r in answered if r["json"].get("fit_basis") == "name-size"]  # from the name's size only
    verdicts = Counter(r["json"].get("fit") for r in results if r["json"])
    kinds = Counter(r["json"].get("kind") for r in results if r["json"])
    codes = Counter(f["code"] for r in results if r["json"] for f in r["json"]["findings"])
    unread = Counter(k for r in results if r["json"] for k in _unread(r["json"]))
    n = len(files)
    print(f"files: {n}  (gpu {args.gpu})")
    print(f"tracebacks: {len(tracebacks)}")
    print(f"fit answer: {len(answered)}/{n} = {100 * len(answered) / n:.1f}% (of which {len(bounded)} bounded from "
          f"the name's size, approximate)  verdicts: {dict(verdicts)}")
    print(f"kinds: {dict(kinds)}")
    print("exit codes: " + ", ".join(f"{rc}: {c}" for rc, c in sorted(rcs.items(), key=lambda x: str(x[0]))))
    print("findings per code:")
    for code, c in codes.most_common():
        print(f"  {code:34} {c}")
    unchecked = [r for r in results if r["json"] and r["json"].get("fit") not in FIT_ANSWERS]
    causes = Counter(r["json"].get("unchecked_reason") or "(no reason given)" for r in unchecked)
    print(f"fit not checked: {len(unchecked)} ({len(causes)} causes)")
    for cause, c in causes.most_common(None if args.show_unchecked else 15):
        print(f"  {c:3} {cause}")
        if args.show_unchecked:
            for r in unchecked:
                if (r["json"].get("unchecked_reason") or "(no reason given)") == cause:
                    print(f"        {Path(r['file']).name}")
    print(f"keys left unread: {sum(unread.values())} ({len(unread)} distinct)")
    for key, c in unread.most_common(40 if not args.show_unread else None):
        print(f"  {key:34} {c}")
    for r in tracebacks:
        print(f"\nTRACEBACK {r['file']}\n{r['traceback']}")
    if args.show_errors:
        for r in results:
            if r["rc"] == 2:
                print(f"\nexit 2 {r['file']}: {r['stderr'].strip()[:300]}")
    if args.show_unread:
        for r in results:
            if r["json"] and _unread(r["json"]):
                print(f"{Path(r['file']).name}: {', '.join(_unread(r['json']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
