"""A full fine-tune's memory on a GPU, beside `rankwise check`'s estimate of it (advisor/foreign/full_ft.py).

    python3 bench/gpu_full_probe.py OUT.csv [--model llama-3.2-1b] [--dry-run]

`check` estimates a foreign config with no adapter as a full fine-tune: every weight, its gradient and its
optimizer states, plus what the same settings hold beside their parameters (taken from the LoRA estimate,
which the LoRA rows of bench/memory_reference.csv hold), with the gradients beside the forward only when they
accumulate. No measured full-fine-tune row backs that yet; this probe makes them. It builds the catalog model
from its config with random weights (no download: memory does not depend on the values; bench/gpu_suite.py's
build_model), and trains it in full with a bare HF Trainer as axolotl and LLaMA-Factory do (bf16 weights,
bf16 autocast, transformers' default fused AdamW, gradient checkpointing as the case says) for a few steps on
rows of exactly `seq` tokens, per case:
- one micro-batch a step, checkpointing (the gradients and the forward apart);
- four micro-batches a step (the gradients alive through the next forward);
- no checkpointing, a shorter length, a larger micro-batch.
It writes torch.cuda.max_memory_allocated and max_memory_reserved beside the estimate's allocated bytes (its
peak less the CUDA context and the allocator's cache) and its peak, and the error of each against its
measurement. --dry-run builds a 2-layer version of the same architecture and trains it on the CPU: every path,
no figures (the test runs it). ~40 s on one GPU for a 1B model.
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

FIELDS = ("model", "seq", "batch", "grad_accum", "grad_ckpt", "status", "allocated_gib", "reserved_gib",
          "est_allocated_gib", "est_peak_gib", "allocated_error_pct", "reserved_error_pct", "wall_s", "note")
CASES = ((2048, 1, 1, True), (2048, 1, 4, True), (512, 4, 1, False))  # (seq, micro-batch, grad accum, checkpointing)
STEPS = 3  # the optimizer states exist from the first step; the peak is reached by the second
GIB = 2 ** 30
OUTSIDE_ALLOCATED = ("cuda_context", "allocator_overhead", "allocator_cached", "nccl_buffers")


def estimate(model: str, seq: int, batch: int, accum: int, ckpt: bool, gpu_gib: float | None):
    """check's full fine-tune estimate of these settings (advisor/foreign/full_ft.full_finetune)."""
    from rankwise.advisor.config import RunConfig
    from rankwise.advisor.foreign.full_ft import full_finetune
    from rankwise.advisor.hardware import resolve
    from rankwise.advisor.model import load_model

    cfg = RunConfig.model_validate({
        "model": {"name": model}, "method": "lora",
        "train": {"max_seq_len": seq, "micro_batch": batch, "grad_accum": accum, "grad_checkpointing": ckpt,
                  "precision": "bf16", "optimizer": "adamw_torch"}})
    hw = resolve(f"{gpu_gib or 80:.0f}GiB", None, None)
    return full_finetune("adapter", load_model(model), cfg, hw)


def train(model_dir: Path, seq: int, batch: int, accum: int, ckpt: bool, dry: bool, scratch: Path) -> tuple:
    """(max allocated, max reserved) bytes over a few steps of a full fine-tune; (None, None) on the CPU."""
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    cuda = torch.cuda.is_available() and not dry
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    if cuda:
        model = model.to("cuda")
    vocab = model.config.vocab_size

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return batch * accum * STEPS

        def __getitem__(self, i):
            ids = torch.randint(3, vocab, (seq,), generator=torch.Generator().manual_seed(i))
            return {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones(seq, dtype=torch.long)}

    args = TrainingArguments(output_dir=str(scratch / "out"), per_device_train_batch_size=batch,
                             gradient_accumulation_steps=accum, max_steps=STEPS, bf16=cuda, learning_rate=1e-5,
                             gradient_checkpointing=ckpt, logging_steps=1, save_strategy="no", report_to=[],
                             use_cpu=not cuda, dataloader_num_workers=0, disable_tqdm=True)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    Trainer(model=model, args=args, train_dataset=Rows()).train()
    if not cuda:
        return None, None
    out = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
    del model
    torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--model", default="llama-3.2-1b", help="a catalog model (default llama-3.2-1b)")
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU: every path, no figures")
    args = ap.parse_args(argv)
    import torch
    from gpu_suite import build_model

    dry = args.dry_run or not torch.cuda.is_available()
    gpu_gib = None if dry else torch.cuda.get_device_properties(0).total_memory / GIB
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, args.out.open("w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        model_dir = build_model(args.model, Path(tmp) / "models", dry)
        for seq, batch, accum, ckpt in CASES:
            if dry:
                seq = min(seq, 64)
            row = dict(model=args.model, seq=seq, batch=batch, grad_accum=accum, grad_ckpt=ckpt, status="ok", note="")
            start = time.perf_counter()
            try:
                allocated, reserved = train(model_dir, seq, batch, accum, ckpt, dry, Path(tmp))
            except torch.OutOfMemoryError as e:
                allocated, reserved, row["status"], row["note"] = None, None, "oom", str(e).splitlines()[0][:200]
            row["wall_s"] = round(time.perf_counter() - start, 1)
            full = estimate(args.model, seq, batch, accum, ckpt, gpu_gib)
            est_alloc = full.peak - sum(full.rest.get(k, 0) for k in OUTSIDE_ALLOCATED)
            row.update(est_allocated_gib=round(est_alloc / GIB, 3), est_peak_gib=round(full.peak / GIB, 3))
            if allocated:
                row.update(allocated_gib=round(allocated / GIB, 3), reserved_gib=round(reserved / GIB, 3),
                           allocated_error_pct=round(100 * (est_alloc - allocated) / allocated, 1),
                           reserved_error_pct=round(100 * (full.peak - full.rest.get("cuda_context", 0) - reserved)
                                                    / reserved, 1))
            elif dry:
                row["status"], row["note"] = "dry-run", "CPU: no GPU figures"
            w.writerow(row)
            f.flush()
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
