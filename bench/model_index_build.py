"""Builds advisor/model_index.json from public sources (run by hand; the tests never run it).

    python3 bench/model_index_build.py LITGPT_CONFIG_PY UNSLOTH_MAPPER_PY > advisor/model_index.json

LITGPT_CONFIG_PY is `litgpt/config.py` of github.com/Lightning-AI/litgpt at LITGPT_COMMIT (it
imports only the standard library, PyYAML and typing_extensions). Each litgpt entry names its
Hugging Face id (`hf_config`) and its shape; this script maps litgpt's names onto config.json's:

    n_embd → hidden_size            n_layer → num_hidden_layers      n_head → num_attention_heads
    n_query_groups → num_key_value_heads                              head_size → head_dim
    intermediate_size → intermediate_size (moe_intermediate_size for Qwen3 MoE)
    padded_vocab_size → vocab_size (the embedding's rows)             block_size → max_position_embeddings
    n_expert / n_expert_per_token → num_local_experts (num_experts for Qwen3 MoE) / num_experts_per_tok

litgpt does not record whether the output projection shares the embedding; `TIED` lists the
models torchtune builds with tied embeddings (github.com/pytorch/torchtune at TORCHTUNE_COMMIT,
the `_model_builders.py` named there). Every other entry is untied, and tests/test_model_index.py
checks the totals of those families against their model cards. The Qwen2 entries (not in litgpt)
are read from torchtune's qwen2 builders. model_type is the one the model's config.json names
(`MODEL_TYPES`, by id prefix).

UNSLOTH_MAPPER_PY is `unsloth/models/mapper.py` of github.com/unslothai/unsloth at UNSLOTH_COMMIT:
unsloth's table of its re-uploads (16-bit copies and bitsandbytes 4-bit uploads) and the
original each copies. Every re-upload of an indexed original joins the original's group.

Last, `model_index_defaults.py` (beside this file) adds architectures whose transformers configuration
class defaults are the checkpoint its docstring names, and aliases of indexed ids; building those
imports transformers.
"""
from __future__ import annotations

import importlib.util
import json
import sys

LITGPT = {"repo": "Lightning-AI/litgpt", "path": "litgpt/config.py",
          "commit": "26857050fe3ff627cd714fe92f5838f51a3d5efa"}
TORCHTUNE_COMMIT = "bd2a0fc7c31430972728494fa01aaeeb0ebf1ba1"
UNSLOTH = {"repo": "unslothai/unsloth", "path": "unsloth/models/mapper.py",
           "commit": "015bdef0d94a241bcd94eec7a405b1700632180d"}


def torchtune(path: str) -> dict:
    return {"repo": "pytorch/torchtune", "path": path, "commit": TORCHTUNE_COMMIT}


# Families people fine-tune (litgpt also lists Pythia, StableLM, Falcon 1, ...: left out).
# (id prefix, config.json model_type); the first match wins.
MODEL_TYPES = [
    ("meta-llama/", "llama"), ("nvidia/Llama-3.1-Nemotron", "llama"), ("deepseek-ai/DeepSeek-R1-Distill-Llama", "llama"),
    ("TinyLlama/", "llama"), ("codellama/", "llama"), ("HuggingFaceTB/SmolLM2", "llama"), ("tiiuae/Falcon3", "llama"),
    ("mistralai/Mixtral", "mixtral"), ("mistralai/Mistral", "mistral"), ("unsloth/Mistral-7B-v0.2", "mistral"),
    ("Qwen/Qwen2.5-0", "qwen2"), ("Qwen/Qwen2.5-1", "qwen2"), ("Qwen/Qwen2.5-3", "qwen2"), ("Qwen/Qwen2.5-7", "qwen2"),
    ("Qwen/QwQ", "qwen2"),
    ("Qwen/Qwen3-30B-A3B", "qwen3_moe"), ("Qwen/Qwen3-235B-A22B", "qwen3_moe"), ("Qwen/Qwen3-", "qwen3"),
    ("google/gemma-2-", "gemma2"), ("google/gemma-3-1b", "gemma3_text"),
    ("microsoft/Phi-3", "phi3"), ("microsoft/phi-4", "phi3"), ("microsoft/Phi-4-reasoning", "phi3"),
    ("microsoft/Phi-4-mini", "phi3"),
    ("allenai/OLMo-2", "olmo2"), ("openlm-research/open_llama", "llama"),
]
# Left out on purpose: gemma-3-4b/12b/27b (multimodal: litgpt lists the text decoder only, the
# vision tower would be missing from the estimate); Qwen2.5-Coder/-Math (tied embeddings recorded in no
# source at hand).
SKIP = ("google/gemma-3-4b", "google/gemma-3-12b", "google/gemma-3-27b")

# Tied input/output embeddings, as torchtune builds them.
TIED = {
    "meta-llama/Llama-3.2-1B": torchtune("torchtune/models/llama3_2/_model_builders.py"),
    "meta-llama/Llama-3.2-3B": torchtune("torchtune/models/llama3_2/_model_builders.py"),
    "Qwen/Qwen2.5-0.5B": torchtune("torchtune/models/qwen2_5/_model_builders.py"),
    "Qwen/Qwen2.5-1.5B": torchtune("torchtune/models/qwen2_5/_model_builders.py"),
    "Qwen/Qwen2.5-3B": torchtune("torchtune/models/qwen2_5/_model_builders.py"),
    "Qwen/Qwen3-0.6B": torchtune("torchtune/models/qwen3/_model_builders.py"),
    "Qwen/Qwen3-1.7B": torchtune("torchtune/models/qwen3/_model_builders.py"),
    "Qwen/Qwen3-4B": torchtune("torchtune/models/qwen3/_model_builders.py"),
    "HuggingFaceTB/SmolLM2-": torchtune("torchtune/models/smol/_component_builders.py"),
    # ExecuTorch's Phi-4-mini converter: "Input and output embeddings are tied." (phi_4_tune_to_meta)
    "microsoft/Phi-4-mini-": {"repo": "pytorch/executorch", "path": "examples/models/phi_4_mini/convert_weights.py",
                              "commit": "024b0da461f657d6abe596891b754adf0d48fc17"},
}
# The Qwen3-4B 2507 releases (262144 positions, rope_theta 5e6) as their config.json is quoted here:
QWEN3_4B_2507 = {"repo": "akougkas/warpio-cli", "path": "warpio-docs/ai-docs/model_cards/qwen3:4b.md",
                 "commit": "e84bac5ae0e0519356116b2813604b13df368029"}
TIED["Qwen/Qwen3-4B-Instruct-2507"] = TIED["Qwen/Qwen3-4B-Thinking-2507"] = QWEN3_4B_2507

# Families whose config class ties embeddings unless config.json says otherwise; the key is left
# out so the default applies (rankwise.advisor.families' gemma2 record; Gemma3TextConfig).
TIED_BY_DEFAULT = {"gemma2": "the family's default (advisor/families.py: Gemma2Config ties)",
                   "gemma3_text": "the family's default (transformers Gemma3TextConfig ties)"}

# torchtune/models/qwen2/_model_builders.py: qwen2_0_5b, qwen2_1_5b, qwen2_7b (from the -Instruct cards).
QWEN2 = [  # (ids, hidden, inter, layers, heads, kv, vocab, positions, tied)
    (["Qwen/Qwen2-0.5B", "Qwen/Qwen2-0.5B-Instruct"], 896, 4864, 24, 14, 2, 151936, 32768, True),
    (["Qwen/Qwen2-1.5B", "Qwen/Qwen2-1.5B-Instruct"], 1536, 8960, 28, 12, 2, 151936, 32768, True),
    (["Qwen/Qwen2-7B", "Qwen/Qwen2-7B-Instruct"], 3584, 18944, 28, 28, 4, 152064, 32768, False),
]


def github(repo: str, path: str, commit: str) -> dict:
    return {"repo": repo, "path": path, "commit": commit}


# config.json as quoted in public repositories (the fields that decide shapes, copied as written).
QUOTED = [
    # Mistral-Nemo-Instruct-2407 is the instruct fine-tune of the base (its model card).
    (["mistralai/Mistral-Nemo-Base-2407", "mistralai/Mistral-Nemo-Instruct-2407"],
     {"model_type": "mistral", "hidden_size": 5120, "num_hidden_layers": 40, "num_attention_heads": 32,
      "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 14336, "vocab_size": 131072,
      "max_position_embeddings": 128000, "tie_word_embeddings": False},
     github("kevinstephano/thunder_model_blocks", "thunder_model_blocks/mistral/mistral_config.py",
            "a23dd8fe87e974d06332635cfd3064614c47ae27")),
    # Yi's own configuration class (architectures LlamaForCausalLM), its defaults being Yi-6B's config.json
    (["01-ai/Yi-6B", "01-ai/Yi-6B-Chat"],
     {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
      "num_key_value_heads": 4, "intermediate_size": 11008, "vocab_size": 64000, "max_position_embeddings": 4096,
      "tie_word_embeddings": False},
     github("InternLM/InternEvo-HFModels", "huggingface_model/yi/yi_6B/configuration_yi.py",
            "3850aa4158bc2bd5e1d193807d39378c010b85a0")),
    # TinyLlama v1.1's config.json as a test-data copy holds it (its max_position_embeddings, 262144 there, is
    # left out: not the 2048 TinyLlama was trained at, so possibly the copy's own)
    (["TinyLlama/TinyLlama_v1.1"],
     {"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 22, "num_attention_heads": 32,
      "num_key_value_heads": 4, "intermediate_size": 5632, "vocab_size": 32000, "tie_word_embeddings": False},
     github("connorcarpenter15/dynamo", "lib/llm/tests/data/sample-models/TinyLlama_v1.1/config.json",
            "784c97659bdf9dc03326297ab4b0fdeb5e0904e6")),
]

# Fine-tunes that keep their base model's architecture: (id, base id in litgpt). The base is named by
# DeepSeek-R1's README ("Distilled Model | Base Model"); the context length is left out (the
# fine-tunes extend it), and the totals are checked against the cards in the tests.
R1_README = github("deepseek-ai/DeepSeek-R1", "README.md", "0cf78561f1d51c84a21b2190626b21116d5c68bb")
FINE_TUNES = [("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "Qwen/Qwen2.5-Math-7B"),
              ("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "Qwen/Qwen2.5-14B"),
              ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "Qwen/Qwen2.5-32B")]


def model_type(hf_id: str) -> str | None:
    if hf_id.startswith(SKIP):
        return None
    return next((mt for prefix, mt in MODEL_TYPES if hf_id.startswith(prefix)), None)


def tied(hf_id: str) -> dict | None:
    """The source saying `hf_id` ties its embeddings, or None (untied)."""
    for prefix, src in TIED.items():
        base = hf_id.removesuffix("-Instruct").removesuffix("-Base")
        if base == prefix or (prefix.endswith("-") and hf_id.startswith(prefix)):
            return src
    return None


def from_litgpt(entry: dict, mt: str, Config) -> dict:
    """One litgpt entry (its defaults filled in by litgpt's own `Config`) → config.json fields."""
    c = Config(**entry)
    if entry.get("padded_vocab_size") is None and c.padded_vocab_size != c.vocab_size:
        print(f"left out {c.name}: litgpt pads its vocabulary itself, the embedding's rows are not recorded",
              file=sys.stderr)
        return None
    if c.bias:
        raise SystemExit(f"{c.name}: biased linears are not mapped")
    cfg = {"model_type": mt, "hidden_size": c.n_embd, "num_hidden_layers": c.n_layer,
           "num_attention_heads": c.n_head, "num_key_value_heads": c.n_query_groups,
           "intermediate_size": c.intermediate_size, "vocab_size": c.padded_vocab_size,
           "max_position_embeddings": c.block_size}
    if c.head_size != c.n_embd // c.n_head:
        cfg["head_dim"] = c.head_size
    if c.n_expert and mt == "mixtral":
        cfg.update(num_local_experts=c.n_expert, num_experts_per_tok=c.n_expert_per_token)
    elif c.n_expert:  # Qwen3MoeConfig: every layer sparse, experts of moe_intermediate_size
        cfg.update(num_experts=c.n_expert, num_experts_per_tok=c.n_expert_per_token,
                   moe_intermediate_size=c.moe_intermediate_size, decoder_sparse_step=1, mlp_only_layers=[])
    return cfg


def add(groups: dict, cfg: dict, ids: list[str], src: dict) -> None:
    """Ids with the same fields share one group; each group lists which source gave which ids."""
    group = groups.setdefault(json.dumps(cfg, sort_keys=True), {"config": cfg, "ids": [], "sources": []})
    group["ids"].extend(ids)
    same = [s for s in group["sources"] if {k: v for k, v in s.items() if k != "ids"} == src]
    if same:
        same[0]["ids"].extend(ids)
    else:
        group["sources"].append({"ids": list(ids), **src})


def _same_model(hf_id: str) -> str:
    """An id as Meta's renamed repositories spell it alike (Meta-Llama-3.1-8B is now Llama-3.1-8B)."""
    org, _, base = hf_id.lower().rpartition("/")
    return f"{org}/{base.removeprefix('meta-')}"


def add_reuploads(groups: dict, unsloth_mapper_py: str) -> None:
    """unsloth's re-uploads of indexed originals join the originals' groups."""
    import ast

    tree = ast.parse(open(unsloth_mapper_py, encoding="utf-8").read())
    table = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", "") == "__INT_TO_FLOAT_MAPPER")
    where = {_same_model(i): g for g in groups.values() for i in g["ids"]}
    for key, values in table.items():
        values = values["16"] if isinstance(values, dict) else values
        names = [key, *values]
        originals = [n for n in names if not n.lower().startswith("unsloth/") and _same_model(n) in where]
        if not originals:
            continue
        group = where[_same_model(originals[0])]
        new = [n for n in dict.fromkeys(names) if n.lower().startswith("unsloth/")
               and n.lower() not in {i.lower() for i in group["ids"]}]
        if new:
            group["ids"].extend(new)
            same = [s for s in group["sources"] if s.get("reupload_list") == UNSLOTH]
            if same:
                same[0]["ids"].extend(new)
            else:
                group["sources"].append({"ids": new, "reupload_list": UNSLOTH})


def add_defaults(groups: dict) -> None:
    """transformers configuration classes whose defaults are their docstring's checkpoint, and the
    aliases of indexed ids (bench/model_index_defaults.py says which and why)."""
    from model_index_defaults import (ALIASES, DEFAULTS, DEFAULTS_EXCEPT, VARIANTS, defaults_config, shape_fields,
                                      transformers_source)

    for ids, mt, checkpoint in DEFAULTS:
        add(groups, defaults_config(mt), ids, {"config": transformers_source(mt, checkpoint)})
    for ids, config, src in VARIANTS:  # one source, or several by role ({"config": ..., "base_model": ...})
        add(groups, shape_fields(config()), ids, src if "config" in src else {"config": src})
    for ids, mt, checkpoint, overrides, src in DEFAULTS_EXCEPT:
        add(groups, {**defaults_config(mt), **overrides}, ids,
            {"config": transformers_source(mt, checkpoint), "overrides": src})
    where = {i: g for g in groups.values() for i in g["ids"]}
    for alias, original, src in ALIASES:
        group = where[original]
        group["ids"].append(alias)
        group["sources"].append({"ids": [alias], "same_model_as": original, "source": src})


def build(litgpt_config_py: str, unsloth_mapper_py: str) -> dict:
    spec = importlib.util.spec_from_file_location("litgpt_config", litgpt_config_py)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    groups: dict[str, dict] = {}
    for c in mod.configs:
        hf_id = c["hf_config"]["org"] + "/" + c["hf_config"]["name"]
        mt = model_type(hf_id)
        if mt is None:
            continue
        cfg = from_litgpt(c, mt, mod.Config)
        if cfg is None:
            continue
        src = {"shape": LITGPT}
        tie_src = tied(hf_id)
        if mt in TIED_BY_DEFAULT:
            src["tie_word_embeddings"] = TIED_BY_DEFAULT[mt]
        else:
            cfg["tie_word_embeddings"] = tie_src is not None
            if tie_src:
                src["tie_word_embeddings"] = tie_src
        add(groups, cfg, [hf_id], src)
    by_hf_id = {c["hf_config"]["org"] + "/" + c["hf_config"]["name"]: c for c in mod.configs}
    for tuned, base in FINE_TUNES:
        cfg = from_litgpt(by_hf_id[base], "qwen2", mod.Config)
        del cfg["max_position_embeddings"]
        cfg["tie_word_embeddings"] = False
        add(groups, cfg, [tuned], {"shape": LITGPT, "base_model": R1_README})
    for ids, cfg, src in QUOTED:
        add(groups, dict(cfg), ids, {"config": src})
    for ids, h, inter, layers, heads, kv, vocab, pos, tie in QWEN2:
        cfg = {"model_type": "qwen2", "hidden_size": h, "num_hidden_layers": layers, "num_attention_heads": heads,
               "num_key_value_heads": kv, "intermediate_size": inter, "vocab_size": vocab,
               "max_position_embeddings": pos, "tie_word_embeddings": tie}
        src = torchtune("torchtune/models/qwen2/_model_builders.py")
        add(groups, cfg, ids, {"shape": src, "tie_word_embeddings": src})
    add_reuploads(groups, unsloth_mapper_py)
    add_defaults(groups)
    return {"about": "Hugging Face model ids -> config.json fields that decide shapes; built by "
                     "bench/model_index_build.py", "groups": list(groups.values())}


if __name__ == "__main__":
    json.dump(build(sys.argv[1], sys.argv[2]), sys.stdout, indent=1)
    sys.stdout.write("\n")
