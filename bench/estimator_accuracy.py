"""How close `rankwise estimate` comes to published, measured peak memory.

Reads bench/memory_reference.csv (one published figure per row, with its source and every
setting needed to reproduce it), estimates each row with the same code `rankwise
estimate` runs, and prints measured vs estimated and the relative error, then the median
and worst relative error over the rows in use, overall and per source (the GitHub repository or site a
row was published in). Rows marked use=no are listed with the reason they are left out.

Rows from the stack rankwise itself trains with (HF transformers + peft under the HF Trainer /
accelerate: bench/stacks.py TRAINER_STACKS) count twice in the medians (issue 11); the printout names
them. A row marked use=open is estimated and counted like use=yes, but its miss has an open question
that its note names ("Open: ..."); tests/test_memory.py holds it to the median, not to the per-row bound.

What is compared, by the row's `measure`:
  allocated  torch.cuda.max_memory_allocated()  vs  Estimate.allocated_bytes
  reserved   torch.cuda.max_memory_reserved()   vs  Estimate.reserved_bytes
  nvidia-smi the process's GPU memory           vs  Estimate.peak_bytes
  capacity   the card a run just fits (the next size OOMs): the peak is at most the card,
             compared as nvidia-smi                vs  Estimate.peak_bytes
Units: GB = 1e9 bytes, GiB = 2**30 bytes, as the source prints them.
`options`: the run's other settings as the estimator's Plan fields, `key=value;...` (yes/no for
flags): kbit_upcast=no (the 4-bit base's other weights kept 16-bit), attention=eager, loss=fused
(Liger), pure_bf16=yes, reentrant=yes (torch's reentrant checkpoint), fsdp_sharding=no_shard (FSDP NO_SHARD);
and linear_experts=yes, which changes the model rather than the plan (ModelSpec.with_linear_experts: axolotl's
linearized Llama 4).

Run: python3 bench/estimator_accuracy.py [--csv FILE] [--verbose]
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path
from urllib.parse import urlsplit

from rankwise.advisor.memory import Estimate, Plan, estimate
from rankwise.advisor.model import load_model, spec_from_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stacks import STACKS, TRAINER_STACKS  # noqa: E402  (bench/ is a folder of scripts, not a package)

HERE = Path(__file__).resolve().parent
UNITS = {"GB": 1e9, "GiB": 2 ** 30}
USED = ("yes", "open")  # the `use` values that are estimated and counted


def _spec(row: dict):
    spec = load_model(row["model"])
    if row["model_overrides"]:
        cfg = dict(spec.config)
        for kv in row["model_overrides"].split(";"):
            k, v = kv.split("=")
            cfg[k.strip()] = int(v)
        spec = spec_from_config(spec.name, "catalog", cfg)
    if _options(row).get("linear_experts"):  # axolotl's linearized Llama 4: one nn.Linear an expert
        spec = spec.with_linear_experts()
    return spec


OPTION_VALUES = {"yes": True, "no": False}


def _options(row: dict) -> dict:
    """The `options` column as Plan keyword arguments."""
    out = {}
    for kv in filter(None, (row.get("options") or "").split(";")):
        k, v = kv.split("=")
        v = v.strip()
        out[k.strip()] = OPTION_VALUES.get(v, int(v) if v.isdigit() else v)  # gpus=2: a count
    return out


SPEC_OPTIONS = ("linear_experts",)  # options that change the model, not the Plan


def _plan(row: dict) -> Plan:
    targets = row["targets"]
    options = {k: v for k, v in _options(row).items() if k not in SPEC_OPTIONS}
    return Plan(
        method=row["method"], r=int(row["r"]),
        targets=targets if targets in ("minimal", "standard", "aggressive", "all-linear") else tuple(targets.split(",")),
        micro_batch=int(row["batch"]), seq_len=int(row["seq"]), grad_checkpointing=row["grad_ckpt"] == "yes",
        optimizer=row["optimizer"], double_quant=row["double_quant"] != "no", lora_dropout=row["lora_dropout"] == "yes",
        stack=STACKS[row["stack"]], **options,
    )


def estimated_bytes(est: Estimate, measure: str) -> int:
    if measure == "allocated":
        return est.allocated_bytes
    if measure == "reserved":
        return est.reserved_bytes
    if measure == "nvidia-smi":  # with room on the card it also shows the releasable cached blocks
        return est.peak_bytes + est.releasable_bytes
    if measure == "capacity":
        return est.peak_bytes
    raise ValueError(f"unknown measure {measure!r}")


def evaluate(path: Path) -> tuple[list[dict], list[dict]]:
    used, left_out = [], []
    for row in csv.DictReader(path.open(encoding="utf-8")):
        if row["use"] not in USED:
            left_out.append(row)
            continue
        est = estimate(_spec(row), _plan(row))
        measured = float(row["measured"]) * UNITS[row["unit"]]
        got = estimated_bytes(est, row["measure"])
        used.append({**row, "measured_b": measured, "estimated_b": got, "rel": (got - measured) / measured, "est": est})
    return used, left_out


def source(row: dict) -> str:
    """Where a row was published: owner/name of a GitHub repository, else the site's host."""
    url = urlsplit(row["source_url"])
    if url.netloc == "github.com":
        return "/".join(url.path.strip("/").split("/")[:2])
    return url.netloc


def twice(row: dict) -> bool:
    """Does the row come from the stack rankwise trains with (counted twice)?"""
    return row["stack"] in TRAINER_STACKS


def counted_errors(used: list[dict]) -> list[float]:
    """|relative error| per row, a rankwise-stack row's twice: what the medians are taken over."""
    return [abs(u["rel"]) for u in used for _ in range(2 if twice(u) else 1)]


def by_source(used: list[dict]) -> dict[str, tuple[int, float, dict]]:
    """source -> (rows, median |relative error| with the rankwise stack's rows twice, worst row)."""
    groups: dict[str, list[dict]] = {}
    for u in used:
        groups.setdefault(source(u), []).append(u)
    return {s: (len(g), statistics.median(counted_errors(g)), max(g, key=lambda u: abs(u["rel"])))
            for s, g in groups.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", default=str(HERE / "memory_reference.csv"))
    ap.add_argument("--verbose", action="store_true", help="also print each row's components")
    args = ap.parse_args(argv)
    used, left_out = evaluate(Path(args.csv))
    print(f"{'row':30} {'stack':10} {'measure':10} {'measured':>10} {'estimated':>10} {'error':>7}")
    for u in used:
        unit = UNITS[u["unit"]]
        mark = " x2" if twice(u) else "   "
        print(f"{u['id']:30} {u['stack']:10} {u['measure']:10} {u['measured_b'] / unit:8.2f}{u['unit']:>3}"
              f" {u['estimated_b'] / unit:8.2f}{u['unit']:>3} {u['rel']:+7.1%}{mark}"
              + (" open" if u["use"] == "open" else ""))
        if args.verbose:
            comps = ", ".join(f"{k} {v / 2 ** 30:.2f}" for k, v in u["est"].components.items() if v)
            print(f"    GiB: {comps}")
    worst = max(used, key=lambda u: abs(u["rel"]))
    print(f"\n{'source':42} {'rows':>4} {'median':>7} {'worst':>7}")
    for src, (n, med, w) in sorted(by_source(used).items()):
        print(f"{src:42} {n:4d} {med:7.1%} {abs(w['rel']):7.1%} ({w['id']})")
    doubled = [u["id"] for u in used if twice(u)]
    print(f"\nrows used: {len(used)} of {len(used) + len(left_out)}; {len(doubled)} from rankwise's own stack "
          f"(HF transformers + peft under the HF Trainer: stacks {', '.join(sorted(TRAINER_STACKS))}), counted twice (x2)")
    print(f"median |relative error|: {statistics.median(counted_errors(used)):.1%} "
          f"(each row once: {statistics.median(abs(u['rel']) for u in used):.1%}); target <= 5% (issue 11)")
    print(f"worst  |relative error|: {abs(worst['rel']):.1%} ({worst['id']}); target <= 15%")
    print(f"signed mean error: {statistics.mean(u['rel'] for u in used):+.1%}")
    opened = [u for u in used if u["use"] == "open"]
    if opened:
        print("\nopen (counted above; the question in the CSV's note):")
        for u in opened:
            print(f"  {u['id']}: {u['note'][:110]}")
    if left_out:
        print("\nleft out (reason in the CSV's note):")
        for r in left_out:
            print(f"  {r['id']}: {r['note'][:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
