"""`rankwise check --data FILE [--model M] [--format F] [--max-seq-len N] [--json]`: a dataset as
training will see it (rows, lengths, truncation, trained tokens, bad/empty/duplicate rows, a
preview with the trained tokens marked). The work is trainer/datacheck.py's, imported only on
this branch: `check` without --data never loads the trainer's libraries.

Exit 0: no error-level finding; 3: no trained token at all; 2: bad input.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

from rankwise.advisor.dataset import FORMATS

from ..style import GOOD, SEVERITY_MARK, severity_style
from .common import print_json


def add_data_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("checking a dataset (--data)")
    g.add_argument("--data", metavar="DATA", help="check this dataset as training would see it: tokens, truncation, "
                                                  "trained (unmasked) tokens, bad/empty/duplicate rows")
    g.add_argument("--format", choices=("auto",) + FORMATS, help="the rows' format (default: FILE's data.format, "
                                                                  "else auto)")
    g.add_argument("--max-seq-len", type=int, metavar="N", help="train.max_seq_len to judge truncation against "
                                                                "(default: FILE's, else the schema's)")


def run_data(args) -> int:
    from rankwise.advisor.errors import RankwiseError

    if not args.data:
        raise RankwiseError("check needs a config FILE, or --data DATASET", "e.g. `rankwise check my-run.yaml` or "
                            "`rankwise check --data train.jsonl --model ./my-model`")
    if args.max_seq_len is not None and args.max_seq_len < 8:
        raise RankwiseError(f"--max-seq-len {args.max_seq_len} is too small", "give 8 or more (train.max_seq_len)")
    model, fmt, max_len, trust, columns, whole, template = args.model, args.format, args.max_seq_len, False, None, False, None
    if args.file:
        from rankwise.advisor.foreign import load_any

        cfg = load_any(args.file)[0]
        model = model or cfg.model.name
        fmt = fmt or cfg.data.format
        max_len = max_len or cfg.train.max_seq_len
        trust = cfg.model.trust_remote_code
        columns, whole, template = cfg.data.columns, cfg.data.train_on_inputs, cfg.model.chat_template
    from rankwise.trainer.datacheck import check_data  # deferred: tokenizers/transformers, only for --data

    result = check_data(args.data, model, fmt or "auto", max_len, trust_remote_code=trust, columns=columns,
                        train_on_inputs=whole, chat_template=template)
    if args.json:
        print_json(result.to_dict())
    else:
        _render(result)
    return 3 if result.errors else 0


def _render(c) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)  # file:line stays on one line (grep, editors)
    console.print(f"[bold]{escape(c.path)}[/bold]: {c.rows} rows, format {c.format or '?'}; "
                  f"{escape(c.tokenizer_note)}")
    unit = "tokens" if c.tokenizer == "model" else "bytes"  # a byte-level stand-in counted them (the note says)
    console.print(f"  {unit} per row: p50 {c.token_p50} · p95 {c.token_p95} · max {c.token_max} "
                  f"(train.max_seq_len {c.max_seq_len})")
    share = f"{c.trained_share:.1%}" if c.trained_share is not None else "-"
    console.print(f"  trained {unit}: {share} ({c.trained_tokens} of {c.tokens})")
    console.print(f"  truncated: {c.truncated_rows} row(s), {c.truncated_into_response} into the response")
    console.print(f"  rows with no trained token: {c.no_trained_rows}"
                  + (f" ({escape(', '.join(c.no_trained))})" if c.no_trained else ""))
    console.print(f"  bad rows: {c.bad_rows} ({c.empty_rows} empty) · duplicates: {c.duplicate_rows}")
    if not [f for f in c.findings if f.severity != "info"]:
        console.print(f"[{GOOD}]no problems that would stop or spoil training[/]")
    for f in c.findings:
        style = severity_style(f.severity)
        console.print(f"\n[{style}]{SEVERITY_MARK[f.severity]} {f.severity.upper():7}[/] [bold]{f.code}[/bold]: "
                      f"{escape(f.message)}")
        console.print(f"  why: {escape(f.why)}")
        console.print(f"  fix: {escape(f.fix)}")
        if f.patch:
            sets = " ".join(f"--set {k}={json.dumps(v)}" for k, v in f.patch.items())
            console.print(f"  [dim]{escape(sets)}[/dim]")
    if not c.preview:
        return
    marks = console.is_terminal and not console.no_color  # colour on a terminal; [[brackets]] otherwise
    console.print("\npreview (trained tokens " + ("in green" if marks else "in [[brackets]]") + "):", markup=False)
    for p in c.preview:
        console.print(Text(f"  {p.where}", style="dim"))
        segments = _trimmed(p.segments)
        if marks:
            text = Text("    ")
            for s in segments:
                text.append(s.text.replace("\n", "\n    "), style="bold green" if s.trained else "dim")
            if p.truncated:
                text.append(" ✂ (cut at max_seq_len)", style="yellow")
        else:
            text = Text("    " + replace(p, segments=segments).marked().replace("\n", "\n    "))
        console.print(text)


def _trimmed(segments: list) -> list:
    """Without the blank lines a template leaves after the last turn (they would print as gaps)."""
    out = list(segments)
    while out and not out[-1].trained and not out[-1].text.strip():
        out.pop()
    if out and not out[-1].trained:
        out[-1] = replace(out[-1], text=out[-1].text.rstrip())
    return out
