"""The keys that mark an axolotl or a LLaMA-Factory config, and which tool a file is written for: one answer for
the foreign reader (reading.detect_tool) and the preset loader (advisor/loader.py, which the mappers import, so the
marks live apart from them: no import cycle)."""
from __future__ import annotations

AXOLOTL = {"base_model", "adapter", "lora_r", "lora_alpha", "lora_target_modules", "lora_target_linear",
           "micro_batch_size", "sequence_len", "load_in_4bit", "load_in_8bit", "datasets", "num_epochs",
           "sample_packing", "lr_scheduler", "val_set_size"}
LLAMA_FACTORY = {"model_name_or_path", "finetuning_type", "lora_rank", "lora_target", "cutoff_len",
                 "per_device_train_batch_size", "quantization_bit", "stage", "template", "num_train_epochs",
                 "lr_scheduler_type", "dataset", "do_train"}
LLAMA_FACTORY_V1 = {"peft_config", "quant_config", "dist_config", "kernel_config", "model_class", "train_dataset"}
# keys no LLaMA-Factory config has: finetuning_type, stage, template, cutoff_len and the like mark LLaMA-Factory; a file
# with model_name_or_path and one of TRL's own keys (ModelConfig, ScriptArguments, SFT/DPO/GRPO configs) is TRL's
LLAMA_FACTORY_ONLY = {"finetuning_type", "stage", "template", "cutoff_len", "lora_rank", "lora_target",
                      "quantization_bit"}
TRL = {"use_peft", "lora_r", "lora_target_modules", "load_in_4bit", "load_in_8bit", "dataset_name",
       "dataset_mixture", "max_seq_length", "max_length", "dataset_text_field", "torch_dtype", "dtype",
       "use_bnb_nested_quant", "bnb_4bit_quant_type", "lora_task_type", "completion_only_loss",
       "assistant_only_loss", "num_generations", "use_vllm", "max_prompt_length", "max_completion_length", "beta",
       "reward_funcs"}


def which(keys: set[str]) -> str | None:
    """The tool and layout a file with these top-level keys is written for: "axolotl", "llama-factory",
    "llama-factory-v1" (the newer layout's sections) or "trl"; between axolotl and LLaMA-Factory the tool with
    more marks; None when no key marks one."""
    if keys & LLAMA_FACTORY_V1:
        return "llama-factory-v1"
    if "model_name_or_path" in keys and keys & TRL and not keys & LLAMA_FACTORY_ONLY:
        return "trl"
    ax, lf = len(keys & AXOLOTL), len(keys & LLAMA_FACTORY)
    if max(ax, lf) == 0:
        return None
    return "axolotl" if ax >= lf else "llama-factory"


LABELS = {"axolotl": "axolotl", "llama-factory": "LLaMA-Factory", "llama-factory-v1": "LLaMA-Factory", "trl": "TRL"}
