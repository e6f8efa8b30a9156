"""`rankwise svd --model M --dataset PATH`: a data-driven prior for the LoRA rank (trainer/svd.py)."""
from __future__ import annotations

from .common import add_json, print_json


def register(sub) -> None:
    p = sub.add_parser("svd", help="how many dimensions the data occupies in the model: a prior for the rank",
                       description="Run samples through the base model, take the singular-value spectrum of the "
                                   "hidden states at the chosen layers, and report how many components hold "
                                   "90/95/99%% of the variance and the rank band that suggests. It measures the "
                                   "data's representations, not the rank the update needs: `rankwise sweep` "
                                   "measures that.")
    p.add_argument("--model", required=True, metavar="M", help="a local model folder or a model id already cached")
    p.add_argument("--dataset", required=True, metavar="PATH", help="training data (JSONL/JSON/CSV/Parquet or a "
                                                                    "saved dataset folder)")
    p.add_argument("--samples", type=int, default=64, metavar="N", help="rows to run through the model (default 64)")
    p.add_argument("--layers", metavar="L,L|all",
                   help="hidden-state indices (0 = embeddings, -1 = last block); default: middle and last")
    p.add_argument("--max-len", type=int, default=512, metavar="T", help="tokens per sample at most (default 512)")
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from rankwise.trainer.svd import analyse

    data = analyse(args.model, args.dataset, samples=args.samples, layers=args.layers, max_len=args.max_len)
    if args.json:
        print_json(data)
        return 0
    show(data)
    return 0


def show(data: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from rankwise.advisor.textplot import plot

    console = Console(soft_wrap=True)
    t = Table(title=f"hidden-state spectrum · {data['samples']} samples, {data['tokens']} tokens, "
                    f"hidden size {data['hidden_size']} ({data['precision']})", title_justify="left")
    for col in ("layer", "90%", "95%", "99%"):
        t.add_column(col, justify="right")
    for layer in data["layers"]:
        c = layer["components"]
        t.add_row(str(layer["layer"]), str(c["0.9"]), str(c["0.95"]), str(c["0.99"]))
    console.print(t)
    mid = data["layers"][len(data["layers"]) // 2]
    pts = [(k + 1, s) for k, s in enumerate(mid["spectrum"])]
    comp = mid["components"]
    console.print("\n".join(plot(pts, log2x=True, logy=True, y_label=f"singular value / largest (layer {mid['layer']})",
                                 x_label="component (log2 axis)",
                                 ticks=sorted({1, comp["0.9"], comp["0.99"], len(pts)}))), highlight=False)
    c, band = data["components"], data["suggested_rank_band"]
    console.print(f"components holding 90% / 95% / 99% of the variance: {c['0.9']} / {c['0.95']} / {c['0.99']} "
                  f"(median over layers)")
    console.print(f"suggested rank band: r = {band[0]}–{band[1]}", style="bold")
    console.print(f"measures: {data['measures']}.", highlight=False)
    console.print(f"does not measure: {data['does_not_measure']}.", highlight=False)
    console.print(f"next: rankwise sweep --preset YOUR_PRESET --ranks "
                  f"{','.join(str(r) for r in _ranks_around(band))}", highlight=False)


def _ranks_around(band: list[int]) -> list[int]:
    lo, hi = band
    ranks, r = [], max(1, lo // 2)
    while r <= hi * 2:
        ranks.append(r)
        r *= 2
    return ranks
