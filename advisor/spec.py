"""Model shapes: `ModelSpec` (what a model holds, never its weights) and its `Linear` kinds.

Both readers build these: the analytic one from config.json (`model.py`, with the
family records of `families.py`) and the meta-device one (`meta.py`). The estimator,
recommender and red flags read them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from .errors import RankwiseError, closest
from .families import Family, family_of
from .linear_attention import GatedDeltaNet, KimiDelta, read as read_linear_attention
from .mamba import BARE_WEIGHTS, MIXER_ONLY_TYPES, Mamba1, Mamba2, read as read_mamba, read_mamba1

# Named target sets (the schema's `lora.target_modules` accepts these or a list of names).
TargetSet = Literal["minimal", "standard", "aggressive", "all-linear"]
TARGET_SETS: tuple[str, ...] = get_args(TargetSet)


# The input embedding's module name across transformers' architectures (Llama-likes, GPT-2, GPT-NeoX, Falcon/BLOOM).
EMBEDDING_NAMES = ("embed_tokens", "wte", "tok_embeddings", "word_embeddings", "embed_in")
# config.json keys of the experts a token is routed to, by architecture: most (Mixtral, Qwen-MoE, DeepSeek,
# OLMoE, gpt-oss, Llama 4) `num_experts_per_tok`; DBRX nests `moe_top_k` in `ffn_config`; Hunyuan's
# `moe_topk` may be a list (one value a layer).
TOP_K_KEYS = ("num_experts_per_tok", "moe_top_k", "moe_topk", "num_experts_per_token")


# MoE architectures whose transformers implementation runs every expert on every token: Llama 4's Llama4TextMoe
# (transformers 5 models/llama4/modeling_llama4.py) repeats the layer's input once per expert, scales each copy by
# the router's scores (zero for the experts a token is not routed to) and runs the experts as dense bmm's; its
# Llama4TextExperts is not one of the routed experts implementations (`use_experts_implementation`).
DENSE_MOE_TYPES = frozenset({"llama4", "llama4_text"})


# peft 0.21 refuses LoRA on these modules of Mamba-based models (tuners/tuners_utils.py
# `_check_lora_target_modules_mamba`): a Mamba2 mixer's out_proj is read by mamba-ssm's fused kernel as a bare weight
PEFT_MAMBA_TYPES = frozenset({"falcon_h1", "mamba", "mamba2", "falcon_mamba", "nemotron_h"})
PEFT_MAMBA_REFUSED = ("out_proj", "conv1d")


def experts_per_token(cfg: dict) -> int:
    """How many experts a token runs, from a config.json dict (its text config and DBRX's `ffn_config` looked
    in too); 0 when none is stated (a dense model)."""
    for where in (cfg, cfg.get("text_config") or {}, cfg.get("ffn_config") or {}):
        for key in TOP_K_KEYS:
            value = where.get(key) if isinstance(where, dict) else None
            if isinstance(value, list) and value:
                value = max(value)
            if isinstance(value, int) and value > 0:
                return value
    return 0


@dataclass(frozen=True)
class Linear:
    """One kind of linear weight: `count` modules named `name` of shape d_in → d_out."""

    name: str  # leaf name, as LoRA target_modules match it: "q_proj"
    family: str  # attn | mlp | experts | lm_head
    d_in: int
    d_out: int
    count: int
    bias: bool = False
    adaptable: bool = True  # an nn.Linear that LoRA target_modules can wrap (fused expert tensors are not)
    bare: bool = False  # the model's forward reads its weight bare (mamba.BARE_WEIGHTS): not adapted, not quantized

    @property
    def params(self) -> int:
        return self.count * (self.d_in * self.d_out + (self.d_out if self.bias else 0))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str  # catalog | index | local | hf-cache
    model_type: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int
    tied_embeddings: bool
    linears: tuple[Linear, ...]
    params_by_family: dict[str, int]  # embed, attn, mlp, experts, router, norm, lm_head, vision, other
    num_experts: int = 0
    experts_per_token: int = 0
    config: dict = field(default_factory=dict, repr=False, compare=False)
    path: str | None = None  # local folder holding weights/tokenizer, when there is one
    head_outputs: int = 0  # a classification head's outputs in place of the vocabulary (with_score_head); 0: none

    @property
    def total_params(self) -> int:
        return sum(self.params_by_family.values())

    def __post_init__(self):
        """The linears the model's forward reads bare (mamba.BARE_WEIGHTS) marked, whichever reader built the spec."""
        bare, _ = BARE_WEIGHTS.get(self.model_type, ((), ""))
        if any(l.name in bare and not l.bare for l in self.linears):
            object.__setattr__(self, "linears", tuple(replace(l, bare=l.name in bare) for l in self.linears))

    @property
    def logit_width(self) -> int:
        """Logits a token: the vocabulary, or a classification head's outputs."""
        return self.head_outputs or self.vocab_size

    def with_score_head(self, outputs: int) -> "ModelSpec":
        """The model as AutoModelForSequenceClassification / ForTokenClassification builds it (a reward model):
        a `score` linear of `outputs` rows in place of the output head (never tied to the embedding), so the logits
        are `outputs` wide, not the vocabulary."""
        if outputs <= 0:
            return self
        fam = dict(self.params_by_family)
        fam["lm_head"] = outputs * self.hidden_size
        linears = tuple(replace(l, d_out=outputs, count=1) if l.family == "lm_head" else l for l in self.linears)
        if not any(l.family == "lm_head" for l in linears):  # a tied head: no linear of its own until now
            linears += (Linear("lm_head", "lm_head", self.hidden_size, outputs, 1, adaptable=False),)
        return replace(self, params_by_family=fam, linears=linears, tied_embeddings=False, head_outputs=outputs)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    def with_linear_experts(self) -> "ModelSpec":
        """The model with each fused expert tensor stored as one nn.Linear per expert, as axolotl's linearized
        Llama 4 builds it (monkeypatch/models/llama4/modeling.py Llama4TextExperts: `gate_projs`, `up_projs` and
        `down_projs`, ModuleLists of nn.Linear(hidden, width) / nn.Linear(width, hidden)): linears bitsandbytes
        quantizes and LoRA can target. A fused gate_up tensor becomes the two halves."""
        h = self.hidden_size
        out: list[Linear] = []
        for l in self.linears:
            if not (l.family == "experts" and not l.adaptable):
                out.append(l)
                continue
            leaf = l.name.rsplit(".", 1)[-1]
            if "gate_up" in leaf:
                width = l.d_in * l.d_out // (2 * h)
                out += [Linear(name, "experts", h, width, l.count) for name in ("gate_projs", "up_projs")]
            elif "down" in leaf:
                out.append(Linear("down_projs", "experts", l.d_in * l.d_out // h, h, l.count))
            else:
                out.append(replace(l, adaptable=True))
        return replace(self, linears=tuple(out))

    @property
    def linear_attention(self) -> GatedDeltaNet | KimiDelta | None:
        """The Gated DeltaNet layers of a hybrid (Qwen3-Next, Qwen3.5; Kimi Linear's per-channel variant), or None
        (linear_attention.py)."""
        return read_linear_attention(self.model_type, self.config, self.num_layers)

    @property
    def mamba(self) -> Mamba2 | None:
        """The Mamba2 mixers of a hybrid (Nemotron-H, Granite 4.0-H, Bamba), or None (mamba.py)."""
        return read_mamba(self.model_type, self.config, self.num_layers)

    @property
    def mamba1(self) -> Mamba1 | None:
        """The Mamba1 mixers of Jamba, Mamba and Falcon-Mamba, or None (mamba.py)."""
        return read_mamba1(self.model_type, self.config, self.num_layers)

    @property
    def mixer_only(self) -> bool:
        """Every layer is a norm and a mixer, with no MLP (Mamba, Falcon-Mamba: mamba.MIXER_ONLY_TYPES)."""
        return self.model_type in MIXER_ONLY_TYPES

    @property
    def residual_fp32(self) -> bool:
        """The residual stream between layers is fp32 whatever the compute dtype (`residual_in_fp32`, Mamba's
        default: the block adds its mixer's output to an fp32 copy of its input)."""
        return self.mixer_only and bool(self.config.get("residual_in_fp32", True))

    @property
    def attention_layers(self) -> int:
        """Layers with softmax attention: all but a hybrid's Gated DeltaNet, Mamba2 or Mamba1 layers (a block model's
        MLP and MoE blocks have none either)."""
        m = self.mamba
        if m is not None:
            return m.attention if m.blocks or m.parallel else self.num_layers - m.layers
        g = self.linear_attention or self.mamba1
        return self.num_layers - (g.layers if g else 0)

    @property
    def norms_per_layer(self) -> int:
        """RMSNorms a decoder layer: the family's, or one a block in a block model (Nemotron-H) and in a mixer-only
        model."""
        m = self.mamba
        return 1 if (m is not None and m.blocks) or self.mixer_only else self.family.norms_per_layer

    @property
    def dense_moe(self) -> bool:
        """Every expert runs on every token (DENSE_MOE_TYPES)."""
        return self.is_moe and self.model_type in DENSE_MOE_TYPES

    @property
    def experts_run(self) -> int:
        """The experts each token's computation runs through: the routed ones, or all of them in a dense MoE."""
        return self.num_experts if self.dense_moe else self.experts_per_token

    @property
    def mlp_width(self) -> int:
        """The MLP width one token passes through in an average decoder layer. Dense: the intermediate size. MoE:
        each routed expert's width (its fused tensors hold gate, up and down: 3 x hidden x width a expert) times the
        experts a token is routed to, in the layers that have experts, plus the MLP every token runs there or in
        the dense layers (shared experts, DeepSeek's and GLM's first layers: the `mlp` family's down_proj input,
        averaged over the layers). config.json's intermediate_size is the dense layers' width in DeepSeek, GLM
        and Qwen-MoE (6144 where a Qwen3-30B-A3B expert is 768), so it is not used for an MoE. A dense MoE
        (Llama 4 in transformers) runs every expert on every token (`experts_run`)."""
        if self.mixer_only:  # config.json's intermediate_size is the mixer's d_inner there
            return 0
        experts = [l for l in self.linears if l.family == "experts"]
        if not (self.is_moe and experts and self.num_experts):
            return self.intermediate_size * (max(1, self.experts_run) if self.is_moe else 1)
        width = sum(l.d_in * l.d_out for l in experts) // (3 * self.hidden_size)
        routed = width * max(1, self.experts_run) * experts[0].count // (self.num_experts * self.num_layers)
        return routed + self.dense_mlp_width

    @property
    def dense_mlp_width(self) -> int:
        """The width of the MLP linears every token runs in an average layer: a dense model's intermediate size; in an
        MoE the `mlp` family's (shared experts, dense first layers: their down projections' inputs, averaged over
        the layers), not the routed experts'."""
        if not self.is_moe:
            return 0 if self.mixer_only else self.intermediate_size
        every = [l for l in self.linears if l.family == "mlp" and l.d_out == self.hidden_size]  # down projections
        return sum(l.d_in * l.count for l in every) // self.num_layers

    @property
    def bare_names(self) -> tuple[str, ...]:
        """Linears the model's forward reads as bare weights (Linear.bare): kept out of LoRA and of quantization."""
        return tuple(l.name for l in self.linears if l.bare)

    @property
    def peft_refused(self) -> tuple[str, ...]:
        """Linear names peft will not adapt in this model (PEFT_MAMBA_REFUSED in a Mamba-based model)."""
        return PEFT_MAMBA_REFUSED if self.model_type in PEFT_MAMBA_TYPES else ()

    def adaptable_names(self) -> list[str]:
        """Module names LoRA can target, lm_head excluded (as peft's all-linear does), and those peft refuses."""
        refused = self.peft_refused
        return [l.name for l in self.linears
                if l.adaptable and not l.bare and l.family != "lm_head" and l.name not in refused]

    @property
    def family(self) -> Family:
        """This architecture's record (`families.GENERIC` for one read on the meta device)."""
        return family_of(self.model_type)

    def target_set(self, kind: str) -> list[str]:
        """A named target set → this model's module names."""
        names = self.adaptable_names()
        attn = [n for n in names if self.linear(n).family == "attn"]
        mlp = [n for n in names if self.linear(n).family == "mlp"]
        qv = [n for n in self.family.minimal_names if n in names] or [n for n in attn if "qkv" in n]
        if kind == "minimal":
            return qv
        if kind == "standard":
            return attn
        if kind == "aggressive":
            return attn + mlp
        if kind == "all-linear":
            return names
        raise RankwiseError(f"unknown target set {kind!r}", f"use {', '.join(TARGET_SETS[:-1])} or {TARGET_SETS[-1]}")

    def peft_targets(self, targets: str | list[str]) -> list[str]:
        """lora.target_modules as the worker hands it to peft's LoraConfig: a named set as this model's module
        names, a list as written."""
        return self.target_set(targets) if isinstance(targets, str) else list(targets)

    def linear(self, name: str) -> Linear:
        for l in self.linears:
            if l.name == name:
                return l
        raise KeyError(name)

    def resolve_targets(self, targets: str | list[str] | tuple[str, ...]) -> list[Linear]:
        """Target modules (a named set, a comma list or a list) → the adapted linears.
        A name the model does not have is an error that lists those it has."""
        if isinstance(targets, str):
            if targets in TARGET_SETS:
                return [self.linear(n) for n in self.target_set(targets)]
            targets = [t.strip() for t in targets.split(",") if t.strip()]
        have = self.adaptable_names()
        missing = [t for t in targets if t not in have]
        refused = [t for t in missing if t in self.peft_refused]
        bare = [t for t in missing if t in self.bare_names and t not in refused]

        def refuse(names: list[str], why: str):
            raise RankwiseError(f"target module{'s' if len(names) > 1 else ''} {', '.join(names)}: {why}",
                                f"drop {', '.join(names)}; {self.name} can adapt: {', '.join(have)}")

        if bare:
            refuse(bare, f"{self.model_type}'s Mamba mixer reads {'their weights' if len(bare) > 1 else 'its weight'} "
                         f"bare in training ({BARE_WEIGHTS[self.model_type][1]}: transformers' "
                         f"modeling_{self.model_type}.py), so a LoRA adapter there would get no gradient")
        if refused:
            refuse(refused, f"peft refuses LoRA on {'them' if len(refused) > 1 else 'it'} in a Mamba-based model "
                            f"({self.model_type}; its fused kernel reads the weight bare)")
        if missing:
            hint = f"{self.name} has: {', '.join(have)}"
            sugg = [s for t in missing for s in closest(t, have, 1)]
            if sugg:
                hint = f"did you mean {', '.join(sugg)}? " + hint
            raise RankwiseError(f"target module{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                                f"not in {self.name}", hint)
        return [self.linear(n) for n in dict.fromkeys(targets)]

    def fused_names(self) -> list[str]:
        """Parameters LoRA can adapt only as parameters (peft target_parameters): the fused MoE expert tensors."""
        return [l.name for l in self.linears if not l.adaptable]

    def resolve_parameters(self, names: list[str] | tuple[str, ...]) -> list[Linear]:
        """lora.target_parameters → the fused expert tensors they adapt, matched as peft matches them (a parameter
        whose full name is the given name or ends with "." + it; a longer path over the fused name is taken to be its
        module path). A name that matches none is an error that lists those the model has."""
        have = self.fused_names()
        out: dict[str, Linear] = {}
        missing = []
        for n in names:
            hits = [h for h in have if h == n or h.endswith("." + n) or n.endswith("." + h)]
            if not hits:
                missing.append(n)
            out.update((h, self.linear(h)) for h in hits)
        if missing:
            adaptable = set(self.adaptable_names())
            linears = [n for n in missing if n.removesuffix(".weight").rpartition(".")[2] in adaptable]
            hint = (f"{self.name} has: {', '.join(have)}" if have else
                    f"{self.name} has no fused expert tensors (a dense model, or experts that are linears)")
            if linears:
                hint = f"{', '.join(linears)}: a linear layer, which lora.target_modules adapts; " + hint
            raise RankwiseError(f"lora.target_parameters: {', '.join(missing)} match{'es' if len(missing) == 1 else ''} "
                                f"no parameter of {self.name}", hint)
        return list(out.values())

    def with_added_tokens(self, n: int) -> "ModelSpec":
        """The model after model.added_tokens: `n` more rows in the embedding and in an untied head (at most: a
        vocabulary padded past its tokenizer takes new tokens into rows it already has)."""
        if n <= 0:
            return self
        fam = dict(self.params_by_family)
        fam["embed"] = fam.get("embed", 0) + n * self.hidden_size
        if fam.get("lm_head") and not self.head_outputs:  # a score head does not grow with the vocabulary
            fam["lm_head"] += n * self.hidden_size
        linears = tuple(replace(l, d_out=l.d_out + n) if l.family == "lm_head" and not self.head_outputs else l
                        for l in self.linears)
        return replace(self, vocab_size=self.vocab_size + n, params_by_family=fam, linears=linears)

    def saved_modules(self, names) -> list[tuple[str, int, bool]]:
        """lora.modules_to_save → (name, parameters, is an embedding) each: peft deep-copies each matched module
        into a trainable copy. `embed_tokens` (or another name of the input embedding) is the embedding family,
        `lm_head` the output head (a tied head is the embedding's matrix: its copy is as large), and a linear name
        counts every layer's module of that name. A name the model does not have is an error listing those it has."""
        out = []
        for name in names:
            if name == "lm_head" or name == "embed_out":
                out.append((name, self.params_by_family.get("lm_head") or self.vocab_size * self.hidden_size, False))
            elif name in EMBEDDING_NAMES:
                out.append((name, self.params_by_family.get("embed", 0), True))
            elif name in self.adaptable_names():
                out.append((name, self.linear(name).params, False))
            else:
                have = ["embed_tokens", "lm_head", *self.adaptable_names()]
                sugg = closest(name, have, 1)
                raise RankwiseError(f"lora.modules_to_save: {name} not in {self.name}",
                                    (f"did you mean {sugg[0]}? " if sugg else "") + f"rankwise counts: {', '.join(have)}")
        return out

    def lora_params(self, targets, r: int, parameters: list[str] | tuple[str, ...] = ()) -> int:
        """Trainable LoRA parameters: Σ over adapted linears (and adapted expert tensors, r per expert) of
        r·(d_in + d_out)."""
        adapted = self.resolve_targets(targets) + self.resolve_parameters(parameters)
        return sum(l.count * r * (l.d_in + l.d_out) for l in adapted)

    @property
    def low_rank_limit(self) -> int:
        """The highest rank at which LoRA is still low-rank on this model: half the hidden size. There an adapter on
        a hidden x hidden projection (A: r x h, B: h x r) holds as many parameters as the projection itself
        (2·r·h = h²); above it the adapter holds more and saves nothing, and no update can exceed rank h anyway
        (a product B·A has rank at most min(r, d_in, d_out)). Arithmetic; it caps advise's bands (at most 128) only on
        models under 256 wide."""
        return max(1, self.hidden_size // 2)

    @property
    def low_rank_cap(self) -> int:
        """The largest power of two within `low_rank_limit`: the rank `advise` keeps to (its bands are powers of two)."""
        return 1 << (self.low_rank_limit.bit_length() - 1)

    def summary(self) -> dict:
        return {
            "name": self.name, "source": self.source, "model_type": self.model_type,
            "total_params": self.total_params, "params_by_family": dict(self.params_by_family),
            "layers": self.num_layers, "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size, "heads": self.num_heads,
            "kv_heads": self.num_kv_heads, "head_dim": self.head_dim, "vocab_size": self.vocab_size,
            "max_positions": self.max_positions, "tied_embeddings": self.tied_embeddings,
            "num_experts": self.num_experts, "experts_per_token": self.experts_per_token,
            "linears": [{"name": l.name, "family": l.family, "d_in": l.d_in, "d_out": l.d_out,
                         "count": l.count, "bias": l.bias, "adaptable": l.adaptable} for l in self.linears],
        }
