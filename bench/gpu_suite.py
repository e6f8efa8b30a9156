"""The GPU suite (issue 11): what `rankwise train` really takes on a GPU, beside what rankwise estimated.

    python3 bench/gpu_suite.py [--out bench/gpu_results.csv] [--budget-s 420] [--models a,b] [--no-throughput]
    python3 bench/gpu_suite.py --dry-run --out /tmp/gpu_dry.csv     # the same code on the CPU, tiny shapes

Memory does not depend on weight values, so each catalog model (llama-3.2-1b, llama-3.2-3b,
llama-3.1-8b, qwen2.5-7b; nothing is downloaded) is built from its config with random weights,
saved as safetensors in a scratch folder beside the shipped tiny tokenizer (ids it produces are
valid for every vocabulary), and trained for a few real steps by `rankwise train --preset FILE`
— the stack rankwise trains with, so every row "counts double" in the estimator's evidence. Each
case is one preset (LoRA / QLoRA, two lengths, gradient checkpointing on and off, Liger on and off
where it is installed) whose rows are longer than max_seq_len, so every micro-batch is full.
For each case the suite records:
- the run's own peak (summary.json `peak_mem_bytes`: torch.cuda.max_memory_reserved);
- the device's used memory at the peak as NVML reports it (what nvidia-smi shows), sampled every
  20 ms from this process, less what was in use before the run started;
- `rankwise estimate --preset FILE --json` of the same file (peak, allocated, reserved), and the
  error of the estimate against the NVML peak (against reserved where NVML is missing);
- tokens/s of the run and the planner's tokens/s (advisor/time.py) on the probed GPU.
Throughput: `rankwise train` against a bare HF Trainer + PEFT script on the same model, data,
LoRA and arguments (bench/train_overhead.py's method), at one case.

After the cases, when the budget allows, bench/gpu_fsdp_probe.py (one minute) writes gpu_fsdp_results.csv
beside the CSV: FSDP's hold under reentrant checkpointing and what FSDP's initialisation leaves cached.
Cases run in priority order (1B first, then 8B, then the rest) until --budget-s is spent; rows
are written to the CSV as they finish, so a cut-off run keeps what it measured. --dry-run uses
tiny versions of the same architectures (2 layers, hidden 64) on the CPU: no GPU figures, every
code path exercised (the suite's test runs it).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER = ROOT / "presets" / "assets" / "tiny-llama"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
MODELS = ("llama-3.2-1b", "llama-3.1-8b", "llama-3.2-3b", "qwen2.5-7b")
MOE = "mixtral-8x7b@4"  # NAME@N: the catalog model cut to its first N decoder layers (build_model)
# Llama 4 Scout's language model cut to one layer (an index id; its 16 experts run on every token in transformers:
# advisor/spec.py DENSE_MOE_TYPES): ~8 GB of random weights
DENSE_MOE = "meta-llama/Llama-4-Scout-17B-16E@1"
# Qwen3.5-9B cut to its first four layers (three Gated DeltaNet, one gated full attention: advisor/linear_attention.py):
# the delta rule as transformers runs it on this GPU (flash-linear-attention's kernel where installed, else its torch
# fallback, the CPU-measured count)
HYBRID = "Qwen/Qwen3.5-9B@4"
# Nemotron 3 Nano cut to its first six blocks (Mamba2, MoE, Mamba2, MoE, Mamba2, attention: advisor/mamba.py), its
# Mamba2 scan as transformers runs it here (mamba-ssm has no wheel for the device: its torch fallback)
MAMBA_HYBRID = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16@6"
# Falcon-Mamba-7B cut to four of its 64 layers (Mamba1 mixers alone, advisor/mamba.py): the token-by-token torch scan
# transformers runs without mamba-ssm, whose ~2 MiB a token a layer the CPU measured; at 1024 tokens (a Python loop
# over every token: slow even on a GPU)
PURE_MAMBA = "tiiuae/falcon-mamba-7b@4"
STEPS = 4  # steps per case: the peak is reached in the first optimizer step; a few more confirm it
CASE_KEYS = ("model", "method", "seq", "batch", "grad_ckpt", "kernels", "loss", "act_offload", "experts")
FIELDS = (*CASE_KEYS, "status", "nvml_peak_gib", "run_reserved_gib",
          "est_peak_gib", "est_reserved_gib", "est_allocated_gib", "error_pct", "tokens_per_s", "planned_tokens_per_s",
          "wall_s", "unused_adapters", "note")
GIB = 2 ** 30


def cases(models: list[str], liger: bool, cce: bool = False) -> list[dict]:
    """Priority order: the headline cases (LoRA and QLoRA at 2048 with checkpointing) of the first two
    models, then the first model's grid (512, no checkpointing), Liger, the chunked loss, Cut Cross-Entropy, QLoRA at
    4096 with and without activation offload, then a pair per other model."""
    def case(model, method, seq=2048, ckpt=True, kernels="none", loss="standard", act_offload=False, experts="4bit"):
        return dict(model=model, method=method, seq=seq, batch=1, grad_ckpt=ckpt, kernels=kernels, loss=loss,
                    act_offload=act_offload, experts=experts)

    head, rest = models[:2], models[2:]
    out = [case(m, method) for m in head for method in ("lora", "qlora")]
    # an MoE under QLoRA, four of Mixtral-8x7B's layers (~12 GB of bf16 experts) without a 90 GB checkpoint: its fused
    # experts quantized as they load (trainer/moe_quant.py), and left 16-bit as transformers 5 loads them
    # and LoRA on the experts themselves (lora.target_parameters: peft builds each layer's adapted experts);
    # ("4bit" stands for quantized: under lora-8bit, row-wise int8)
    out += [case(MOE, "qlora"), case(MOE, "qlora", experts="16bit"), case(MOE, "lora", experts="adapted")]
    out += [case(MOE, "lora-8bit")]  # the 8-bit method: LLM.int8 linears, the experts in row-wise int8
    out += [case(DENSE_MOE, "qlora")]  # every expert on every token: the repeated input and each expert's MLP kept
    out += [case(HYBRID, "qlora"), case(HYBRID, "lora", ckpt=False)]  # linear attention: recomputed, and every layer kept
    out += [case(MAMBA_HYBRID, "qlora"), case(PURE_MAMBA, "qlora", seq=1024)]
    out += [case(models[0], method, seq, ckpt) for method in ("lora", "qlora") for seq in (512, 2048)
            for ckpt in (True, False) if (seq, ckpt) != (2048, True)]
    out += [case(m, "qlora", ckpt=False) for m in head[1:]]
    if liger:
        out += [case(m, method, kernels="liger") for m in head for method in ("lora", "qlora")]
    out += [case(m, "lora", loss="chunked") for m in head]  # train.loss chunked (trainer/chunked_loss.py)
    if cce:  # train.loss cce (trainer/cce_loss.py): the package's Triton kernels
        out += [case(m, "lora", loss="cce") for m in head]
    # train.activation_offload (trainer/activation_offload.py): the checkpointed inputs in host RAM, beside the same run
    out += [case(m, "qlora", seq=4096, act_offload=on) for m in head for on in (False, True)]
    out += [case(m, method) for m in rest for method in ("lora", "qlora")]
    return out


def tiny(config: dict) -> dict:
    """The same architecture at toy size (--dry-run)."""
    heads = 4
    kv = 2 if config.get("num_key_value_heads", heads) < config.get("num_attention_heads", heads) else heads
    small = {"intermediate_size_mlp": 192} if "intermediate_size_mlp" in config else {}
    return {**config, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": heads,
            "num_key_value_heads": kv, "head_dim": 16, "vocab_size": 512, "max_position_embeddings": 4096, **small}


def config_of(base: str) -> dict:
    """A catalog entry's config.json fields, or an index id's; a multimodal release's language model alone (its
    text_config), which AutoModelForCausalLM builds."""
    from rankwise.advisor.catalog import lookup
    from rankwise.advisor.model_index import lookup as index_lookup

    found = lookup(base)
    if found is not None:
        return dict(found[1])
    entry = index_lookup(base)
    if entry is None:
        raise SystemExit(f"{base}: not a catalog entry or an indexed model")
    return dict(entry.config.get("text_config") or entry.config)


def cut(config: dict, layers: int) -> dict:
    """The config with its first `layers` decoder layers, per-layer lists (layer types, rope and MoE layers) cut
    to match."""
    total = config.get("num_hidden_layers")
    out = {k: (v[:layers] if isinstance(v, list) and len(v) == total else v) for k, v in config.items()}
    out["num_hidden_layers"] = layers
    return out


def build_model(name: str, folder: Path, dry: bool) -> Path:
    """config.json + random safetensors weights + the tiny tokenizer, in folder/name."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    base, _, layers = name.partition("@")
    config = config_of(base)
    if layers:
        config = cut(config, int(layers))
    if dry:
        config = {**tiny(config), **({"num_hidden_layers": int(layers)} if layers else {})}
    config.update(bos_token_id=1, eos_token_id=2, pad_token_id=0)  # the shipped tokenizer's ids
    out = folder / name.replace("/", "--")
    out.mkdir(parents=True, exist_ok=True)
    cfg = AutoConfig.for_model(**{k: v for k, v in config.items() if k != "architectures"})
    cfg.architectures = config.get("architectures")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True, max_shard_size="5GB")
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    for f in TOKENIZER_FILES:
        shutil.copy(TOKENIZER / f, out / f)
    return out


def write_data(path: Path, rows: int, chars: int) -> Path:
    """Chat rows whose answers are longer than any case's max_seq_len (byte-level tokenizer: ~1 token a character)."""
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()
    with path.open("w") as f:
        for i in range(rows):
            answer = " ".join(words[(i * 7 + k) % len(words)] for k in range(chars // 5 + 1))[:chars]
            f.write(json.dumps({"messages": [{"role": "user", "content": f"tell me story {i}"},
                                             {"role": "assistant", "content": answer}]}) + "\n")
    return path


def preset(case: dict, model_dir: Path, data: Path, folder: Path) -> Path:
    import yaml

    cfg = {"name": "gpu-suite", "model": {"name": str(model_dir)}, "task": "chat", "method": case["method"],
           "data": {"path": str(data), "val_ratio": 0.0},
           "lora": {"r": 16, "target_modules": "all-linear",
                    **({"target_parameters": ["experts.gate_up_proj", "experts.down_proj"], "dropout": 0.0}
                       if case.get("experts") == "adapted" else {})},
           "train": {"max_steps": STEPS, "micro_batch": case["batch"], "grad_accum": 1, "max_seq_len": case["seq"],
                     "grad_checkpointing": case["grad_ckpt"], "logging_steps": 1, "save_steps": 100000,
                     "kernels": case["kernels"], "loss": case.get("loss", "standard"),
                     "activation_offload": case.get("act_offload", False)},
           "quant": {"quantize_experts": case.get("experts", "4bit") == "4bit"},
           "output": {"name": "gpu-suite"}}
    path = folder / (f"{case['model'].replace('/', '--')}-{case['method']}-{case['seq']}-"
                     f"{'ckpt' if case['grad_ckpt'] else 'nockpt'}-{case['kernels']}-{case.get('loss', 'standard')}"
                     f"{'-offload' if case.get('act_offload') else ''}"
                     f"{'' if case.get('experts', '4bit') == '4bit' else '-experts-' + case['experts']}.yaml")
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class NvmlPeak:
    """Used device memory, sampled every 20 ms (nvidia-smi's figure); None without NVML or a GPU."""

    def __init__(self):
        self.peak = self.base = None
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self._h = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._read = lambda: pynvml.nvmlDeviceGetMemoryInfo(self._h).used
        except Exception:
            self._read = None

    def __enter__(self):
        if self._read is not None:
            self.base = self.peak = self._read()
            threading.Thread(target=self._poll, daemon=True).start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._read())
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._stop.set()

    @property
    def used_gib(self) -> float | None:
        return None if self._read is None else (self.peak - self.base) / GIB


def cli(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rankwise.tui.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"})


def run_case(case: dict, file: Path, runs: Path, timeout: float) -> dict:
    row = {k: case[k] for k in CASE_KEYS}
    est = cli("estimate", "--preset", str(file), "--json", timeout=120)
    if est.returncode != 0:
        return {**row, "status": "estimate-failed", "note": est.stderr.strip().splitlines()[-1:]}
    e = json.loads(est.stdout)
    row.update(est_peak_gib=round(e["peak_gib"], 3), est_reserved_gib=round(e.get("reserved_gib", 0.0), 3),
               est_allocated_gib=round(e.get("allocated_gib", 0.0), 3),
               planned_tokens_per_s=round((e.get("time") or {}).get("tokens_per_s") or 0.0, 1))
    t0 = time.perf_counter()
    with NvmlPeak() as nvml:
        try:
            p = cli("train", "--preset", str(file), "--runs-dir", str(runs), timeout=timeout)
        except subprocess.TimeoutExpired:
            return {**row, "status": "timeout", "wall_s": round(time.perf_counter() - t0, 1)}
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()
        return {**row, "status": f"exit-{p.returncode}", "note": tail[-1][:200] if tail else ""}
    newest = max(runs.iterdir(), key=lambda d: d.stat().st_mtime)
    summary = json.loads((newest / "summary.json").read_text())
    reserved = summary.get("peak_mem_bytes")
    row["unused_adapters"] = unused_adapters(newest)
    row.update(status="ok", tokens_per_s=summary.get("tokens_per_s"),
               run_reserved_gib=round(reserved / GIB, 3) if reserved and summary.get("peak_mem_kind") == "cuda reserved"
               else None, nvml_peak_gib=None if nvml.used_gib is None else round(nvml.used_gib, 3))
    measured = row["nvml_peak_gib"] or row["run_reserved_gib"]
    if measured:
        row["error_pct"] = round(100 * (row["est_peak_gib"] - measured) / measured, 1)
    row["note"] = "" if measured else "no GPU figure (CPU: summary peak is process RSS)"
    return row


def unused_adapters(run: Path) -> str:
    """The run's `adapters` event (the worker's AdapterUse): adapters whose module the forward never called on this
    GPU's kernels ("name:unused/total;..."), "" when every one got its gradient, "?" when the run wrote none."""
    from rankwise.trainer.events import read_events

    said = [e for e in read_events(run / "events.jsonl") if e.get("type") == "adapters"]
    if not said:
        return "?"
    return ";".join(f"{n}:{u}/{t}" for n, (u, t) in sorted((said[-1].get("unused") or {}).items()))


def throughput(model_dir: Path, data: Path, folder: Path, dry: bool) -> str:
    """rankwise train vs a bare HF Trainer + PEFT script (bench/train_overhead.py's clock), 1B LoRA, seq 2048."""
    sys.path.insert(0, str(ROOT / "bench"))
    import train_overhead as overhead

    seq, steps = (128, 6) if dry else (2048, 30)
    file = preset(dict(model=model_dir.name, method="lora", seq=seq, batch=1, grad_ckpt=True, kernels="none",
                       loss="standard", act_offload=False),
                  model_dir, data, folder)
    settings = ["train.logging_steps=2", "data.val_ratio=0", "train.save_steps=100000", f"train.max_steps={steps}"]
    runs = folder / "throughput-runs"
    p = cli("train", "--preset", str(file), "--runs-dir", str(runs), *[a for s in settings for a in ("--set", s)],
            timeout=900)
    if p.returncode != 0:
        return f"throughput: rankwise train failed ({p.returncode})"
    newest = max(runs.iterdir(), key=lambda d: d.stat().st_mtime)
    ours = json.loads((newest / "summary.json").read_text())["tokens_per_s"]
    bare = subprocess.run([sys.executable, "-c", overhead.bare_script(gpu=not dry), str(steps), str(folder / "bare"),
                           str(file), json.dumps(settings)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=900)
    if bare.returncode != 0:
        return f"throughput: bare script failed: {bare.stderr.strip().splitlines()[-1:]}"
    theirs = json.loads(bare.stdout.strip().splitlines()[-1])["tokens_per_s"]
    return (f"throughput ({model_dir.name} LoRA, seq {seq}, {steps} steps): rankwise {ours:,.0f} tokens/s, "
            f"bare HF Trainer {theirs:,.0f} tokens/s, ratio {ours / theirs:.3f}")


def fsdp_probe(out: Path) -> str:
    """bench/gpu_fsdp_probe.py on the first model (about a minute): FSDP's hold and its initialisation's cache."""
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_fsdp_probe.py"), "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    said = (p.stdout.strip().splitlines() or [""])[-1]
    return f"fsdp probe: {said}" if p.returncode == 0 else f"fsdp probe failed: {p.stderr[-1500:]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "gpu_results.csv"))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--budget-s", type=float, default=420.0, help="stop starting cases after this (default 420)")
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU: exercise every path, no GPU figures")
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--no-fsdp-probe", action="store_true", help="skip bench/gpu_fsdp_probe.py at the end")
    ap.add_argument("--max-cases", type=int, help="run at most this many cases (the suite's test)")
    ap.add_argument("--scratch", help="where model folders go (default: a temporary folder, removed after)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    dry = args.dry_run or not torch.cuda.is_available()
    if dry and not args.dry_run:
        print("no CUDA device: running the dry run (tiny shapes on the CPU, no GPU figures)", flush=True)
    try:
        import liger_kernel  # noqa: F401

        liger = not dry
    except ImportError:
        liger = False
    try:
        import cut_cross_entropy  # noqa: F401

        cce = not dry
    except ImportError:
        cce = False
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    todo = cases(models, liger, cce)
    if dry:  # tiny shapes: short rows are enough
        todo = [{**c, "seq": min(c["seq"], 128)} for c in todo]
    todo = todo[:args.max_cases] if args.max_cases else todo
    start = time.perf_counter()
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="rankwise-gpu-suite-"))
    out = Path(args.out)
    notes = []
    try:
        data = write_data(scratch / "long.jsonl", rows=64, chars=4200)
        built: dict[str, Path] = {}
        with out.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            w.writeheader()
            for case in todo:
                left = args.budget_s - (time.perf_counter() - start)
                if left <= 0:
                    w.writerow({**{k: case[k] for k in CASE_KEYS},
                                "status": "skipped (budget)"})
                    continue
                if case["model"] not in built:  # kept until the end: the four models take ~40 GB of disk
                    built[case["model"]] = build_model(case["model"], scratch / "models", dry)
                file = preset(case, built[case["model"]], data, scratch)
                row = run_case(case, file, scratch / "runs", timeout=max(60.0, left + 60))
                w.writerow(row)
                f.flush()
                print(" ".join(f"{k}={row.get(k)}" for k in FIELDS if row.get(k) not in (None, "")), flush=True)
            if not args.no_throughput and (args.budget_s - (time.perf_counter() - start) > 0 or dry):
                first = models[0]
                if first not in built:
                    built[first] = build_model(first, scratch / "models", dry)
                notes.append(throughput(built[first], data, scratch, dry))
    finally:
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if not args.no_fsdp_probe and not dry and args.budget_s - (time.perf_counter() - start) > 0:
        notes.append(fsdp_probe(out.with_name("gpu_fsdp_results.csv")))
    for n in notes:
        print(n)
    print(f"wrote {out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
