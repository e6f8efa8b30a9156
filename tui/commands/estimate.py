"""`rankwise estimate`: peak training memory per GPU, component by component."""
from __future__ import annotations

import argparse

from rankwise.advisor import methods
from rankwise.advisor.config import (ATTENTIONS, FSDP_SHARDINGS, KERNELS, LORA_INITS, OFFLOADS, OPTIMIZERS, PRECISIONS,
                                     STRATEGY_CHOICES, TARGET_SETS)
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.fit import STRATEGY_NAMES
from rankwise.advisor.plan import STARTUPS
from rankwise.advisor.units import gib

from ..style import FIT_LABEL, FIT_STYLE
from .common import add_json, add_launcher, add_planning, hardware_from, launcher_note, print_json
from .estimate_flags import PRE_FORMATS, flags_config, method_flags

LABELS = {"base_weights": "base weights", "quant_constants": "quantization constants",
          "unquantized_weights": "unquantized weights (embeddings, norms, lm_head)", "lora_params": "LoRA weights", "lora_grads": "LoRA gradients",
          "optimizer_states": "optimizer states", "lm_head_cast": "lm_head 16-bit copy", "ddp_buckets": "DDP gradient buckets",
          "activations": "activations", "logits_loss": "logits + loss", "allocator_overhead": "allocator: partly used segments",
          "allocator_cached": "allocator: cached blocks the peak cannot reuse", "nccl_buffers": "NCCL buffers",
          "fsdp_grad_buffers": "FSDP gradient reduce-scatter buffers",
          "fsdp_checkpoint_hold": "FSDP reshard hooks: layer-input gradients held to the end of backward",
          "fsdp_wrap": "FSDP wrapping on the GPU (start-up, above training)",
          "zero3_load": "ZeRO-3 start-up: the 4-bit base whole on the GPU",
          "zero_buckets": "DeepSpeed ZeRO-1/2 gradient reduce bucket",
          "cuda_context": "CUDA context", "gather_layers": "gathered decoder layers (the running one + prefetch)",
          "gather_root": "gathered root unit (embeddings, lm_head)",
          "adapter_init": "adapter initialisation (start-up, above training)",
          "saved_modules": "modules_to_save: trainable copies", "saved_modules_grads": "modules_to_save: gradients",
          "saved_modules_optimizer": "modules_to_save: optimizer states",
          "weights": "weights (every one trains)", "grads": "gradients (every weight)",
          "reference_model": "reference model (the preference stage's frozen copy)"}

FIT_TEXT = {v: f"[{FIT_STYLE[v]}]{FIT_LABEL[v]}[/]" + why for v, why in (
    ("fits", " (peak ≤ 90% of the GPU)"),
    ("tight", " (peak within the last 10% of the GPU: fragmentation may OOM)"),
    ("wont-fit", ""))} | {"no-gpu": "no GPU found"}


def register(sub) -> None:
    p = sub.add_parser("estimate", help="estimate peak GPU memory for a LoRA/QLoRA fine-tune",
                       description="Estimate peak training memory per GPU (what nvidia-smi shows at the peak), "
                                   "component by component. Flags override --preset.")
    p.add_argument("--model", help="catalog name, Hugging Face id (model index or local cache), local folder/config.json (default llama-3.2-1b "
                                   "or the preset's)")
    p.add_argument("--method", choices=methods.METHOD_NAMES, help=f"{methods.help_text()} (default {methods.DEFAULT})")
    p.add_argument("--rank", "-r", type=int, help="LoRA rank (default 16)")
    p.add_argument("--targets", help=f"{' | '.join(TARGET_SETS)} | q_proj,v_proj,... (default standard)")
    p.add_argument("--batch", type=int, help="micro-batch per GPU (default 1)")
    p.add_argument("--seq", "--seq-len", "--max-seq-len", dest="seq", type=int,
                   help="sequence length in tokens (default 2048)")
    p.add_argument("--grad-checkpointing", dest="grad_checkpointing", action=argparse.BooleanOptionalAction,
                   default=None, help="recompute activations in backward (default on)")
    p.add_argument("--reentrant", dest="reentrant", action=argparse.BooleanOptionalAction, default=None,
                   help="checkpoint with torch's reentrant variant (use_reentrant=True, axolotl's and LLaMA-Factory's "
                        "default): one hidden-state tensor more per recomputed layer (default off)")
    p.add_argument("--activation-offload", dest="activation_offload", action=argparse.BooleanOptionalAction,
                   default=None, help="with checkpointing: the checkpointed layer inputs wait in pinned host RAM "
                                      "(train.activation_offload; axolotl's activation_offloading) (default off)")
    p.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="default " + ", ".join(f"{m.optimizer} for {m.name}" for m in methods.METHODS.values()))
    p.add_argument("--no-double-quant", dest="double_quant", action="store_false", default=None,
                   help="QLoRA without double quantization of the constants")
    p.add_argument("--strategy", choices=STRATEGY_CHOICES,
                   help="with --gpus N > 1: ddp (full copy per GPU), fsdp (sharded; also FSDP+QLoRA), deepspeed "
                        "(ZeRO-3, estimated like FSDP); auto (default): DDP if it fits one GPU, else FSDP")
    p.add_argument("--attention", choices=ATTENTIONS,
                   help="attention kernel: eager keeps batch x heads x seq² scores per layer; sdpa/flash_attention_2 "
                        "keep none (default auto = sdpa)")
    p.add_argument("--precision", choices=PRECISIONS, type=lambda s: s.replace("-", "_"),
                   help="pure_bf16: no autocast, bf16 adapters and optimizer states; fp32: 4-byte compute; "
                        "fp32_master (FSDP): fp32 weight shards, bf16 gathered compute (default auto)")
    p.add_argument("--offload", choices=OFFLOADS, type=lambda s: s.replace("-", "_"),
                   help="FSDP/ZeRO-3 CPU offload: params (DeepSpeed only) or params_and_optimizer (default none)")
    p.add_argument("--fsdp-sharding", dest="fsdp_sharding", choices=FSDP_SHARDINGS, type=lambda s: s.replace("-", "_"),
                   help="FSDP: full (FULL_SHARD), shard_grad_op (weights kept gathered forward to backward), hybrid "
                        "(sharded within a machine, replicated across machines), no_shard (a full replica per GPU, "
                        "all-reduced gradients) (default full)")
    p.add_argument("--deepspeed-config", dest="deepspeed_config", metavar="FILE",
                   help="a DeepSpeed ZeRO-3 JSON (distributed.deepspeed_config; implies --strategy deepspeed): its "
                        "offload, bucket sizes and prefetch limit are estimated (\"auto\" filled from the hidden size)")
    p.add_argument("--kbit-upcast", dest="kbit_upcast", action=argparse.BooleanOptionalAction, default=None,
                   help="4-/8-bit base: keep peft's fp32 upcast of embeddings, norms, lm_head (default on)")
    p.add_argument("--quantize-experts", dest="quantize_experts", action=argparse.BooleanOptionalAction, default=None,
                   help="4-bit method on an MoE: its fused expert tensors stored in NF4 too, quantized as they load "
                        "(quant.quantize_experts; off: 16-bit, as transformers, axolotl without quantize_moe_experts, "
                        "LLaMA-Factory and TRL load them) (default on)")
    p.add_argument("--kernels", choices=KERNELS,
                   help="liger: Liger's fused linear cross-entropy, no vocabulary-sized logits (default none)")
    p.add_argument("--init", choices=LORA_INITS,
                   help="how the adapter starts: pissa/olora/loftq add an SVD/QR per adapted linear at start-up "
                        "(memory and time estimated); eva a few forwards (default default)")
    p.add_argument("--init-iters", dest="init_iters", type=int, metavar="N",
                   help="--init pissa: fast-SVD iterations (default: the exact SVD)")
    p.add_argument("--dropout", type=float, metavar="P", help="LoRA dropout (default 0.05; 0 keeps no masked copy "
                   "of each adapted input)")
    p.add_argument("--modules-to-save", dest="modules_to_save", metavar="NAMES",
                   help="modules trained in full beside the adapter, e.g. embed_tokens,lm_head (peft modules_to_save: "
                        "a trainable copy, its gradients and optimizer states each); none: no module (default none)")
    p.add_argument("--target-parameters", dest="target_parameters", metavar="NAMES",
                   help="MoE expert tensors adapted as parameters, e.g. experts.gate_up_proj,experts.down_proj (peft "
                        "target_parameters: rank r per expert; each forward builds the adapted tensors); implies "
                        "--dropout 0 unless given (peft allows none); none: no parameter (default none)")
    p.add_argument("--loss", choices=("standard", "fused", "cce", "chunked"),
                   help="standard: vocabulary-sized logits with an fp32 copy; fused: never materialised (Liger's fused "
                        "linear cross-entropy, as --kernels liger); cce: never materialised either (Cut Cross-Entropy, "
                        "train.loss cce); chunked: the 16-bit logits, fp32 a chunk at a time (train.loss chunked; "
                        "axolotl's chunked_cross_entropy) (default standard)")
    p.add_argument("--load", choices=("16bit", "8bit", "4bit") + PRE_FORMATS,
                   help="how the base loads: 16bit (LoRA), 8bit (LLM.int8), 4bit (NF4, QLoRA); gptq, awq, aqlm: a "
                        "pre-quantized copy of the model (LoRA beside it; --quant-bits, group 128; AQLM 1x16 codes). "
                        "With --dora the DoRA method on that base. A pre-quantized model's own config.json, or a name "
                        "that says GPTQ/AWQ/AQLM, is read without it (default: --method's)")
    p.add_argument("--quant-bits", dest="quant_bits", type=int, choices=(2, 3, 4, 8), metavar="{2,3,4,8}",
                   help="bits per weight of a --load gptq/awq/aqlm base (default 4; AQLM 2)")
    p.add_argument("--dora", dest="use_dora", action="store_true", default=None,
                   help="DoRA (peft use_dora) on the --load base")
    p.add_argument("--dataset", metavar="PATH",
                   help="estimate at the data's real lengths: with packing off, the longest row (up to --seq) "
                        "instead of every row padded to --seq (default: the preset's data.path where it is on this "
                        "machine; `none`: every row at --seq)")
    p.add_argument("--preset", dest="estimate_preset", metavar="NAME|FILE",
                   help="estimate a preset's config, or an axolotl / LLaMA-Factory / TRL config as `check` reads it (a "
                        "full fine-tune estimated as one); flags override it")
    p.add_argument("--set", dest="overrides", action="append", default=argparse.SUPPRESS, metavar="KEY=VALUE",
                   help="override a key of the preset (or of the default config), as `train --set` does; the flags "
                        "above win over it (repeatable)")
    add_json(p)
    add_launcher(p)
    add_planning(p)
    p.set_defaults(func=run, preset_key="estimate_preset", set_key="overrides")



def real_lengths(args, spec, cfg):
    """The data's lengths the peak is estimated at (advisor/lengths.DataLengths): --dataset's, else the config's own
    data.path where it is on this machine (as `check` and `train` judge the fit); None without data."""
    from rankwise.advisor.forecast import data_lengths
    from rankwise.advisor.lengths import measured

    if getattr(args, "dataset", None) == "none":  # every row at max_seq_len: the worst case, or data yet to come
        return None
    if not getattr(args, "dataset", None):
        return data_lengths(cfg, spec)
    from rankwise.advisor.dataset import SCAN_ROWS, scan_for_model

    found = scan_for_model(args.dataset, spec, limit=SCAN_ROWS, declared=cfg.data.format,
                           columns=cfg.data.columns)
    if found.rows == found.bad_rows:
        raise RankwiseError(f"--dataset {args.dataset}: no usable rows", "; ".join(found.first_problems[:2]) or
                            "check the file with `rankwise check --data`")
    return measured(cfg, spec, found)


def refuse_unrunnable(plan) -> None:
    """Exit 2 for what the trainer cannot start: a lora.init the method cannot take, offload / FSDP sharding /
    fp32 master weights the strategy cannot run."""
    from rankwise.advisor.adapter_init import check as check_init
    from rankwise.advisor.sharding import check as check_sharding

    check_init(plan)
    check_sharding(plan)


def name_bound(args, cfg, unknown):
    """A model rankwise does not know whose name states its size: the config's peak bounded on indexed models of
    about that size (advisor/size_bound.py, as `check` does), printed as an approximate answer. Re-raises
    `unknown` where the name states no size, no indexed model stands in, or --dataset needs the tokenizer."""
    from rankwise.advisor import size_bound

    name = cfg.model.name
    if getattr(args, "dataset", None) not in (None, "none") or size_bound.name_size(name) is None:
        raise unknown
    hw = hardware_from(args)
    said = None
    reading = getattr(args, "foreign", None)
    if reading is not None and reading.full:  # a foreign full fine-tune: bounded as one, as `check` does
        from rankwise.advisor.foreign.full_ft import bound_of

        method, b = "full", bound_of(reading, name, cfg, hw)
    elif cfg.method == "auto":
        picked = size_bound.auto_method(name, cfg, hw)
        if picked is None:
            raise unknown
        method, said, b = picked
    else:
        method, b = cfg.method, size_bound.bound(name, cfg, hw, cfg.method)
    if b is None or not b.stand_ins:
        raise RankwiseError(unknown.message, (b.basis() + "; " if b is not None else "") + (unknown.hint or ""))
    from rankwise.advisor.fit import assess

    if method != "full":
        refuse_unrunnable(assess(size_bound.stand_ins(b.size)[0].spec, cfg, hw, method=method).estimate.plan)
    exact = ("for the exact estimate: --fetch-config (this id's config.json only, no weights), or --model with a "
             "local folder or config.json")
    if args.json:
        # the exact answer's keys where they have a value here (no single peak: its keys are null), plus the bound
        print_json({"model": name, "method": method, "fit": b.verdict, "gpu_bytes": b.gpu_bytes,
                    "peak_bytes": None, "peak_gib": None, "approximate": True, "fit_basis": "name-size",
                    "fit_bound": b.to_dict(), "exact": exact})
        return 0
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    what = "full fine-tune" if method == "full" else f"{method} r={cfg.lora.r}"
    plan = f"{what} · batch {cfg.train.micro_batch} × {cfg.train.max_seq_len}"
    console.print(f"[bold]{escape(name)} · {plan}[/bold] (not in the catalog or the model index: approximate)")
    console.print(f"peak per GPU: [bold]{b.range_text()}[/bold]" + (f", {FIT_LABEL[b.verdict]}" if b.decided else ""))
    console.print(escape(size_bound.finding_text(b)), soft_wrap=False)
    if said:
        console.print(escape(said))
    console.print(escape(exact))
    return 0


def shipped_as(spec, load: str | None, bits: int | None):
    """`spec` stored as `--load gptq|awq|aqlm` says (its config.json's quantization_config replaced)."""
    if load not in PRE_FORMATS:
        return spec
    from dataclasses import replace

    if load == "aqlm":  # one codebook of 16 bits; the inputs a code covers make the bits (16 / 2 = 8)
        b = bits or 2
        q = {"quant_method": "aqlm", "num_codebooks": 1, "nbits_per_codebook": 16, "in_group_size": 16 // b}
        said = f"--load aqlm: 1x16 codes in groups of {16 // b} ({b}-bit)"
    else:
        b = bits or 4
        q = {"quant_method": load, "bits": b, "group_size": 128}
        said = f"--load {load}: {b}-bit, group 128"
    return replace(spec, config={**spec.config, "quantization_config": {**q, "rankwise_inferred": said}})


def as_foreign(args, spec, cfg):
    """An axolotl / LLaMA-Factory / TRL config's settings as `check` estimates them: its target modules under peft's
    rules on this model (unless --targets says), a paired preference stage's doubled micro-batch."""
    from rankwise.advisor.config import with_values
    from rankwise.advisor.foreign.language import estimated_cfg
    from rankwise.advisor.foreign.reading import resolve_targets

    reading = args.foreign
    if args.targets is None and reading.targets is not None:
        cfg = with_values(cfg, {"lora.target_modules": resolve_targets(reading, spec).lora.target_modules})
    return estimated_cfg(reading, cfg)


def full_finetune_out(args, spec, cfg, hw, reading) -> int:
    """A foreign config with no adapter: `check`'s full fine-tune estimate, by component."""
    from rankwise.advisor.foreign.full_ft import full_time, of_reading, time_line

    full = of_reading(reading, spec, cfg, hw)
    timed = full_time(spec, cfg, hw, full, getattr(args, "price", None))
    ram = full.host_ram(spec, cfg, hw, reading.state_dict)
    if args.json:
        print_json({"model": spec.name, "method": "full", "fit": full.verdict, "gpu_bytes": full.gpu_bytes,
                    "peak_bytes": full.peak, "full_finetune": {**full.to_dict(), "time": timed.to_dict(),
                                                               "host_ram": ram.to_dict() if ram else None},
                    **({"model_note": args.model_note} if args.model_note else {})})
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    plan_gpus = f" · {full.gpus} GPUs (per GPU)" if full.gpus > 1 else ""
    console.print(f"[bold]{spec.name} · {full.what.removeprefix('a ')} ({reading.kind}: {reading.full}) · batch "
                  f"{cfg.train.micro_batch} × {cfg.train.max_seq_len}{plan_gpus}[/bold]")
    t = Table()
    t.add_column("component")
    t.add_column("GiB", justify="right")
    for name, b in full.components.items():
        if b:
            t.add_row(LABELS.get(name, name.replace("_", " ")), f"{gib(b):.2f}")
    apart = sum(full.components.values()) - full.peak  # gradients and the forward not alive together
    if apart:
        t.add_row("[dim]not alive with the gradients (one micro-batch a step)[/dim]", f"[dim]-{gib(apart):.2f}[/dim]")
    t.add_row("[bold]peak (nvidia-smi)[/bold]", f"[bold]{gib(full.peak):.2f}[/bold]")
    console.print(t)
    console.print(f"  [dim]{full.text()}[/dim]")
    console.print(f"  {time_line(timed)}")
    if ram is not None:
        console.print(f"  {ram.line()}")
    if args.model_note:
        console.print(f"  [dim]{args.model_note}[/dim]")
    if full.gpu_bytes is None:
        console.print(f"fit: {FIT_TEXT['no-gpu']} — plan for one with --gpu-mem 24GiB or --gpu A100-80GB")
    else:
        console.print(f"fit ({gib(full.gpu_bytes):.1f} GiB per GPU): {FIT_TEXT[full.verdict]}")
    console.print("[dim]every weight trains: the gradients and optimizer states of all of them are held; "
                  f"`rankwise check {reading.source}` gives its red flags[/dim]")
    return 0


def run(args) -> int:
    from rankwise.advisor.fit import assess
    from rankwise.advisor.lengths import at_lengths
    from rankwise.advisor.model import UnknownModel, load_model, load_written

    cfg = flags_config(args)
    reading = args.foreign
    written = reading is not None and not args.model  # the model the file names, as check reads it
    try:
        spec, args.model_note = load_written(cfg.model.name) if written else (load_model(cfg.model.name), None)
    except UnknownModel as unknown:
        return name_bound(args, cfg, unknown)
    spec = shipped_as(spec, getattr(args, "load", None), getattr(args, "quant_bits", None))
    if reading is not None:
        spec = spec.with_score_head(reading.score_head)  # a reward model, as check reads it
        cfg = as_foreign(args, spec, cfg)
    lengths = real_lengths(args, spec, cfg)
    hw = hardware_from(args)
    if reading is not None and reading.full and not (args.method or method_flags(args)):
        return full_finetune_out(args, spec, at_lengths(cfg, lengths), hw, reading)
    judged = assess(spec, cfg, hw, lengths=lengths)
    est, plan, verdict, gpu_bytes = judged.estimate, judged.estimate.plan, judged.verdict, judged.gpu_bytes
    refuse_unrunnable(plan)
    from rankwise.advisor.forecast import forecast

    ahead = forecast(spec, cfg, judged, hw, price=getattr(args, "price", None))
    if args.json:
        print_json({**judged.to_dict(), "model": spec.name, **ahead.to_dict(),
                    **({"model_note": args.model_note} if args.model_note else {}),
                    **({"launcher": launcher_note(args, args.launch)} if args.launch else {})})
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    title = (f"{spec.name} · {plan.method} r={plan.r} · batch {plan.micro_batch} × {plan.seq_len} · "
             f"{'checkpointing' if plan.grad_checkpointing else 'no checkpointing'} · {plan.optimizer}")
    if plan.gpus > 1 or plan.sharded:
        title += f" · {plan.gpus} GPU{'s' if plan.gpus > 1 else ''} {STRATEGY_NAMES[plan.strategy]} (per GPU)"
    console.print(f"[bold]{title}[/bold]")
    t = Table()
    t.add_column("component")
    t.add_column("GiB", justify="right")
    t.add_column("share", justify="right")
    for name, b in est.components.items():
        if b:
            t.add_row(LABELS.get(name, name.replace("_", " ")), f"{gib(b):.2f}", f"{b / est.peak_bytes:.0%}")
    t.add_row("[bold]peak (nvidia-smi)[/bold]", f"[bold]{est.peak_gib:.2f}[/bold]", "100%")
    console.print(t)
    console.print(f"trainable parameters: {est.trainable_params:,} "
                  f"({est.trainable_params / spec.total_params:.3%} of {spec.total_params:,})")
    startup = any(est.components.get(k) for k in STARTUPS)
    console.print(f"allocator peak (max_memory_allocated): {est.allocated_gib:.2f} GiB"
                  + (" (at start-up, above a training step)" if startup else ""))
    if est.releasable_bytes:
        console.print(f"reserved (max_memory_reserved) up to {gib(est.reserved_bytes):.2f} GiB: "
                      f"{gib(est.releasable_bytes):.2f} GiB of it blocks FSDP's wrapping left cached, handed back "
                      "if memory runs short (not in the peak)")
    if gpu_bytes is None:
        console.print(f"fit: {FIT_TEXT['no-gpu']} — plan for one with --gpu-mem 24GiB or --gpu A100-80GB "
                      f"(the peak above is {est.peak_gib:.2f} GiB per GPU)")
    else:
        where = "declared" if hw.source == "declared" else "detected"
        console.print(f"fit on the {where} GPU ({gib(gpu_bytes):.1f} GiB): {FIT_TEXT[verdict]}")
    console.print(ahead.line())
    if ahead.compare is not None:
        console.print(ahead.compare.line())
    console.print("assumptions:")
    for a in (tuple(launcher_note(args, args.launch)) + ((args.model_note,) if args.model_note else ())
              + ((lengths.note + ("; `--dataset none` estimates every row at max_seq_len"
                                  if lengths.shorter and not args.dataset else ""),) if lengths else ())
              + est.assumptions + ahead.time.assumptions + ahead.host.notes):
        console.print(f"  [dim]- {a}[/dim]")
    return 0
