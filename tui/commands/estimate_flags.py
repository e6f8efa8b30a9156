"""`rankwise estimate`'s flags as a config: the preset (or the default config) with the flags written over it, each
flag a schema field (FLAGS), so that any published run can be written down (issue 11) and estimated as `train` would
run it."""
from __future__ import annotations

from rankwise.advisor import methods
from rankwise.advisor.config import TARGET_SETS
from rankwise.advisor.errors import RankwiseError

from .common import launcher_from, with_launcher

PRE_FORMATS = methods.PreQuantized.FORMATS  # --load choices of a pre-quantized base


FLAGS = {"model.name": "--model", "method": "--method", "lora.r": "--rank", "lora.target_modules": "--targets",
         "train.micro_batch": "--batch", "train.max_seq_len": "--seq", "train.grad_checkpointing": "--grad-checkpointing",
         "train.checkpointing_reentrant": "--reentrant", "train.activation_offload": "--activation-offload",
         "train.optimizer": "--optimizer", "quant.double_quant": "--no-double-quant", "distributed.gpus": "--gpus",
         "distributed.strategy": "--strategy", "train.attention": "--attention", "train.kernels": "--kernels",
         "quant.kbit_upcast": "--kbit-upcast", "train.precision": "--precision", "lora.init": "--init",
         "lora.init_iters": "--init-iters", "distributed.offload": "--offload",
         "distributed.fsdp_sharding": "--fsdp-sharding", "lora.dropout": "--dropout", "train.loss": "--loss",
         "lora.modules_to_save": "--modules-to-save", "distributed.deepspeed_config": "--deepspeed-config",
         "lora.target_parameters": "--target-parameters", "quant.quantize_experts": "--quantize-experts"}


def method_flags(args) -> str | None:
    """--load and --dora → the methods table's entry (None: neither given). Refused beside a --method that says
    otherwise, and where the table has no such method (DoRA on an 8-bit base)."""
    load, dora = getattr(args, "load", None), getattr(args, "use_dora", None)
    if getattr(args, "quant_bits", None) and load not in PRE_FORMATS:
        raise RankwiseError("--quant-bits is for a pre-quantized base", "add --load gptq, awq or aqlm")
    if load in PRE_FORMATS:  # the adapter trains on the shipped format: the 16-bit method's entry (no bitsandbytes)
        if args.method and methods.METHODS[args.method].quantized:
            raise RankwiseError(f"--method {args.method} quantizes the base with bitsandbytes; a --load {load} base "
                                "is already quantized", "give --method lora (or dora), or leave --method out")
        if args.method and not dora:
            return args.method
        load = "16bit"
    if load is None and not dora:
        return None
    bits = {"16bit": 16, "8bit": 8, "4bit": 4}[load or "16bit"]
    found = [n for n, m in methods.METHODS.items() if (m.base_bits or 16) == bits and m.dora == bool(dora)
             and set(m.peft) <= {"use_dora"}]
    if not found:
        raise RankwiseError(f"--load {load or '16bit'}{' --dora' if dora else ''}: no such method",
                            f"methods: {', '.join(methods.METHOD_NAMES)}")
    if args.method and args.method != found[0]:
        raise RankwiseError(f"--method {args.method} and --load/--dora ({found[0]}) disagree", "give one of them")
    return found[0]


def _kernels_flag(args) -> str | None:
    """--loss fused is --kernels liger (the fused loss rankwise trains with); standard, chunked and cce go with
    --kernels none or liger_layers (train.loss says which); refused beside a --kernels that says otherwise."""
    loss, kernels = getattr(args, "loss", None), getattr(args, "kernels", None)
    if loss is None:
        return kernels
    fused = loss == "fused"
    if (fused and kernels not in (None, "liger")) or (not fused and kernels == "liger"):
        raise RankwiseError(f"--loss {loss} and --kernels {kernels} disagree",
                            "give one of them (--kernels liger_layers goes with any --loss but fused)")
    return "liger" if loss == "fused" else kernels or "none"  # cce, chunked: train.loss says it


def flags_config(args):
    """Flags (over an optional preset) → RunConfig: each flag is a patch on the config."""
    from pydantic import ValidationError

    from rankwise.advisor.config import RunConfig, with_values

    preset = getattr(args, "estimate_preset", None)
    overrides = getattr(args, "overrides", None) or []
    args.foreign = None
    if preset:
        from rankwise.advisor.foreign import read
        from rankwise.advisor.presets import resolve_preset

        reading = read(resolve_preset(preset), overrides)  # a rankwise preset, or an axolotl / LLaMA-Factory config
        cfg = reading.cfg
        if reading.tool is not None:
            args.foreign = reading
    else:
        from ..overrides import with_overrides

        cfg = with_overrides(with_values(RunConfig(), {"method": methods.DEFAULT}), overrides)  # LoRA unless told
    args.launch = launcher_from(args)  # the launcher's settings over the preset's, under the flags
    if args.foreign is not None:
        args.foreign = with_launcher(args.foreign, args.launch)
    if args.launch is not None and args.launch.values:
        cfg = with_values(cfg, args.launch.values)
    for flag, value, low in (("--rank", args.rank, 1), ("--batch", args.batch, 1), ("--seq", args.seq, 1),
                             ("--gpus", args.gpus, 0)):
        if value is not None and value < low:
            raise RankwiseError(f"{flag} must be at least {low} (got {value})",
                                f"e.g. {flag} {16 if flag == '--rank' else 1}")
    targets = args.targets
    if targets is not None:
        if not targets.strip():
            raise RankwiseError("--targets is empty", "use minimal, standard, aggressive, all-linear or q_proj,v_proj")
        named = targets.strip() in TARGET_SETS
        targets = targets.strip() if named else [t.strip() for t in targets.split(",") if t.strip()]
    saved, wrapped = (_names(getattr(args, k, None)) for k in ("modules_to_save", "target_parameters"))
    dropout = getattr(args, "dropout", None)
    if wrapped and dropout is None:
        dropout = 0.0  # peft's ParamWrapper refuses any (the help says so)
    patch = {k: v for k, v in {  # one config key per flag (FLAGS names them back in errors)
        "model.name": args.model, "method": method_flags(args) or args.method,
        "lora.dropout": dropout, "lora.modules_to_save": saved, "lora.target_parameters": wrapped,
        "lora.r": args.rank, "lora.target_modules": targets,
        "train.micro_batch": args.batch, "train.max_seq_len": args.seq,
        "train.grad_checkpointing": args.grad_checkpointing, "train.optimizer": args.optimizer,
        "train.checkpointing_reentrant": getattr(args, "reentrant", None),
        "train.activation_offload": getattr(args, "activation_offload", None),
        "quant.double_quant": args.double_quant, "distributed.gpus": args.gpus or None,  # --gpus 0: no GPU
        "distributed.strategy": getattr(args, "strategy", None),
        "train.attention": getattr(args, "attention", None), "train.kernels": _kernels_flag(args),
        "train.loss": None if getattr(args, "loss", None) is None else
        args.loss if args.loss in ("chunked", "cce") else "standard",
        "quant.kbit_upcast": getattr(args, "kbit_upcast", None),
        "quant.quantize_experts": getattr(args, "quantize_experts", None),
        "train.precision": getattr(args, "precision", None), "lora.init": getattr(args, "init", None),
        "lora.init_iters": getattr(args, "init_iters", None), "distributed.offload": getattr(args, "offload", None),
        "distributed.fsdp_sharding": getattr(args, "fsdp_sharding", None),
        "distributed.deepspeed_config": _deepspeed_file(args)}.items()
        if v is not None}
    if "distributed.deepspeed_config" in patch and "distributed.strategy" not in patch:
        patch["distributed.strategy"] = "deepspeed"
    try:
        cfg = with_values(cfg, patch)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if not key:  # a rule over several keys (the validators of RunConfig): its message names them
            raise RankwiseError(err["msg"].removeprefix("Value error, "), "see `rankwise estimate --help`")
        flag = FLAGS.get(key, key)
        raise RankwiseError(f"{flag} {err.get('input')!r}: {err['msg']}", f"see `rankwise estimate --help` for {flag}")
    return cfg


def _names(value: str | None) -> list[str] | None:
    """A flag's comma list of names; "none" is the empty list, an absent flag None."""
    if value is None:
        return None
    return [] if value.strip() == "none" else [t.strip() for t in value.split(",") if t.strip()]


def _deepspeed_file(args) -> str | None:
    """--deepspeed-config FILE, absolute (relative to the current directory, where it was typed)."""
    from pathlib import Path

    path = getattr(args, "deepspeed_config", None)
    return str(Path(path).expanduser().resolve()) if path else None
