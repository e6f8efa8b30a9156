"""The keys that mark an axolotl or a LLaMA-Factory config, apart from their mappers so that the preset loader
(advisor/loader.py), which the mappers import, can tell such a file from a broken preset without a cycle."""
from __future__ import annotations

AXOLOTL = {"base_model", "adapter", "lora_r", "lora_alpha", "lora_target_modules", "lora_target_linear",
           "micro_batch_size", "sequence_len", "load_in_4bit", "load_in_8bit", "datasets", "num_epochs",
           "sample_packing", "lr_scheduler", "val_set_size"}
LLAMA_FACTORY = {"model_name_or_path", "finetuning_type", "lora_rank", "lora_target", "cutoff_len",
                 "per_device_train_batch_size", "quantization_bit", "stage", "template", "num_train_epochs",
                 "lr_scheduler_type", "dataset", "do_train"}
LLAMA_FACTORY_V1 = {"peft_config", "quant_config", "dist_config", "kernel_config", "model_class", "train_dataset"}


def tool_of(keys: set[str]) -> str | None:
    """"axolotl" or "LLaMA-Factory" for a file with these top-level keys (the one with more marks), else None."""
    if keys & LLAMA_FACTORY_V1:
        return "LLaMA-Factory"
    ax, lf = len(keys & AXOLOTL), len(keys & LLAMA_FACTORY)
    if max(ax, lf) == 0:
        return None
    return "axolotl" if ax >= lf else "LLaMA-Factory"
