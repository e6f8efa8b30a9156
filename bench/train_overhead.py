"""What `rankwise train` costs over a bare HF Trainer + PEFT script: tokens/s side by side.

Both train the shipped tiny Llama on the demo chat data with the same LoRA, the same
TrainingArguments and the same tokenized examples, with no eval and no checkpoints in the
measured window. rankwise runs as a user runs it: `rankwise train` in the foreground (the
worker process, its event callbacks, and the panel following the log in plain-line mode).
tokens/s is measured over the training phase only (on_train_begin → on_train_end, real
unpadded tokens), the same way in both, so process start-up and model loading do not count.
The two alternate ROUNDS times; printed: medians, the median of each round's ratio (the two
runs of a round are adjacent in time), and best against best (timeit's rule; on a shared
machine other jobs slow single runs many-fold, so the best runs are the comparable ones).
Target: rankwise/bare ≥ 0.97.

    python bench/train_overhead.py [--steps 300] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ["train.micro_batch=8", "train.grad_accum=1", "train.logging_steps=10", "data.val_ratio=0",
            "train.save_steps=100000", "train.max_seq_len=128", "train.grad_checkpointing=false"]


def rankwise_run(steps: int, tmp: Path) -> float:
    runs = tmp / f"runs-{time.time_ns()}"
    sets = [a for s in SETTINGS + [f"train.max_steps={steps}"] for a in ("--set", s)]
    cmd = [sys.executable, "-m", "rankwise.tui.cli", "train", "--preset", "demo-cpu", "--runs-dir", str(runs), *sets]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    if p.returncode != 0:
        raise SystemExit(f"rankwise train failed:\n{p.stderr[-2000:]}")
    (run_dir,) = list(runs.iterdir())
    from rankwise.trainer.events import read_events

    intervals = [e["tokens_per_s"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "step"][1:]
    return json.loads((run_dir / "summary.json").read_text())["tokens_per_s"], statistics.median(intervals)


BARE = r'''
import json, sys, time
from pathlib import Path
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments
from rankwise.advisor.loader import apply_overrides, load_config
from rankwise.trainer.data import make_collator
from rankwise.trainer.data_build import build_datasets

steps, out = int(sys.argv[1]), sys.argv[2]
cfg = load_config(sys.argv[3], json.loads(sys.argv[4]))  # the same resolved config rankwise trains
model_dir = cfg.model.name
tok = AutoTokenizer.from_pretrained(model_dir)
train, _, _ = build_datasets(cfg, tok)
collate = make_collator(tok)
seen = [0]
def counting(batch):
    seen[0] += sum(len(ex["input_ids"]) for ex in batch)
    return collate(batch)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
torch.manual_seed(cfg.train.seed)
model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha_value, lora_dropout=cfg.lora.dropout,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], task_type="CAUSAL_LM"))
t = cfg.train
ckpt = "activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__ else "gradient_checkpointing"
args = TrainingArguments(output_dir=out, per_device_train_batch_size=t.micro_batch, gradient_accumulation_steps=t.grad_accum,
    **{ckpt: t.grad_checkpointing, f"{ckpt}_kwargs": {"use_reentrant": False}},
    learning_rate=t.lr, lr_scheduler_type="cosine", warmup_steps=t.warmup_ratio, max_steps=steps, optim="adamw_torch",
    max_grad_norm=t.max_grad_norm, seed=t.seed, logging_steps=t.logging_steps, save_strategy="steps", save_steps=t.save_steps,
    eval_strategy="no", use_cpu=True, report_to="none", disable_tqdm=True, remove_unused_columns=False)
class Clock(TrainerCallback):
    """The same clock as rankwise's: the whole phase, and each logging interval."""
    def on_train_begin(self, *a, **k): self.t0, self.n0 = self.last = (time.perf_counter(), seen[0]); self.rates = []
    def on_log(self, args, state, control, logs=None, **k):
        if "loss" in (logs or {}):
            now = time.perf_counter()
            self.rates.append((seen[0] - self.last[1]) / (now - self.last[0]))
            self.last = (now, seen[0])
    def on_train_end(self, *a, **k): self.rate = (seen[0] - self.n0) / (time.perf_counter() - self.t0)
clock = Clock()
Trainer(model=model, args=args, train_dataset=train, data_collator=counting, callbacks=[clock]).train()
rates = sorted(clock.rates[1:])
print(json.dumps({"tokens_per_s": clock.rate, "interval_median": rates[len(rates) // 2]}))
'''


def bare_script(gpu: bool) -> str:
    """The bare script; on a GPU (bench/gpu_suite.py) with a bf16 base and bf16 autocast, as rankwise trains there."""
    if not gpu:
        return BARE
    return BARE.replace("dtype=torch.float32", "dtype=torch.bfloat16").replace("use_cpu=True", "use_cpu=False, bf16=True")


def bare_run(steps: int, tmp: Path) -> float:
    overrides = SETTINGS + [f"train.max_steps={steps}"]
    cmd = [sys.executable, "-c", BARE, str(steps), str(tmp / f"bare-{time.time_ns()}"),
           str(ROOT / "presets" / "demo-cpu.yaml"), json.dumps(overrides)]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if p.returncode != 0:
        raise SystemExit(f"bare script failed:\n{p.stderr[-2000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return out["tokens_per_s"], out["interval_median"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    ours, bare = [], []  # (whole training phase, median logging interval) per run
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for i in range(a.rounds):
            first, second = (rankwise_run, bare_run) if i % 2 == 0 else (bare_run, rankwise_run)
            for fn in (first, second):
                rate, interval = fn(a.steps, tmp)
                (ours if fn is rankwise_run else bare).append((rate, interval))
                print(f"round {i + 1}: {'rankwise' if fn is rankwise_run else 'bare HF ':8} {rate:9,.0f} tokens/s "
                      f"(median interval {interval:,.0f})", flush=True)
    for k, what in ((0, "whole training phase"), (1, "median logging interval")):
        o, b = statistics.median(r[k] for r in ours), statistics.median(r[k] for r in bare)
        paired = statistics.median(x[k] / y[k] for x, y in zip(ours, bare))  # each round's two runs are adjacent in time
        best = max(r[k] for r in ours) / max(r[k] for r in bare)  # timeit's rule: the fastest run is the least disturbed
        print(f"{what}: rankwise {o:,.0f} tokens/s, bare HF {b:,.0f} tokens/s (medians of {a.rounds}); "
              f"ratio of medians {o / b:.3f}, median of per-round ratios {paired:.3f}, best of each {best:.3f} "
              f"(target >= 0.97)")


if __name__ == "__main__":
    main()
