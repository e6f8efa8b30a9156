"""Gated DeltaNet layers: what the linear-attention layers of the Qwen3-Next / Qwen3.5 hybrids keep for backward
(and Kimi Linear's Kimi Delta Attention, a Gated DeltaNet with a decay per channel: `KimiDelta`).

Three of every four decoder layers of these models (config.json `layer_types`: "linear_attention") replace softmax
attention with a Gated DeltaNet (transformers 5 models/qwen3_5/modeling_qwen3_5.py `Qwen3_5GatedDeltaNet`, the same
layer in qwen3_next and qwen3_5_moe): in_proj_qkv, a depthwise causal conv1d with SiLU over q, k and v, a decay `g`
and a rate `beta` a value head, the chunked delta rule, a gated RMSNorm, out_proj. The full-attention layers between
them gate their output (`attn_output * sigmoid(gate)`, half of q_proj's output) and norm q and k per head.

The delta rule runs in one of two implementations, chosen by transformers at run time
(integrations/hub_kernels.py `use_kernel_func_from_hub_with_fallback`):
- "fla": flash-linear-attention's `chunk_gated_delta_rule` (fla-core 0.6 ops/gated_delta_rule/chunk.py,
  `ChunkGatedDeltaRuleFunction.forward`: `ctx.save_for_backward(q, q_rstd, k, k_rstd, v, g, beta_raw, beta, A, ...)`,
  q and k L2-normed in the input dtype, A `(B, T, HV, 64)` in k's dtype, g fp32), where it is installed and the
  inputs are on a GPU;
- "torch": `torch_chunk_gated_delta_rule` otherwise (always on a CPU). It casts q, k, v, g and beta to fp32, pads
  the sequence to a multiple of 64, and autograd keeps about a dozen fp32 and 16-bit tensors of q/k/v width, the
  64 x 64 decay and UT matrices of every chunk, and 3 recurrent states (value heads x dk x dv) a chunk. Under 16-bit
  autocast each matmul keeps its own 16-bit copies of its inputs. Several times what softmax attention keeps.
The conv1d is the reference F.conv1d (its input and its padded output kept) unless `causal_conv1d` is installed
(its CausalConv1dFn keeps the input only).

Measured with autograd's saved tensors on tiny Qwen3.5 layers under bf16 autocast (tests/test_linear_attention.py):
the torch path's count below matches within 0.2%. The fla path is read from its source, not measured (no GPU here).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec

# model types whose "linear_attention" layers are transformers' Gated DeltaNet, with the config keys below
GATED_DELTANET_TYPES = frozenset({"qwen3_next", "qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text"})
CHUNK = 64  # the delta rule's chunk length (torch_chunk_gated_delta_rule and fla's chunk_size default)


@dataclass(frozen=True)
class GatedDeltaNet:
    """The linear-attention layers of one model: how many, and their head shapes (config.json)."""

    layers: int
    k_heads: int
    v_heads: int
    k_dim: int
    v_dim: int
    conv_kernel: int
    name = "Gated DeltaNet"
    gated_attention = True  # the full-attention layers beside them gate their output (Qwen3-Next, Qwen3.5)

    @property
    def conv_width(self) -> int:
        """Channels of the conv1d: q, k (k_heads x k_dim each) and v (v_heads x v_dim)."""
        return 2 * self.k_heads * self.k_dim + self.v_heads * self.v_dim


@dataclass(frozen=True)
class KimiDelta:
    """Kimi Linear's Kimi Delta Attention layers (transformers 5 models/kimi_linear/modeling_kimi_linear.py
    `KimiLinearDeltaAttention`): Gated DeltaNet with a decay per channel (a low-rank forget gate, heads x head_dim
    wide) in place of one a head, q, k and v of heads x head_dim each, a sigmoid-gated RMSNorm; MLA attention between
    them (no output gate)."""

    layers: int
    heads: int
    head_dim: int
    conv_kernel: int
    name = "Kimi Delta Attention"
    gated_attention = False


def text_config(cfg: dict) -> dict:
    """The decoder's config: a multimodal release (Qwen3.5) nests it under text_config."""
    inner = cfg.get("text_config")
    return inner if isinstance(inner, dict) and "hidden_size" not in cfg else cfg


def _kimi(cfg: dict, num_layers: int) -> KimiDelta | None:
    """Kimi Linear's KDA layers, from config.json's `linear_attn_config` (kda_layers, 1-indexed; num_heads, head_dim,
    short_conv_kernel_size) or from KimiLinearConfig's own keys (layer_types, linear_num_heads, ...)."""
    raw = cfg.get("linear_attn_config") if isinstance(cfg.get("linear_attn_config"), dict) else {}
    kinds = cfg.get("layer_types")
    if isinstance(kinds, list) and kinds:
        layers = sum(k == "linear_attention" for k in kinds)
    elif isinstance(raw.get("kda_layers"), list):
        layers = len(raw["kda_layers"])
    else:  # KimiLinearConfig's default: full attention every 4th layer from the fifth
        layers = sum(not (i and i % 4 == 0) for i in range(num_layers))
    heads = int(raw.get("num_heads") or cfg.get("linear_num_heads") or 32)
    head_dim = int(raw.get("head_dim") or cfg.get("linear_head_dim") or 128)
    kernel = int(raw.get("short_conv_kernel_size") or cfg.get("linear_conv_kernel_dim") or 4)
    return KimiDelta(layers, heads, head_dim, kernel) if layers else None


def read(model_type: str, cfg: dict, num_layers: int) -> GatedDeltaNet | KimiDelta | None:
    """The model's Gated DeltaNet (or Kimi Delta Attention) layers, or None for a model without them."""
    if model_type == "kimi_linear":
        return _kimi(cfg, num_layers)
    if model_type not in GATED_DELTANET_TYPES:
        return None
    text = text_config(cfg)
    kinds = text.get("layer_types")
    if isinstance(kinds, list) and kinds:
        layers = sum(k == "linear_attention" for k in kinds)
    else:  # Qwen3NextConfig's default: every full_attention_interval-th layer is full attention
        interval = int(text.get("full_attention_interval") or 4)
        layers = num_layers - num_layers // interval
    if not layers:
        return None
    def key(name: str, default: int) -> int:  # Qwen3NextConfig's defaults where config.json leaves one out
        return int(text.get(name) or default)

    return GatedDeltaNet(layers, key("linear_num_key_heads", 16), key("linear_num_value_heads", 32),
                         key("linear_key_head_dim", 128), key("linear_value_head_dim", 128),
                         key("linear_conv_kernel_dim", 4))


@lru_cache(maxsize=None)
def installed_kernel() -> str:
    """The delta rule's implementation transformers picks on a GPU here: "fla" when flash-linear-attention is
    importable, else "torch". Found without importing it (the advice path imports no torch)."""
    return "fla" if find_spec("fla") is not None else "torch"


@lru_cache(maxsize=None)
def conv_kernel_installed() -> bool:
    return find_spec("causal_conv1d") is not None


def _kda_saved_bytes(g: KimiDelta, seq_len: int, dtype_bytes: int, kernel: str, conv_fused: bool) -> int:
    """Per token, one KDA layer (as `saved_bytes`). Its torch fallback (`chunk_kimi_delta_attention`) applies the
    per-channel decay inside each chunk as a (chunk x chunk x head_dim) tensor a head: the decay mask and two products
    with it are kept in fp32, 3 x 64 x head_dim x 4 bytes a head a token (3 MiB a token at Kimi Linear's 32 x 128), and
    its UT transform loops over the chunk's rows keeping clones of the rows above (sum of i + i^2, i < 64, a head a
    chunk). Measured on tiny Kimi Linear layers (tests/test_linear_attention.py): exact. fla's `chunk_kda`
    (ops/kda/chunk.py save_for_backward, recompute on: q, k L2-normed with rstd, v, the gate and its cumsum, beta,
    Aqk and Akk of 64 a head, taken as fp32) is read from its source."""
    a, s = dtype_bytes, seq_len
    h, d = g.heads, g.head_dim
    x = h * d
    conv = 3 * x
    total = a * conv * s if conv_fused else a * conv * (2 * s + g.conv_kernel - 1)
    # the forget gate (softplus written as where/exp/log: the bool condition, exp's output, log's input), beta's
    # sigmoid, and the output norm (fp32 input, the weighted normed value, the gate's sigmoid; rsqrt a head)
    total += (9 * x + a * h + 12 * x + 4 * h) * s + 4 * d + 4 * h
    if kernel == "fla":
        return (total + s * (2 * a * x + 8 * h + a * x + 8 * x + 2 * 4 * h * CHUNK)) // s
    padded = -(-s // CHUNK) * CHUNK
    chunks = padded // CHUNK
    m = h * CHUNK * d  # one chunk row's decay, a head
    rows = sum(i + i * i for i in range(1, CHUNK))  # the UT loop's kept clones, a head a chunk
    total += (8 * x + 8 * h) * s  # the L2 norms' fp32 inputs and rsqrt
    # fp32, padded: v and k (by beta), k*beta, g's exp (three: the chunk matmul's, q's and the state update's), q;
    # beta; the decay mask and its two products
    total += 4 * padded * (3 * x + 3 * x + x + h) + 4 * padded * 3 * m
    total += 4 * chunks * h * rows
    # autocast's 16-bit copies: the two chunk matmuls (the UT matrix twice, v*beta, k*beta*exp(g)), then in the scan
    # q*exp(g) (not at the first chunk), k_cumdecay (kept from the second chunk), the intra scores, v_new, k's product
    hc = h * CHUNK
    total += a * padded * (2 * hc + 2 * x) + a * (padded - CHUNK) * x + (a * padded * x if chunks > 1 else 0)
    total += a * padded * (hc + 2 * x)
    # the states: two 16-bit copies and the fp32 state each chunk, less the first chunk's zero state; g's last exp
    total += chunks * h * d * d * (2 * a + 4) - (2 + 4) * h * d * d + 4 * chunks * h * d
    total += 3 * CHUNK * CHUNK  # the masks (bool)
    return total // s


def saved_bytes(g: GatedDeltaNet | KimiDelta, seq_len: int, dtype_bytes: int, kernel: str,
                conv_fused: bool = False, stream: int | None = None) -> int:
    """Per token, one Gated DeltaNet layer, from its input projections' outputs to out_proj's input: the tensors
    autograd keeps (the frozen projections keep nothing; LoRA's own inputs are counted with the other adapted
    linears). `dtype_bytes` is the compute dtype: 2 under 16-bit autocast (the casts counted are autocast's).
    `stream`: the layer input's bytes where they exceed it (fp32 under QLoRA's k-bit upcast): on the torch path one
    v-wide tensor and one a value head are then fp32, not 16-bit, the conv's fp32 weight is cast to 16-bit and kept, and
    where q and k are not repeated to the value heads their fp32 copies give way to the conv's output, fp32 (the
    reference conv1d casts back to its input's dtype) and kept whole (measured exactly under NF4 on the CPU,
    tests/test_linear_attention.py; KDA's layer keeps within 0.1% of its 16-bit count there, so it is left as it is;
    fla's kernel path under it is not measured)."""
    if isinstance(g, KimiDelta):
        return _kda_saved_bytes(g, seq_len, dtype_bytes, kernel, conv_fused)  # `stream`: within 0.1% (docstring)
    a, s = dtype_bytes, seq_len
    h, kd, vd = g.v_heads, g.v_heads * g.k_dim, g.v_heads * g.v_dim
    conv = g.conv_width
    # the conv1d: the reference keeps its input and its padded output (SiLU's input); causal_conv1d its input
    total = a * conv * s if conv_fused else a * conv * (2 * s + g.conv_kernel - 1)
    total += (a + 4) * h * s  # beta = sigmoid(b) keeps its output; softplus keeps its fp32 input (the decay g)
    # the gated RMSNorm on each value head: fp32 input, fp32 gate and SiLU(gate), the normed 16-bit product, rsqrt
    total += (3 * 4 + a) * vd * s + 4 * h * s
    if kernel == "fla":
        qk = g.k_heads * g.k_dim  # fla takes the key heads as they are (grouped value attention in the kernel)
        # q and k L2-normed (input dtype) with their fp32 rstd, v's contiguous copy, g's fp32 cumsum, A (64 a head)
        return (total + s * (2 * a * qk + 2 * 4 * g.k_heads + a * vd + 4 * h + a * h * CHUNK)) // s
    padded = -(-s // CHUNK) * CHUNK
    chunks = padded // CHUNK
    hc = h * CHUNK  # one row of a chunk's 64 x 64 matrices, a head
    # q and k repeated to the value heads and cast to fp32: the L2 norms keep their inputs and rsqrt's
    total += 4 * (2 * kd + 2 * h) * s
    # fp32, padded: v and k (by beta), the decay's exp and the UT system (64 wide), k*beta, the two triangular
    # solves' outputs (new values, k_cumdecay), the decayed q; beta and the three decay exps (one a head)
    total += 4 * padded * (2 * vd + 4 * kd + 2 * hc + 4 * h)
    # the two chunk matmuls' 16-bit products (kept by the products with the decay); autocast's 16-bit copies of
    # the matmuls' inputs: 4 q/k-wide ones in the batched matmuls, and in the scan over chunks 3 q/k-wide (k_cumdecay
    # and q not at the first chunk, whose state needs no gradient), one 64-wide and two v-wide
    total += a * padded * (2 * hc + 7 * kd + hc + 2 * vd) - a * 2 * CHUNK * kd
    total += chunks * h * g.k_dim * g.v_dim * (4 + 2 * a)  # each chunk's state: fp32, and two 16-bit copies
    total += CHUNK * CHUNK  # the strictly-upper mask (bool)
    f = stream or a
    if f > a:  # an fp32 stream (QLoRA's upcast): see the docstring
        total += (f - a) * (s * vd + s * h) + a * conv * g.conv_kernel
        if g.k_heads == g.v_heads:  # q and k unrepeated: their fp32 copies are views of the conv's fp32 output, kept
            total += f * s * (conv - 2 * kd)
    return total // s


def flops_per_token(g: GatedDeltaNet | KimiDelta) -> int:
    """Forward FLOPs a token, one layer's delta rule (the chunked form both implementations run), by value head:
    k·beta·kᵀ and q·kᵀ within the chunk (2·64·dk each), the two triangular solves (64·(dk + dv)), and in the scan
    k_cumdecay·S, q·S and kᵀ·v_new against the dk x dv state (2·dk·dv each) and the chunk's attention times v_new
    (2·64·dv). KDA's per-channel decay makes its within-chunk products elementwise over dk: the same count."""
    heads, dk, dv = (g.heads, g.head_dim, g.head_dim) if isinstance(g, KimiDelta) else (g.v_heads, g.k_dim, g.v_dim)
    return heads * (4 * CHUNK * dk + CHUNK * (dk + dv) + 2 * CHUNK * dv + 6 * dk * dv)


def gated_attention_bytes(heads: int, kv_heads: int, head_dim: int, dtype_bytes: int) -> int:
    """Per token, what a full-attention layer of these models keeps beyond Llama's attention: the fp32 inputs of
    its per-head q/k RMSNorms and their rsqrt, and its output gate's sigmoid and the attention output it scales."""
    return 4 * (heads + kv_heads) * (head_dim + 1) + 2 * dtype_bytes * heads * head_dim


def describe(g: GatedDeltaNet | KimiDelta, num_layers: int, seq_len: int, dtype_bytes: int, kernel: str,
             conv_fused: bool, stream: int | None = None) -> str:
    """The assumption line: which implementation the estimate counts, and what the other one keeps."""
    here = saved_bytes(g, seq_len, dtype_bytes, kernel, conv_fused, stream)
    other = "torch" if kernel == "fla" else "fla"
    there = saved_bytes(g, seq_len, dtype_bytes, other, conv_fused, stream)
    which = ("flash-linear-attention's chunked kernel (installed here; on a GPU)" if kernel == "fla" else
             "transformers' torch fallback (flash-linear-attention is not installed here, and a CPU always runs it)")
    return (f"{g.name} in {g.layers} of {num_layers} layers (linear attention): the delta rule in {which} "
            f"keeps {here / 1024:.0f} KiB a token a layer; {other} would keep {there / 1024:.0f} KiB"
            + ("" if kernel == "fla" else " (pip install flash-linear-attention; transformers uses it on a GPU)"))
