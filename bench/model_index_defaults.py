"""Model-index groups whose shapes are a transformers configuration class's defaults, and
aliases: ids that name an indexed model under another organisation (used by model_index_build.py).

transformers documents each configuration class with a checkpoint (`@auto_docstring(checkpoint=...)`,
"Instantiating a configuration with the defaults will yield a similar configuration to that of X").
Often the defaults are only *like* X (Qwen3_5Config's are a 9B model, its docstring says 27B), so a
class is used here only where the defaults' parameter total equals X's published total
(tests/test_model_index.py checks each of them against the card's figure). The whole config,
vision/audio towers included, is stored: these architectures are built on the meta device, and a
multimodal model's towers load with its language model.
"""
from __future__ import annotations

# (ids, model_type, the checkpoint the class's docstring names). Left out because the defaults are
# not the named checkpoint (their totals differ from the card's): seed_oss, smolvlm, qwen2_vl, qwen3_vl,
# qwen3_vl_moe, qwen3_5 (defaults 9.4B, named 27B), deepseek_v2 (38.6B, named V2-Lite 15.7B),
# gemma3 (2.7B, named gemma-3-4b-it), nemotron_h, gpt_oss (the 120b's shape, named 20b), apertus,
# falcon, falcon_h1, olmo3, glm4_moe (GLM-4.5-Air's 106B, named GLM-4.5), mistral3 (untied head
# missing), arcee. Not buildable here: lfm2_moe, ministral, mistral4, gemma4, gemma3n (needs PIL).
DEFAULTS = [
    (["Qwen/Qwen1.5-MoE-A2.7B"], "qwen2_moe", "Qwen/Qwen1.5-MoE-A2.7B"),
    (["Qwen/Qwen3-Next-80B-A3B-Instruct"], "qwen3_next", "Qwen/Qwen3-Next-80B-A3B-Instruct"),
    (["Qwen/Qwen3.5-35B-A3B"], "qwen3_5_moe", "Qwen/Qwen3.5-35B-A3B"),
    (["ai21labs/Jamba-v0.1"], "jamba", "ai21labs/Jamba-v0.1"),
    (["google/gemma-7b"], "gemma", "google/gemma-7b"),
    (["llava-hf/llava-1.5-7b-hf"], "llava", "llava-hf/llava-1.5-7b-hf"),
    (["meta-llama/Llama-3.2-11B-Vision"], "mllama", "meta-llama/Llama-3.2-11B-Vision"),
    (["meta-llama/Llama-4-Scout-17B-16E"], "llama4", "meta-llama/Llama-4-Scout-17B-16E"),
    (["mistralai/Voxtral-Mini-3B-2507"], "voxtral", "mistralai/Voxtral-Mini-3B-2507"),
    (["moonshotai/Kimi-Linear-48B-A3B-Instruct"], "kimi_linear", "moonshotai/Kimi-Linear-48B-A3B-Instruct"),
    (["EleutherAI/gpt-j-6B"], "gptj", "EleutherAI/gpt-j-6B"),
]

AXOLOTL_COMMIT = "067b021c8b87a9e5e380b9173c704cf7340e30f5"


def axolotl(path: str) -> dict:
    return {"repo": "axolotl-ai-cloud/axolotl", "path": path, "commit": AXOLOTL_COMMIT}


# (id, the indexed id it is a copy of, the source saying so). Joined to the original's group.
ALIASES = [
    # "Llama 4 Scout 17Bx16Experts (109B)": the README lists the linearized Scout configs under it
    # (its experts stored as linear layers, "delinearize-llama4" turns it back: same weights).
    ("axolotl-quants/Llama-4-Scout-17B-16E-Linearized-bnb-nf4-bf16", "meta-llama/Llama-4-Scout-17B-16E",
     axolotl("examples/llama-4/README.md")),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "meta-llama/Llama-4-Scout-17B-16E",
     axolotl("examples/llama-4/README.md")),
    # "# use google/gemma-7b if you have access" above `base_model: mhenrichsen/gemma-7b`
    ("mhenrichsen/gemma-7b", "google/gemma-7b", axolotl("examples/archived/gemma/qlora.yml")),
]


def transformers_source(model_type: str, checkpoint: str) -> dict:
    import transformers
    from transformers import AutoConfig

    cls = type(AutoConfig.for_model(model_type))
    module = cls.__module__.removeprefix("transformers.")
    return {"package": "transformers", "version": transformers.__version__,
            "path": "src/transformers/" + module.replace(".", "/") + ".py", "class": cls.__name__,
            "docstring_checkpoint": checkpoint}


def defaults_config(model_type: str) -> dict:
    """The class's defaults as config.json would hold them, less what every config holds alike
    (token ids, dtype, generation and label fields of PreTrainedConfig)."""
    from transformers import AutoConfig, PretrainedConfig

    generic = PretrainedConfig().to_dict()
    cfg = AutoConfig.for_model(model_type).to_dict()
    drop = {"transformers_version", "architectures", "id2label", "label2id", "dtype", "torch_dtype"}
    return {k: v for k, v in cfg.items()
            if k not in drop and not (k in generic and generic[k] == v and k != "tie_word_embeddings")}
