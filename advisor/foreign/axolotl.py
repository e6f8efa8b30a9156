"""axolotl YAML: its keys, its defaults, what rankwise does not model.

Sources (axolotl @ 067b021c8b87a9e5e380b9173c704cf7340e30f5):
- src/axolotl/utils/schemas/training.py HyperparametersConfig: gradient_accumulation_steps 1,
  micro_batch_size 1, batch_size "total batch size" (None), optimizer adamw_torch_fused,
  lr_scheduler cosine, num_epochs 1.0, weight_decay 0.0; learning_rate has no default (required).
- src/axolotl/utils/schemas/peft.py LoraConfig: lora_dropout 0.0, load_in_4bit/8bit False.
- src/axolotl/utils/schemas/config.py: gradient_checkpointing False ("offload", "offload_disk" too),
  sequence_len 512, bf16 "auto", val_set_size 0.0.
- src/axolotl/utils/config/__init__.py normalize_config: gradient_checkpointing_kwargs {"use_reentrant":
  True} when checkpointing is on and neither gradient_checkpointing_kwargs, rl nor unfrozen_parameters is set
  (core/builders/base.py: {"use_reentrant": False} when the kwargs are still unset, e.g. with rl).
- src/axolotl/utils/config/__init__.py normalize_config: gradient_accumulation_steps =
  batch_size // micro_batch_size when only batch_size is given.
- src/axolotl/core/builders/base.py: warmup min(3% of steps, 100) when neither warmup key is set
  (rankwise's warmup_ratio 0.03 already).
- lora_r/lora_alpha unset: peft LoraConfig's r=8, lora_alpha=8 (axolotl passes them through,
  src/axolotl/loaders/adapter.py).
- A string lora_target_modules goes to peft as is: a regex matched against each full module name.
Unknown keys: axolotl warns and drops them, so rankwise warns too.
"""
from __future__ import annotations

from .full_ft import Unfrozen, layer_name_pattern
from .known_keys import AXOLOTL_KEYS
from .mapping import (Default, Out, Said, Tool, accumulate_to, attention, checkpointing_kwargs, deepspeed,
                      eval_batch, evaluates, model_name,
                      dora, method_with, not_modelled, optimizer, positive_count,
                      precision_bf16, precision_fp16, renames_of, scheduler, steps, targets_mapper, to,
                      names_for_set, OPTIMS_BACK, loraplus, peft_init, FSDP_SHARDING, fsdp_words, modules_to_save, added_tokens,
                      named_template, target_parameters, from_adapter)

PREFERENCE = {"dpo": "paired", "ipo": "paired", "orpo": "paired", "simpo": "paired", "kto": "unpaired",
              "grpo": "online", "gdpo": "online", "ebft": "online"}


def _adapter(value, out: Out):
    if value == "lora":
        out.default("method", "lora")  # load_in_4bit may already have made it QLoRA
    elif value == "qlora":
        out.set("method", "qlora")
    else:
        out.set("method", value)  # invalid: reported at its line


def _4bit(value, out: Out):
    if value is True:
        out.set("method", "qlora")


def _8bit(value, out: Out):
    if value is not True:
        return
    eight = method_with(True, 8)
    if eight:
        out.set("method", eight)
    else:
        out.not_modelled("an 8-bit (LLM.int8) base: ~1 byte per weight where the estimate counts 2 (16-bit LoRA)",
                         "load_in_4bit: true with adapter: qlora is the leanest base rankwise estimates")


def _linear(value, out: Out):
    if value is True:
        out.set("lora.target_modules", "all-linear")


def _gc(value, out: Out):
    if value in ("offload", "offload_disk"):  # utils/schemas/validation.py: checkpointing + activation_offloading
        out.set("train.grad_checkpointing", True)
        _activation_offloading(True if value == "offload" else "disk", out)
    elif isinstance(value, str):
        out.set("train.grad_checkpointing", value.lower() not in ("false", "no", "0"))
    else:
        out.set("train.grad_checkpointing", value)


def _activation_offloading(value, out: Out):
    """activation_offloading (true | legacy | disk | hidden_states; TRL's OffloadActivations under the Trainer, or
    axolotl's checkpoint offload): the checkpointed inputs leave the GPU, train.activation_offload."""
    if not value:
        return
    out.set("train.activation_offload", True)
    if value == "disk":
        out.notes.append(f"{out.key}: disk: axolotl writes the checkpointed inputs to disk; rankwise's offload holds "
                         "them in host RAM (the same GPU memory)")


def _batch_size(value, out: Out):
    if positive_count(value):
        out.extra["batch_size"] = value  # resolved after micro_batch_size (finish)


DATA_FORMATS = {"chat_template": "chat", "sharegpt": "chat", "alpaca": "instruction", "alpaca_chat": "instruction",
                "completion": "text", "pretrain": "text", "input_output": "prompt_completion"}


def _datasets(value, out: Out):
    if not (isinstance(value, list) and value and isinstance(value[0], dict) and value[0].get("path")):
        return
    first = value[0]
    out.set("data.path", str(first["path"]))
    kind = str(first.get("type", "")).split(".")[0] if first.get("type") else ""
    if kind in DATA_FORMATS:
        out.set("data.format", DATA_FORMATS[kind])
    if len(value) > 1:
        out.notes.append(f"{len(value)} datasets: only the first ({first['path']}) is read")


def _val(value, out: Out):
    if isinstance(value, (int, float)) and 0 < value < 1:
        out.set("data.val_ratio", value)
    elif value:
        out.notes.append(f"val_set_size {value} is a row count: rankwise uses data.val_ratio")


def _peft(value, out: Out):
    """peft: {loftq_config: {loftq_bits: N}}: LoftQ (src/axolotl/loaders/adapter.py sets init_lora_weights
    loftq with LoftQConfig(loftq_bits)); rankwise runs LoftQ on a 4-bit base only."""
    bits = ((value or {}).get("loftq_config") or {}).get("loftq_bits") if isinstance(value, dict) else None
    if bits in (4, "4"):
        out.set("lora.init", "loftq")
    elif bits:
        out.not_modelled(f"LoftQ at {bits} bits: rankwise runs LoftQ on a 4-bit base only",
                         "loftq_bits: 4 with load_in_4bit: true")


def _rl(value, out: Out):
    if value:
        out.stage = str(value).lower()


def _fsdp_config(value, out: Out):
    if not isinstance(value, dict) or not value:
        return
    out.set("distributed.strategy", "fsdp")
    if value.get("offload_params") or value.get("fsdp_offload_params") or value.get("cpu_offload"):
        out.set("distributed.offload", "params_and_optimizer")
    strategy = str(value.get("sharding_strategy") or value.get("fsdp_sharding_strategy") or "").lower()
    if strategy in FSDP_SHARDING:
        out.set("distributed.fsdp_sharding", FSDP_SHARDING[strategy])
    elif value.get("reshard_after_forward") is False:  # FSDP2: no reshard after forward = SHARD_GRAD_OP
        out.set("distributed.fsdp_sharding", "shard_grad_op")
    if value.get("activation_checkpointing") or value.get("fsdp_activation_checkpointing"):
        out.set("train.grad_checkpointing", True)
    kind = str(value.get("state_dict_type") or value.get("fsdp_state_dict_type") or "").upper()
    if kind in STATE_DICTS:  # how checkpoints are saved: host RAM at each save (full_ft.host_ram)
        out.state_dict = STATE_DICTS[kind]
    _fsdp_version(value.get("fsdp_version", value.get("version")), out)


STATE_DICTS = {"FULL_STATE_DICT": "full", "SHARDED_STATE_DICT": "sharded"}


def _fsdp_version(value, out: Out):
    """fsdp_version (top level, or in fsdp_config): FSDP1 and 2 shard the same tensors, gather a layer at a time and
    shard the trained weights' states alike, and it sets the checkpoints' default state dict (accelerate: FULL
    under 1, SHARDED under 2). rankwise trains and estimates FSDP1 (trainer/launch.py), so what FSDP2 does its own
    way is said: fully_shard shards each parameter in place (no FSDP1 flattening of the loaded model unit by unit,
    whose reserve the estimate adds: advisor/fsdp_wrap.py), and a DTensor a parameter can hold 4-bit MoE experts,
    which rankwise keeps 16-bit under FSDP."""
    if value in (1, 2, "1", "2"):
        out.fsdp_version = int(value)
    if out.fsdp_version == 2:
        out.not_modelled("FSDP2 (fully_shard) estimated as rankwise's FSDP1: its start-up reserve differs (FSDP1 "
                         "flattens the loaded model unit by unit), and so do an MoE's quantized experts (FSDP2 can "
                         "shard them; the estimate keeps them 16-bit under FSDP)")


def _plugins(value, out: Out):
    for p in value if isinstance(value, list) else [value]:
        name = str(p).lower()
        if "cut_cross_entropy" in name:  # on unless `cut_cross_entropy: false` (its CutCrossEntropyArgs): `finish`
            out.extra["cce_plugin"] = out.key
        elif "liger" in name:  # said in `finish` unless Liger's fused loss (train.kernels liger) models it
            out.extra["liger_plugin"] = out.key
        elif p:
            out.not_modelled(f"plugin {p}: its memory effect")


def _special_tokens(value, out: Out):
    if isinstance(value, dict) and set(value) - {"pad_token", "eos_token", "bos_token", "unk_token"}:
        out.not_modelled("special tokens beyond pad/eos/bos/unk: new tokens resize the embeddings "
                         "(train them with lora_modules_to_save)")


def _chat_template(value, out: Out):
    """axolotl's chat_template: chatml is rankwise's built-in, tokenizer_default its default, jinja reads
    chat_template_jinja (its own key); another of axolotl's named templates is said, not copied."""
    if value not in (None, "tokenizer_default", "jinja"):
        named_template("chat_template", value, "the tokenizer's own, ChatML where it has none"
                       if value == "tokenizer_default_fallback_chatml" else f"axolotl's built-in {value} template", out)


def _token_overrides(value, out: Out):
    if value:
        out.not_modelled("tokens renamed in place (no new rows): their embeddings train only with "
                         "lora_modules_to_save")


def _linearized(value, out: Out):
    """llama4_linearized_experts: axolotl loads Llama 4 with its linearized experts (loaders/patch_manager.py
    `patch_llama4_linearized_modeling`, model type llama4 only): report.judge reads the model so."""
    if value is True:
        out.linear_experts = True


def _skip_move(value, out: Out):
    """experimental_skip_move_to_device overrides one step of axolotl's loading (loaders/model.py
    `_apply_post_lora_load_setup`): the `model.to(device)` after loading, made only in a DDP run. The Trainer
    places the model on the GPU for training either way, and a model loaded on the CPU and moved peaks at its
    weights there, below the training peak the estimate gives."""
    if value is not None:
        out.notes.append(f"experimental_skip_move_to_device: {str(value).lower()}: whether axolotl moves the loaded "
                         "model to the GPU itself or the Trainer does (DDP runs): the training peak estimated is "
                         "the same")


def _to_32x(value, out: Out):
    """axolotl (loaders/model.py `_resize_token_embeddings`) resizes the embedding only when the tokenizer has
    outgrown it, to ceil(len(tokenizer) / 32) * 32 rows: at most 31 rows beyond the tokenizer's (the new tokens
    the file adds are counted as added tokens either way)."""
    if value:
        out.notes.append("resize_token_embeddings_to_32x: where the tokenizer outgrows the embedding, at most 31 rows "
                         "more (rounding up to a multiple of 32): a few MB even on the widest model, not counted")


def _number(value):
    """axolotl takes learning_rate as a string too ("2e-4"); a string that is no number stays (reported)."""
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


TABLE = {
    "base_model": model_name, "adapter": _adapter, "load_in_4bit": _4bit, "load_in_8bit": _8bit,
    "peft_use_dora": dora, "peft_init_lora_weights": peft_init, "loraplus_lr_ratio": loraplus, "peft": _peft,
    "lora_r": to("lora.r"), "lora_alpha": to("lora.alpha"), "lora_dropout": to("lora.dropout"),
    "lora_modules_to_save": modules_to_save, "lora_target_parameters": target_parameters,
    "lora_target_modules": targets_mapper("regex"), "lora_target_linear": _linear,
    "peft_use_rslora": to("lora.use_rslora"), "learning_rate": to("train.lr", _number),
    "lr_scheduler": scheduler, "micro_batch_size": to("train.micro_batch"), "batch_size": _batch_size,
    "gradient_accumulation_steps": to("train.grad_accum"), "sequence_len": to("train.max_seq_len"),
    "gradient_checkpointing": _gc, "gradient_checkpointing_kwargs": checkpointing_kwargs, "optimizer": optimizer, "num_epochs": to("train.epochs"),
    "max_steps": steps("train.max_steps"), "warmup_steps": steps("train.warmup_steps"),
    "warmup_ratio": to("train.warmup_ratio"), "bf16": precision_bf16, "fp16": precision_fp16,
    "trust_remote_code": to("model.trust_remote_code"), "datasets": _datasets, "val_set_size": _val,
    "sample_packing": to("data.packing"), "train_on_inputs": to("data.train_on_inputs"),
    "weight_decay": to("train.weight_decay"), "max_grad_norm": to("train.max_grad_norm"),
    "adam_beta1": to("train.adam_beta1"), "adam_beta2": to("train.adam_beta2"), "adam_epsilon": to("train.adam_epsilon"),
    "seed": to("train.seed"), "logging_steps": to("train.logging_steps"),
    "save_steps": steps("train.save_steps"), "eval_steps": steps("train.eval_steps"),
    "saves_per_epoch": steps("train.saves_per_epoch"), "evals_per_epoch": steps("train.evals_per_epoch"),
    "save_total_limit": to("train.save_total_limit"), "rl": _rl, "fsdp": fsdp_words, "fsdp_config": _fsdp_config,
    "deepspeed": deepspeed, "plugins": _plugins, "special_tokens": _special_tokens, "tokens": added_tokens,
    "resize_token_embeddings_to_32x": _to_32x, "experimental_skip_move_to_device": _skip_move,
    "llama4_linearized_experts": _linearized,
    "added_tokens_overrides": _token_overrides, "chat_template": _chat_template,
    "chat_template_jinja": to("model.chat_template"), "lora_model_dir": from_adapter, "gptq": not_modelled("a GPTQ base: its weights take ~4 bits, the estimate "
                                                            "counts them as 16-bit"),
}

# keys that change memory, speed or advice in ways the estimate does not include
NOT_MODELLED = {
    "xformers_attention": "xFormers attention: activation memory and speed",
    "flex_attention": "flex attention: activation memory and speed",
    "s2_attention": "shifted-sparse attention (LongLoRA): activation memory at long sequences",
    "liger_rope": "a Liger kernel: lower activation memory than estimated",
    "liger_rms_norm": "a Liger kernel: lower activation memory than estimated",
    "liger_glu_activation": "a Liger kernel: lower activation memory than estimated",
    "liger_layer_norm": "Liger's LayerNorm, for a vision or audio tower's norms (model unresolved: which, if any, "
                        "not known)",
    "liger_cross_entropy": "a Liger kernel: lower activation memory than estimated",
    "lora_mlp_kernel": "axolotl's fused LoRA MLP kernel: less activation memory, faster steps",
    "lora_qkv_kernel": "axolotl's fused LoRA QKV kernel: less activation memory, faster steps",
    "lora_o_kernel": "axolotl's fused LoRA O kernel: less activation memory, faster steps",
    "context_parallel_size": "sequences split across GPUs: activation memory per GPU divided",
    "sequence_parallel_degree": "sequences split across GPUs: activation memory per GPU divided",
    "tensor_parallel_size": "tensor parallelism: weights split across GPUs",
    "expert_parallel_size": "expert parallelism: MoE experts split across GPUs",
    "dp_shard_size": "FSDP shard group size (ND parallelism)",
    "unsloth_lora_mlp": "Unsloth's fused LoRA kernels: less activation memory",
    "unsloth_lora_qkv": "Unsloth's fused LoRA kernels: less activation memory",
    "unsloth_lora_o": "Unsloth's fused LoRA kernels: less activation memory",
    "peft_layers_to_transform": "LoRA on some layers only: fewer adapter parameters than estimated",
    "lora_ranklayer_name_pattern": "per-module ranks: adapter size differs from lora_r everywhere",
    "relora": "ReLoRA restarts: merges and re-inits the adapter during training",
    "fp8": "FP8 training: smaller activations and weights than estimated",
    "torch_compile": "torch.compile: activation memory and speed differ",
    "torch_compile_mode": "torch.compile: activation memory and speed differ",
    "vllm": "a vLLM server for online RL generation: on a GPU shared with training it takes its "
            "gpu_memory_utilization share, which the estimate does not count",
    "trl": "the online-RL trainer's settings (num_generations x max_completion_length): rollouts are generated "
           "and scored in training, memory the estimate does not count",
    "ebft": "EBFT's settings (samples per prompt, generation length, feature layers): rollouts and the feature "
            "network's passes, memory the estimate does not count",
    "model_config": "overrides of the model's config.json (e.g. output_router_logits: every MoE layer's router "
                    "logits kept for the aux loss): the shapes are read from the unchanged config",
    "liger_rms_norm_gated": "a Liger kernel: lower activation memory than estimated",
    "flash_attn_cross_entropy": "FlashAttention's fused cross-entropy: the logits' float copy is avoided",
    "flash_attn_rms_norm": "FlashAttention's fused RMSNorm: lower activation memory",
    "fused_attn_kernel": "a fused attention kernel: activation memory and speed",
    "gemma4_hybrid_attn_impl": "the attention kernel: activation memory and speed",
    "use_kernels": "Hugging Face kernels (fused layers): activation memory and speed",
    "use_v1_kernels": "fused kernels: activation memory and speed",
    "use_scattermoe": "ScatterMoE expert kernels: MoE activation memory and speed",
    "use_sonicmoe": "SonicMoE expert kernels: MoE activation memory and speed",
    "use_dsv4_kernels": "fused kernels: activation memory and speed",
    "use_glm_dsa_kernels": "fused kernels: activation memory and speed",
    "experts_implementation": "the MoE experts' implementation: activation memory and speed",
    "dsv4_fp4_grouped_mode": "FP4 expert weights: base memory differs from estimated",
    "nvfp4_merge_aware": "NVFP4 weights: base memory differs from estimated",
    "model_quantization_config": "a torchao/other quantization of the base: base memory differs from estimated",
    "model_quantization_config_kwargs": "a torchao/other quantization of the base: base memory differs from "
                                        "estimated",
    "bnb_config_kwargs": "bitsandbytes options (quant type, double quantization): read as NF4 with double quant",
    "device_map": "weights placed across devices or the CPU: per-GPU memory differs from estimated",
    "relora_cpu_offload": "ReLoRA merges on the CPU",
    "freeze_mm_modules": "which multimodal modules train: an unfrozen vision tower or projector is not in the "
                         "estimate",
    "expert_parallel_num_nvl_bytes": "expert parallelism buffers", "expert_parallel_token_capacity":
        "expert parallelism: token capacity per expert",
}


def _attn_flag(attention: str):
    """flash_attention: true / sdp_attention: true / eager_attention: true -> train.attention."""
    def put(value, out: Out):
        if value is True:
            out.set("train.attention", attention)
    return put


def _liger_flce(value, out: Out):
    """Liger's fused linear cross-entropy: what train.kernels: liger turns on (with the other Liger kernels)."""
    if value is True:
        out.set("train.kernels", "liger")


TABLE["attn_implementation"] = attention
TABLE["flash_attention"] = _attn_flag("flash_attention_2")
TABLE["sdp_attention"] = _attn_flag("sdpa")
TABLE["eager_attention"] = _attn_flag("eager")
TABLE["liger_fused_linear_cross_entropy"] = _liger_flce


# what train.kernels liger estimates beside its fused loss (advisor/liger.py): said no more once that is on
LIGER_MODELLED = ("liger_rms_norm", "liger_glu_activation", "liger_rope")


def _finish_liger(out: Out) -> None:
    """Liger's RMSNorm, SwiGLU and RoPE are in the estimate with its fused linear cross-entropy (train.kernels liger)
    or, through the LigerPlugin, without it (liger_layers: the loss is the standard one, or the Cut Cross-Entropy
    plugin's): their not-modelled findings are dropped, and the LigerPlugin is said only with neither."""
    layers = [s for s in out.said if s.code == "not-modelled" and s.key in LIGER_MODELLED]
    if out.values.get("train.kernels") != "liger" and layers and out.extra.get("liger_plugin"):
        out.key = layers[0].key
        out.set("train.kernels", "liger_layers")
    if out.values.get("train.kernels") in ("liger", "liger_layers"):
        out.said[:] = [s for s in out.said if s not in layers]
    elif out.extra.get("liger_plugin"):
        out.key = out.extra["liger_plugin"]
        out.not_modelled("Liger kernels (fused RMSNorm/SwiGLU/RoPE/cross-entropy): lower activation memory "
                         "than estimated")


def _cce(value, out: Out):
    out.extra["cce"] = value


def _finish_cce(out: Out) -> None:
    """axolotl's CutCrossEntropyPlugin (integrations/cut_cross_entropy: `cut_cross_entropy` defaults to true beside
    it) is train.loss cce: the loss from the hidden states and the head, no logits held."""
    key = out.extra.get("cce_plugin")
    if not key or out.extra.get("cce") is False:
        return
    out.key = key
    if out.values.get("train.kernels") == "liger":  # Liger's loss is fused already: one fused loss is what runs
        out.notes.append("plugins: Cut Cross-Entropy beside Liger's fused linear cross-entropy: estimated with the "
                         "fused loss once")
        return
    if out.values.get("distributed.strategy") == "deepspeed":  # rankwise's cce reads the head outside its forward
        out.not_modelled("Cut Cross-Entropy under DeepSpeed: rankwise's train.loss cce cannot run under ZeRO-3, so "
                         "the estimate keeps the whole logits (this run holds none)")
        return
    out.set("train.loss", "cce")


TABLE["cut_cross_entropy"] = _cce
TABLE["activation_offloading"] = _activation_offloading


def _chunked_ce(value, out: Out):
    """axolotl's chunked_cross_entropy (monkeypatch/loss/chunked.py, torchtune's CEWithChunkedOutputLoss): the 16-bit
    logits kept, fp32 one chunk at a time: train.loss chunked (its compiled chunks hold what rankwise's do)."""
    if value is True:
        out.set("train.loss", "chunked")


def _chunks(value, out: Out):
    if value not in (None, 8, "8"):
        out.not_modelled(f"{value} loss chunks: rankwise's chunked loss uses 8 (axolotl's default); the fp32 piece "
                         "it holds is 1/chunks of the logits")


TABLE["chunked_cross_entropy"] = _chunked_ce
TABLE["chunked_cross_entropy_num_chunks"] = _chunks


def _bfloat16(value, out: Out):
    """bfloat16: true loads the model in bf16 and turns the Trainer's bf16 on (core/builders/base.py
    _configure_precision_settings: bf16 = cfg.bf16 or cfg.bfloat16), whatever the schema's "No AMP" says."""
    if value is True:
        out.default("train.precision", "bf16")


def _as_estimated(value, out: Out):
    """Read, and already what the estimate assumes: pad_to_sequence_len (true: every row at
    sequence_len; false: each batch at its longest row, the worst case of which is the estimate's,
    and what `--dataset` measures) and low_cpu_mem_usage (one shard at a time: the host-RAM plan's `load` figure; it also gives the
    figure without low-memory loading)."""


def _unfrozen(value, out: Out):
    out.extra["unfrozen"] = value if isinstance(value, list) else [value]


# A LoRA weight's name as axolotl's freeze_layers_except sees it: it runs on the model ModelLoader.load returns,
# the peft model when there is an adapter (train.py `setup_model_and_tokenizer`, then `freeze_layers_except`)
PEFT_NAMES = ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight",
              "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.default.weight")


CONFIG_ONLY_STAGES = frozenset({"dpo", "ipo", "kto"})


def _check_unfrozen(out: Out) -> None:
    """unfrozen_parameters freezes every parameter no pattern matches (utils/freeze.py freeze_layers_except): meant
    for full fine-tunes (axolotl#1464). With an adapter it runs on the peft model, so the LoRA weights are frozen
    too unless a pattern matches their `base_model.model.` names (axolotl#1188: "unfreezing parameters while doing
    LoRAs is not supported"): nothing trains and the Trainer stops on an empty optimizer."""
    patterns = [str(p) for p in out.extra.get("unfrozen") or [] if p is not None and str(p).strip()]
    if not patterns:
        return
    out.key = "unfrozen_parameters"
    if out.full is not None:  # only the parameters the patterns match train, read from the model's names
        out.partial = Unfrozen(tuple(patterns))
        return
    compiled = [c for c in map(layer_name_pattern, patterns) if c is not None]
    # dpo/ipo/kto load the adapter's config only (loaders/model.py _load_adapters: config_only=True): TRL adds the
    # LoRA weights after the freezing, and they train
    if out.stage in CONFIG_ONLY_STAGES or any(c.match(name) for c in compiled for name in PEFT_NAMES):
        out.not_modelled("parameters trained in full beside LoRA: their gradients and optimizer states are not in "
                         "the estimate")
        return
    shown = ", ".join(patterns[:3]) + (", ..." if len(patterns) > 3 else "")
    out.said.append(Said(
        "frozen-adapter", "error", out.key,
        f"unfrozen_parameters with an adapter freezes the adapter: axolotl freezes every parameter none of "
        f"{shown} matches, after the LoRA weights are added, and their names (base_model.model.…lora_A…) match "
        "none: nothing trains",
        "unfrozen_parameters is for full fine-tunes (axolotl#1464); freezing runs on the peft model and "
        "unfreezing beside LoRA is not supported (axolotl#1188)",
        "remove unfrozen_parameters; to train embed_tokens or lm_head in full beside LoRA, list them in "
        "lora_modules_to_save"))


def _reward(kind: str):
    """reward_model / process_reward_model: true → the model axolotl builds (AutoModelForSequenceClassification /
    ForTokenClassification, num_labels outputs: loaders/model.py), read in `finish`."""
    def put(value, out: Out):
        if value is True:
            out.extra["reward"] = (kind, out.key)
    return put


def _num_labels(value, out: Out):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        out.extra["num_labels"] = value


# num_labels when the file leaves it unset: a Bradley-Terry reward model scores a sequence with one number; a
# process reward model labels each step good or bad (axolotl's PRM example sets num_labels: 2)
REWARD_LABELS = {"sequence": 1, "token": 2}


def _finish_reward(out: Out) -> None:
    reward = out.extra.get("reward")
    if reward is None:
        return
    kind, out.key = reward
    out.score_head = out.extra.get("num_labels") or REWARD_LABELS[kind]
    out.paired_rows = kind == "sequence"  # Bradley-Terry: chosen and rejected each run through the model
    out.notes.append(f"{out.key}: estimated with a {out.score_head}-output score head in place of lm_head (no "
                     "vocabulary-sized logits)" + ("; chosen and rejected answers both run: twice the micro-batch"
                                                   if out.paired_rows else ""))


TABLE["reward_model"] = _reward("sequence")
TABLE["process_reward_model"] = _reward("token")
TABLE["num_labels"] = _num_labels
TABLE["unfrozen_parameters"] = _unfrozen
TABLE["eval_batch_size"] = eval_batch
TABLE["test_datasets"] = evaluates
TABLE["bfloat16"] = _bfloat16
TABLE["float16"] = not_modelled("fp16 weights without the Trainer's fp16 autocast (utils/config: torch_dtype "
                                "float16; core/builders/base.py: fp16 only from cfg.fp16): precision not modelled")
TABLE["pad_to_sequence_len"] = _as_estimated
TABLE["fsdp_version"] = _fsdp_version
TABLE["quantize_moe_experts"] = to("quant.quantize_experts")  # monkeypatch/moe_quant.py: as they load, as rankwise
TABLE["low_cpu_mem_usage"] = _as_estimated


DEFAULTS = (
    Default("train.grad_accum", 1, "schemas/training.py: gradient_accumulation_steps default=1"),
    Default("lora.dropout", 0.0, "schemas/peft.py: lora_dropout = 0.0"),
    Default("train.grad_checkpointing", False, "schemas/config.py: gradient_checkpointing default=False"),
    Default("train.max_seq_len", 512, "schemas/config.py: sequence_len default=512"),
    Default("lora.r", 8, "peft LoraConfig r=8 (axolotl passes lora_r through)"),
    Default("lora.alpha", 8, "peft LoraConfig lora_alpha=8 (axolotl passes lora_alpha through)"),
    Default("quant.kbit_upcast", False, "loaders/model.py: after prepare_model_for_kbit_training, lora/qlora "
            "adapters cast norms, embed_tokens and lm_head back to torch_dtype (_convert_embedding_modules_dtype; "
            "QLoRA under FSDP or ZeRO-3 skips the upcast instead)",
            quantized_only=True),
    Default("quant.quantize_experts", False, "schemas/config.py: quantize_moe_experts default False (transformers' "
            "4-bit loading leaves an MoE's fused experts 16-bit)", quantized_only=True),
)


def finish(out: Out) -> None:
    """What needs several keys: batch_size → gradient accumulation (normalize_config)."""
    if "method" not in out.values:
        out.key = "adapter"
        out.set("method", "lora")
        out.full = "adapter"
        out.not_modelled("no adapter: a full fine-tune, every weight trained with its gradients and optimizer "
                         "states (far more memory); checked as LoRA", "set adapter: lora or qlora",
                         {"adapter": "lora"}, severity="warning")
    _check_unfrozen(out)
    _finish_reward(out)
    _finish_cce(out)
    _finish_liger(out)
    if out.values.get("quant.quantize_experts") and out.values.get("method") == "lora-8bit":
        # monkeypatch/moe_quant.py Bnb8bitParametrization returns int8_vectorwise_dequant's fp32 as it is
        out.key = "quantize_moe_experts"
        out.not_modelled("axolotl's 8-bit MoE experts are estimated as rankwise stores them (row-wise int8), but "
                         "axolotl dequantizes them to fp32 without casting back, so the dequantized layer the experts "
                         "keep for backward (and the routed inputs cast to it) is twice the estimate's")
    elif out.values.get("quant.quantize_experts") and out.values.get("lora.target_parameters"):
        out.key = "quantize_moe_experts"
        out.not_modelled("4-bit MoE experts with LoRA on them (axolotl's own kernels and peft patches; peft alone "
                         "cannot adapt a 4-bit parameter, so rankwise keeps adapted experts 16-bit): this run's base "
                         "memory is below the estimate")
    if out.values.get("train.grad_checkpointing") and "train.checkpointing_reentrant" not in out.values:
        # utils/config/__init__.py normalize_config: checkpointing with no gradient_checkpointing_kwargs, no rl
        # and no unfrozen_parameters is {"use_reentrant": True}; with rl, core/builders/base.py passes
        # {"use_reentrant": False}; with unfrozen_parameters the kwargs stay unset, and transformers 5's
        # activation_checkpointing_enable then uses {"use_reentrant": False} (Gemma 4 is forced to False too)
        out.key = "gradient_checkpointing"
        out.set("train.checkpointing_reentrant", out.stage is None and not out.extra.get("unfrozen"))
    accumulate_to(out, "batch_size", out.extra.get("batch_size"))


def _method_back(value):
    if value == "qlora":
        return {"adapter": "qlora", "load_in_4bit": True}
    return {"adapter": "lora", "load_in_4bit": False, "load_in_8bit": False}


def _targets_back(value):
    if value == "all-linear":
        return {"lora_target_linear": True}
    return {"lora_target_linear": False, "lora_target_modules": names_for_set(value) if isinstance(value, str) else value}


REVERSE = {
    "method": _method_back, "lora.target_modules": _targets_back,
    "train.optimizer": lambda v: {"optimizer": OPTIMS_BACK.get(v, v)},
    "train.grad_checkpointing": lambda v: {"gradient_checkpointing": v},
    "train.checkpointing_reentrant": lambda v: {"gradient_checkpointing_kwargs": {"use_reentrant": v}},
    "data.val_ratio": lambda v: {"val_set_size": v},
    "train.precision": lambda v: {"bf16": v == "bf16" or ("auto" if v == "auto" else False), "fp16": v == "fp16"},
    "train.loss": lambda v: {"chunked_cross_entropy": v == "chunked"},
}

TOOL = Tool("axolotl", "axolotl", "flat", TABLE, DEFAULTS, NOT_MODELLED, AXOLOTL_KEYS, "warning", REVERSE,
            renames_of(TABLE), finish=finish, preference=PREFERENCE, stage_key="rl")
