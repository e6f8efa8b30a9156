"""`rankwise evidence`: the sources behind the advice and the red flags (advisor/evidence.py)."""
from __future__ import annotations

from .common import add_json, print_json


def register(sub) -> None:
    p = sub.add_parser("evidence", help="list the studies, recipes and guides the advice cites",
                       description="The evidence registry: each source (authors, year, title, URL), each claim "
                                   "(locator, quote or marked paraphrase, setting, kind) and the status and "
                                   "citations of each red-flag rule. `rankwise advise ... --why FIELD` shows the "
                                   "ones behind one value.")
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from rankwise.advisor import evidence

    if args.json:
        print_json(evidence.to_dict())
        return 0
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    by_source: dict[str, list] = {}
    for c in evidence.CLAIMS.values():
        by_source.setdefault(c.source, []).append(c)
    for key, s in evidence.SOURCES.items():
        console.print(f"[bold]{escape(s.title)}[/bold] — {escape(s.authors)} ({s.year or 'n.d.'}), {s.kind}"
                      + (f"\n  {escape(s.url)}" if s.url else ""))
        for c in by_source.get(key, []):
            console.print(f"  {escape(f'[{c.key}]')} {escape(c.locator)}: {escape(c.quoted())}")
    console.print("\n[bold]Red flags[/bold] (status: citations)")
    for code, (status, keys) in evidence.RULES.items():
        console.print(f"  {code}: {status}" + (f" — {', '.join(keys)}" if keys else ""))
    console.print("[dim]Statuses: " + ", ".join(evidence.STATUSES) + "; rules not listed are derived "
                  "(arithmetic from the estimate, the model or the schema).[/dim]")
    return 0
