"""The time planner (advisor/time.py) against published, measured LoRA/QLoRA throughput and wall times.

    python3 bench/time_accuracy.py [--csv bench/time_reference.csv]

Every row of time_reference.csv is one measurement with its settings and source. The planner
runs uncalibrated (no run directories), with the row's GPU from the GPU table, and its figure
is compared with the measurement: tokens/s per GPU, or the training wall time. Prints each
row's relative error and the median and worst, in-sample rows (those the stack efficiency was
fitted to) marked. Target (issue 15): median ≤ 20%, worst ≤ 40%.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

from rankwise.advisor.config import RunConfig, with_values
from rankwise.advisor.fit import assess
from rankwise.advisor.hardware import planned
from rankwise.advisor.model import load_model
from rankwise.advisor.time import DataShape, plan_time

HERE = Path(__file__).resolve().parent


def predict(row: dict) -> float:
    spec = load_model(row["model"])
    targets = row["targets"] if row["targets"] in ("minimal", "standard", "aggressive", "all-linear") \
        else row["targets"].split(",")
    gpus = int(row["gpus"])
    patch = {"method": row["method"], "lora.r": int(row["r"]), "lora.target_modules": targets,
             "train.micro_batch": int(row["batch"]), "train.max_seq_len": int(row["seq"]),
             "train.grad_checkpointing": row["grad_ckpt"] == "yes", "data.packing": row["packing"] == "yes",
             "train.grad_accum": int(row["grad_accum"] or 1), "distributed.gpus": gpus,
             "distributed.strategy": "ddp" if row["strategy"] == "single" else row["strategy"]}
    for option in filter(None, row.get("options", "").split(";")):  # e.g. kbit_upcast=no
        key, _, value = option.partition("=")
        patch[{"kbit_upcast": "quant.kbit_upcast", "attention": "train.attention"}[key.strip()]] = (
            {"yes": True, "no": False}.get(value.strip(), value.strip()))
    if row["epochs"]:
        patch["train.epochs"] = float(row["epochs"])
    else:
        patch["train.max_steps"] = 100
    cfg = with_values(RunConfig(), patch)
    hw = planned(gpu=row["gpu"], gpus=gpus)
    fit = assess(spec, cfg, hw)
    L = int(row["seq"])
    data = (DataShape(int(row["rows"]), float(row["tokens_per_row"]), float(row["long_tokens_per_row"]), "bench")
            if row["rows"] else DataShape(10_000, L, L, "bench"))
    t = plan_time(spec, cfg, fit, hw, data)
    if row["measure"] == "tokens_per_s_per_gpu":
        return t.tokens_per_s / gpus
    if row["measure"] == "train_s":
        return t.train_s
    raise ValueError(f"{row['id']}: unknown measure {row['measure']!r}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", default=str(HERE / "time_reference.csv"))
    args = ap.parse_args(argv)
    rows = list(csv.DictReader(open(args.csv, encoding="utf-8")))
    errors = []
    print(f"{'id':32} {'measure':22} {'measured':>10} {'planned':>10} {'error':>7}")
    for row in rows:
        got = predict(row)
        want = float(row["measured"])
        err = (got - want) / want
        errors.append(abs(err))
        mark = "  (in-sample)" if "in-sample" in row["note"] else ""
        print(f"{row['id']:32} {row['measure']:22} {want:10.1f} {got:10.1f} {err:+7.1%}{mark}")
    med, worst = statistics.median(errors), max(errors)
    print(f"\n{len(rows)} rows: median |error| {med:.1%}, worst {worst:.1%} (target: median ≤ 20%, worst ≤ 40%)")
    return 0 if med <= 0.20 and worst <= 0.40 else 1


if __name__ == "__main__":
    sys.exit(main())
