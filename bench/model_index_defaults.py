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

from model_index_build import QUOTED  # the config.json copies the build script quotes (Mistral Nemo's decoder)

# (ids, model_type, the checkpoint the class's docstring names). Left out because the defaults are
# not the named checkpoint (their totals differ from the card's): seed_oss, smolvlm, qwen2_vl, qwen3_vl,
# qwen3_vl_moe, qwen3_5 (defaults 9.4B, named 27B), deepseek_v2 (38.6B, named V2-Lite 15.7B),
# gemma3 (2.7B, named gemma-3-4b-it), nemotron_h, apertus,
# falcon_h1, olmo3, glm4_moe (GLM-4.5-Air's 106B, named GLM-4.5), mistral3 (untied head
# missing: DEFAULTS_EXCEPT), arcee, glm46v (GLM-4.1V-9B's 10.3B: GLM-4.6V-Flash is built from a config.json copy in VARIANTS),
# gemma4_unified (3.0B, named gemma-4-12B-it: VARIANTS uses its conversion table). Not buildable here (the defaults
# fail to build, or need PIL/timm): lfm2_moe, ministral, hunyuan_v1_dense, nemotron, dbrx, gemma3n.
DEFAULTS = [
    (["Qwen/Qwen1.5-MoE-A2.7B"], "qwen2_moe", "Qwen/Qwen1.5-MoE-A2.7B"),
    (["Qwen/Qwen3-Next-80B-A3B-Instruct"], "qwen3_next", "Qwen/Qwen3-Next-80B-A3B-Instruct"),
    (["Qwen/Qwen3.5-35B-A3B"], "qwen3_5_moe", "Qwen/Qwen3.5-35B-A3B"),
    (["ai21labs/Jamba-v0.1"], "jamba", "ai21labs/Jamba-v0.1"),
    (["google/gemma-7b"], "gemma", "google/gemma-7b"),
    (["llava-hf/llava-1.5-7b-hf"], "llava", "llava-hf/llava-1.5-7b-hf"),
    (["meta-llama/Llama-3.2-11B-Vision"], "mllama", "meta-llama/Llama-3.2-11B-Vision"),
    (["mistralai/Voxtral-Mini-3B-2507"], "voxtral", "mistralai/Voxtral-Mini-3B-2507"),
    (["moonshotai/Kimi-Linear-48B-A3B-Instruct"], "kimi_linear", "moonshotai/Kimi-Linear-48B-A3B-Instruct"),
    (["EleutherAI/gpt-j-6B"], "gptj", "EleutherAI/gpt-j-6B"),
    # The class transformers added for GLM-4.7-Flash (model_type glm4_moe_lite); its docstring names GLM-4.5,
    # but its defaults are a 30B-A3B MoE (64 experts, 4 active), as axolotl's examples/glm47-flash/README.md
    # describes GLM-4.7-Flash.
    (["zai-org/GLM-4.7-Flash"], "glm4_moe_lite", "zai-org/GLM-4.5"),
    # Starcoder2Config's docstring names starcoder2-7b, but its defaults are a 3B (30 layers, 3072 wide, 24 heads,
    # 2 KV heads, vocabulary 49152, tied): the total is checked against starcoder2-3b's card (3.03B).
    (["bigcode/starcoder2-3b"], "starcoder2", "bigcode/starcoder2-7b"),
    # GptOssConfig's docstring names gpt-oss-20b, but its defaults are gpt-oss-120b's shape (36 layers of 2880, 128
    # experts of 2880 with 4 active, vocabulary 201088, untied): 116.83B, the 116.8B total of OpenAI's gpt-oss model
    # card (arXiv 2508.10925). The experts' MXFP4 storage is dequantized to 16-bit for training (as for the 20b).
    (["openai/gpt-oss-120b"], "gpt_oss", "openai/gpt-oss-20b"),
    (["HuggingFaceTB/SmolLM3-3B", "HuggingFaceTB/SmolLM3-3B-Base"], "smollm3", "HuggingFaceTB/SmolLM3-3B"),
    # FalconConfig's defaults are falcon-7b's shape (71 heads of 64 sharing one K/V head, parallel attention, 32
    # layers of 4544, vocabulary 65024, the head tied to the embedding): 6.92B, the card's "7B" (litgpt's
    # falcon-7b entry has the same shape). Falcon's other sizes (40b, 180B) are not these defaults.
    (["tiiuae/falcon-7b"], "falcon", "tiiuae/falcon-7b"),
    # Mistral4Config's defaults are Mistral Small 4's text model (36 layers of 4096, MLA, 128 experts of 2048 plus a
    # shared one, 4 active): 118.97B, the "119B parameter (6.5B active)" of axolotl's examples/mistral4/README.md.
    # The release is multimodal; its vision tower (its shape is in no source at hand, a Pixtral-sized tower would be
    # ~0.4B, under 0.5% of the total) is not counted.
    (["mistralai/Mistral-Small-4-119B-2603"], "mistral4", "mistralai/Mistral-Small-4-119B-2603"),
    # MiniMaxM2Config's docstring names MiniMax-Text-01-hf, but its defaults are MiniMax-M2's (62 layers of 3072,
    # 48 heads of 128 over 8 K/V heads, 256 experts of 1536 with 8 active, vocabulary 200064, 196608 positions):
    # 228.7B, the "~230B" of axolotl's examples/minimax/m2-qlora.yaml. The checkpoint's FP8 storage is not modelled.
    (["MiniMaxAI/MiniMax-M2"], "minimax_m2", "MiniMaxAI/MiniMax-Text-01-hf"),
    # DeepseekV4Config's defaults are DeepSeek-V4-Flash (the docstring names its -Base sibling; transformers' deepseek_v4.md:
    # Flash, Pro and their -Base "share the same architecture; they differ only in width / depth / expert count"):
    # 284.3B, the card's "284B total parameters (13B activated)".
    (["deepseek-ai/DeepSeek-V4-Flash", "deepseek-ai/DeepSeek-V4-Flash-Base"], "deepseek_v4",
     "deepseek-ai/DeepSeek-V4-Flash-Base"),
]

# (ids, model_type, the checkpoint the docstring names, fields that differ from the defaults, their source).
# Mistral3Config's defaults are Mistral Small 3.1 (the Mistral Small 3 decoder, a Pixtral tower) but tie the output
# head to the embedding; the head is a separate tensor (lm_head.weight in Mistral Small 3's safetensors index).
DEFAULTS_EXCEPT = [
    (["mistralai/Mistral-Small-3.1-24B-Instruct-2503"], "mistral3",
     "mistralai/Mistral-Small-3.1-24B-Instruct-2503", {"tie_word_embeddings": False},
     {"repo": "OpenMOSE/RWKV-LM-RLHF", "path": "main/tokenizer/mistralsmall3/model.safetensors.index.json",
      "commit": "7e8f62ab3f43bd70de656d5205d1cb4216b4ea58"}),
]

AXOLOTL_COMMIT = "067b021c8b87a9e5e380b9173c704cf7340e30f5"


def axolotl(path: str) -> dict:
    return {"repo": "axolotl-ai-cloud/axolotl", "path": path, "commit": AXOLOTL_COMMIT}


# "Supervised Fine-Tuning with 4/8-bit GPTQ Quantization ... llama3_lora_sft_gptq.yaml" (and AWQ, AQLM)
LLAMA_FACTORY_README = {"repo": "hiyouga/LLaMA-Factory", "path": "examples/README.md",
                        "commit": "ff6d4d12eeb035d6ce06805a5733dd7b29f2ac30"}

# (id, the indexed id it is a copy of, the source saying so). Joined to the original's group.
HANDBOOK_COMMIT = "925acdfe4b2b4e38c3dabd1851bc418f0b656351"


def handbook(path: str) -> dict:
    return {"repo": "huggingface/alignment-handbook", "path": path, "commit": HANDBOOK_COMMIT}


ALIASES = [
    # The alignment-handbook's intermediate models, which its next-stage recipes start from: each is the
    # hub_model_id of the recipe named, trained from that recipe's model_name_or_path (the same architecture;
    # the QLoRA one is an adapter over it, loaded with its base)
    ("alignment-handbook/zephyr-7b-sft-full", "mistralai/Mistral-7B-v0.1",
     handbook("recipes/zephyr-7b-beta/sft/config_full.yaml")),
    ("alignment-handbook/zephyr-7b-sft-qlora", "mistralai/Mistral-7B-v0.1",
     handbook("recipes/zephyr-7b-beta/sft/config_qlora.yaml")),
    ("alignment-handbook/mistral-7b-sft-constitutional-ai", "mistralai/Mistral-7B-v0.1",
     handbook("recipes/constitutional-ai/sft/config_anthropic.yaml")),
    ("HuggingFaceH4/zephyr-7b-gemma-sft-v0.1", "google/gemma-7b", handbook("recipes/zephyr-7b-gemma/sft/config_full.yaml")),
    ("loubnabnl/smollm2-360M-sft", "HuggingFaceTB/SmolLM2-360M", handbook("recipes/smollm2/sft/config_smol.yaml")),
    ("loubnabnl/smollm2-1.7B-sft", "HuggingFaceTB/SmolLM2-1.7B", handbook("recipes/smollm2/sft/config.yaml")),
    # "the three post-training stages (mid-training, SFT, and DPO)" of SmolLM3-3B, the SFT and DPO ones from the
    # checkpoints repository's revisions
    ("HuggingFaceTB/SmolLM3-3B-checkpoints", "HuggingFaceTB/SmolLM3-3B", handbook("recipes/smollm3/README.md")),
    # "They use the same architecture, so the same examples below can be re-used" (GPT-OSS-Safeguard)
    ("openai/gpt-oss-safeguard-20b", "openai/gpt-oss-20b", axolotl("examples/gpt-oss/README.md")),
    # "for 120B, see below": the 120B config trains this bf16 copy of gpt-oss-120b ("a dequantized model")
    ("axolotl-ai-co/gpt-oss-120b-dequantized", "openai/gpt-oss-120b", axolotl("examples/gpt-oss/README.md")),
    # the Maverick counterpart of the linearized Scout (axolotl's `delinearize-llama4`, docs/cli.qmd)
    ("axolotl-quants/Llama-4-Maverick-17B-128E-Linearized-bnb-nf4-bf16", "meta-llama/Llama-4-Maverick-17B-128E",
     axolotl("docs/cli.qmd")),
    ("alpindale/Llama-3.2-11B-Vision-Instruct", "meta-llama/Llama-3.2-11B-Vision",  # an ungated copy of Meta's
     axolotl("examples/llama-3-vision/lora-11b.yaml")),
    # Copies of Llama models under another name: the repository's own name says which model and format;
    # the examples that use them name the family. A pre-quantized copy's 4-bit (or 2-bit) storage is said
    # as not modelled by `check` (advisor/foreign): the estimate counts the method's base.
    ("casperhansen/llama-3-70b-fp16", "meta-llama/Meta-Llama-3-70B", axolotl("examples/llama-3/qlora-fsdp-70b.yaml")),
    ("hugging-quants/Meta-Llama-3.1-405B-BNB-NF4-BF16", "meta-llama/Meta-Llama-3.1-405B",
     axolotl("examples/llama-3/qlora-fsdp-405b.yaml")),
    ("TheBloke/Llama-2-7B-GPTQ", "meta-llama/Llama-2-7b-hf", axolotl("examples/llama-2/gptq-lora.yml")),
    ("TechxGenus/Meta-Llama-3-8B-Instruct-AWQ", "meta-llama/Meta-Llama-3-8B", LLAMA_FACTORY_README),
    ("TechxGenus/Meta-Llama-3-8B-Instruct-GPTQ", "meta-llama/Meta-Llama-3-8B", LLAMA_FACTORY_README),
    ("ISTA-DASLab/Meta-Llama-3-8B-Instruct-AQLM-2Bit-1x16", "meta-llama/Meta-Llama-3-8B", LLAMA_FACTORY_README),
    # Ministral 3 comes as Base, Instruct and Reasoning releases of each size (the collection axolotl's
    # examples/ministral3/README.md links); axolotl's vision example trains the Reasoning one on images.
    ("mistralai/Ministral-3-3B-Reasoning-2512", "mistralai/Ministral-3-3B-Instruct-2512",
     axolotl("examples/ministral3/vision/ministral3-3b-vision-qlora.yml")),
    # "Llama 4 Scout 17Bx16Experts (109B)": the README lists the linearized Scout configs under it
    # (its experts stored as linear layers, "delinearize-llama4" turns it back: same weights).
    ("axolotl-quants/Llama-4-Scout-17B-16E-Linearized-bnb-nf4-bf16", "meta-llama/Llama-4-Scout-17B-16E",
     axolotl("examples/llama-4/README.md")),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "meta-llama/Llama-4-Scout-17B-16E",
     axolotl("examples/llama-4/README.md")),
    # "# use google/gemma-7b if you have access" above `base_model: mhenrichsen/gemma-7b`
    ("mhenrichsen/gemma-7b", "google/gemma-7b", axolotl("examples/archived/gemma/qlora.yml")),    # NVFP4 (ModelOpt) copies, as the examples' first lines say: "Qwen3-30B-A3B MoE LoRA on an NVFP4 (modelopt)
    # checkpoint", "Qwen3-Next-80B-A3B MoE LoRA on an NVFP4 ...", "Gemma-4-26B-A4B MoE LoRA on an NVFP4 ...". Their
    # 4-bit storage is said as not modelled by `check`, like the GPTQ/AWQ copies above.
    ("nvidia/Qwen3-30B-A3B-NVFP4", "Qwen/Qwen3-30B-A3B", axolotl("examples/qwen3/30b-a3b-nvfp4-lora.yaml")),
    ("nvidia/Qwen3-Next-80B-A3B-Instruct-NVFP4", "Qwen/Qwen3-Next-80B-A3B-Instruct",
     axolotl("examples/qwen3-next/qwen3-next-80b-a3b-nvfp4-lora.yaml")),
    ("nvidia/Gemma-4-26B-A4B-NVFP4", "google/gemma-4-26B-A4B", axolotl("examples/gemma4/26b-a4b-moe-nvfp4-lora.yaml")),
    # "base_model: Qwen/Qwen3-4B-Instruct-2507" in its card's front matter (a fine-tune: the same architecture)
    ("katanemo/Plano-Orchestrator-4B", "Qwen/Qwen3-4B-Instruct-2507",
     "the card's base_model: Qwen/Qwen3-4B-Instruct-2507 (huggingface.co/katanemo/Plano-Orchestrator-4B, README.md)"),
    # "This guide trains the MoE experts ... on the NVFP4 checkpoint nvidia/DeepSeek-V4-Flash-NVFP4" of DeepSeek-V4-Flash
    ("nvidia/DeepSeek-V4-Flash-NVFP4", "deepseek-ai/DeepSeek-V4-Flash", axolotl("examples/deepseek-v4/README.md")),
    # a BF16 copy of Mistral-Small-4-119B-2603, which the README names ("available on HuggingFace at ...") above the
    # examples that train the copy
    ("axolotl-ai-co/Mistral-Small-4-119B-2603-BF16", "mistralai/Mistral-Small-4-119B-2603",
     axolotl("examples/mistral4/README.md")),
    # the README's table: `35b-a3b-moe-qlora.yaml` (base_model Qwen3.5-35B-A3B-Base) | Qwen3.5-35B-A3B
    ("Qwen/Qwen3.5-35B-A3B-Base", "Qwen/Qwen3.5-35B-A3B", axolotl("examples/qwen3.5/README.md")),
    # Magistral Small, "found on HuggingFace at 2506, 2507 ..., and 2509 (see Vision)"; "MistralAI has released
    # their 2509 model with vision capabilities": Mistral Small 3.1's vision-language architecture
    ("mistralai/Magistral-Small-2509", "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
     axolotl("examples/magistral/README.md")),    # a BF16 conversion of DeepSeek-V3-0324 ("need to convert to BF16 checkpoint first"), an update of V3 in V3's
    # architecture; the example trains it with LLaMA-Factory's deepseek3 template
    ("deepseek-ai/DeepSeek-V3-0324-BF16", "deepseek-ai/DeepSeek-V3",
     {"repo": "hiyouga/LLaMA-Factory", "path": "examples/ktransformers/train_lora/deepseek_v3_lora_sft_kt.yaml",
      "commit": "ff6d4d12eeb035d6ce06805a5733dd7b29f2ac30"}),
    # "Base DeepSeek-R1-Distill-Qwen-14B." (a leaderboard's entry for it; docker's model card gives 14.77B, Qwen2)
    ("agentica-org/DeepCoder-14B-Preview", "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
     {"repo": "AIComputing101/llm-leaderboard", "path": "models/together/deepcoder-14b-preview.md",
      "commit": "90557b50558dc8c6aa7ccfa2b1f392d01da641b5"}),
    # "The v2 models are trained on a mixture of ... We follow the exactly same ... model architecture ... The only
    # difference between our setting and the original one is the dataset used": OpenLLaMA 3Bv2 is the 3B's shape
    # (litgpt's open_llama_3b entry)
    ("openlm-research/open_llama_3b_v2", "openlm-research/open_llama_3b",
     {"repo": "openlm-research/open_llama", "path": "README.md", "commit": "6e7f73eab7e799e2464f38ed977e537bae02873e"}),
    # "GLM-5.2 (glm_moe_dsa) MoE LoRA on an NVFP4 (modelopt) checkpoint" above `base_model: Mapika/GLM-5.2-NVFP4`; its
    # 4-bit storage is said as not modelled by `check`, like the other NVFP4 copies above
    ("Mapika/GLM-5.2-NVFP4", "zai-org/GLM-5.2", axolotl("examples/glm_moe_dsa/glm-5.2-nvfp4-lora.yaml")),
    # "We are using the 'converted' base models ... We've tested using the LnL-AI/dbrx-base-converted-v2 model as the
    # base model": dbrx-base's weights with its experts re-laid out (the same parameters)
    ("LnL-AI/dbrx-base-converted-v2", "databricks/dbrx-base", axolotl("examples/archived/dbrx/README.md")),
    # "DeepSeek-V2.5 is an upgraded version that combines DeepSeek-V2-Chat and DeepSeek-Coder-V2-Instruct", "236 Billion"
    ("deepseek-ai/DeepSeek-V2.5", "deepseek-ai/DeepSeek-V2",
     {"repo": "xorbitsai/inference", "path": "doc/source/models/builtin/llm/deepseek-v2.5.rst",
      "commit": "da7beeb0bc6085b9f22ca05e8f8894dcf76c4ea5"}),
    # its bitsandbytes 4-bit copy, trained by axolotl's deepseek-v2 example (chat_template deepseek_v2); the 4-bit storage
    # is said as not modelled by `check`, like the other pre-quantized copies above
    ("axolotl-quants/DeepSeek-V2.5-bnb-nf4-bf16", "deepseek-ai/DeepSeek-V2", axolotl("examples/deepseek-v2/qlora-fsdp-2_5.yaml")),
    # "Original model: cogito-v1-preview-qwen-14B by Deep Cogito / Based on: Qwen2.5-14B by Qwen" (an exl2 conversion's
    # card, above the original card it copies); 14.8B on the Hub (Qwen2.5-14B's 14.77B). Deep Cogito's own release post
    # was not at hand.
    ("deepcogito/cogito-v1-preview-qwen-14B", "Qwen/Qwen2.5-14B",
     "the card of cgus/cogito-v1-preview-qwen-14B-exl2 at db190f9 (huggingface.co/cgus/cogito-v1-preview-qwen-14B-exl2, "
     "README.md): \"Based on: Qwen2.5-14B by Qwen\""),
]


def transformers_source(model_type: str, checkpoint: str) -> dict:
    import transformers
    from transformers import AutoConfig

    cls = type(AutoConfig.for_model(model_type))
    module = cls.__module__.removeprefix("transformers.")
    return {"package": "transformers", "version": transformers.__version__,
            "path": "src/transformers/" + module.replace(".", "/") + ".py", "class": cls.__name__,
            "docstring_checkpoint": checkpoint}


def shape_fields(cfg: dict) -> dict:
    """A config as config.json would hold it, less what every config holds alike (token ids, dtype,
    generation and label fields of PreTrainedConfig), at every level (text/vision/audio configs)."""
    from transformers import PretrainedConfig

    generic = PretrainedConfig().to_dict()
    drop = {"transformers_version", "architectures", "id2label", "label2id", "dtype", "torch_dtype",
            "bos_token_id", "eos_token_id", "pad_token_id"}
    return {k: shape_fields(v) if isinstance(v, dict) and "model_type" in v else v for k, v in cfg.items()
            if k not in drop and not (k in generic and generic[k] == v and k != "tie_word_embeddings")}


def defaults_config(model_type: str) -> dict:
    """The class's defaults as config.json would hold them (`shape_fields`)."""
    from transformers import AutoConfig

    return shape_fields(AutoConfig.for_model(model_type).to_dict())


# ---------------------------------------------------------------- conversion scripts' variant tables

def hf_transformers(path: str, commit: str) -> dict:
    return {"repo": "huggingface/transformers", "path": path, "commit": commit}


GEMMA3_CONVERT = hf_transformers("src/transformers/models/gemma3/convert_gemma3_weights.py",
                                 "c1a83acdb3fd77f2e897215d94a5ceaf05c885f1")
GEMMA4_CONVERT = hf_transformers("src/transformers/models/gemma4/convert_gemma4_weights.py",
                                 "ca5ff0b0d29a3b30277e4518644df411193f9490")


def _gemma3(text: dict | None, vision: bool) -> dict:
    """`_VARIANTS` of convert_gemma3_weights.py: Gemma3Config(text_config=Gemma3TextConfig(...),
    vision_config=_VISION_CONFIG or None) as the script writes config.json."""
    from transformers import Gemma3Config, Gemma3TextConfig

    vision_config = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
                     "num_attention_heads": 16, "num_channels": 3, "image_size": 896, "patch_size": 14,
                     "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "attention_dropout": 0.0,
                     "vision_use_head": False}
    if not vision:  # the text-only variants are saved as Gemma3ForCausalLM (model_type gemma3_text)
        return Gemma3TextConfig(**text).to_dict()
    return Gemma3Config(text_config=Gemma3TextConfig(**text), vision_config=vision_config).to_dict()


_G3_COMMON = {"head_dim": 256, "sliding_window": 1024, "rope_scaling": {"rope_type": "linear", "factor": 8.0},
              "rope_theta": 1_000_000, "rope_local_base_freq": 10_000, "attn_logit_softcapping": None,
              "query_pre_attn_scalar": 256}


def _gemma4(variant: str) -> dict:
    """`_VARIANTS` of convert_gemma4_weights.py (the vision and audio configs as the script sets them)."""
    from transformers import Gemma4AudioConfig, Gemma4Config, Gemma4TextConfig, Gemma4VisionConfig

    on_device = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=16, num_attention_heads=12,
                     num_key_value_heads=12, head_dim=64, global_head_dim=64, default_output_length=280,
                     pooling_kernel_size=3, use_clipped_linears=True)
    large = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                 num_key_value_heads=16, head_dim=72, global_head_dim=72, default_output_length=280,
                 pooling_kernel_size=3, use_clipped_linears=False, standardize=True)
    rope = {"full_attention": {"rope_theta": 1_000_000.0, "rope_type": "proportional", "partial_rotary_factor": 0.25},
            "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}}
    default_types = ["sliding_attention"] * 5 + ["full_attention"]
    if variant == "e2b":
        text = dict(hidden_size=1536, hidden_size_per_layer_input=256, intermediate_size=4 * 1536, num_hidden_layers=35,
                    layer_types=(["sliding_attention"] * 4 + ["full_attention"]) * 7, num_attention_heads=8,
                    num_key_value_heads=1, num_global_key_value_heads=None, attention_k_eq_v=False,
                    use_bidirectional_attention=None, num_kv_shared_layers=20, use_double_wide_mlp=True,
                    final_logit_softcapping=30.0, rope_parameters=rope)
        return Gemma4Config(text_config=Gemma4TextConfig(**text), vision_config=Gemma4VisionConfig(**on_device),
                            audio_config=Gemma4AudioConfig(), vision_soft_tokens_per_image=280).to_dict()
    if variant == "31b":
        text = dict(hidden_size=5376, hidden_size_per_layer_input=0, intermediate_size=4 * 5376, num_hidden_layers=60,
                    layer_types=default_types * 10, num_attention_heads=32, num_key_value_heads=16,
                    num_global_key_value_heads=4, attention_k_eq_v=True, use_bidirectional_attention="vision",
                    num_kv_shared_layers=0, sliding_window=1024, final_logit_softcapping=30.0, rope_parameters=rope,
                    max_position_embeddings=262_144)
    else:  # 26b-a4b
        text = dict(hidden_size=2816, hidden_size_per_layer_input=0, intermediate_size=2112, num_hidden_layers=30,
                    layer_types=default_types * 5, num_attention_heads=16, num_key_value_heads=8,
                    num_global_key_value_heads=2, attention_k_eq_v=True, use_bidirectional_attention="vision",
                    num_kv_shared_layers=0, enable_moe_block=True, num_experts=128, moe_intermediate_size=704,
                    top_k_experts=8, sliding_window=1024, final_logit_softcapping=30.0, rope_parameters=rope,
                    max_position_embeddings=262_144)
    return Gemma4Config(text_config=Gemma4TextConfig(**text), vision_config=Gemma4VisionConfig(**large),
                        vision_soft_tokens_per_image=280).to_dict()


GEMMA4_UNIFIED_CONVERT = hf_transformers("src/transformers/models/gemma4_unified/convert_gemma4_unified_weights.py",
                                         "aa291ac486da4f6cc50fc72aea9014bd54a45a4f")


def _gemma4_unified_12b() -> dict:
    """`_VARIANTS["gemma-4-12b"]` of convert_gemma4_unified_weights.py: Gemma 4 Unified, the encoder-free member of
    Gemma 4 (image patches and audio frames projected straight into the decoder; the script keeps the vision and
    audio configs' defaults)."""
    from transformers import (Gemma4UnifiedAudioConfig, Gemma4UnifiedConfig, Gemma4UnifiedTextConfig,
                              Gemma4UnifiedVisionConfig)

    rope = {"full_attention": {"rope_theta": 1_000_000.0, "rope_type": "proportional", "partial_rotary_factor": 0.25},
            "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}}
    text = Gemma4UnifiedTextConfig(
        hidden_size=3840, intermediate_size=4 * 3840, num_hidden_layers=48,
        layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 8, num_attention_heads=16,
        num_key_value_heads=8, num_global_key_value_heads=1, attention_k_eq_v=True, use_bidirectional_attention="vision",
        num_kv_shared_layers=0, use_double_wide_mlp=False, final_logit_softcapping=30.0, rope_parameters=rope,
        vocab_size_per_layer_input=0, hidden_size_per_layer_input=0, enable_moe_block=False, num_experts=None,
        top_k_experts=None, moe_intermediate_size=None)
    return Gemma4UnifiedConfig(text_config=text, vision_config=Gemma4UnifiedVisionConfig(),
                               audio_config=Gemma4UnifiedAudioConfig()).to_dict()


MLC_PRESETS = {"repo": "mlc-ai/mlc-llm", "path": "python/mlc_llm/model/model_preset.py",
               "commit": "79d603f085f50500e9509fa01785ffa7ecfaaa93"}


def _mlc(key: str) -> dict:
    """MLC LLM's copy of a model's config.json (MODEL_PRESETS[key]) from that file at that commit
    (`git show COMMIT:python/mlc_llm/model/model_preset.py > $MLC_PRESET_FILE` before a build)."""
    import ast
    import os

    tree = ast.parse(open(os.environ.get("MLC_PRESET_FILE", "/tmp/mlc_preset.py"), encoding="utf-8").read())
    node = next(n for n in tree.body if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "MODEL_PRESETS")
    presets = ast.literal_eval(node.value)
    return dict(presets[key])


def _phi_msft(key: str) -> dict:
    """MLC's phi-1_5 and phi-2 presets are the remote-code `phi-msft` config.json; the same shape in transformers'
    PhiConfig names: n_embd → hidden_size, n_layer → num_hidden_layers, n_head → num_attention_heads, n_inner None →
    4·n_embd, rotary_dim / head size → partial_rotary_factor, n_positions → max_position_embeddings."""
    from transformers import PhiConfig

    m = _mlc(key)
    head = m["n_embd"] // m["n_head"]
    return PhiConfig(vocab_size=m["vocab_size"], hidden_size=m["n_embd"], intermediate_size=4 * m["n_embd"],
                     num_hidden_layers=m["n_layer"], num_attention_heads=m["n_head"],
                     partial_rotary_factor=m["rotary_dim"] / head, max_position_embeddings=m["n_positions"],
                     tie_word_embeddings=m["tie_word_embeddings"]).to_dict()


def _stablelm_2_1_6b() -> dict:
    """MLC's stablelm-2-zephyr-1_6b preset (its config.json) in StableLmConfig: 24 layers of 2048, 32 heads, MLP 5632,
    q/k/v biases, LayerNorm, rotary on a quarter of each head, vocabulary 100352, untied head. Zephyr is the
    instruction-tuned release of StableLM 2 1.6B, the base the examples train ("base and instruction-tuned versions of
    StableLM 2 1.6B": the Stable LM 2 1.6B Technical Report, arXiv:2402.17834, abstract)."""
    from transformers import StableLmConfig

    m = _mlc("stablelm-2-zephyr-1_6b")
    return StableLmConfig(**{k: v for k, v in m.items() if k not in ("architectures", "torch_dtype",
                                                                    "transformers_version")}).to_dict()


TORCHTUNE_LLAMA4 = {"repo": "pytorch/torchtune", "path": "torchtune/models/llama4/_model_builders.py",
                    "commit": "bd2a0fc7c31430972728494fa01aaeeb0ebf1ba1"}


def _llama4(maverick: bool) -> dict:
    """Llama4Config as torchtune's llama4_scout_17b_16e / llama4_maverick_17b_128e builders build it.

    Text: Llama4TextConfig's defaults are Scout's decoder (5120 wide, 48 layers, 40 heads, 8 KV heads, vocab
    202048, experts of 8192 and a shared one, q/k norm); Maverick's builder changes num_experts 128,
    moe_every_n_layers 2 (dense layers of mlp_hidden_dim 16384 between), use_qk_norm False.
    Vision (both builders): clip_embed_dim 1408, clip_num_layers 34, num_heads 16, patch 14, tiles of 336,
    an MLP of 4·1408 (torchtune clip_vision_encoder), projection_embed_dim 4096. Llama4VisionConfig's own
    defaults (768 wide) are not these."""
    from transformers import Llama4Config, Llama4TextConfig, Llama4VisionConfig

    text = Llama4TextConfig(**({"num_local_experts": 128, "interleave_moe_layer_step": 2, "use_qk_norm": False}
                               if maverick else {}))
    vision = Llama4VisionConfig(hidden_size=1408, intermediate_size=4 * 1408, num_hidden_layers=34,
                                num_attention_heads=16, patch_size=14, image_size=336, projector_input_dim=4096,
                                projector_output_dim=4096, vision_output_dim=4096)
    return Llama4Config(text_config=text, vision_config=vision).to_dict()


# config.json of openai/gpt-oss-20b as a repository copies it (its shape fields; the copy's
# quantization_config is dropped: the original's experts are MXFP4, which axolotl's examples dequantize).
GPT_OSS_20B = {"repo": "EchoCog/gpt-oss-20b", "path": "config.json",
               "commit": "52971a17bf2f66dd519c8d26217b1405e425a246"}


def _gpt_oss_20b() -> dict:
    return {"model_type": "gpt_oss", "attention_bias": True, "head_dim": 64, "hidden_size": 2880,
            "intermediate_size": 2880, "layer_types": ["sliding_attention", "full_attention"] * 12,
            "max_position_embeddings": 131072, "num_attention_heads": 64, "num_experts_per_tok": 4,
            "num_hidden_layers": 24, "num_key_value_heads": 8, "num_local_experts": 32, "sliding_window": 128,
            "swiglu_limit": 7.0, "tie_word_embeddings": False, "vocab_size": 201088}


LITGPT = {"repo": "Lightning-AI/litgpt", "path": "litgpt/config.py",
          "commit": "26857050fe3ff627cd714fe92f5838f51a3d5efa"}
TORCHTUNE_QWEN2 = {"repo": "pytorch/torchtune", "path": "torchtune/models/qwen2/_model_builders.py",
                   "commit": "bd2a0fc7c31430972728494fa01aaeeb0ebf1ba1"}


def _pythia_1_4b() -> dict:
    """litgpt's pythia-1.4b(-deduped) entry in GPTNeoXConfig's names: n_embd 2048, n_layer 24, n_head 16,
    intermediate_size 8192, padded_vocab_size 50304, rotary_percentage 0.25, parallel_residual, untied head."""
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(hidden_size=2048, num_hidden_layers=24, num_attention_heads=16, intermediate_size=8192,
                         vocab_size=50304, rotary_pct=0.25, use_parallel_residual=True, tie_word_embeddings=False,
                         max_position_embeddings=2048).to_dict()


# The Qwen2-7B decoder (torchtune's qwen2_7b, the index's Qwen/Qwen2-7B group)
QWEN2_7B_TEXT = {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                 "intermediate_size": 18944, "vocab_size": 152064, "tie_word_embeddings": False}


def _qwen2_vl_7b() -> dict:
    """Qwen2-VL-7B: the Qwen2-7B decoder and Qwen2VLVisionConfig's tower (32 blocks of 1280, the 675M ViT the
    Qwen2-VL paper, arXiv 2409.12191, gives every size), its merger projecting to the decoder's width."""
    from transformers import Qwen2VLConfig

    text = {**QWEN2_7B_TEXT, "max_position_embeddings": 32768}
    return Qwen2VLConfig(text_config=text, vision_config={"hidden_size": 3584}).to_dict()


MEGATRON_BRIDGE_COMMIT = "067f987df03b8355b03192d88d70f1709fedf51a"


def megatron_bridge(path: str) -> dict:
    return {"repo": "NVIDIA-NeMo/Megatron-Bridge", "path": path, "commit": MEGATRON_BRIDGE_COMMIT}


# Megatron-Bridge's tests copy the config.json of Qwen3.5-27B (qwen3_5_27b_config_dict) and Qwen3.5-397B-A17B
# (qwen3_5_397b_a17b_config_dict); its VL test pairs both text configs with Qwen3_5VisionConfig() (_make_vision_config).
QWEN35_TEXT = megatron_bridge("tests/unit_tests/models/qwen/test_qwen35_bridge.py")
QWEN35_VL = megatron_bridge("tests/unit_tests/models/qwen_vl/test_qwen35_vl_bridge.py")
_QWEN35_COMMON = dict(vocab_size=248320, max_position_embeddings=262144, tie_word_embeddings=False, head_dim=256,
                      full_attention_interval=4, linear_conv_kernel_dim=4, linear_key_head_dim=128,
                      linear_value_head_dim=128, linear_num_key_heads=16)


def _qwen3_5(moe: bool) -> dict:
    """Every Qwen3.5 is a vision-language model ("All Qwen3.5 models are early-fusion vision-language models":
    axolotl's examples/qwen3.5/README.md): the text config as Megatron-Bridge's test copies it (head_dim 256 from
    its VL test's copy), the vision tower Qwen3_5VisionConfig's (27 blocks of 1152), its merger projecting to the
    decoder's width (out_hidden_size)."""
    from transformers import Qwen3_5Config, Qwen3_5MoeConfig, Qwen3_5MoeVisionConfig, Qwen3_5VisionConfig

    if not moe:
        text = dict(_QWEN35_COMMON, hidden_size=5120, intermediate_size=17408, num_hidden_layers=64,
                    num_attention_heads=24, num_key_value_heads=4, linear_num_value_heads=48)
        return Qwen3_5Config(text_config=text, vision_config=Qwen3_5VisionConfig(out_hidden_size=5120).to_dict(),
                             tie_word_embeddings=False).to_dict()
    text = dict(_QWEN35_COMMON, hidden_size=4096, intermediate_size=1024, moe_intermediate_size=1024,
                shared_expert_intermediate_size=4096, num_experts=512, num_experts_per_tok=10, num_hidden_layers=60,
                num_attention_heads=32, num_key_value_heads=2, linear_num_value_heads=64)
    return Qwen3_5MoeConfig(text_config=text, vision_config=Qwen3_5MoeVisionConfig(out_hidden_size=4096).to_dict(),
                            tie_word_embeddings=False).to_dict()


# Qwen3.5-9B: the decoder as slime's scripts/models/qwen3.5-9B.sh gives it (32 layers of 4096, 16 heads of 256 over 4 K/V
# heads, gated attention, MLP 12288, vocabulary 248320, untied head); its Gated DeltaNet layers as a tensor manifest of the
# checkpoint lists them (in_proj_qkv 8192 x 4096 = 16 key heads of 128 twice and 32 value heads of 128, A_log of 32,
# conv1d 8192 x 4: linear_num_key_heads 16, linear_num_value_heads 32, head dims 128, kernel 4), and its vision tower
# (27 blocks of 1152, merger to 4096) Qwen3_5VisionConfig's. The manifest's 775 tensors hold 9,653,104,368 parameters,
# 243,290,624 of them the 15 mtp.* tensors transformers does not build: the rest, 9,409,813,744, is this config's total
# (tests/test_model_index.py). The context length (262144) is the family's, as Megatron-Bridge's copies of the 27B and
# 397B configs hold it.
QWEN35_9B = {"repo": "THUDM/slime", "path": "scripts/models/qwen3.5-9B.sh", "commit": "624b824a898ab0ec1fcb4d373004c7f3852bf515"}
QWEN35_9B_TENSORS = {"repo": "jyohukuchan/uLLM-project",
                     "path": "benchmarks/results/2026-07-01/aq/2026-07-01-ullm-quant-plan-qwen35-9b.json",
                     "commit": "b020bcf9c4ba81b68fd1fdedb000b38e4505648d"}


def _qwen3_5_9b() -> dict:
    from transformers import Qwen3_5Config, Qwen3_5VisionConfig

    text = dict(_QWEN35_COMMON, hidden_size=4096, intermediate_size=12288, num_hidden_layers=32, num_attention_heads=16,
                num_key_value_heads=4, linear_num_value_heads=32)
    return Qwen3_5Config(text_config=text, vision_config=Qwen3_5VisionConfig(out_hidden_size=4096).to_dict(),
                         tie_word_embeddings=False).to_dict()

# Qwen3-VL-4B-Instruct's config.json as musubi-tuner vendors it ("Vendored copy of the Qwen3-VL-4B-Instruct config.json"):
# a Qwen3-4B-shaped decoder with tied embeddings and a 24-block ViT of 1024 whose merger projects to 2560.
QWEN3_VL_4B = {"repo": "kohya-ss/musubi-tuner", "path": "src/musubi_tuner/krea2/krea2_encoder.py",
               "commit": "7c1cf7275b83d641c87dbbade14aad8abe6c6546"}


def _qwen3_vl_4b() -> dict:
    from transformers import Qwen3VLConfig

    text = {"attention_bias": False, "head_dim": 128, "hidden_act": "silu", "hidden_size": 2560, "intermediate_size": 9728,
            "max_position_embeddings": 262144, "num_attention_heads": 32, "num_hidden_layers": 36,
            "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_theta": 5000000, "tie_word_embeddings": True,
            "rope_scaling": {"mrope_interleaved": True, "mrope_section": [24, 20, 20], "rope_type": "default"},
            "vocab_size": 151936}
    vision = {"deepstack_visual_indexes": [5, 11, 17], "depth": 24, "hidden_act": "gelu_pytorch_tanh", "hidden_size": 1024,
              "in_channels": 3, "intermediate_size": 4096, "num_heads": 16, "num_position_embeddings": 2304,
              "out_hidden_size": 2560, "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2}
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True).to_dict()


# Qwen3-VL-30B-A3B: the decoder as slime's scripts/models/qwen3-vl-30b-a3b.sh gives it (48 layers of 2048, 32 heads of 128
# over 4 K/V heads, 128 experts of 768 with 8 active in every layer, vocabulary 151936, untied head, rotary base 5e6:
# Qwen3-30B-A3B's shape), the vision tower Qwen3VLMoeVisionConfig's defaults (27 blocks of 1152, the docstring naming
# Qwen3-VL-30B-A3B-Instruct) with its merger projecting to the decoder's width.
QWEN3_VL_30B_A3B = {"repo": "THUDM/slime", "path": "scripts/models/qwen3-vl-30b-a3b.sh",
                    "commit": "dfdf8e3dcabd502250b0a5f43c8cf4c8c971a131"}


def _qwen3_vl_30b_a3b() -> dict:
    from transformers import Qwen3VLMoeConfig, Qwen3VLMoeVisionConfig

    text = dict(hidden_size=2048, intermediate_size=6144, moe_intermediate_size=768, num_hidden_layers=48,
                num_attention_heads=32, num_key_value_heads=4, head_dim=128, num_experts=128, num_experts_per_tok=8,
                decoder_sparse_step=1, mlp_only_layers=[], vocab_size=151936, rope_theta=5000000,
                max_position_embeddings=262144, tie_word_embeddings=False)
    return Qwen3VLMoeConfig(text_config=text, vision_config=Qwen3VLMoeVisionConfig(out_hidden_size=2048).to_dict(),
                            tie_word_embeddings=False).to_dict()


# Yi-34B's shape as Megatron-LM's NVLM example builds its "yi-34b" language model (Nous-Hermes-2-Yi-34B's weights, a Yi-34B
# fine-tune): 60 layers of 7168, 56 heads over 8 K/V groups, SwiGLU 20480, vocabulary 64000, untied head, rotary base 5e6, no
# biases; "The Yi series models follow the same model architecture as LLaMA" and Yi-34B-Chat is one of "two chat models based
# on previous released base models" (01-ai/Yi's README).
YI_34B = {"repo": "NVIDIA/Megatron-LM", "path": "examples/multimodal/nvlm/pretrain_yi_34b_internvit_6b.sh",
          "commit": "7f2bc4ffdc085fa7f07c6944dd6331ebc09ed5e5"}
YI_README = {"repo": "01-ai/Yi", "path": "README.md", "commit": "002dde960468571be2b00a34726489b60b36c7a6"}


def _yi_34b() -> dict:
    return {"model_type": "llama", "hidden_size": 7168, "num_hidden_layers": 60, "num_attention_heads": 56,
            "num_key_value_heads": 8, "intermediate_size": 20480, "vocab_size": 64000, "rope_theta": 5000000.0,
            "tie_word_embeddings": False}


# Mistral Small 3 (2501): params.json of Mistral-Small-24B-Instruct-2501 as a repository copies it, and beside it
# the safetensors index (lm_head.weight listed: untied; total_size 47144806400 bytes of bf16 = 23,572,403,200).
MISTRAL_SMALL_3 = {"repo": "OpenMOSE/RWKV-LM-RLHF", "path": "main/tokenizer/mistralsmall3/params.json",
                   "commit": "c394e06d2ea0fdad4679af83b9dd77b517a87f49"}
MISTRAL_SMALL_3_INDEX = {"repo": "OpenMOSE/RWKV-LM-RLHF", "path": "main/tokenizer/mistralsmall3/model.safetensors.index.json",
                         "commit": "7e8f62ab3f43bd70de656d5205d1cb4216b4ea58"}
# "Building upon Mistral Small 3.1 (2503) ... 24B parameters": Magistral-Small-2506's card as a repository copies it
MAGISTRAL_CARD = {"repo": "WillIsback/sportsee", "path": "docs/magistral-small.md",
                  "commit": "6236c44607df2c96e936770712acde78e1ebecfe"}


def _mistral_small(positions: bool) -> dict:
    """params.json in config.json's names: dim → hidden_size, n_layers → num_hidden_layers, head_dim, hidden_dim →
    intermediate_size, n_heads → num_attention_heads, n_kv_heads → num_key_value_heads, vocab_size, max_seq_len →
    max_position_embeddings. Mistral Small 3.1's text decoder has these shapes too (Mistral3Config's text defaults,
    its docstring naming Mistral-Small-3.1-24B-Instruct-2503); the text-only models built on 3.1 (Devstral, Magistral)
    leave the context length out, 3.1 having extended it."""
    cfg = {"model_type": "mistral", "hidden_size": 5120, "num_hidden_layers": 40, "head_dim": 128,
           "intermediate_size": 32768, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 131072,
           "tie_word_embeddings": False}
    return {**cfg, "max_position_embeddings": 32768} if positions else cfg


# GLM-4.5-Air's config.json as Megatron-Bridge's test copies it ("Mock config for GLM 4.5 Air 106B model"), under
# transformers' model_type glm4_moe (the copy names the remote-code "glm" its auto_map loads; the fields are Glm4MoeConfig's).
GLM45_AIR = megatron_bridge("tests/unit_tests/models/glm/test_glm45_bridge.py")


def _glm45_air() -> dict:
    from transformers import Glm4MoeConfig

    return Glm4MoeConfig(attention_bias=True, first_k_dense_replace=1, head_dim=128, hidden_size=4096,
                         intermediate_size=10944, max_position_embeddings=131072, moe_intermediate_size=1408,
                         n_routed_experts=128, n_shared_experts=1, num_attention_heads=96, num_experts_per_tok=8,
                         num_hidden_layers=46, num_key_value_heads=8, partial_rotary_factor=0.5,
                         routed_scaling_factor=2.5, tie_word_embeddings=False, use_qk_norm=False,
                         vocab_size=151552).to_dict()


# Qwen2.5-VL at 3584 wide and 28 layers (the 7B) as a repository prints the loaded model: 32 vision blocks of 1280
# (MLP 3420, Conv3d patches 2x14x14), a merger from 4·1280 to 3584, the Qwen2-7B decoder's shapes (28 layers,
# q 3584, k/v 512, MLP 18944, 152064 rows), a separate lm_head. (Qwen2_5_VLConfig's context length, 128000, stays.)
QWEN25_VL_GRAPH = {"repo": "acproject/duorou", "path": "docs/qwen2.5vl_graph.md",
                   "commit": "11191b4f9dd928d67dcb3911a181c89024e2e256"}


def _qwen2_5_vl_7b() -> dict:
    from transformers import Qwen2_5_VLConfig

    vision = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "out_hidden_size": 3584, "patch_size": 14,
              "temporal_patch_size": 2}
    return Qwen2_5_VLConfig(text_config=QWEN2_7B_TEXT, vision_config=vision, tie_word_embeddings=False).to_dict()


# DeepSeek-V3's config.json as Megatron-Bridge's test copies it (ds_v3_config: 61 layers of 7168, 256 routed experts,
# MLA with q_lora_rank 1536; its quantization_config, fp8 storage of the original, left out). The multi-token
# prediction module (num_nextn_predict_layers) is not built by transformers: 671B, as the V3 README counts.
DEEPSEEK_V3 = megatron_bridge("tests/unit_tests/models/deepseek/test_deepseek_bridges.py")


def _deepseek_v3() -> dict:
    from transformers import DeepseekV3Config

    return DeepseekV3Config(
        first_k_dense_replace=3, hidden_size=7168, intermediate_size=18432, kv_lora_rank=512,
        max_position_embeddings=163840, moe_intermediate_size=2048, n_group=8, n_routed_experts=256,
        n_shared_experts=1, norm_topk_prob=True, num_attention_heads=128, num_experts_per_tok=8, num_hidden_layers=61,
        num_key_value_heads=128, q_lora_rank=1536, qk_nope_head_dim=128, qk_rope_head_dim=64,
        routed_scaling_factor=2.5, tie_word_embeddings=False, topk_group=4, v_head_dim=128, vocab_size=129280,
        rope_theta=10000, rope_scaling={"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                                        "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                                        "type": "yarn"}).to_dict()


# "12B parameter multimodal decoder based on Mistral Nemo and 400M parameter vision encoder": pixtral-12b as
# transformers loads it (LlavaForConditionalGeneration), its tower PixtralVisionConfig's defaults (the docstring names
# pixtral-12b), its decoder the index's Mistral-Nemo-Base-2407 config.
PIXTRAL_README = {"repo": "openvinotoolkit/openvino_notebooks", "path": "notebooks/pixtral/README.md",
                  "commit": "027b97060080b805b9a67adb95dd423d277ce6fb"}
NEMO_CONFIG, NEMO_SOURCE = next((cfg, src) for ids, cfg, src in QUOTED if "mistralai/Mistral-Nemo-Base-2407" in ids)


def _pixtral_12b() -> dict:
    from transformers import LlavaConfig, PixtralVisionConfig

    return LlavaConfig(vision_config=PixtralVisionConfig().to_dict(), text_config=dict(NEMO_CONFIG),
                       projector_hidden_act="gelu", image_token_index=10, vision_feature_layer=-1).to_dict()



# Falcon-H1-0.5B's config.json as Megatron-Bridge's Falcon-H1 bridge test copies it (FALCON_H1_500M_CONFIG: 36 parallel
# Mamba-2 + attention + MLP layers of 1024, vocabulary 32784, untied head); the bridge's docs name Falcon-H1-0.5B-Instruct
# as the checkpoint its examples target. The sizes 1.5B to 34B differ (intermediate sizes and vocabularies in no source at
# hand), so they are not entered from it. The copy leaves out mamba_d_ssm, which FalconH1Config requires to be
# mamba_n_heads · mamba_d_head (24 · 64 = 1536; its default, 1024, fails that check).
FALCON_H1_05B = megatron_bridge("tests/unit_tests/models/falcon_h1/test_falcon_h1_bridge.py")
FALCON_H1_DOCS = megatron_bridge("docs/models/falcon/falcon-h1.md")


def _falcon_h1_05b() -> dict:
    from transformers import FalconH1Config

    return FalconH1Config(
        attention_bias=False, attention_in_multiplier=1.0, attention_out_multiplier=0.9375, attn_layer_indices=None,
        embedding_multiplier=5.656854249492381, head_dim=64, hidden_act="silu", hidden_size=1024,
        intermediate_size=2048, key_multiplier=0.39062499999999994, lm_head_multiplier=0.0390625, mamba_chunk_size=128,
        mamba_conv_bias=True, mamba_d_conv=4, mamba_d_head=64, mamba_d_state=128, mamba_expand=2, mamba_n_groups=1,
        mamba_n_heads=24, mamba_d_ssm=24 * 64, mamba_norm_before_gate=False, mamba_proj_bias=False, mamba_rms_norm=False, mamba_use_mlp=True,
        max_position_embeddings=16384, mlp_bias=False, mlp_multipliers=[0.8838834764831844, 0.5859375],
        num_attention_heads=8, num_hidden_layers=36, num_key_value_heads=2, projectors_bias=False, rms_norm_eps=1e-5,
        rope_theta=100000000000.0, ssm_in_multiplier=1.25,
        ssm_multipliers=[0.3535533905932738, 0.25, 0.3535533905932738, 0.5, 0.3535533905932738],
        ssm_out_multiplier=0.23570226039551587, tie_word_embeddings=False, vocab_size=32784).to_dict()


# MiMo-7B's config.json in its GitHub repository (model_type mimo, remote code MiMoForCausalLM: "MiMo follows Qwen2 attention
# behavior and adds MTP on top", Megatron-Bridge's mimo_bridge.py). Entered as the Qwen2 decoder it is (36 layers of 4096,
# 32 heads over 8 K/V heads, q/k/v biases, MLP 11008, vocabulary 151680, untied head); its multi-token-prediction layers
# (num_nextn_predict_layers) are not counted, as for DeepSeek-V3: ~0.2B each (a decoder layer and a 2h->h projection).
MIMO_CONFIG = {"repo": "XiaomiMiMo/MiMo", "path": "config.json", "commit": "43be2d82b1696a3645bdaccc7e268271b402766f"}
MIMO_README = {"repo": "XiaomiMiMo/MiMo", "path": "README.md", "commit": "0036ab5039bb35c2fd4812848411793d70795080"}


def _mimo_7b() -> dict:
    return {"model_type": "qwen2", "hidden_size": 4096, "num_hidden_layers": 36, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 11008, "vocab_size": 151680,
            "max_position_embeddings": 32768, "rope_theta": 640000, "tie_word_embeddings": False}


# Nemotron 3 Nano 30B-A3B: config.json as Megatron-Bridge's NemotronH bridge test copies it (active_nemotronh_config_dict:
# 52 layers of 2688, the pattern MEMEM*E... of 23 Mamba-2, 23 MoE and 6 attention layers, 64 Mamba heads of 64 in 8 groups,
# state 128, 32 heads of 128 over 2 K/V heads, vocabulary 131072, untied head; the fixture sets n_routed_experts None) and
# its experts as Megatron-Bridge's Nemotron3NanoProvider gave them (128 routed experts of 1856 with 6 active, a shared
# expert of 3712, context 262144), before the size-specific providers were removed.
NEMOTRON_H_TEST = megatron_bridge("tests/unit_tests/models/nemotronh/test_nemotron_h_bridge.py")
NEMOTRON3_NANO_PROVIDER = {"repo": "NVIDIA-NeMo/Megatron-Bridge",
                           "path": "src/megatron/bridge/models/nemotronh/nemotron_h_provider.py",
                           "commit": "38b4a06ba1ede1b84f6607885821495717d05a7a"}


def _nemotron3_nano() -> dict:
    from transformers import NemotronHConfig

    return NemotronHConfig(
        hidden_size=2688, num_hidden_layers=52,
        hybrid_override_pattern="MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME", num_attention_heads=32,
        num_key_value_heads=2, head_dim=128, intermediate_size=1856, mamba_num_heads=64, mamba_head_dim=64,
        ssm_state_size=128, n_groups=8, conv_kernel=4, expand=2, vocab_size=131072, tie_word_embeddings=False,
        max_position_embeddings=262144, n_routed_experts=128, moe_intermediate_size=1856,
        moe_shared_expert_intermediate_size=3712, num_experts_per_tok=6, n_shared_experts=1,
        routed_scaling_factor=2.5).to_dict()


# GLM-5.2 (744B-A40B): GlmMoeDsaConfig's defaults are GLM-5's shape as slime's scripts/models/glm5-744B-A40B.sh gives it
# (78 layers of 6144, 3 dense of 12288 then 75 MoE layers of 256 experts of 2048 with 8 active and a shared one, MLA with
# q_lora_rank 2048, kv_lora_rank 512, q/k heads 192 + 64, v heads 256, 64 heads, vocabulary 154880, untied head);
# slime's glm5.2-744B-A40B.sh is the same but for the rotary base (8e6) and DSA cross-layer index sharing: "Only the
# computing layers (layer 1,2,3,7,11,...,75 in Megatron 1-indexing) carry indexer weights", the schedule
# index_topk_freq=4, index_skip_topk_offset=3, which GlmMoeDsaConfig turns into exactly those 21 "full" indexer layers.
GLM52 = {"repo": "THUDM/slime", "path": "scripts/models/glm5.2-744B-A40B.sh", "commit": "624b824a898ab0ec1fcb4d373004c7f3852bf515"}


def _glm52() -> dict:
    from transformers import GlmMoeDsaConfig

    return GlmMoeDsaConfig(index_topk_freq=4, index_skip_topk_offset=3,
                           rope_parameters={"rope_theta": 8000000.0, "rope_type": "default"}).to_dict()


# GenZ-LLM-Analyzer's model tables copy the shape fields of Hugging Face config.json files, each under the URL of the
# config.json it copies ("# https://huggingface.co/<id>/blob/main/config.json").
def genz(path: str, commit: str) -> dict:
    return {"repo": "abhibambhaniya/GenZ-LLM-Analyzer", "path": path, "commit": commit}


GENZ_ALIBABA = genz("GenZ/Models/Model_sets/alibaba.py", "13ebfb842b4248bf0252d089a904181e33ead320")
GENZ_MISTRAL = genz("GenZ/Models/Model_sets/mistral.py", "13ebfb842b4248bf0252d089a904181e33ead320")
GENZ_MISC = genz("GenZ/Models/Model_sets/misc.py", "0794055bd6e0e8f019e54f5fd3fe1156dc46c94c")

# Qwen-7B (remote code QWenLMHeadModel, model_type qwen): GenZ's copy of its config.json (32 layers of 4096, 32 heads,
# intermediate_size 22016, vocabulary 151936). In Qwen's modeling_qwen.py each block is the Qwen2 layout: c_attn, one
# q/k/v projection with a bias; c_proj without one (no_bias); an MLP of w1, w2 (hidden -> intermediate_size // 2, no
# bias) and c_proj back; two RMSNorms; a separate lm_head. Entered as that Qwen2 decoder (MHA: 32 K/V heads, MLP 11008).
QWEN_MODELING = {"repo": "Palpitate-v/LLM4ADD", "path": "modeling_qwen.py", "commit": "9abbf7c721d504235c65c94a443f77540d89d367"}


def _qwen_7b() -> dict:
    return {"model_type": "qwen2", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 32, "intermediate_size": 22016 // 2, "vocab_size": 151936,
            "max_position_embeddings": 8192, "tie_word_embeddings": False}


# Ministral-8B-Instruct-2410: GenZ's copy of its config.json (36 layers of 4096, 32 heads over 8 K/V heads, MLP 12288,
# vocabulary 131072); MistralForCausalLM with an untied head (8.02B on its card; tied it would be 7.48B).
def _ministral_8b() -> dict:
    return {"model_type": "mistral", "hidden_size": 4096, "num_hidden_layers": 36, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 12288, "vocab_size": 131072,
            "max_position_embeddings": 32768, "tie_word_embeddings": False}


# databricks/dbrx-base: GenZ's copy of its config.json (40 layers of 6144, 48 heads over 8 K/V heads, 16 experts of
# 10752 with 4 active, vocabulary 100352, context 32768) in DbrxConfig's nested names. The attention block (clip_qkv 8,
# rope_theta 500000) and the untied head are as mlxcel's test copies dbrx-instruct's config.json, whose shape fields are
# the base's (the same 6144/48/40/8/10752/16/4/100352).
DBRX_INSTRUCT_CONFIG = {"repo": "lablup/mlxcel", "path": "src/models/dbrx_tests.rs",
                        "commit": "08e0903694fd368eec795583d326875e90fde879"}


def _dbrx() -> dict:
    from transformers import DbrxConfig

    return DbrxConfig(d_model=6144, n_heads=48, n_layers=40, max_seq_len=32768, vocab_size=100352,
                      attn_config={"kv_n_heads": 8, "clip_qkv": 8, "rope_theta": 500000}, tie_word_embeddings=False,
                      ffn_config={"ffn_hidden_size": 10752, "moe_num_experts": 16, "moe_top_k": 4}).to_dict()


# AI21-Jamba-1.5-Large: GenZ's copy of its config.json (72 layers of 8192, attention every 8th layer from the 4th, 16
# experts of 24576 with 2 active every other layer from the 2nd, Mamba state 16, conv 4, dt rank 512, expand 2, 64 heads
# over 8 K/V heads, vocabulary 65536, context 262144) in JambaConfig (whose head is untied by default, as Jamba-v0.1's).
def _jamba_15_large() -> dict:
    from transformers import JambaConfig

    return JambaConfig(hidden_size=8192, intermediate_size=24576, num_hidden_layers=72, num_attention_heads=64,
                       num_key_value_heads=8, num_experts=16, num_experts_per_tok=2, attn_layer_offset=4,
                       attn_layer_period=8, expert_layer_offset=1, expert_layer_period=2, mamba_d_conv=4,
                       mamba_d_state=16, mamba_dt_rank=512, mamba_expand=2, vocab_size=65536,
                       max_position_embeddings=262144).to_dict()


# tiiuae/falcon-mamba-7b: experimental-experiment's copy of its config.json (`get_falcon_mamba_7b`, "See
# falcon-mamba-7b/config.json"): 64 Mamba1 layers of 4096, d_inner 8192, state 16, time-step rank 256, conv 4,
# vocabulary 65024, an untied head, the residual in fp32. 7.27B in all, the parameter count promptlayer.com's model page
# gives (tests/test_model_index.py).
FALCON_MAMBA_7B = {"repo": "sdpython/experimental-experiment",
                   "path": "experimental_experiment/torch_models/llm_model_helper.py",
                   "commit": "04097e3040047505e7cac0c2c9040ff294fdd980"}


def _falcon_mamba_7b() -> dict:
    from transformers import FalconMambaConfig

    return FalconMambaConfig(hidden_size=4096, num_hidden_layers=64, intermediate_size=8192, expand=16, state_size=16,
                             time_step_rank=256, conv_kernel=4, vocab_size=65024, tie_word_embeddings=False,
                             residual_in_fp32=True, use_bias=False, use_conv_bias=True).to_dict()


# mlxcel's loader tests copy the config.json of the mlx-community 4-bit conversions ("Mirrors the real checkpoint's
# config.json"); the shape fields are the original's (the quantization block is the conversion's own and is left out).
def mlxcel(path: str, commit: str) -> dict:
    return {"repo": "lablup/mlxcel", "path": path, "commit": commit}


SEED_OSS_CONFIG = mlxcel("src/models/seed_oss_tests.rs", "3e30f61ad6f3f7cc3530a831067acf79596d3205")
APERTUS_CONFIG = mlxcel("src/models/apertus_tests.rs", "0c09b02acfc37251f44afcfe3dbf84792d8fe8f8")
TRINITY_CONFIG = mlxcel("src/models/afmoe_tests.rs", "1a0ff240c88aed27f912765534c126975e6c2678")


def _seed_oss_36b() -> dict:
    """Seed-OSS-36B-Instruct: 64 layers of 5120, 80 heads of 128 over 8 K/V heads, q/k/v biases, MLP 27648, vocabulary
    155136, untied head, rotary base 1e7, 524288 positions."""
    from transformers import SeedOssConfig

    return SeedOssConfig(hidden_size=5120, num_hidden_layers=64, num_attention_heads=80, num_key_value_heads=8, head_dim=128,
                         intermediate_size=27648, vocab_size=155136, attention_bias=True, attention_out_bias=False,
                         mlp_bias=False, max_position_embeddings=524288, tie_word_embeddings=False,
                         rope_parameters={"rope_theta": 10000000.0, "rope_type": "default"}).to_dict()


def _apertus_8b() -> dict:
    """Apertus-8B-Instruct-2509: 32 layers of 4096, 32 heads over 8 K/V heads, a 2-matrix xIELU MLP of 21504, q/k norms,
    vocabulary 131072, untied head, llama3 rotary scaling (factor 8 from 8192), 65536 positions."""
    from transformers import ApertusConfig

    return ApertusConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                         intermediate_size=21504, vocab_size=131072, max_position_embeddings=65536,
                         tie_word_embeddings=False).to_dict()


def _trinity_nano() -> dict:
    """Trinity-Nano-Preview (AfmoeForCausalLM): 1024 wide, heads of 128 (8, over 2 K/V heads), 2 dense layers of 3072
    then MoE layers of 128 experts of 256 with 8 active and a shared one, vocabulary 200192, untied head. The copy
    truncates layer_types to 8 entries and says "the real file lists 56"; the 56 layers are entered with the copy's
    3-sliding-1-full pattern (global_attn_every_n_layers 4; sliding and full layers hold the same weights)."""
    from transformers import AfmoeConfig

    return AfmoeConfig(
        head_dim=128, hidden_size=1024, intermediate_size=3072, num_hidden_layers=56,
        layer_types=(["sliding_attention"] * 3 + ["full_attention"]) * 14, global_attn_every_n_layers=4,
        max_position_embeddings=131072, moe_intermediate_size=256, mup_enabled=True, n_group=1, topk_group=1,
        num_attention_heads=8, num_key_value_heads=2, num_dense_layers=2, num_expert_groups=1, num_limited_groups=1,
        num_experts=128, num_experts_per_tok=8, num_shared_experts=1, route_norm=True, route_scale=2.826,
        score_func="sigmoid", sliding_window=2048, rope_theta=10000, tie_word_embeddings=False,
        vocab_size=200192).to_dict()


# Olmo 3 7B as the "From scratch" notebook of LLMs-from-scratch builds it (OLMO3_CONFIG_7B, the weights of Olmo-3-1025-7B,
# -7B-Instruct or -7B-Think loaded into it): 32 layers of 4096, 32 heads of 128 with 32 K/V heads, MLP 11008, q/k norms
# over the whole projection, post-norms, 3 sliding (4096) to 1 full layers, YaRN (factor 8 from 8192, base 5e5),
# vocabulary 100278, a separate out_head, 65536 positions. The notebook: "you can also use the intermediate checkpoints
# listed [in the olmo-3-post-training collection]; since they all have the same architecture" (the -Instruct-SFT stage).
OLMO3_7B = {"repo": "rasbt/LLMs-from-scratch", "path": "ch05/13_olmo3/standalone-olmo3.ipynb",
            "commit": "66855e0bb43009152539e9eeb363390d54b2eabf"}


def _olmo3_7b() -> dict:
    from transformers import Olmo3Config

    return Olmo3Config(
        vocab_size=100278, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32, max_position_embeddings=65536, sliding_window=4096,
        layer_types=(["sliding_attention"] * 3 + ["full_attention"]) * 8, rms_norm_eps=1e-6, tie_word_embeddings=False,
        rope_parameters={"rope_type": "yarn", "rope_theta": 500000.0, "factor": 8.0, "original_max_position_embeddings": 8192,
                         "attention_factor": 1.2079441541679836, "beta_fast": 32.0, "beta_slow": 1.0}).to_dict()


# C4AI Command R7B's config.json as go-inference's Cohere test data copies it (Cohere2ForCausalLM: 32 layers of 4096, 32
# heads over 8 K/V heads, MLP 14336, vocabulary 256000, logit_scale 0.25, 3 sliding (4096) to 1 global layers,
# sliding_window_pattern 4). The copy names no tie_word_embeddings, so Cohere2Config's default applies: the head shares
# the embedding (8.03B; an untied head would make it 9.08B). transformers' docs/source/en/model_doc/cohere2.md loads the
# model as CohereForAI/c4ai-command-r7b-12-2024, the id the examples use.
COMMAND_R7B = {"repo": "dAppCore/go-inference", "path": "go/model/cohere/testdata/CohereLabs-c4ai-command-r7b-12-2024-config.json",
               "commit": "034e83f57f3b17f722b27d23ca16c0f7b4edb594"}


def _command_r7b() -> dict:
    from transformers import Cohere2Config

    return Cohere2Config(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=256000, logit_scale=0.25, max_position_embeddings=8192,
                         sliding_window=4096, layer_norm_eps=1e-5,
                         rope_parameters={"rope_type": "default", "rope_theta": 50000.0}).to_dict()


# DeepSeek-V2 (236B): the DeepSeek-V2 paper (arXiv 2405.04434), section 3.1.2, "Model Hyper-Parameters": 60 layers of
# 5120; MLA with 128 heads of 128, KV compression 512, query compression 1536, decoupled rotary heads of 64; "all FFNs
# except for the first layer" are MoE layers of 2 shared and 160 routed experts of 1536 with 6 active; "236B total
# parameters". The first layer's dense FFN (12288), the vocabulary (102400) and the routing groups (8, 3 chosen) are
# Megatron-Bridge's DeepSeekV2ModelProvider (its deepseek_v2_bridge.py unties the output head), before the size-specific
# providers were removed.
DEEPSEEK_V2_PROVIDER = {"repo": "NVIDIA-NeMo/Megatron-Bridge", "path": "src/megatron/bridge/models/deepseek/deepseek_provider.py",
                        "commit": "dc805f5cf9e0001c1f7c860ebb8e42c580ef45b3"}
DEEPSEEK_V2_BRIDGE = {"repo": "NVIDIA-NeMo/Megatron-Bridge", "path": "src/megatron/bridge/models/deepseek/deepseek_v2_bridge.py",
                      "commit": "dc805f5cf9e0001c1f7c860ebb8e42c580ef45b3"}


def _deepseek_v2() -> dict:
    from transformers import DeepseekV2Config

    return DeepseekV2Config(
        hidden_size=5120, num_hidden_layers=60, num_attention_heads=128, num_key_value_heads=128, q_lora_rank=1536,
        kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, intermediate_size=12288,
        first_k_dense_replace=1, moe_intermediate_size=1536, n_routed_experts=160, n_shared_experts=2,
        num_experts_per_tok=6, n_group=8, topk_group=3, vocab_size=102400, tie_word_embeddings=False).to_dict()


# LFM2-8B-A1B: mlxcel's trimmed copy of its config.json, the loader validated against the mlx-community 4-bit conversion of
# the checkpoint (24 layers of 2048: 18 short-conv and 6 attention layers as layer_types lists them, 32 heads of 64 over 8
# K/V heads, 2 dense layers of 7168 then 32 experts of 1792 with 4 active, vocabulary 65536). The copy names no
# tie_word_embeddings, so Lfm2MoeConfig's default applies: the head shares the embedding (8.34B, the card's 8.3B).
LFM2_8B_A1B = mlxcel("src/models/lfm2_tests.rs", "e69fb5118f9b394c601cebd33d7c3d2dad19b503")


def _lfm2_8b_a1b() -> dict:
    from transformers import Lfm2MoeConfig

    attention = {2, 6, 10, 14, 18, 21}
    return Lfm2MoeConfig(
        vocab_size=65536, hidden_size=2048, intermediate_size=7168, moe_intermediate_size=1792, num_hidden_layers=24,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=128000, norm_eps=1e-5, conv_bias=False,
        conv_L_cache=3, num_dense_layers=2, num_experts=32, num_experts_per_tok=4, norm_topk_prob=True,
        use_expert_bias=True, routed_scaling_factor=1.0,
        layer_types=["full_attention" if i in attention else "conv" for i in range(24)],
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}).to_dict()


# Minitron-4B-Base and Nemotron-Mini-4B-Instruct: Megatron-Bridge's Nemotron3ModelProvider4B ("Maps to:
# nvidia/Minitron-4B-Base, nvidia/Nemotron-Mini-4B-Instruct", the commit that added the Nemotron bridge: 32 layers of 3072,
# squared-ReLU MLP 9216, 24 heads of 128 over 8 K/V groups, rotary on half of each head, LayerNorm1P, an untied head);
# the vocabulary (256000) as the bridge's unit test gives it for that shape (nemotron_config_dict).
NEMOTRON_4B_PROVIDER = {"repo": "NVIDIA-NeMo/Megatron-Bridge", "path": "src/megatron/bridge/models/nemotron/nemotron_provider.py",
                        "commit": "07465021ad706a2dea0fe52ee3ed586d2ff6753c"}
NEMOTRON_BRIDGE_TEST = {"repo": "NVIDIA-NeMo/Megatron-Bridge", "path": "tests/unit_tests/models/nemotron/test_nemotron_bridge.py",
                        "commit": "ebdef7c11b14bec53c4abedf4783bb75d70ef406"}


def _nemotron_4b() -> dict:
    from transformers import NemotronConfig

    return NemotronConfig(hidden_size=3072, intermediate_size=9216, num_hidden_layers=32, num_attention_heads=24,
                          num_key_value_heads=8, head_dim=128, partial_rotary_factor=0.5, hidden_act="relu2",
                          vocab_size=256000, max_position_embeddings=4096, norm_eps=1e-5,
                          tie_word_embeddings=False).to_dict()


# Falcon-H1 1.5B-Deep, 7B and 34B: Megatron-Bridge's size providers (FalconH1ModelProvider1P5BDeep / 7B / 34B, "Based on:
# https://huggingface.co/tiiuae/Falcon-H1-<size>-Instruct"), before they were removed: layers, width, MLP, attention and K/V
# heads, Mamba-2 heads, head size, groups and state, RMS-normed SSM output, vocabulary, untied head. The attention head size
# (128, not width / heads) is the "d_head" column of transformers' FalconH1Config table, which gives one row per size (the
# -Base and -Instruct releases of a size share it). mamba_d_ssm is heads x head size, as FalconH1Config requires.
FALCON_H1_PROVIDERS = {"repo": "NVIDIA-NeMo/Megatron-Bridge", "path": "src/megatron/bridge/models/falcon_h1/falconh1_provider.py",
                       "commit": "cd7dac7aaf2310f40ee8496cf93538f32531129e"}
FALCON_H1_TABLE = hf_transformers("docs/source/en/model_doc/falcon_h1.md", "9243e99d559dd84d476ff5c882c7c440d4de458c")


def _falcon_h1(layers: int, hidden: int, mlp: int, heads: int, kv: int, ssm_heads: int, ssm_head: int, groups: int,
               vocab: int, positions: int) -> dict:
    from transformers import FalconH1Config

    return FalconH1Config(
        num_hidden_layers=layers, hidden_size=hidden, intermediate_size=mlp, num_attention_heads=heads,
        num_key_value_heads=kv, head_dim=128, mamba_n_heads=ssm_heads, mamba_d_head=ssm_head,
        mamba_d_ssm=ssm_heads * ssm_head, mamba_n_groups=groups, mamba_d_state=256, mamba_d_conv=4, mamba_expand=2,
        mamba_rms_norm=True, vocab_size=vocab, tie_word_embeddings=False, max_position_embeddings=positions).to_dict()


# Cogito v1 preview 3B: Llama 3.2 3B's decoder (litgpt's Llama-3.2-3B entry) with the output head untied. Its name says
# llama-3B; "3.61B params" (whatmodel.sh's page for it, github.com/jakemanger/whatmodel, pages/model/
# cogito-v1-preview-llama-3b.md on main: no snapshot of that repository could be had, so no commit) and the Hub's "4B"
# (the deepcogito Cogito v1 Preview collection) are Llama 3.2 3B's 3.21B plus an untied 128256 x 3072 head (3.607B); with
# the tied head it would be 3.21B. Deep Cogito's own statement of the base was not at hand.
COGITO_3B_SIZE = ("whatmodel.sh's page for deepcogito/cogito-v1-preview-llama-3B (github.com/jakemanger/whatmodel, "
                  "pages/model/cogito-v1-preview-llama-3b.md on main): \"3.61B params\"")


def _cogito_3b() -> dict:
    return {"model_type": "llama", "hidden_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 24,
            "num_key_value_heads": 8, "intermediate_size": 8192, "vocab_size": 128256, "max_position_embeddings": 131072,
            "tie_word_embeddings": False}


# Cerebras-GPT 1.3B: "exactly the same architecture that was used for OpenAI GPT-2, only the model sizes are different.
# Same tokenizer" (GPT-2's 50257 tokens, learned positions, the head tied to the embedding, an MLP of 4 x width); the
# table's row: hidden size 2048, 24 decoders, 16 heads, max. length 2048, "1,316 M" parameters (this builds 1,315.7M).
CEREBRAS_TABLE = {"repo": "huplay/open-all-gpt", "path": "models/Cerebras/README.md",
                  "commit": "56a69bbc8f848449efe9cd8d7547d4a2459dbf34"}


def _cerebras_gpt_1_3b() -> dict:
    from transformers import GPT2Config

    return GPT2Config(n_embd=2048, n_layer=24, n_head=16, n_positions=2048, vocab_size=50257,
                      tie_word_embeddings=True).to_dict()


# XGen-7B-8K-Base: its own config.json (the Hub repository at that revision): LlamaForCausalLM, 32 layers of 4096, 32 heads,
# MLP 11008, vocabulary 51200 (its tiktoken-based tokenizer), 8192 positions, untied head: 6.90B, the "7B" of the
# family's README ("the family of XGen models (`7B`)": github.com/salesforce/xgen at c2efe4a, README.md).
XGEN_CONFIG = ("huggingface.co/Salesforce/xgen-7b-8k-base at 8c8fad8b920f622ca62615d84c174163f070a72f, config.json")


def _xgen_7b() -> dict:
    return {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 32, "intermediate_size": 11008, "vocab_size": 51200, "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-6, "tie_word_embeddings": False}


# GLM-4-32B-0414: Glm4ForCausalLM with 61 layers of 6144, 48 heads of 128 over 2 K/V heads, MLP 23040, vocabulary 151552,
# rotary on half of each head, no q/k/v bias, 32768 positions, an untied head, as a config.json for that architecture
# holds them (the Edens-Gate/GLM-v2-lora adapter's, which names no base). Checked against llama.cpp's load of
# GLM-Z1-32B-0414 ("developed based on GLM-4-32B-0414": GLM-4's README) in ik_llama.cpp pull request #344: n_head 48,
# n_head_kv 2, head size 128, n_ff 23040, n_vocab 151552, 61 layers by its tensor counts (245 f32 norms = 4 x 61 + 1), and
# "model params = 32.57 B", which this shape builds (32.566B; 60 or 62 layers would be 32.07B or 33.07B).
GLM4_32B_CONFIG = "huggingface.co/Edens-Gate/GLM-v2-lora at 6c23bbb, config.json"
GLM4_32B_LOAD = ("github.com/ikawrakow/ik_llama.cpp pull request #344 (Add GLM-4-0414 Model Support), the load log of "
                 "GLM-Z1-32B-0414: \"model params = 32.57 B\"")
GLM4_README = {"repo": "THUDM/GLM-4", "path": "README.md", "commit": "3f79b543647b792aa167c712cd327475ec423f7b"}


def _glm4_32b() -> dict:
    from transformers import Glm4Config

    return Glm4Config(hidden_size=6144, num_hidden_layers=61, num_attention_heads=48, num_key_value_heads=2, head_dim=128,
                      intermediate_size=23040, vocab_size=151552, partial_rotary_factor=0.5, max_position_embeddings=32768,
                      attention_bias=False, rms_norm_eps=1e-5, tie_word_embeddings=False).to_dict()


# GLM-4.6V-Flash: Glm4vForConditionalGeneration (its repository's README commit "Glm4vMoeForConditionalGeneration change to
# Glm4vForConditionalGeneration") at GLM-4.1V-9B's shape, as a fine-tune named for it copies its config.json: a text
# decoder of 40 layers of 4096, 32 heads over 2 K/V heads, MLP 13696, vocabulary 151552, 131072 positions, an untied head,
# and a vision tower of 24 blocks of 1536 (image 336). The copy's vision block is cut short where it was read; its other
# fields (12 heads, MLP 13696, out_hidden_size 4096, merge 2) are Glm4vVisionConfig's defaults, the class's docstring
# checkpoint being GLM-4.1V-9B-Thinking. The whole builds 10.293B, 20.59 GB in bf16: the checkpoint's four shards are
# 5.32 + 5.3 + 5.3 + 4.66 = 20.58 GB as the Hub lists them (huggingface.co/zai-org/GLM-4.6V-Flash/tree/main), its
# "10B" (one 4096-wide text layer is 0.22B, 0.44 GB).
GLM46V_FLASH_CONFIG = "huggingface.co/AiAsistent/GLM-4.6V-Flash-Polymath-Instruct (main), config.json"
GLM46V_FLASH_FILES = ("huggingface.co/zai-org/GLM-4.6V-Flash/tree/main (at 411bb4d): model-0000{1..4}-of-00004.safetensors, "
                      "5.32 + 5.3 + 5.3 + 4.66 GB")


def _glm46v_flash() -> dict:
    from transformers import Glm4vConfig

    return Glm4vConfig(text_config=dict(max_position_embeddings=131072)).to_dict()


# (ids, a function building config.json's fields, the source whose table it transcribes)
VARIANTS = [
    (["EleutherAI/pythia-1.4b", "EleutherAI/pythia-1.4b-deduped"], _pythia_1_4b, LITGPT),
    (["Qwen/Qwen2-VL-7B", "Qwen/Qwen2-VL-7B-Instruct"], _qwen2_vl_7b, TORCHTUNE_QWEN2),
    (["meta-llama/Llama-4-Scout-17B-16E"], lambda: _llama4(False), TORCHTUNE_LLAMA4),
    (["meta-llama/Llama-4-Maverick-17B-128E"], lambda: _llama4(True), TORCHTUNE_LLAMA4),
    (["openai/gpt-oss-20b"], _gpt_oss_20b, GPT_OSS_20B),
    # the preset's conversation template names it Ministral-3-3B-Instruct-2512; its architectures field,
    # Mistral3ForConditionalGeneration, is model_type mistral3 (MLC sets the top level to its text model's type)
    (["mistralai/Ministral-3-3B-Instruct-2512"], lambda: {**_mlc("ministral3_3b_2512"), "model_type": "mistral3"},
     MLC_PRESETS),
    # The preset leaves out q_lora_rank, whose default (1536) would add a query compression V2-Lite does not
    # have ("DeepSeek-V2-Lite ... does not compress the queries": the DeepSeek-V2 paper, arXiv 2405.04434,
    # appendix B); config.json says null.
    (["deepseek-ai/DeepSeek-V2-Lite", "deepseek-ai/DeepSeek-V2-Lite-Chat"],
     lambda: {**_mlc("deepseek_v2_lite"), "q_lora_rank": None}, MLC_PRESETS),
    (["microsoft/phi-1_5"], lambda: _phi_msft("phi-1_5"), MLC_PRESETS),
    (["microsoft/phi-2"], lambda: _phi_msft("phi-2"), MLC_PRESETS),
    (["stabilityai/stablelm-2-1_6b", "stabilityai/stablelm-2-zephyr-1_6b"], _stablelm_2_1_6b,
     {"config": MLC_PRESETS, "base_model": "the instruction-tuned release of StableLM 2 1.6B (Stable LM 2 1.6B Technical "
                                           "Report, arXiv:2402.17834, abstract)"}),
    (["google/gemma-3-270m"], lambda: _gemma3(dict(vocab_size=262_144, hidden_size=640, intermediate_size=2048,
                                                   num_hidden_layers=18, num_attention_heads=4, num_key_value_heads=1,
                                                   head_dim=256, max_position_embeddings=32768,
                                                   query_pre_attn_scalar=256, sliding_window=512, rope_scaling=None),
                                              False), GEMMA3_CONVERT),
    (["google/gemma-3-4b-it", "google/gemma-3-4b-pt"],
     lambda: _gemma3(dict(_G3_COMMON, vocab_size=262_208, hidden_size=2560, intermediate_size=2560 * 8 // 2,
                          num_attention_heads=8, num_hidden_layers=34, num_key_value_heads=4), True), GEMMA3_CONVERT),
    (["google/gemma-3-12b-it", "google/gemma-3-12b-pt"],
     lambda: _gemma3(dict(_G3_COMMON, vocab_size=262_208, hidden_size=30 * 128, intermediate_size=30 * 128 * 8 // 2,
                          num_attention_heads=16, num_hidden_layers=48, num_key_value_heads=8), True), GEMMA3_CONVERT),
    (["google/gemma-3-27b-it", "google/gemma-3-27b-pt"],
     lambda: _gemma3(dict(_G3_COMMON, vocab_size=262_208, hidden_size=42 * 128, intermediate_size=42 * 128 * 8 // 2,
                          num_attention_heads=32, num_hidden_layers=62, num_key_value_heads=16, head_dim=128,
                          query_pre_attn_scalar=42 * 128 // 32), True), GEMMA3_CONVERT),
    (["google/gemma-4-E2B", "google/gemma-4-E2B-it"], lambda: _gemma4("e2b"), GEMMA4_CONVERT),
    (["google/gemma-4-31B", "google/gemma-4-31B-it"], lambda: _gemma4("31b"), GEMMA4_CONVERT),
    (["google/gemma-4-26B-A4B", "google/gemma-4-26B-A4B-it"], lambda: _gemma4("26b-a4b"), GEMMA4_CONVERT),
    (["google/gemma-4-12B", "google/gemma-4-12B-it"], _gemma4_unified_12b, GEMMA4_UNIFIED_CONVERT),
    (["zai-org/GLM-4.5-Air"], _glm45_air, GLM45_AIR),
    (["deepseek-ai/DeepSeek-V3"], _deepseek_v3, DEEPSEEK_V3),
    (["mistral-community/pixtral-12b"], _pixtral_12b,
     {"config": NEMO_SOURCE, "base_model": PIXTRAL_README,
      "vision_config": transformers_source("pixtral", "mistral-labs/pixtral-12b")}),
    (["Qwen/Qwen2.5-VL-7B-Instruct"], _qwen2_5_vl_7b, QWEN25_VL_GRAPH),
    (["Qwen/Qwen3-VL-4B-Instruct"], _qwen3_vl_4b, QWEN3_VL_4B),
    (["01-ai/Yi-34B", "01-ai/Yi-34B-Chat"], _yi_34b, {"config": YI_34B, "base_model": YI_README}),
    (["Qwen/Qwen3-VL-30B-A3B-Instruct"], _qwen3_vl_30b_a3b,
     {"config": QWEN3_VL_30B_A3B, "vision_config": transformers_source("qwen3_vl_moe", "Qwen/Qwen3-VL-30B-A3B-Instruct")}),
    (["Qwen/Qwen3.5-27B"], lambda: _qwen3_5(False), {"config": QWEN35_TEXT, "vision_config": QWEN35_VL}),
    (["Qwen/Qwen3.5-397B-A17B"], lambda: _qwen3_5(True), {"config": QWEN35_TEXT, "vision_config": QWEN35_VL}),
    (["Qwen/Qwen3.5-9B"], _qwen3_5_9b,
     {"config": QWEN35_9B, "linear_attention": QWEN35_9B_TENSORS, "vision_config": QWEN35_VL}),
    (["mistralai/Mistral-Small-24B-Base-2501", "mistralai/Mistral-Small-24B-Instruct-2501"],
     lambda: _mistral_small(True), {"config": MISTRAL_SMALL_3, "tie_word_embeddings": MISTRAL_SMALL_3_INDEX}),
    # "fine-tuned ontop of Mistral-Small-3.1 ... without the vision layer"
    (["mistralai/Devstral-Small-2507"], lambda: _mistral_small(False),
     {"config": MISTRAL_SMALL_3, "tie_word_embeddings": MISTRAL_SMALL_3_INDEX,
      "base_model": axolotl("examples/devstral/README.md")}),
    (["mistralai/Magistral-Small-2506"], lambda: _mistral_small(False),
     {"config": MISTRAL_SMALL_3, "tie_word_embeddings": MISTRAL_SMALL_3_INDEX, "base_model": MAGISTRAL_CARD}),
    # "Magistral Small is a 24B parameter opensource model ... found on HuggingFace at 2506, 2507 (see Thinking)"
    (["mistralai/Magistral-Small-2507"], lambda: _mistral_small(False),
     {"config": MISTRAL_SMALL_3, "tie_word_embeddings": MISTRAL_SMALL_3_INDEX,
      "base_model": axolotl("examples/magistral/README.md")}),
    (["tiiuae/Falcon-H1-0.5B-Instruct"], _falcon_h1_05b, {"config": FALCON_H1_05B, "checkpoint": FALCON_H1_DOCS}),
    # "MiMo-7B-RL | RL model trained from SFT model", "MiMo-7B-SFT | SFT model trained from base model": one architecture
    (["XiaomiMiMo/MiMo-7B-Base", "XiaomiMiMo/MiMo-7B-SFT", "XiaomiMiMo/MiMo-7B-RL", "XiaomiMiMo/MiMo-7B-RL-Zero"],
     _mimo_7b, {"config": MIMO_CONFIG, "base_model": MIMO_README}),
    (["nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"], _nemotron3_nano,
     {"config": NEMOTRON_H_TEST, "experts": NEMOTRON3_NANO_PROVIDER}),
    (["zai-org/GLM-5.2"], _glm52, {"config": GLM52, "defaults": transformers_source("glm_moe_dsa", "zai-org/GLM-5")}),
    (["Qwen/Qwen-7B"], _qwen_7b, {"config": GENZ_ALIBABA, "layout": QWEN_MODELING}),
    (["mistralai/Ministral-8B-Instruct-2410"], _ministral_8b, GENZ_MISTRAL),
    (["databricks/dbrx-base"], _dbrx, {"config": GENZ_MISC, "attn_config": DBRX_INSTRUCT_CONFIG}),
    (["ai21labs/AI21-Jamba-1.5-Large"], _jamba_15_large, GENZ_MISC),
    (["tiiuae/falcon-mamba-7b"], _falcon_mamba_7b, FALCON_MAMBA_7B),
    (["ByteDance-Seed/Seed-OSS-36B-Instruct"], _seed_oss_36b, SEED_OSS_CONFIG),
    (["swiss-ai/Apertus-8B-Instruct-2509"], _apertus_8b, APERTUS_CONFIG),
    (["arcee-ai/Trinity-Nano-Preview"], _trinity_nano, TRINITY_CONFIG),
    (["allenai/Olmo-3-1025-7B", "allenai/Olmo-3-7B-Instruct", "allenai/Olmo-3-7B-Think", "allenai/Olmo-3-7B-Instruct-SFT"],
     _olmo3_7b, OLMO3_7B),
    (["CohereLabs/c4ai-command-r7b-12-2024", "CohereForAI/c4ai-command-r7b-12-2024"], _command_r7b, COMMAND_R7B),
    (["deepseek-ai/DeepSeek-V2", "deepseek-ai/DeepSeek-V2-Chat"], _deepseek_v2,
     {"config": "the DeepSeek-V2 paper (arXiv 2405.04434), section 3.1.2", "dense_ffn_and_vocabulary": DEEPSEEK_V2_PROVIDER,
      "tie_word_embeddings": DEEPSEEK_V2_BRIDGE}),
    (["LiquidAI/LFM2-8B-A1B"], _lfm2_8b_a1b, LFM2_8B_A1B),
    (["nvidia/Minitron-4B-Base", "nvidia/Nemotron-Mini-4B-Instruct"], _nemotron_4b,
     {"config": NEMOTRON_4B_PROVIDER, "vocab_size": NEMOTRON_BRIDGE_TEST}),
    (["tiiuae/Falcon-H1-1.5B-Deep-Base", "tiiuae/Falcon-H1-1.5B-Deep-Instruct"],
     lambda: _falcon_h1(66, 1280, 3072, 6, 2, 24, 64, 1, 65537, 131072),
     {"config": FALCON_H1_PROVIDERS, "head_dim": FALCON_H1_TABLE}),
    (["tiiuae/Falcon-H1-7B-Base", "tiiuae/Falcon-H1-7B-Instruct"],
     lambda: _falcon_h1(44, 3072, 12288, 12, 2, 24, 128, 1, 130049, 262144),
     {"config": FALCON_H1_PROVIDERS, "head_dim": FALCON_H1_TABLE}),
    (["tiiuae/Falcon-H1-34B-Base", "tiiuae/Falcon-H1-34B-Instruct"],
     lambda: _falcon_h1(72, 5120, 21504, 20, 4, 32, 128, 2, 261120, 262144),
     {"config": FALCON_H1_PROVIDERS, "head_dim": FALCON_H1_TABLE}),
    (["deepcogito/cogito-v1-preview-llama-3B"], _cogito_3b,
     {"config": LITGPT, "base_model": "its name (cogito-v1-preview-llama-3B)", "tie_word_embeddings": COGITO_3B_SIZE}),
    (["cerebras/Cerebras-GPT-1.3B"], _cerebras_gpt_1_3b, CEREBRAS_TABLE),
    (["Salesforce/xgen-7b-8k-base"], _xgen_7b,
     {"config": XGEN_CONFIG, "size": {"repo": "salesforce/xgen", "path": "README.md",
                                      "commit": "c2efe4af4470d30bd6902a04fb533e4ba2f93c57"}}),
    (["THUDM/GLM-4-32B-0414"], _glm4_32b,
     {"config": GLM4_32B_CONFIG, "checked_against": GLM4_32B_LOAD, "z1_based_on_it": GLM4_README}),
    (["zai-org/GLM-4.6V-Flash"], _glm46v_flash,
     {"config": GLM46V_FLASH_CONFIG, "vision_config": transformers_source("glm4v", "zai-org/GLM-4.1V-9B-Thinking"),
      "checked_against": GLM46V_FLASH_FILES}),
]
