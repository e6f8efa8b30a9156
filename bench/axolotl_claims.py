"""`rankwise check` beside the memory axolotl's own example READMEs state for their configs.

axolotl's examples/*/README.md often say what a config used ("This config uses about 8.76 GiB VRAM", "# QLoRA
(1x80GB @ ~63.4GiB/GPU)"). Those figures are informal: the READMEs do not say which reading (nvidia-smi, W&B's
NVML, torch's reserved), some were written on older transformers (Jamba's, before transformers 5 fused its experts),
and a figure quoted with no unit of 1e9 is read as the unit written. They are not rows of
bench/memory_reference.csv (whose rows state their measure) but a check of `check` on the configs people start from:
for each claim the script runs `rankwise check CONFIG --gpu H200 --gpus N --json` in-process and prints the claim,
rankwise's peak per GPU (the LoRA estimate, the full fine-tune's, or, for a model known only by its name, the
range its size gives) and the relative difference, then the median and worst over the resolved rows.

    python3 bench/axolotl_claims.py DIR     # DIR: axolotl's examples/ folder at AXOLOTL_COMMIT

Measured (5 December 2026, axolotl 067b021, rankwise c. 6 a.m.): 29 of 33 claims resolved (4 models known only by
their name's size); median |diff| 10%, worst +94% (glm47-flash/qlora_fsdp.yaml). The large ones: FSDP2 runs
(glm47-flash's two, gpt-oss-20b's FFT with offload: rankwise models FSDP1's wrapping of a model loaded whole, and
keeps fused experts 16-bit under FSDP, where axolotl's FSDP2 shards them quantized), Jamba's README (written before
transformers 5 fused its experts, which axolotl now leaves 16-bit), and Qwen3.5-27B's table (its FFT row, ~53 GiB for a
27B full fine-tune on one GPU, cannot hold the weights and gradients, so the table's setting is not the config's).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
from pathlib import Path

AXOLOTL_COMMIT = "067b021c8b87a9e5e380b9173c704cf7340e30f5"
GIB, GB = 2 ** 30, 1e9

# (config under examples/, the README line quoted, the figure, its unit, GPUs)
CLAIMS = [
    ("mistral4/qlora-text.yml", "axolotl train examples/mistral4/qlora-text.yml  # no experts ~69 GiB", 69, "GiB", 1),
    ("qwen3-next/qwen3-next-80b-a3b-qlora.yaml", "# ~47 GiB (no target experts) and ~71GiB (target experts) VRAM.",
     47, "GiB", 1),
    ("ministral3/think/ministral3-3b-think-qlora.yaml", "This config uses about 4.76 GiB VRAM.", 4.76, "GiB", 1),
    ("plano/plano-4b-qlora.yaml", "This config uses about 5.1 GiB VRAM.", 5.1, "GiB", 1),
    ("jamba/qlora.yaml", "qlora single-gpu, ~51GiB VRAM", 51, "GiB", 1),
    ("smolvlm2/smolvlm2-2B-lora.yaml", "# LoRA SFT (1x48GB @ 6.8GiB)", 6.8, "GiB", 1),
    ("hunyuan/hunyuan-v1-dense-qlora.yaml", "This config uses about 4.7 GB VRAM.", 4.7, "GB", 1),
    ("kimi-linear/kimi-48b-lora.yaml", "This config uses about 98.7GiB VRAM.", 98.7, "GiB", 1),
    ("gemma4/31b-qlora.yaml", "# 31B Dense QLoRA (1x80GB @ ~25.2 GiB)", 25.2, "GiB", 1),
    ("gemma4/e2b-vision-lora.yaml", "# E2B vision LoRA (1x80GB @ ~10.4 GiB)", 10.4, "GiB", 1),
    ("magistral/magistral-small-qlora.yaml", "This config uses about 24GB VRAM.", 24, "GB", 1),
    ("magistral/think/magistral-small-think-qlora.yaml", "This config uses about 19.1 GiB VRAM.", 19.1, "GiB", 1),
    ("magistral/vision/magistral-small-vision-24B-qlora.yml", "This config uses about 17GiB VRAM.", 17, "GiB", 1),
    ("glm45/glm-45-air-qlora.yaml", "# QLoRA (1x80GB @ ~63.4GiB/GPU)", 63.4, "GiB", 1),
    ("voxtral/voxtral-mini-qlora.yml", "These configs use about 4.8 GB VRAM.", 4.8, "GB", 1),
    ("seed-oss/seed-oss-36b-qlora.yaml", "This config uses about 27.7 GiB VRAM.", 27.7, "GiB", 1),
    ("qwen3.5/27b-qlora.yaml", "| `27b-qlora.yaml` | Qwen3.5-27B | Dense, text-only QLoRA | ~47 GiB |", 47, "GiB", 1),
    ("qwen3.5/9b-fft-vision.yaml", "| `9b-fft-vision.yaml` | Qwen3.5-9B | Vision+text FFT, single GPU | ~61 GiB |",
     61, "GiB", 1),
    ("ministral/ministral-small-qlora.yaml", "This config uses about 8.76 GiB VRAM.", 8.76, "GiB", 1),
    ("mistral-small/mistral-small-3.1-24B-lora.yml", "This config uses about 29.4 GiB VRAM.", 29.4, "GiB", 1),
    ("glm47-flash/qlora.yaml", "# - no target experts (1x48GB @ ~24GiB/GPU)", 24, "GiB", 1),
    ("glm47-flash/lora.yaml", "# - no target experts (1x48GB @ ~35GiB/GPU)", 35, "GiB", 1),
    ("glm47-flash/qlora_fsdp.yaml", "# QLoRA FSDP2 no target experts (2x48GB @ ~29GiB/GPU)", 29, "GiB", 2),
    ("glm47-flash/lora_fsdp.yaml", "# LoRA FSDP2 no target experts (2x48GB @ ~43GiB/GPU)", 43, "GiB", 2),
    ("devstral/devstral-small-qlora.yml", "This config uses about 21GB VRAM.", 21, "GB", 1),
    ("gemma4-unified/12b-text-lora.yaml", "# Text LoRA (1x96GB @ ~27.76 GiB)", 27.76, "GiB", 1),
    ("olmo3/olmo3-7b-qlora.yaml", "This uses about 11.3 GiB VRAM.", 11.3, "GiB", 1),
    ("arcee/afm-4.5b-qlora.yaml", "This config uses about 7.8GiB VRAM.", 7.8, "GiB", 1),
    ("internvl3_5/internvl3_5-8b-qlora.yml", "This config uses about 8.21 GiB VRAM.", 8.21, "GiB", 1),
    ("gpt-oss/gpt-oss-20b-sft-lora-singlegpu.yaml", "# LoRA SFT linear layers (1x48GB @ ~44GiB)", 44, "GiB", 1),
    ("gpt-oss/gpt-oss-20b-fft-fsdp2-offload.yaml", "# FFT SFT with offloading (2x24GB @ ~21GiB/GPU)", 21, "GiB", 2),
    ("llama-4/scout-qlora-single-h100-flex.yaml",
     "Our Single H100 implementation for Llama 4 Scout uses only 64.5GB VRAM", 64.5, "GB", 1),
    ("llama-4/scout-qlora-flexattn-fsdp2.yaml", "Multi-GPU (4xH100) for Llama 4 Scout uses 62.8GB VRAM/GPU", 62.8,
     "GB", 4),
]


def peak_of(report: dict) -> tuple[float | None, float | None, str]:
    """(low, high) GiB per GPU and how: one figure for an estimate, a range for a model known by its name's size."""
    full = report.get("full_finetune")
    if full and full.get("peak_bytes"):
        v = full["peak_bytes"] / GIB
        return v, v, "full"
    est = report.get("estimate") or {}
    if est.get("peak_gib"):
        return est["peak_gib"], est["peak_gib"], "lora"
    bound = report.get("fit_bound")
    if bound and bound.get("low_gib"):
        return bound["low_gib"], bound["high_gib"], "name-size"
    return None, None, report.get("unchecked_reason") or "no answer"


def check(path: Path, gpus: int) -> dict | None:
    from rankwise.tui import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = cli.main(["check", str(path), "--gpu", "H200", "--gpus", str(gpus), "--json"])
    return json.loads(out.getvalue()) if rc in (0, 3) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path, help="axolotl's examples/ folder")
    args = p.parse_args(argv)
    if not (args.dir / CLAIMS[0][0]).is_file():
        print(f"{args.dir} does not hold axolotl's examples (no {CLAIMS[0][0]})", file=sys.stderr)
        return 2
    rels = []
    print(f"{'config':52s} {'claim':>12s} {'rankwise (GiB/GPU)':>20s} {'diff':>8s}  basis")
    for config, _quote, value, unit, gpus in CLAIMS:
        claim = value * (GIB if unit == "GiB" else GB) / GIB
        report = check(args.dir / config, gpus)
        low, high, how = peak_of(report) if report else (None, None, "exit 2")
        if low is None:
            print(f"{config:52s} {value:>8g} {unit:3s} {'—':>20s} {'':>8s}  {how}")
            continue
        shown = f"{low:.1f}" if low == high else f"{low:.1f}–{high:.1f}"
        rel = (low + high) / 2 / claim - 1
        if how != "name-size":
            rels.append((abs(rel), config))
        where = "" if gpus == 1 else f", {gpus} GPUs"
        print(f"{config:52s} {value:>8g} {unit:3s} {shown:>20s} {rel:>+7.0%}  {how}{where}")
    if rels:
        worst = max(rels)
        median = statistics.median(r for r, _ in rels)
        print(f"\nresolved rows: {len(rels)} of {len(CLAIMS)}; median |diff| {median:.0%}, worst {worst[0]:.0%} "
              f"({worst[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
