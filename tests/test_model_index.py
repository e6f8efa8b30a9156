"""The model index: Hugging Face ids resolve offline to shapes whose parameter totals match
the published ones; re-uploads and instruct variants resolve to their original; nothing is
downloaded."""
import json
import subprocess
import sys

import pytest

from rankwise.advisor import model, model_index
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.families import FAMILIES
from rankwise.advisor.model import load_model, spec_from_config

GROUPS = json.loads(model_index.INDEX_FILE.read_text())["groups"]

# Architectures in the index that no family record in families.py describes, so the reader
# builds them on the meta device (torch, a few seconds) from the index's fields:
ON_META = {  # (Qwen3, Qwen3-MoE, OLMo 2 and Gemma 3 text have family records since their q/k-norm field)
    # transformers configuration-class defaults (bench/model_index_defaults.py):
    "qwen2_moe": "60 experts plus a gated shared expert in every layer",
    "qwen3_next": "Gated DeltaNet linear attention in 3 layers of 4, 512 experts plus a shared one",
    "qwen3_5_moe": "Qwen3-Next's hybrid layers and a vision tower (multimodal)",
    "qwen3_5": "Gated DeltaNet linear attention in 3 layers of 4, gated attention, a vision tower",
    "jamba": "Mamba layers interleaved with attention, experts every other layer",
    "falcon_mamba": "Mamba1 mixers alone: no attention, no MLP",
    "gemma": "GeGLU MLP, (1 + weight) RMSNorms, head_dim 256",
    "llava": "a CLIP vision tower and projector before a Llama decoder",
    "mllama": "a vision encoder and cross-attention layers in the decoder",
    "llama4": "16 experts plus a shared expert, chunked attention, a vision tower",
    "voxtral": "a Whisper-style audio encoder and projector before the decoder",
    "kimi_linear": "Kimi Delta Attention and MLA layers, 256 experts",
    "gptj": "parallel attention and MLP, biased MLP, LayerNorm",
    "glm4_moe_lite": "multi-head latent attention, 64 routed experts plus a shared one",
    "starcoder2": "LayerNorm, biased linears, a GELU MLP",
    "falcon": "parallel attention and MLP, one K/V head, LayerNorm",
    "mistral4": "multi-head latent attention, 128 routed experts plus a shared one",
    "minimax_m2": "256 experts with 8 active in every layer",
    "qwen3_vl": "a Qwen3 decoder with a ViT whose intermediate features are added to early layers (DeepStack)",
    "qwen3_vl_moe": "Qwen3-30B-A3B's 128-expert decoder with a DeepStack ViT",
    "deepseek_v4": "hybrid compressed attention, hyper-connections, hash-routed and top-k routed experts",
    "stablelm": "LayerNorm, q/k/v biases, rotary on a quarter of each head",
    "gemma4_unified": "the Gemma 4 decoder with image patches and audio frames projected straight into it (no towers)",
    # conversion scripts' variant tables and MLC LLM's copies of config.json:
    "gemma3": "Gemma 3 text decoder and a SigLIP vision tower",
    "gemma4": "per-layer inputs, shared KV layers, sliding/global attention, a vision (and audio) tower",
    "mistral3": "a Ministral 3 decoder and a Pixtral vision tower",
    "deepseek_v2": "multi-head latent attention, 64 routed experts plus 2 shared",
    "phi": "parallel attention and MLP, partial rotary, LayerNorm",
    "gpt_oss": "32 experts with biases, attention sinks, alternating sliding-window layers",
    "gpt_neox": "parallel attention and MLP, partial rotary, biased linears, LayerNorm",
    "qwen2_vl": "a Qwen2 decoder with a 675M ViT and its merger",
    "qwen2_5_vl": "a Qwen2 decoder with a windowed-attention ViT and its merger",
    "glm4_moe": "128 routed experts plus a shared one after a dense first layer, biased q/k/v",
    "deepseek_v3": "multi-head latent attention with query compression, 256 routed experts plus a shared one",
    "falcon_h1": "Mamba-2, attention and MLP side by side in every layer, muP multipliers",
    "nemotron_h": "Mamba-2 layers with a few attention layers, 128 routed experts plus a shared one",
    "glm_moe_dsa": "multi-head latent attention with a DeepSeek sparse-attention indexer, 256 routed experts plus a shared one",
    "dbrx": "16 experts with 4 active in every layer, a fused q/k/v projection",
    "seed_oss": "q/k/v biases, heads of 128 wider than hidden / heads",
    "apertus": "a two-matrix xIELU MLP, q/k norms",
    "afmoe": "2 dense layers then 128 experts plus a shared one, a gated attention output, four norms a layer",
    "olmo3": "OLMo 2's post-norm layers with 3 sliding-window layers to 1 full",
    "cohere2": "LayerNorm, parallel attention and MLP, 3 sliding-window layers to 1 global without positions",
    "lfm2_moe": "short gated convolutions in 18 of 24 layers, 32 experts after 2 dense layers",
    "nemotron": "LayerNorm1P, a squared-ReLU MLP without a gate, rotary on half of each head",
    "gpt2": "learned positions, a fused q/k/v Conv1D, a GELU MLP, LayerNorm, biased linears",
    "glm4": "rotary on half of each head, a fused gate/up projection, norms after attention and MLP too",
    "glm4v": "a GLM-4 decoder with 3-axis rotary positions and a 24-block ViT with its merger",
}

# Published totals. Source: each model's Hugging Face card, huggingface.co/<id> — the parameter
# count the card states ("Number of Parameters: 7.61B" for Qwen, "1.23B" style figures elsewhere)
# or, where the card text gives only a class ("8B"), the size the Hub shows on the card from the
# safetensors index. Qwen2.5-32B is left out: its card says 32.5B, its own config.json adds up to 32.76B.
PUBLISHED = [
    ("meta-llama/Llama-3.2-1B", 1.24e9), ("meta-llama/Llama-3.2-3B", 3.21e9),
    ("meta-llama/Meta-Llama-3.1-8B", 8.03e9), ("meta-llama/Meta-Llama-3.1-70B", 70.6e9),
    ("meta-llama/Meta-Llama-3.1-405B", 406e9), ("meta-llama/Llama-2-7b-hf", 6.74e9),
    ("meta-llama/Llama-2-13b-hf", 13.0e9), ("meta-llama/Llama-2-70b-hf", 69.0e9),
    ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", 70.6e9),
    ("mistralai/Mistral-7B-v0.1", 7.24e9), ("mistralai/Mistral-7B-v0.3", 7.25e9),
    ("mistralai/Mixtral-8x7B-v0.1", 46.7e9), ("mistralai/Mixtral-8x22B-v0.1", 141e9),
    ("mistralai/Mistral-Large-Instruct-2407", 123e9),
    ("Qwen/Qwen2.5-0.5B", 0.49e9), ("Qwen/Qwen2.5-1.5B", 1.54e9), ("Qwen/Qwen2.5-3B", 3.09e9),
    ("Qwen/Qwen2.5-7B", 7.61e9), ("Qwen/Qwen2.5-14B", 14.7e9), ("Qwen/Qwen2.5-72B", 72.7e9),
    ("Qwen/Qwen2-1.5B", 1.54e9), ("Qwen/Qwen2-7B", 7.61e9),
    ("google/gemma-2-2b", 2.61e9), ("google/gemma-2-9b", 9.24e9), ("google/gemma-2-27b", 27.2e9),
    ("microsoft/Phi-3-mini-4k-instruct", 3.82e9), ("microsoft/phi-4", 14.7e9),
    ("microsoft/Phi-4-mini-instruct", 3.84e9),  # the Hub's safetensors count (card: 3.8B); untied would be 4.45B
    ("HuggingFaceTB/SmolLM2-135M", 135e6), ("HuggingFaceTB/SmolLM2-360M", 362e6), ("HuggingFaceTB/SmolLM2-1.7B", 1.71e9),
    ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", 1.1e9), ("TinyLlama/TinyLlama_v1.1", 1.1e9),
    ("tiiuae/Falcon3-1B-Base", 1.67e9), ("tiiuae/Falcon3-3B-Base", 3.23e9), ("tiiuae/Falcon3-7B-Base", 7.46e9),
    ("tiiuae/Falcon3-10B-Base", 10.3e9), ("mistralai/Mistral-Nemo-Base-2407", 12.2e9), ("01-ai/Yi-6B", 6.06e9),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", 7.62e9), ("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", 14.8e9),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", 32.8e9), ("codellama/CodeLlama-7b-hf", 6.74e9),
    ("codellama/CodeLlama-34b-hf", 33.7e9),
    # Mistral Small 3: its safetensors index's total_size, 47144806400 bytes of bf16 (github.com/OpenMOSE/RWKV-LM-RLHF
    # at 7e8f62a, main/tokenizer/mistralsmall3/model.safetensors.index.json); Magistral Small 2507: "Parameters:
    # 23.6B" (github.com/oumi-ai/oumi at 36cfa19, configs/recipes/mistral_magistral/README.md)
    ("mistralai/Mistral-Small-24B-Instruct-2501", 47_144_806_400 // 2), ("mistralai/Magistral-Small-2507", 23.6e9),
    ("Qwen/Qwen-7B", 7.72e9), ("mistralai/Ministral-8B-Instruct-2410", 8.02e9),  # the Hub's figures
    ("allenai/Olmo-3-1025-7B", 7.3e9), ("CohereForAI/c4ai-command-r7b-12-2024", 8.03e9),  # the Hub's figures
    ("nvidia/Nemotron-Mini-4B-Instruct", 4.19e9),  # the Hub's figure
    ("deepcogito/cogito-v1-preview-llama-3B", 3.61e9),  # whatmodel.sh's page for it (bench/model_index_defaults.py)
]
# Read on the meta device (seconds each): the slow ones only in the full suite.
PUBLISHED_ON_META = [
    ("Qwen/Qwen3-8B", 8.2e9), ("allenai/OLMo-2-1124-7B", 7.3e9), ("google/gemma-3-1b-it", 1.0e9),
    ("Qwen/Qwen3-30B-A3B", 30.5e9),
    pytest.param("Qwen/Qwen3-0.6B", 0.6e9, marks=pytest.mark.slow),
    pytest.param("Qwen/Qwen3-1.7B", 1.7e9, marks=pytest.mark.slow),
    pytest.param("Qwen/Qwen3-4B", 4.0e9, marks=pytest.mark.slow),
    pytest.param("Qwen/Qwen3-14B", 14.8e9, marks=pytest.mark.slow),
    pytest.param("Qwen/Qwen3-32B", 32.8e9, marks=pytest.mark.slow),
    pytest.param("Qwen/Qwen3-235B-A22B", 235e9, marks=pytest.mark.slow),
    pytest.param("allenai/OLMo-2-1124-13B", 13.7e9, marks=pytest.mark.slow),
    pytest.param("Qwen/Qwen3-4B-Instruct-2507", 4.0e9, marks=pytest.mark.slow),
    # transformers defaults: the card's figure (Jamba: 51.6B on the Hub, "52B" in the card's text)
    ("Qwen/Qwen1.5-MoE-A2.7B", 14.3e9), ("ai21labs/Jamba-v0.1", 51.6e9), ("google/gemma-7b", 8.54e9),
    ("llava-hf/llava-1.5-7b-hf", 7.06e9), ("meta-llama/Llama-3.2-11B-Vision", 10.6e9),
    ("mistralai/Voxtral-Mini-3B-2507", 4.68e9), ("EleutherAI/gpt-j-6B", 6.05e9),
    ("bigcode/starcoder2-3b", 3.03e9), ("google/gemma-3-270m", 268e6), ("google/gemma-3-4b-it", 4.3e9),
    ("google/gemma-3-12b-it", 12.2e9), ("google/gemma-3-27b-it", 27.4e9), ("deepseek-ai/DeepSeek-V2-Lite", 15.7e9),
    ("microsoft/phi-1_5", 1.42e9), ("microsoft/phi-2", 2.78e9), ("google/gemma-4-E2B", 5.1e9),  # Gemma 4 E2B: "5.1B with embeddings"
    ("openai/gpt-oss-20b", 20.9e9),  # OpenAI's gpt-oss model card (arXiv 2508.10925): 20.9B total
    ("openai/gpt-oss-120b", 116.8e9),  # the same card: 116.8B total
    ("HuggingFaceTB/SmolLM3-3B", 3.08e9),  # the Hub's safetensors count (the card: 3B, tied embeddings)
    ("EleutherAI/pythia-1.4b-deduped", 1_414_647_808), ("Qwen/Qwen2-VL-7B-Instruct", 8.29e9),
    ("Qwen/Qwen2.5-VL-7B-Instruct", 8.29e9), ("mistral-community/pixtral-12b", 12.7e9),
    ("stabilityai/stablelm-2-1_6b", 1_644_417_024),  # the card's architecture table
    ("Qwen/Qwen3-VL-30B-A3B-Instruct", 31.07e9),  # the Hub's 31.07B
    ("Qwen/Qwen3-VL-4B-Instruct", 4.44e9),  # the Hub's 4.44B (quoted at mixpeek.com/model/Qwen/Qwen3-VL-4B-Instruct)
    # Qwen3.5-9B: the 775 tensors of its checkpoint less the 15 mtp.* ones transformers does not build
    # (github.com/jyohukuchan/uLLM-project at b020bcf, benchmarks/results/2026-07-01/aq/2026-07-01-ullm-quant-plan-qwen35-9b.json)
    ("Qwen/Qwen3.5-9B", 9_653_104_368 - 243_290_624),
    # "31.6B total / 3.6B active": github.com/NVIDIA-NeMo/Nemotron at e27b371, README.md
    ("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", 31.6e9),
    ("tiiuae/falcon-mamba-7b", 7.27e9),  # "Parameter Count | 7.27B": promptlayer.com/models/falcon-mamba-7b
    ("cerebras/Cerebras-GPT-1.3B", 1_316e6),
    # "model params = 32.57 B" (llama.cpp's load of GLM-Z1-32B-0414, built on it): ik_llama.cpp pull request #344
    ("THUDM/GLM-4-32B-0414", 32.57e9),
    # its four bf16 shards, 5.32 + 5.3 + 5.3 + 4.66 GB as the Hub lists them (huggingface.co/zai-org/GLM-4.6V-Flash)
    ("zai-org/GLM-4.6V-Flash", 20.58e9 / 2),  # "1,316 M": github.com/huplay/open-all-gpt at 56a69bb, models/Cerebras/README.md
]
# Cards that state only the size class ("80B in total"): within 2.5% of it. Kimi Linear's "48B" counts
# no embeddings, so its figure is checked without them.
PUBLISHED_CLASS = [
    ("Qwen/Qwen3-Next-80B-A3B-Instruct", 80e9, False), ("Qwen/Qwen3.5-35B-A3B", 35e9, False),
    ("meta-llama/Llama-4-Scout-17B-16E", 109e9, False),  # also axolotl's examples/llama-4/README.md
    ("meta-llama/Llama-4-Maverick-17B-128E", 400e9, False),  # "Llama 4 Maverick 17Bx128Experts (400B)": the same
    ("moonshotai/Kimi-Linear-48B-A3B-Instruct", 48e9, True),
    ("zai-org/GLM-4.7-Flash", 30e9, False),  # "a 30B-A3B MoE model": axolotl's examples/glm47-flash/README.md
    ("google/gemma-4-31B", 31e9, False), ("google/gemma-4-26B-A4B", 26e9, False),
    ("mistralai/Ministral-3-3B-Instruct-2512", 3.8e9, False),  # 3.4B language model + 0.4B vision encoder
    ("Qwen/Qwen3.5-27B", 27e9, False), ("Qwen/Qwen3.5-397B-A17B", 397e9, False),
    ("zai-org/GLM-4.5-Air", 106e9, False),  # "GLM 4.5 Air 106B": the Megatron-Bridge test its config comes from
    # "671B total parameters": github.com/deepseek-ai/DeepSeek-V3 at acbbd89, README.md
    pytest.param("deepseek-ai/DeepSeek-V3", 671e9, False, marks=pytest.mark.slow),
    # "With 24 billion parameters": transformers' docs/source/en/model_doc/mistral3.md
    ("mistralai/Mistral-Small-3.1-24B-Instruct-2503", 24e9, False),
    ("tiiuae/falcon-7b", 7e9, False),  # "Falcon-7B is a 7B parameters causal decoder-only model" (its card)
    ("mistralai/Mistral-Small-4-119B-2603", 119e9, False),  # "a 119B parameter (6.5B active)": axolotl's README
    ("MiniMaxAI/MiniMax-M2", 230e9, False),  # "~230B FP8 params": axolotl's examples/minimax/m2-qlora.yaml
    ("google/gemma-4-12B-it", 12e9, False),
    ("01-ai/Yi-34B-Chat", 34e9, False),  # "two bilingual ... base models with the parameter sizes of 6B and 34B": Yi's README
    # "284B total parameters (13B activated)": its card (quoted at featherless.ai/models/deepseek-ai/DeepSeek-V4-Flash)
    pytest.param("deepseek-ai/DeepSeek-V4-Flash", 284e9, False, marks=pytest.mark.slow),  # the 12B of its name (axolotl's examples/gemma4-unified/README.md)
    # "GLM-5.2 744B-A40B": slime's scripts/models/glm5.2-744B-A40B.sh (github.com/THUDM/slime at 624b824)
    pytest.param("zai-org/GLM-5.2", 744e9, False, marks=pytest.mark.slow),
    # "DBRX-132B-Base": github.com/hiyouga/LLaMA-Factory at ff6d4d1, src/llamafactory/extras/constants.py
    ("databricks/dbrx-base", 132e9, False),
    # 398B total, 94B active: the Jamba-1.5 paper (arXiv 2408.12570), Table 1
    ("ai21labs/AI21-Jamba-1.5-Large", 398e9, False),
    # "a series of 36B parameter open source models": axolotl's examples/seed-oss/README.md
    ("ByteDance-Seed/Seed-OSS-36B-Instruct", 36e9, False),
    ("swiss-ai/Apertus-8B-Instruct-2509", 8e9, False),  # the 8B of its name and axolotl's apertus-8b example
    ("arcee-ai/Trinity-Nano-Preview", 6e9, False),  # "6B" total, 1B active: its card
    ("deepseek-ai/DeepSeek-V2", 236e9, False),  # "236B total parameters": the DeepSeek-V2 paper, section 3.1.2
    ("LiquidAI/LFM2-8B-A1B", 8.3e9, False),  # "8.3B total parameters, 1.5B active": its card
    ("tiiuae/Falcon-H1-34B-Base", 34e9, False),  # the 34B of its name (33.6B)
    # "the family of XGen models (`7B`)": github.com/salesforce/xgen at c2efe4a, README.md (6.90B)
    ("Salesforce/xgen-7b-8k-base", 7e9, False),
]


def one_layer(spec) -> int:
    """Parameters in one decoder layer (everything but the embedding and the output head, per layer)."""
    fam = spec.params_by_family
    return (spec.total_params - fam["embed"] - fam.get("lm_head", 0)) // spec.num_layers


@pytest.mark.parametrize("model_id,published", PUBLISHED + PUBLISHED_ON_META)
def test_parameter_totals_match_the_published_ones(model_id, published):
    entry = model_index.lookup(model_id)
    assert entry and entry.model_id == model_id
    spec = spec_from_config(model_id, "index", entry.config)  # the index's own numbers (a few are catalog names too)
    tolerance = one_layer(spec) / 2  # a wrong layer count is a whole layer off
    assert abs(spec.total_params - published) < tolerance, (model_id, spec.total_params)
    # and the published figure is precise enough to tell a layer more or less apart
    assert abs(spec.total_params - one_layer(spec) - published) > tolerance


@pytest.mark.parametrize("model_id,published,less_embeddings", PUBLISHED_CLASS)
def test_parameter_totals_match_the_published_size_class(model_id, published, less_embeddings):
    spec = load_model(model_id)
    total = spec.total_params - (spec.params_by_family["embed"] if less_embeddings else 0)
    assert abs(total - published) < 0.025 * published, (model_id, total)


def test_the_index_is_large_small_and_cited():
    originals = [i for i in model_index.listed_ids() if not i.lower().startswith("unsloth/")]
    assert len(originals) >= 130 and len(model_index.listed_ids()) >= 300
    assert model_index.INDEX_FILE.stat().st_size < 1_000_000
    for g in GROUPS:
        cited = [i for s in g["sources"] for i in s["ids"]]
        assert sorted(cited) == sorted(g["ids"]), g["ids"][0]  # every id has its source
        for s in g["sources"]:
            for where in (v for k, v in s.items() if k != "ids" and isinstance(v, dict)):
                if "package" in where:  # a configuration class of an installed package, at its version
                    assert where["package"] == "transformers" and where["version"] and where["class"], where
                    continue
                assert set(where) == {"repo", "path", "commit"} and len(where["commit"]) == 40
    lowered = [i.lower() for i in model_index.listed_ids()]
    assert len(lowered) == len(set(lowered)), "an id in two groups"


@pytest.mark.parametrize("group", GROUPS, ids=[g["ids"][0] for g in GROUPS])
def test_every_entry_is_read_analytically_or_named_as_meta(group, monkeypatch):
    mt = group["config"]["model_type"]
    if mt not in FAMILIES:
        assert mt in ON_META, f"{group['ids'][0]}: {mt} has no family record and is not listed in ON_META"
        return

    def no_meta(*args, **kwargs):
        raise AssertionError(f"{group['ids'][0]} went to the meta-device reader")

    monkeypatch.setattr(model, "read_on_meta", no_meta)
    spec = spec_from_config(group["ids"][0], "index", dict(group["config"]))
    assert spec.family is FAMILIES[mt] and spec.target_set("minimal")


@pytest.mark.parametrize("model_type", sorted(ON_META))
def test_the_meta_families_are_built_on_the_meta_device(model_type, monkeypatch):
    group = next(g for g in GROUPS if g["config"]["model_type"] == model_type)
    called = []
    real = model.read_on_meta
    monkeypatch.setattr(model, "read_on_meta", lambda *a: called.append(a) or real(*a))
    spec = load_model(group["ids"][0])
    assert called and spec.model_type == model_type and spec.adaptable_names()


META_GROUPS = [g for g in GROUPS if g["config"]["model_type"] not in FAMILIES]


@pytest.mark.slow
@pytest.mark.parametrize("group", META_GROUPS, ids=[g["ids"][0] for g in META_GROUPS])
def test_meta_read_linears_add_up_to_the_modules_and_shard(group):
    """Read on the meta device, a model's linears hold the parameters of its linear modules (what the meta device
    counted as attention, MLP, experts and head), however its layers differ (a dense first layer beside shared
    experts, two attention kinds, experts stacked in rows), and an FSDP plan is estimated, wrapping replayed."""
    from rankwise.advisor import memory

    spec = load_model(group["ids"][0])
    fam = spec.params_by_family
    linears = sum(l.params for l in spec.linears if not (l.family == "lm_head" and spec.tied_embeddings))
    modules = sum(fam.get(k, 0) for k in ("attn", "mlp", "experts", "lm_head"))
    assert abs(linears - modules) <= 1e-3 * modules
    for method in ("lora", "qlora"):
        got = memory.estimate(spec, memory.Plan(method, targets="all-linear", gpus=2, strategy="fsdp"))
        assert got.peak_bytes == sum(got.components.values())


def test_a_dense_first_layer_and_shared_experts_are_one_linear_of_the_right_size():
    """GLM-4.7-Flash: layer 0's MLP is dense (intermediate 10240), layers 1-46 have one shared expert (1536) beside
    64 routed ones; both are `gate_proj`, as peft's target_modules sees them. It used to take layer 0's shape for all
    47 (2.5B parameters too many) and crash the FSDP wrap replay on a negative root unit."""
    from rankwise.advisor import memory

    spec = load_model("zai-org/GLM-4.7-Flash")
    gate = spec.linear("gate_proj")
    assert (gate.family, gate.d_in, gate.count) == ("mlp", 2048, 47)  # shared experts run for every token: mlp
    assert gate.d_out == round((10240 + 46 * 1536) / 47)
    assert spec.linear("experts.gate_up_proj").count == 46 * 64
    got = memory.estimate(spec, memory.Plan("qlora", targets="all-linear", gpus=2, strategy="fsdp"))
    assert got.components["fsdp_wrap"] > 0 or got.transients["fsdp_wrap"] > 0


# Names from axolotl's examples and unsloth's table of its uploads, and the original each copies.
SAME_AS = [
    ("NousResearch/Llama-2-7b-hf", "meta-llama/Llama-2-7b-hf"),
    ("NousResearch/Llama-3.2-1B", "meta-llama/Llama-3.2-1B"),
    ("NousResearch/Meta-Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B"),
    ("NousResearch/Meta-Llama-3-8B-Instruct", "meta-llama/Meta-Llama-3-8B"),
    ("mistral-community/Mixtral-8x22B-v0.1", "mistralai/Mixtral-8x22B-v0.1"),
    ("meta-llama/Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B"),  # Meta's repositories renamed
    ("meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Meta-Llama-3.1-70B"),
    ("meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-1B"),
    ("unsloth/llama-3-8b-bnb-4bit", "meta-llama/Meta-Llama-3-8B"),
    ("unsloth/Llama-3.2-3B-Instruct-unsloth-bnb-4bit", "meta-llama/Llama-3.2-3B"),
    ("unsloth/mistral-7b-v0.3-bnb-4bit", "mistralai/Mistral-7B-v0.3"),
    ("unsloth/tinyllama-bnb-4bit", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"),
    ("unsloth/Qwen2.5-7B-Instruct-bnb-4bit", "Qwen/Qwen2.5-7B"),
    ("unsloth/gemma-2-9b-it-bnb-4bit", "google/gemma-2-9b"),
    ("unsloth/Phi-3.5-mini-instruct", "microsoft/Phi-3-mini-4k-instruct"),
    ("unsloth/SmolLM2-360M-Instruct-bnb-4bit", "HuggingFaceTB/SmolLM2-360M"),  # the suffix rule, not unsloth's table
    ("Qwen/Qwen2-7B-Chat", "Qwen/Qwen2-7B"),  # the variant rule
    ("GOOGLE/GEMMA-2-2B-IT", "google/gemma-2-2b"),  # any case
    ("meta-llama/llama-3.2-1b-instruct", "meta-llama/Llama-3.2-1B"),
    ("axolotl-quants/Llama-4-Scout-17B-16E-Linearized-bnb-nf4-bf16", "meta-llama/Llama-4-Scout-17B-16E"),
    ("mhenrichsen/gemma-7b", "google/gemma-7b"),  # aliases (bench/model_index_defaults.py)
    ("mistralai/Ministral-3-3B-Reasoning-2512", "mistralai/Ministral-3-3B-Instruct-2512"),
    ("google/gemma-3-270m-it", "google/gemma-3-270m"),
    ("openai/gpt-oss-safeguard-20b", "openai/gpt-oss-20b"),
    ("TechxGenus/Meta-Llama-3-8B-Instruct-AWQ", "meta-llama/Meta-Llama-3-8B"),
    ("alpindale/Llama-3.2-11B-Vision-Instruct", "meta-llama/Llama-3.2-11B-Vision"),
    ("nvidia/Qwen3-30B-A3B-NVFP4", "Qwen/Qwen3-30B-A3B"), ("Qwen/Qwen3.5-35B-A3B-Base", "Qwen/Qwen3.5-35B-A3B"),
    ("mistralai/Magistral-Small-2509", "mistralai/Mistral-Small-3.1-24B-Instruct-2503"),
    ("mistralai/Devstral-Small-2507", "mistralai/Magistral-Small-2506"),  # both Mistral Small 3.1's text decoder
    ("agentica-org/DeepCoder-14B-Preview", "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B"),
    ("axolotl-ai-co/Mistral-Small-4-119B-2603-BF16", "mistralai/Mistral-Small-4-119B-2603"),
    ("katanemo/Plano-Orchestrator-4B", "Qwen/Qwen3-4B-Instruct-2507"),
    ("nvidia/DeepSeek-V4-Flash-NVFP4", "deepseek-ai/DeepSeek-V4-Flash"),
    ("openlm-research/open_llama_3b_v2", "openlm-research/open_llama_3b"), ("XiaomiMiMo/MiMo-7B-RL", "XiaomiMiMo/MiMo-7B-Base"),
    ("Mapika/GLM-5.2-NVFP4", "zai-org/GLM-5.2"), ("LnL-AI/dbrx-base-converted-v2", "databricks/dbrx-base"),
    ("axolotl-quants/DeepSeek-V2.5-bnb-nf4-bf16", "deepseek-ai/DeepSeek-V2"),
    ("deepcogito/cogito-v1-preview-qwen-14B", "Qwen/Qwen2.5-14B"),
    # the alignment-handbook's intermediate models, which its DPO recipes start from
    ("alignment-handbook/zephyr-7b-sft-qlora", "mistralai/Mistral-7B-v0.1"),
    ("HuggingFaceH4/zephyr-7b-gemma-sft-v0.1", "google/gemma-7b"),
    ("loubnabnl/smollm2-1.7B-sft", "HuggingFaceTB/SmolLM2-1.7B"),
    ("HuggingFaceTB/SmolLM3-3B-checkpoints", "HuggingFaceTB/SmolLM3-3B"),
]


@pytest.mark.parametrize("name,original", SAME_AS)
def test_reuploads_and_variants_resolve_to_the_original(name, original):
    entry, base = model_index.lookup(name), model_index.lookup(original)
    assert entry and base and entry.config == base.config
    assert load_model(name).total_params == load_model(original).total_params


@pytest.mark.parametrize("name", ["someone/Llama-2-7b-hf", "meta-llama/Llama-2-7b-hf-extra", "Qwen/Qwen9-7B",
                                  "unsloth/not-a-model-bnb-4bit"])
def test_names_the_index_does_not_know_stay_unknown(name):
    assert model_index.lookup(name) is None
    with pytest.raises(RankwiseError, match="unknown model"):
        load_model(name)


def test_catalog_names_keep_working_and_agree_with_the_index():
    for name, model_id in [("llama-3.1-8b", "meta-llama/Meta-Llama-3.1-8B"), ("llama-3.2-1b", "meta-llama/Llama-3.2-1B"),
                           ("qwen2.5-7b", "Qwen/Qwen2.5-7B"), ("gemma-2-9b", "google/gemma-2-9b"),
                           ("mistral-7b", "mistralai/Mistral-7B-v0.3"), ("mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1")]:
        cat, idx = load_model(name), spec_from_config(model_id, "index", model_index.lookup(model_id).config)
        assert cat.source == "catalog"
        assert (cat.total_params, cat.linears) == (idx.total_params, idx.linears), name


def test_a_model_in_the_hf_cache_wins_over_the_index(tmp_path, monkeypatch):
    snap = tmp_path / "models--meta-llama--Llama-3.2-1B" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    tiny = json.loads((model.Path(__file__).parent.parent / "presets/assets/tiny-llama/config.json").read_text())
    (snap / "config.json").write_text(json.dumps(tiny))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    spec = load_model("meta-llama/Llama-3.2-1B")
    assert spec.source == "hf-cache" and spec.path == str(snap) and spec.hidden_size == tiny["hidden_size"]


# The CLI as a user runs it with torch unimportable, every socket refused and an empty HF home.
PRELUDE = ("import socket, sys\n"
           "def refuse(*a, **k): raise OSError('network use in an offline test')\n"
           "socket.socket.connect = refuse; socket.create_connection = refuse\n"
           "for m in ('torch', 'transformers', 'peft', 'bitsandbytes', 'accelerate'): sys.modules[m] = None\n"
           "from rankwise.tui.cli import main\nsys.exit(main(sys.argv[1:]))")


def run_offline(tmp_path, *args):
    env = {**__import__("os").environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
           "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", PRELUDE, *args], capture_output=True, text=True, timeout=120, env=env)
    assert not (tmp_path / "hf").exists(), "something was written to the Hugging Face home"
    return out


def test_estimate_for_an_hf_id_offline_without_torch(tmp_path):
    out = run_offline(tmp_path, "estimate", "--model", "meta-llama/Llama-3.2-1B-Instruct", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["peak_bytes"] > load_model("llama-3.2-1b").total_params * 2


def test_check_of_an_axolotl_file_naming_a_reupload_gets_a_fit_answer(tmp_path):
    cfg = tmp_path / "axolotl.yml"
    cfg.write_text("base_model: NousResearch/Llama-2-7b-hf\nadapter: lora\nlora_r: 16\nlora_alpha: 32\n"
                   "lora_target_linear: true\nsequence_len: 2048\nmicro_batch_size: 2\n"
                   "gradient_checkpointing: true\ndatasets:\n  - path: data.jsonl\n    type: alpaca\n")
    out = run_offline(tmp_path, "check", str(cfg), "--gpu-mem", "24GiB", "--json")
    assert out.returncode in (0, 3), out.stderr  # 3: an error-level finding, which a fit answer may be
    report = json.loads(out.stdout)
    assert report["model"] == "NousResearch/Llama-2-7b-hf" and report["fit"] in ("fits", "tight", "wont-fit")
    assert report["estimate"]["peak_bytes"] > 13e9  # 6.74B parameters in 16 bit


def test_a_multimodal_entry_counts_its_tower_but_offers_no_tower_targets():
    """llava-1.5: a CLIP ViT-L/14-336 tower and a projector load with the decoder; peft-style names
    are the decoder's only (a tower's q_proj must not merge with the decoder's)."""
    spec = load_model("llava-hf/llava-1.5-7b-hf")
    assert 0.3e9 < spec.params_by_family["vision"] < 0.35e9
    q = spec.linear("q_proj")
    assert (q.d_in, q.d_out, q.count) == (4096, 4096, 32)
    assert "fc1" not in spec.adaptable_names()


@pytest.mark.parametrize("model_id,width", [
    ("mixtral-8x7b", 2 * 14336),  # intermediate_size is the expert's width: as before
    ("Qwen/Qwen3-30B-A3B", 8 * 768),  # config's intermediate_size (6144) is not an expert's (768)
    ("Qwen/Qwen1.5-MoE-A2.7B", 4 * 1408 + 5632),  # four routed experts and the shared one
    ("deepseek-ai/DeepSeek-V2-Lite", 6 * 1408 * 26 // 27 + (26 * 2 * 1408 + 10944) // 27),  # dense first layer
    ("llama-3.1-8b", 14336),
    ("databricks/dbrx-base", 4 * 10752),  # top-k nested in ffn_config (moe_top_k), experts stacked in rows
])
def test_a_token_runs_through_its_experts_width_not_the_dense_size(model_id, width):
    """The saved MLP activations a token leaves in an MoE layer: the routed experts' width and what every token
    runs (shared experts, a dense first layer averaged over the layers), not config.json's dense intermediate_size."""
    from dataclasses import replace

    from rankwise.advisor.activations import layer_saved_bytes, stream_bytes
    from rankwise.advisor.memory import Plan

    spec = load_model(model_id)
    assert abs(spec.mlp_width - width) <= 1
    plan = Plan("lora", targets="standard")
    adapted = spec.resolve_targets("standard")
    one = layer_saved_bytes(spec, plan, adapted)
    wider = layer_saved_bytes(replace(spec, intermediate_size=2 * spec.intermediate_size), plan, adapted)
    assert wider - one == (0 if spec.is_moe else 3 * stream_bytes(plan) * spec.intermediate_size)
