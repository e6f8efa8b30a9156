"""LLaMA-Factory YAML, both layouts: the flat one (`model_name_or_path`, `finetuning_type`, ...)
and the newer one (`model:`, `peft_config:`, `quant_config:`, `dist_config:`).

Sources (LLaMA-Factory @ ff6d4d12eeb035d6ce06805a5733dd7b29f2ac30):
- flat: src/llamafactory/hparams/finetuning_args.py: lora_rank 8, lora_alpha None → lora_rank * 2
  (__post_init__), lora_dropout 0.0, lora_target "all" (comma-separated names, or all);
  data_args.py: cutoff_len 2048; model_args.py: disable_gradient_checkpointing False (checkpointing
  on), use_reentrant_gc True (model_utils/checkpointing.py: {"use_reentrant": use_reentrant_gc}, False under
  FSDP2), quantization_bit None, quantization_method bnb. `fsdp` is transformers' FSDPOption words. Training keys are transformers'
  Seq2SeqTrainingArguments (5.x): per_device_train_batch_size 8, gradient_accumulation_steps 1,
  learning_rate 5e-5, num_train_epochs 3.0, lr_scheduler_type linear, warmup 0, optim adamw_torch_fused.
- newer layout: src/llamafactory/v1/config/training_args.py: micro_batch_size 1, global_batch_size
  None, cutoff_len 2048, learning_rate 1e-4, num_train_epochs 3, bf16 True,
  enable_activation_checkpointing True; v1/plugins/model_plugins/peft.py LoraParams: r 8,
  lora_alpha 16, lora_dropout 0.05, target_modules "all" (a string other than all goes to peft: a regex).
Unknown keys: LLaMA-Factory refuses them (hparams/parser.py: HfArgumentParser with
allow_extra_keys=False raises "Some keys are not used by the HfArgumentParser"), so rankwise
reports them as errors.
"""
from __future__ import annotations

from .full_ft import Freeze
from .known_keys import LLAMAFACTORY_KEYS, LLAMAFACTORY_V1_KEYS
from .mapping import (Default, Out, Tool, accumulate_to, deepspeed, eval_batch, evaluates, liger, model_name,
                      dora, method_with, optimizer, precision_bf16,
                      precision_fp16, renames_of, scheduler, steps, targets_mapper, to, names_for_set, OPTIMS_BACK,
                      loraplus, fsdp_words, modules_to_save, added_tokens, offload_where_checkpointing,
                      named_template, from_adapter)

V1_SECTIONS = ("peft_config", "quant_config", "dist_config", "kernel_config", "init_config", "optim_config",
               "lr_scheduler_config")
PREFERENCE = {"dpo": "paired", "rm": "paired", "kto": "unpaired", "ppo": "online", "orpo": "paired",
              "simpo": "paired"}


def _type(value, out: Out):
    if value == "lora":
        out.default("method", "lora")
    elif value == "oft":  # an adapter: estimated as LoRA of the same size in `finish`
        out.default("method", "lora")
        out.extra["oft"] = out.key
    else:
        if value in ("full", "freeze"):  # estimated as what it is (full_ft.py), the LoRA checks dropped
            out.full = out.key
            out.extra["freeze"] = value == "freeze"
        out.not_modelled(f"finetuning_type {value}: not a LoRA fine-tune, far more memory for a full or partial "
                         "fine-tune (checked as LoRA)", "rankwise estimates LoRA and QLoRA",
                         {"finetuning_type": "lora"}, severity="warning")


def _pure_bf16(value, out: Out):
    """pure_bf16: "train model in purely bf16 precision (without AMP)" (hparams/finetuning_args.py): rankwise's
    train.precision pure_bf16 (no autocast; LoRA and optimizer states in bf16, no fp32 cast of what trains)."""
    if value is True:
        out.set("train.precision", "pure_bf16")


def _quant_bit(value, out: Out):
    if value in (4, "4"):
        method = method_with(True, 4)
        out.set("method", method or "qlora")
    elif value in (8, "8"):
        eight = method_with(True, 8)
        if eight:
            out.set("method", eight)
        else:
            out.not_modelled("an 8-bit base: ~1 byte per weight where the estimate counts 2 (16-bit LoRA)",
                             "quantization_bit: 4 is the leanest base rankwise estimates", {"quantization_bit": 4})
    elif value not in (None, ""):
        out.set("method", f"quantization_bit {value}")  # invalid: reported at its line


def _quant_method(value, out: Out):
    if value and str(value).lower() not in ("bnb", "bitsandbytes", "bnb_4bit"):
        out.not_modelled(f"quantization_method {value}: a different quantizer's base layout (memory judged as "
                         "bitsandbytes NF4 when quantization_bit is 4)")


def _no_gc(value, out: Out):
    if value is True:
        out.set("train.grad_checkpointing", False)
    elif value is False:
        out.set("train.grad_checkpointing", True)


def _dataset(value, out: Out):
    out.notes.append(f"{out.key} {value!r} names LLaMA-Factory dataset_info.json entries: data checks skipped")


def _template(value, out: Out):
    """The prompt format LLaMA-Factory renders its rows with (its data/template.py registers them by name)."""
    if value:
        named_template("template", value, f"LLaMA-Factory's built-in {value} template", out)


def _val(value, out: Out):
    if isinstance(value, (int, float)) and 0 < value < 1:
        out.set("data.val_ratio", value)


def _stage(value, out: Out):
    if value and str(value).lower() not in ("sft", "pt"):
        out.stage = str(value).lower()


def _pref_loss(value, out: Out):
    if out.stage and str(value).lower() in ("orpo", "simpo"):
        out.stage = str(value).lower()


# LLaMA-Factory's flash_attn values (hparams/model_args.py AttentionFunction) -> train.attention
FLASH_ATTN = {"fa2": "flash_attention_2", "sdpa": "sdpa", "disabled": "eager"}


# v1/plugins/model_plugins/kernels/interface.py: kernel_config name "auto" (and v0's use_v1_kernels, which is "auto")
# applies _AUTO_KERNELS for the current accelerator, which lists Ascend NPU kernels only: nothing on a CUDA GPU
NPU_ONLY = ("LLaMA-Factory's automatic kernels exist for Ascend NPUs only (v1 kernels/interface.py _AUTO_KERNELS): "
            "on a GPU nothing is patched, so the estimate stands")


def _v1_kernels_v0(value, out: Out):
    """v0's use_v1_kernels: apply_v1_kernels → the v1 "auto" kernels."""
    if value:
        out.notes.append("use_v1_kernels: " + NPU_ONLY)


def _flash(value, out: Out):
    attention = FLASH_ATTN.get(str(value).lower())
    if attention:
        out.set("train.attention", attention)
    elif value and str(value).lower() != "auto":
        out.not_modelled(f"attention kernel {value}: activation memory and speed (the estimate assumes SDPA)")


PISSA_ITER = 16  # hparams/finetuning_args.py: pissa_iter default=16 (-1: the exact SVD)


def _pissa_iters(out: Out) -> None:
    iters = out.extra.get("pissa_iter", PISSA_ITER)
    if isinstance(iters, int) and iters > 0:
        out.set("lora.init_iters", iters)
    else:
        out.values.pop("lora.init_iters", None)


def _pissa_init(value, out: Out):
    """pissa_init: true -> lora.init pissa; FSVD with pissa_iter iterations (model/adapter.py:288-294)."""
    if value is True:
        out.set("lora.init", "pissa")
        _pissa_iters(out)


def _pissa_iter(value, out: Out):
    out.extra["pissa_iter"] = value
    if out.values.get("lora.init") == "pissa":
        _pissa_iters(out)


FLAT = {
    "model_name_or_path": model_name, "finetuning_type": _type, "quantization_bit": _quant_bit,
    "quantization_method": _quant_method, "use_dora": dora, "lora_rank": to("lora.r"),
    "lora_alpha": to("lora.alpha"), "lora_dropout": to("lora.dropout"), "lora_target": targets_mapper("names"),
    "additional_target": modules_to_save, "add_tokens": added_tokens, "add_special_tokens": added_tokens,
    "new_special_tokens": added_tokens,
    "use_rslora": to("lora.use_rslora"), "learning_rate": to("train.lr"), "lr_scheduler_type": scheduler,
    "per_device_train_batch_size": to("train.micro_batch"), "gradient_accumulation_steps": to("train.grad_accum"),
    "cutoff_len": to("train.max_seq_len"), "num_train_epochs": to("train.epochs"), "max_steps": steps("train.max_steps"),
    "warmup_ratio": to("train.warmup_ratio"), "warmup_steps": steps("train.warmup_steps"), "bf16": precision_bf16,
    "pure_bf16": _pure_bf16, "fp16": precision_fp16, "trust_remote_code": to("model.trust_remote_code"), "dataset": _dataset,
    "disable_gradient_checkpointing": _no_gc, "optim": optimizer, "weight_decay": to("train.weight_decay"),
    "max_grad_norm": to("train.max_grad_norm"), "seed": to("train.seed"), "logging_steps": to("train.logging_steps"),
    "adam_beta1": to("train.adam_beta1"), "adam_beta2": to("train.adam_beta2"), "adam_epsilon": to("train.adam_epsilon"),
    "save_steps": steps("train.save_steps"), "eval_steps": steps("train.eval_steps"),
    "save_total_limit": to("train.save_total_limit"), "packing": to("data.packing"),
    "train_on_prompt": to("data.train_on_inputs"), "template": _template, "val_size": _val,
    "adapter_name_or_path": from_adapter,
    "max_samples": to("data.max_rows"), "stage": _stage, "pref_loss": _pref_loss, "deepspeed": deepspeed,
    "flash_attn": _flash, "enable_liger_kernel": liger, "use_v1_kernels": _v1_kernels_v0, "pissa_init": _pissa_init, "pissa_iter": _pissa_iter,
    "loraplus_lr_ratio": loraplus, "use_reentrant_gc": to("train.checkpointing_reentrant"), "fsdp": fsdp_words,
}

NOT_MODELLED = {
    "pissa_convert": "PiSSA conversion of the saved adapter",
    "use_unsloth": "Unsloth's kernels and gradient offload: less memory than estimated",
    "neat_packing": "packing without cross-attention between packed sequences (same memory as packing)",
    "resize_vocab": "a resized vocabulary: embeddings and the output head grow",
    "lora_parameters": "LoRA on parameters (e.g. MoE experts): adapter size not estimated",
    "use_llama_pro": "LLaMA Pro block expansion: the added blocks are estimated as the named model's shape has "
                     "them (a base model's name counts its original layers only)",
    "use_galore": "GaLore projected optimizer states", "use_apollo": "APOLLO optimizer states",
    "use_badam": "BAdam block-wise optimizer", "use_adam_mini": "Adam-mini optimizer states",
    "shift_attn": "shifted-sparse attention (LongLoRA): activation memory at long sequences",
    "rope_scaling": "RoPE scaling: the model reads sequences beyond its trained positions",
    "use_kt": "KTransformers: experts kept on CPU, GPU memory much lower than estimated",
    "kt_config": "KTransformers: experts kept on CPU, GPU memory much lower than estimated",
    "kt_cpu_activation": "KTransformers activations on the CPU", "kt_weight_path": "KTransformers CPU weights",
    "tensor_model_parallel_size": "Megatron tensor parallelism: weights split across GPUs",
    "pipeline_model_parallel_size": "Megatron pipeline parallelism: layers split across GPUs",
    "context_parallel_size": "context parallelism: sequences split across GPUs",
    "expert_model_parallel_size": "expert parallelism: MoE experts split across GPUs",
    "use_distributed_optimizer": "Megatron's distributed optimizer: optimizer states sharded across GPUs",
    "sequence_parallel": "Megatron sequence parallelism: activations split across GPUs",
}


def _unfrozen(what: str):
    def put(value, out: Out):
        if value is False:
            out.not_modelled(what)
            out.extra["tower_trains"] = True
    return put


def _pixels(value, out: Out):
    """image_max_pixels / video_max_pixels: kept for `_media`."""
    out.extra.setdefault("media", []).append(out.key)


def _media(out: Out) -> None:
    """Images and video in the data. LLaMA-Factory expands each into its tokens before it truncates the row to
    cutoff_len (data/processor/supervised.py: mm_plugin.process_messages, then infer_seqlen against cutoff_len), so
    the language model's sequence is the estimate's. The vision tower and projector are frozen by default
    (hparams/finetuning_args.py freeze_vision_tower / freeze_multi_modal_projector: True; find_all_linear_modules
    leaves the tower out of LoRA's targets): nothing in them requires grad, so they keep nothing for backward, and
    their forward runs a layer at a time beside the language model's. Where the tower or projector trains, its
    activations per image are not in the estimate."""
    keys = out.extra.get("media")
    if not keys:
        return
    out.key = keys[0]
    if out.extra.get("tower_trains"):
        out.not_modelled("the vision tower or projector trains: its activations for each image are not in the "
                         "estimate")
        return
    out.notes.append(f"{', '.join(keys)}: image and video tokens are counted within cutoff_len (LLaMA-Factory expands "
                     "them before truncating a row to it); the frozen vision tower keeps nothing for backward, its "
                     "forward (a layer at a time) is not counted")


# peft OFTConfig's block size when LLaMA-Factory's oft_block_size is unset (hparams/finetuning_args.py default 32)
OFT_BLOCK = 32


def _freeze_arg(name: str):
    """freeze_trainable_layers / _modules / freeze_extra_modules / use_llama_pro, kept for `_flat_finish`."""
    def put(value, out: Out):
        out.extra[name] = value
    return put


def _llama_pro(value, out: Out):
    """LLaMA Pro: the blocks scripts/llama_pro.py added are in the model the file names; freeze trains every
    (L / N)-th layer, those blocks (full_ft.Freeze.spread)."""
    if value not in (False, 0):
        out.extra["use_llama_pro"] = value
        out.not_modelled(NOT_MODELLED["use_llama_pro"])


def _names(value) -> tuple[str, ...]:
    """LLaMA-Factory's comma-separated module list (hparams/finetuning_args.py `split_arg`), or a YAML list."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(str(v).strip() for v in items if str(v).strip())


def _freeze(out: Out) -> None:
    """finetuning_type freeze: which weights train (full_ft.Freeze), from the keys beside it."""
    layers = out.extra.get("freeze_trainable_layers", Freeze.layers)
    try:
        layers = int(layers)
    except (TypeError, ValueError):
        out.key = "freeze_trainable_layers"
        out.not_modelled(f"freeze_trainable_layers {layers!r} is not a whole number: {Freeze.layers} (the default) "
                         "assumed")
        layers = Freeze.layers
    modules = _names(out.extra.get("freeze_trainable_modules") or "all") or ("all",)
    extra = _names(out.extra.get("freeze_extra_modules") or "")
    out.partial = Freeze(layers, modules, extra, bool(out.extra.get("use_llama_pro")))


def _oft_block(value, out: Out):
    out.extra["oft_block_size"] = value


def _flat_finish(out: Out) -> None:
    """OFT (finetuning_type: oft): peft's OFT (Qiu et al. 2023; peft 0.21 tuners/oft/layer.py) trains, per adapted
    linear, d_in / b blocks of b x b skew-symmetric matrices stored as their upper triangles, d_in (b - 1) / 2
    weights (OFTRotationModule: weight r x b(b-1)/2, r = d_in / b), and rotates the input before the frozen base.
    Estimated as LoRA with as many trainable weights on a square linear (r (d_in + d_out) = d_in (b - 1) / 2:
    r = (b - 1) / 4, 8 at peft's default b = 32); said as not modelled: the fp32 copy of each adapted linear's
    input the rotation keeps for backward, and OFT's Cayley-Neumann temporaries."""
    if out.extra.get("freeze"):
        _freeze(out)
    if out.values.get("train.kernels") == "liger" and out.stage is not None:
        # model/loader.py apply_liger_kernel(require_logits=stage not in (pt, sft)): outside SFT Liger's fused loss is
        # off (the trainer needs the logits), its norms, SwiGLU and RoPE on
        out.set("train.kernels", "liger_layers")
    if out.extra.get("unsloth_gc"):  # LLaMA-Factory uses it only with checkpointing
        offload_where_checkpointing(out, out.extra["unsloth_gc"])
    _media(out)
    key = out.extra.get("oft")
    if not key:
        return
    b = out.extra.get("oft_block_size") or OFT_BLOCK
    try:
        b = int(b)
    except (TypeError, ValueError):
        b = OFT_BLOCK
    r = max(1, round((b - 1) / 4))
    out.key = key
    out.set("lora.r", r)
    out.not_modelled(f"finetuning_type oft: OFT trains d_in x (b - 1) / 2 weights per adapted linear (block size "
                     f"{b}), estimated as LoRA r={r}, the same count on a square linear; the fp32 copy of each adapted "
                     "linear's input its rotation keeps for backward is not counted")


def _unsloth_gc(value, out: Out):
    """use_unsloth_gc (model/model_utils/checkpointing.py UnslothGradientCheckpointing): each checkpointed layer's input
    is moved to the CPU in forward and back for its recompute: train.activation_offload, where checkpointing is on
    (`_flat_finish`: LLaMA-Factory only uses it then)."""
    if value is True:
        out.extra["unsloth_gc"] = out.key


FLAT.update({
    "use_unsloth_gc": _unsloth_gc,
    "double_quantization": to("quant.double_quant"), "oft_block_size": _oft_block,
    "oft_target": targets_mapper("names"),
    **{k: _freeze_arg(k) for k in ("freeze_trainable_layers", "freeze_trainable_modules", "freeze_extra_modules")},
    "use_llama_pro": _llama_pro,
    "per_device_eval_batch_size": eval_batch, "eval_dataset": evaluates,
    "freeze_vision_tower": _unfrozen("the vision tower trains in full: its gradients and optimizer states are "
                                     "not in the estimate"),
    "freeze_multi_modal_projector": _unfrozen("the multimodal projector trains in full: its gradients and "
                                              "optimizer states are not in the estimate"),
    "image_max_pixels": _pixels, "video_max_pixels": _pixels,
})

DEFAULTS = (
    Default("lora.r", 8, "hparams/finetuning_args.py: lora_rank default=8"),
    Default("lora.dropout", 0.0, "hparams/finetuning_args.py: lora_dropout default=0.0"),
    Default("lora.target_modules", "all-linear", "hparams/finetuning_args.py: lora_target default='all'"),
    Default("train.checkpointing_reentrant", True, "hparams/model_args.py: use_reentrant_gc default=True "
            "(model_utils/checkpointing.py passes it to torch's checkpoint; FSDP2 launches force it False)"),
    Default("train.micro_batch", 8, "transformers TrainingArguments per_device_train_batch_size=8"),
    Default("train.grad_accum", 1, "transformers TrainingArguments gradient_accumulation_steps=1"),
    Default("train.lr", 5e-5, "transformers TrainingArguments learning_rate=5e-5"),
    Default("train.epochs", 3.0, "transformers TrainingArguments num_train_epochs=3.0", unless=("train.max_steps",)),
    Default("train.scheduler", "linear", "transformers TrainingArguments lr_scheduler_type='linear'"),
    Default("train.warmup_ratio", 0.0, "transformers TrainingArguments warmup_steps=0",
            unless=("train.warmup_steps",)),
    Default("quant.kbit_upcast", False, "model/model_utils/checkpointing.py prepare_model_for_training: no "
            "prepare_model_for_kbit_training; only upcast_layernorm (default False) casts the 1-D norm weights to fp32",
            quantized_only=True),
    Default("quant.quantize_experts", False, "transformers' 4-bit loading (BitsAndBytesConfig) leaves an MoE's "
            "fused experts 16-bit, and nothing here quantizes them", quantized_only=True),
)


def _back_quant(value):
    return {"quantization_bit": 4} if value == "qlora" else {"quantization_bit": None}


def _back_targets(value):
    if value == "all-linear":
        return {"lora_target": "all"}
    return {"lora_target": ",".join(names_for_set(value) if isinstance(value, str) else value)}


REVERSE = {
    "method": _back_quant, "lora.target_modules": _back_targets,
    "train.grad_checkpointing": lambda v: {"disable_gradient_checkpointing": not v},
    "train.checkpointing_reentrant": lambda v: {"use_reentrant_gc": v},
    "train.optimizer": lambda v: {"optim": OPTIMS_BACK.get(v, v)},
    "data.val_ratio": lambda v: {"val_size": v},
    "train.precision": lambda v: {"bf16": v == "bf16", "fp16": v == "fp16"},
}

TOOL = Tool("llama-factory", "LLaMA-Factory", "flat", FLAT, DEFAULTS, NOT_MODELLED, LLAMAFACTORY_KEYS, "error",
            REVERSE, renames_of(FLAT), preference=PREFERENCE, stage_key="stage", finish=_flat_finish)


# ------------------------------------------------------------------ the newer layout


def _v1_peft(value, out: Out):
    """peft_config.name: lora, or freeze (v1/plugins/model_plugins/peft.py get_freeze_model: LLaMA-Factory's freeze
    tuning, read as the flat layout's); no peft_config at all is a full fine-tune (`_v1_finish`)."""
    out.extra["peft"] = True
    name = str(value).lower()
    if name == "lora":
        out.default("method", "lora")
    elif name == "freeze":
        out.default("method", "lora")
        out.full = out.key
        out.extra["freeze"] = True
    elif value:
        out.not_modelled(f"peft_config name {value}: not LoRA (checked as LoRA)")


# v1/utils/types.py AttentionFunction: the attn_implementation names themselves
V1_ATTENTION = ("eager", "sdpa", "flash_attention_2")


def _v1_flash(value, out: Out):
    if str(value).lower() in V1_ATTENTION:
        out.set("train.attention", str(value).lower())
    elif value:
        out.not_modelled(f"attention kernel {value}: activation memory and speed (the estimate assumes SDPA)")


def _v1_quant(value, out: Out):
    _quant_bit(value, out)


def _v1_dist(value, out: Out):
    name = str(value or "").lower()
    if name.startswith("fsdp"):
        out.set("distributed.strategy", "fsdp")
    elif name.startswith("deepspeed"):
        out.set("distributed.strategy", "deepspeed")
    elif name == "ddp":
        out.set("distributed.strategy", "ddp")


def _v1_kernels(value, out: Out):
    """kernel_config.name: comma-separated kernel plugins (v1 kernels/interface.py apply_kernels)."""
    names = [n.strip() for n in str(value or "").split(",") if n.strip()]
    if "auto" in names:
        out.notes.append(f"kernel_config {value}: " + NPU_ONLY)
    for name in (n for n in names if n != "auto"):
        what = {"liger_kernel": "Liger's RMSNorm, SwiGLU and RoPE on Qwen3-family models only, with the standard "
                                "loss (training passes require_logits): lower activation memory than estimated",
                "flash-linear-attention": "linear-attention kernels (fla): activation memory and speed"}
        out.not_modelled(f"kernel plugin {name}: " + what.get(name, "fused kernels: activation memory and speed"))


def _v1_global(value, out: Out):
    out.extra["global_batch_size"] = value


def _v1_finish(out: Out) -> None:
    if accumulate_to(out, "global_batch_size", out.extra.get("global_batch_size")):
        out.notes.append("global_batch_size spans every data-parallel GPU: read as one GPU's accumulation")
    if out.extra.get("freeze"):
        _freeze(out)
    elif not out.extra.get("peft"):  # v1/core/model_engine.py: peft_config None -> "Fine-tuning mode: full tuning"
        out.key = "peft_config"
        out.default("method", "lora")
        out.full = "peft_config"
        out.not_modelled("no peft_config: a full fine-tune, every weight trained with its gradients and optimizer "
                         "states (far more memory); checked as LoRA", "set peft_config: {name: lora}",
                         {"peft_config": {"name": "lora"}}, severity="warning")
        # model_engine.py casts the model to float32 for full tuning, and `bf16` reaches only the dist plugin
        # (base_trainer.py shard_model(..., bf16=...)): no autocast, so without one (or with bf16 false) it runs fp32
        if out.extra.get("bf16") is False or not out.values.get("distributed.strategy"):
            out.full_precision = "fp32"
            out.notes.append("full tuning runs in float32: LLaMA-Factory v1 casts the model to float32 and applies "
                             "bf16 only through dist_config's FSDP/DeepSpeed plugin")


def _v1_bf16(value, out: Out):
    out.extra["bf16"] = value
    precision_bf16(value, out)


V1 = {
    "model": model_name, "trust_remote_code": to("model.trust_remote_code"), "flash_attn": _v1_flash,
    "peft_config.name": _v1_peft, "peft_config.r": to("lora.r"), "peft_config.lora_alpha": to("lora.alpha"),
    "peft_config.lora_dropout": to("lora.dropout"), "peft_config.target_modules": targets_mapper("regex"),
    "peft_config.use_rslora": to("lora.use_rslora"), "peft_config.use_dora": dora,
    "peft_config.modules_to_save": modules_to_save, "peft_config.adapter_name_or_path": from_adapter,
    **{f"peft_config.{k}": _freeze_arg(k) for k in ("freeze_trainable_layers", "freeze_trainable_modules",
                                                    "freeze_extra_modules")},
    "quant_config.quantization_bit": _v1_quant, "dist_config.name": _v1_dist, "kernel_config.name": _v1_kernels,
    "micro_batch_size": to("train.micro_batch"), "global_batch_size": _v1_global, "cutoff_len": to("train.max_seq_len"),
    "learning_rate": to("train.lr"), "num_train_epochs": to("train.epochs"), "max_steps": steps("train.max_steps"),
    "max_grad_norm": to("train.max_grad_norm"), "bf16": _v1_bf16,
    "enable_activation_checkpointing": to("train.grad_checkpointing"), "seed": to("train.seed"),
    "logging_steps": to("train.logging_steps"), "save_steps": steps("train.save_steps"),
    "save_total_limit": to("train.save_total_limit"), "train_dataset": _dataset,
}
V1_NOT_MODELLED = {"cp_size": "context parallelism: sequences split across GPUs",
                   "mp_shard_size": "model sharding group size", "init_config": "model initialisation plugin"}
V1_DEFAULTS = (
    Default("lora.r", 8, "v1/plugins/model_plugins/peft.py LoraParams r=8"),
    Default("lora.alpha", 16, "v1/plugins/model_plugins/peft.py LoraParams lora_alpha=16"),
    Default("lora.target_modules", "all-linear", "v1/plugins/model_plugins/peft.py LoraParams target_modules='all'"),
    Default("train.micro_batch", 1, "v1/config/training_args.py micro_batch_size=1"),
    Default("train.grad_accum", 1, "v1/config/training_args.py global_batch_size=None (no accumulation)"),
    Default("train.lr", 1e-4, "v1/config/training_args.py learning_rate=1e-4"),
    Default("train.epochs", 3.0, "v1/config/training_args.py num_train_epochs=3", unless=("train.max_steps",)),
    Default("train.precision", "bf16", "v1/config/training_args.py bf16=True"),
    Default("quant.kbit_upcast", False, "v1 never calls prepare_model_for_kbit_training (only the trainable "
            "LoRA weights are cast to fp32: v1/plugins/model_plugins/peft.py cast_trainable_params_to_fp32)",
            quantized_only=True),
    Default("quant.quantize_experts", False, "transformers' 4-bit loading (BitsAndBytesConfig) leaves an MoE's "
            "fused experts 16-bit, and nothing here quantizes them", quantized_only=True),
)
V1_PEFT_KEYS = frozenset({"name", "r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "use_dora",
                          "modules_to_save", "freeze_vision_tower", "freeze_multi_modal_projector",
                          "freeze_language_model", "adapter_name_or_path", "export_dir", "export_size",
                          "infer_dtype", "merge_adapters", "freeze_trainable_layers", "freeze_trainable_modules",
                          "freeze_extra_modules", "cast_trainable_params_to_fp32"})


def _v1_back_quant(value):
    return {"quant_config.quantization_bit": 4} if value == "qlora" else {"quant_config": None}


V1_REVERSE = {
    "method": _v1_back_quant,
    "lora.target_modules": lambda v: {"peft_config.target_modules": "all" if v == "all-linear" else
                                      (names_for_set(v) if isinstance(v, str) else v)},
    "train.grad_checkpointing": lambda v: {"enable_activation_checkpointing": v},
    "train.precision": lambda v: {"bf16": v == "bf16"},
}

TOOL_V1 = Tool("llama-factory", "LLaMA-Factory", "v1", V1, V1_DEFAULTS, V1_NOT_MODELLED, LLAMAFACTORY_V1_KEYS,
               "error", V1_REVERSE, renames_of(V1), finish=_v1_finish)


def flatten_v1(data: dict) -> dict:
    """The newer layout's sections one level flat: `peft_config: {r: 16}` → `peft_config.r: 16`."""
    flat: dict = {}
    for key, value in data.items():
        if key in V1_SECTIONS and isinstance(value, dict):
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    return flat
