"""TRL's YAML configs (`trl sft --config FILE`, `trl dpo`, `trl grpo`, and the recipes of the projects built on
its scripts: huggingface/alignment-handbook, huggingface/open-r1): one flat mapping of ModelConfig (model, LoRA,
bitsandbytes), ScriptArguments (the dataset) and the trainer's config (SFTConfig, DPOConfig, ..., each a
transformers TrainingArguments).

TRL @ f2cd577 (1.10.0.dev0) defaults used when the file leaves a key unset (`DEFAULTS`, each with its source):
use_peft False (every weight trains: a full fine-tune), lora_r 16, lora_alpha 32, lora_dropout 0.05,
lora_target_modules None (peft's default for the architecture: q_proj and v_proj on Llama-family models),
use_bnb_nested_quant False, gradient_checkpointing True and bf16 True (TRL's configs, unlike TrainingArguments),
learning_rate 2e-5 (SFTConfig), max_length 1024, per_device_train_batch_size 8. The file does not say which
trainer runs it (the command does): a DPO, KTO or GRPO config is told by the keys only that trainer has.
"""
from __future__ import annotations

from .known_keys import TRL_KEYS
from .mapping import (Default, Out, Tool, attention, checkpointing_kwargs, deepspeed, dora, eval_batch, evaluates,
                      fsdp_words, liger, method_with, model_name, modules_to_save, optimizer, precision_bf16, precision_fp16,
                      offload_where_checkpointing, renames_of, scheduler, steps, targets_mapper, to, OPTIMS_BACK)

# which trainer the keys say (the first that matches): a key only that trainer's config has
STAGE_KEYS = (
    ("grpo", ("num_generations", "reward_funcs", "use_vllm", "max_completion_length", "reward_weights")),
    ("kto", ("desirable_weight", "undesirable_weight")),
    ("reward", ("center_rewards_coefficient",)),
    ("dpo", ("beta", "max_prompt_length", "rpo_alpha", "ref_model_init_kwargs", "precompute_ref_log_probs")),
)
PREFERENCE = {"dpo": "paired", "kto": "unpaired", "grpo": "online"}


def _flag(value, out: Out):
    """use_peft / load_in_4bit / load_in_8bit: kept under their own key, combined in `finish`."""
    out.extra[out.key] = value is True


def _stage_hint(value, out: Out):
    if value not in (None, False):
        out.extra.setdefault("stage_keys", []).append(out.key)
        out.extra[out.key] = value


GRPO_COMPLETION = 512  # trl/trainer/grpo_config.py: max_completion_length default=512
GRPO_BETA = 0.0  # trl/trainer/grpo_config.py: beta default=0.0 ("the reference model is not loaded")


def _grpo_length(out: Out) -> None:
    """GRPO trains on prompt + generated completion (GRPOConfig has no max_length): the sequence is
    max_prompt_length (older TRL; in 1.x the prompt is not cut) + max_completion_length."""
    if "train.max_seq_len" in out.values:
        return
    prompt, completion = out.extra.get("max_prompt_length"), out.extra.get("max_completion_length", GRPO_COMPLETION)
    if isinstance(prompt, int) and isinstance(completion, int):
        out.key = "max_completion_length"
        out.set("train.max_seq_len", prompt + completion)
        out.notes.append(f"GRPO sequence: max_prompt_length {prompt} + max_completion_length {completion} tokens")
    else:
        out.notes.append(f"GRPO sequence: the prompt (not cut in TRL 1.x) + max_completion_length {completion} "
                         "tokens; the estimate's length is TRL's max_length default unless max_length is set")


def _dtype(value, out: Out):
    """ModelConfig `dtype` (older: torch_dtype): the dtype the model loads in; TRL's default is float32."""
    out.extra["dtype"] = str(value).lower()


def _quant_type(value, out: Out):
    if str(value).lower() in ("nf4", "fp4"):
        out.set("quant.quant_type", str(value).lower())


def _dataset(value, out: Out):
    if value:
        out.notes.append(f"{out.key} names Hugging Face Hub data (nothing is downloaded): data checks skipped")


def _completion_only(value, out: Out):
    """completion_only_loss (default None: on for prompt-completion data): off trains the prompt too."""
    if value is False:
        out.set("data.train_on_inputs", True)


def _assistant_only(value, out: Out):
    """assistant_only_loss (default False): kept for `_sft_loss`."""
    out.extra[out.key] = value


def _sft_loss(out: Out) -> None:
    """TRL's SFT loss reads every token of a conversational row unless assistant_only_loss is on; rankwise's default
    (the assistant turns) is what that turns on. Said, not set: the file does not say which rows it trains on (a
    prompt-completion dataset trains the completion either way)."""
    if out.stage is not None or out.extra.get("assistant_only_loss") is True or out.values.get("data.train_on_inputs"):
        return
    written = "false" if "assistant_only_loss" in out.extra else "unset (TRL's default: false)"
    out.notes.append(f"assistant_only_loss {written}: TRL trains conversational rows on every token; rankwise trains "
                     "the assistant turns unless data.train_on_inputs is true (prompt-completion rows: the completion "
                     "either way)")


def _chat_template_path(value, out: Out):
    """chat_template_path: a Jinja file, or a tokenizer folder whose template TRL copies (said, not read)."""
    if isinstance(value, str) and value.endswith((".jinja", ".j2")):
        out.set("model.chat_template", value)
    elif value:
        out.notes.append(f"{out.key} {value}: a tokenizer folder's chat template is not read; rankwise renders chat "
                         "rows with the model's own (set model.chat_template to a Jinja file for another)")


def _eval_strategy(value, out: Out):
    if str(value).lower() not in ("no", "none", "false"):
        out.evaluates = True


def _activation_offloading(value, out: Out):
    if value is True:
        out.extra["activation_offloading"] = out.key


TABLE = {
    "model_name_or_path": model_name, "dtype": _dtype, "torch_dtype": _dtype, "attn_implementation": attention,
    "trust_remote_code": to("model.trust_remote_code"),
    "use_peft": _flag, "lora_r": to("lora.r"), "lora_alpha": to("lora.alpha"), "lora_dropout": to("lora.dropout"),
    "lora_target_modules": targets_mapper("names"), "lora_modules_to_save": modules_to_save,
    "use_rslora": to("lora.use_rslora"), "use_dora": dora,
    "load_in_4bit": _flag, "load_in_8bit": _flag, "bnb_4bit_quant_type": _quant_type,
    "use_bnb_nested_quant": to("quant.double_quant"),
    "per_device_train_batch_size": to("train.micro_batch"), "gradient_accumulation_steps": to("train.grad_accum"),
    "learning_rate": to("train.lr"), "num_train_epochs": to("train.epochs"), "max_steps": steps("train.max_steps"),
    "lr_scheduler_type": scheduler, "warmup_ratio": to("train.warmup_ratio"), "warmup_steps": steps("train.warmup_steps"),
    "weight_decay": to("train.weight_decay"), "max_grad_norm": to("train.max_grad_norm"), "seed": to("train.seed"),
    "adam_beta1": to("train.adam_beta1"), "adam_beta2": to("train.adam_beta2"), "adam_epsilon": to("train.adam_epsilon"),
    "logging_steps": to("train.logging_steps"), "save_steps": steps("train.save_steps"),
    "save_total_limit": to("train.save_total_limit"), "optim": optimizer, "bf16": precision_bf16, "fp16": precision_fp16,
    "gradient_checkpointing": to("train.grad_checkpointing"), "gradient_checkpointing_kwargs": checkpointing_kwargs,
    "activation_offloading": _activation_offloading,
    "max_length": to("train.max_seq_len"), "max_seq_length": to("train.max_seq_len"), "packing": to("data.packing"),
    "completion_only_loss": _completion_only, "assistant_only_loss": _assistant_only, "use_liger_kernel": liger,
    "chat_template_path": _chat_template_path,
    "deepspeed": deepspeed, "fsdp": fsdp_words,
    "per_device_eval_batch_size": eval_batch, "eval_strategy": _eval_strategy, "do_eval": evaluates,
    "dataset_name": _dataset, "dataset_mixture": _dataset,
    **{k: _stage_hint for _, keys in STAGE_KEYS for k in keys},
}

NOT_MODELLED: dict[str, str] = {}
VLLM = ("vLLM generation for GRPO's rollouts: its engine's memory on the training GPUs (colocate) or another GPU "
        "(server) is not in the estimate")

DEFAULTS = (
    Default("lora.r", 16, "trl/trainer/model_config.py: lora_r default=16"),
    Default("lora.alpha", 32, "trl/trainer/model_config.py: lora_alpha default=32"),
    Default("lora.dropout", 0.05, "trl/trainer/model_config.py: lora_dropout default=0.05"),
    Default("lora.target_modules", "minimal", "trl/trainer/model_config.py: lora_target_modules default=None, so "
            "peft's per-architecture default (q_proj, v_proj on Llama-family models)"),
    Default("quant.double_quant", False, "trl/trainer/model_config.py: use_bnb_nested_quant default=False",
            quantized_only=True),
    Default("quant.quantize_experts", False, "transformers' 4-bit loading (BitsAndBytesConfig) leaves an MoE's "
            "fused experts 16-bit, and nothing here quantizes them", quantized_only=True),
    Default("train.grad_checkpointing", True, "trl/trainer/base_config.py: gradient_checkpointing default=True"),
    Default("train.checkpointing_reentrant", False, "transformers 5 activation_checkpointing_enable: "
            "{'use_reentrant': False} when no kwargs are given"),
    Default("train.precision", "bf16", "trl/trainer/base_config.py: bf16 defaults to True when fp16 is not set"),
    Default("train.lr", 2e-5, "trl/trainer/sft_config.py: learning_rate default=2e-5"),
    Default("train.max_seq_len", 1024, "trl/trainer/sft_config.py: max_length default=1024"),
    Default("train.micro_batch", 8, "transformers TrainingArguments per_device_train_batch_size=8"),
    Default("train.grad_accum", 1, "transformers TrainingArguments gradient_accumulation_steps=1"),
    Default("train.epochs", 3.0, "transformers TrainingArguments num_train_epochs=3.0", unless=("train.max_steps",)),
    Default("train.scheduler", "linear", "transformers TrainingArguments lr_scheduler_type='linear'"),
)


def _finish_offload(out: Out) -> None:
    """activation_offloading (TRL's OffloadActivations): with checkpointing it moves the checkpointed inputs, as
    train.activation_offload does; without, every saved activation, which rankwise does not run."""
    key = out.extra.get("activation_offloading")
    if key and not offload_where_checkpointing(out, key):
        out.key = key
        out.not_modelled("activation offloading without gradient checkpointing: every saved activation goes to host "
                         "RAM (less GPU memory than estimated, slower steps)")


def finish(out: Out) -> None:
    """What needs several keys: the method (use_peft with load_in_4bit/8bit), the trainer, the load dtype."""
    _finish_offload(out)
    for stage, keys in STAGE_KEYS:
        hit = [k for k in out.extra.get("stage_keys", []) if k in keys]
        if hit:
            out.stage = stage
            out.notes.append(f"a {stage.upper()} config (from {', '.join(hit)}): TRL's command, not the file, names "
                             "the trainer")
            break
    _sft_loss(out)
    if out.stage == "grpo":
        _grpo_length(out)
        beta = out.extra.get("beta", GRPO_BETA)
        # GRPOTrainer loads a reference model only when beta > 0 (grpo_trainer.py: `if self.beta == 0.0:
        # self.ref_model = None`); with an adapter it is the base with the adapter disabled, no copy
        out.reference = isinstance(beta, (int, float)) and beta > 0
    if "use_vllm" in out.extra.get("stage_keys", []):
        out.key = "use_vllm"
        out.not_modelled(VLLM)
    if out.stage == "reward":  # RewardTrainer: AutoModelForSequenceClassification, num_labels=1 (scripts/reward.py)
        out.score_head, out.paired_rows, out.stage = 1, True, None
        out.notes.append("a reward model: estimated with a one-output score head in place of lm_head (no "
                         "vocabulary-sized logits); chosen and rejected answers both run: twice the micro-batch")
    if not out.extra.get("use_peft"):
        out.key = "use_peft"
        out.set("method", "lora")
        out.full = "use_peft"
        out.not_modelled("no adapter (use_peft unset or false): a full fine-tune, every weight trained with its "
                         "gradients and optimizer states (far more memory); checked as LoRA", "set use_peft: true",
                         {"use_peft": True}, severity="warning")
    elif out.extra.get("load_in_4bit"):
        out.key = "load_in_4bit"
        out.set("method", method_with(True, 4) or "qlora")
    elif out.extra.get("load_in_8bit") and (eight := method_with(True, 8)):
        out.key = "load_in_8bit"
        out.set("method", eight)
    else:  # use_peft on the base as loaded
        out.key = "use_peft"
        out.set("method", "lora")
    if out.extra.get("dtype", "float32") == "float32":  # ModelConfig dtype's default
        out.loads_fp32 = True
        if out.full is None and out.values.get("method") == "lora":  # a full fine-tune counts it (full_ft.upcaster)
            out.key = "dtype" if "dtype" in out.extra else "model_name_or_path"
            out.not_modelled("the model loads in float32 (ModelConfig dtype's default, or as set): 4 bytes a base "
                             "weight where the estimate counts 2", "set dtype: bfloat16", {"dtype": "bfloat16"},
                             severity="warning")


def _method_back(value):
    return {"use_peft": True, "load_in_4bit": value == "qlora", "load_in_8bit": value == "lora-8bit"}


def _targets_back(value):
    return {"lora_target_modules": "all-linear" if value == "all-linear" else list(value) if not isinstance(value, str)
            else value}


REVERSE = {
    "method": _method_back, "lora.target_modules": _targets_back,
    "train.optimizer": lambda v: {"optim": OPTIMS_BACK.get(v, v)},
    "train.checkpointing_reentrant": lambda v: {"gradient_checkpointing_kwargs": {"use_reentrant": v}},
    "train.precision": lambda v: {"bf16": v == "bf16", "fp16": v == "fp16"},
}

# HfArgumentParser (trl/scripts/utils.py TrlParser) refuses a key no dataclass has; a recipe script's own
# arguments (alignment-handbook, open-r1) are in TRL_KEYS
TOOL = Tool("trl", "TRL", "flat", TABLE, DEFAULTS, NOT_MODELLED, TRL_KEYS, "error", REVERSE, renames_of(TABLE),
            finish=finish, preference=PREFERENCE, stage_key="trainer")
