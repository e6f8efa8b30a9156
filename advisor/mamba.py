"""Mamba2 layers: what the state-space mixers of the Mamba2 hybrids keep for backward (Nemotron-H, Granite 4.0-H,
Bamba, Falcon-H1); the Mamba1 mixers of Jamba, Mamba and Falcon-Mamba at the end of the file, the same way.

Their decoder layers are of kinds (config.json `layers_block_type` / `layer_types`: "linear_attention" is a Mamba2
mixer in transformers 5, "full_attention" softmax attention; Nemotron-H adds "mlp" and "moe" blocks, each block one
norm and one of the four; Falcon-H1 runs attention and a Mamba2 mixer side by side in every layer). The mixer
(transformers 5 models/nemotron_h/modeling_nemotron_h.py `NemotronHMamba2Mixer`, the same in granitemoehybrid and
bamba; Falcon-H1's adds multipliers): in_proj to the gate, x/B/C and dt, a depthwise causal conv1d with SiLU over
x/B/C, the chunked SSD scan, a grouped gated RMSNorm, out_proj.

The scan runs in one of two implementations, chosen by transformers at run time (integrations/hub_kernels.py
`use_kernel_func_from_hub_with_fallback`):
- "mamba_ssm": with the mamba-ssm package on a GPU, training takes the fused `mamba_split_conv1d_scan_combined`
  (mamba_ssm/ops/triton/ssd_combined.py `MambaSplitConv1dScanCombinedFn`: `ctx.save_for_backward(zxbcdt, ...,
  out_x, ..., rstd, ...)`: the in_proj output, the scan's output and the norm's rstd; the rest is recomputed);
- "torch": `mamba2_chunk_scan` otherwise (always on a CPU). It casts x, B and C to fp32, pads the sequence to a
  multiple of the chunk, and autograd keeps the chunk's decay matrix (fp32, chunk x chunk a head) with the scores
  it masks, B repeated to every head in fp32, autocast's 16-bit copies for each einsum, and the states of every
  chunk. Tens of times what softmax attention keeps.

Measured with autograd's saved tensors on tiny Nemotron-H, Granite 4.0-H and Falcon-H1 mixers under bf16 autocast
(tests/test_mamba.py): the torch path's count below matches within 0.1%. The fused kernel is read from its source,
not measured (no GPU here).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec

# model type -> the config.json keys of (heads, head_dim, state size, groups, conv kernel, chunk size)
KEYS = {
    "nemotron_h": ("mamba_num_heads", "mamba_head_dim", "ssm_state_size", "n_groups", "conv_kernel", "chunk_size"),
    "granitemoehybrid": ("mamba_n_heads", "mamba_d_head", "mamba_d_state", "mamba_n_groups", "mamba_d_conv",
                         "mamba_chunk_size"),
    "bamba": ("mamba_n_heads", "mamba_d_head", "mamba_d_state", "mamba_n_groups", "mamba_d_conv", "mamba_chunk_size"),
    "falcon_h1": ("mamba_n_heads", "mamba_d_head", "mamba_d_state", "mamba_n_groups", "mamba_d_conv",
                  "mamba_chunk_size"),
}
BLOCK_TYPES = frozenset({"nemotron_h"})  # each layer one block (a mixer, an MLP or an MoE) with one norm
# every layer runs attention and a Mamba2 mixer side by side on the same input (FalconH1DecoderLayer)
PARALLEL_TYPES = frozenset({"falcon_h1"})
# Linears a Mamba mixer's training forward reads as bare weights (`self.out_proj.weight`, not `self.out_proj(x)`), in
# transformers 5.25. A LoRA adapter there is never called (its matrices get no gradient), and a bitsandbytes-quantized
# weight there reaches a plain matmul packed: axolotl's Granite 4.0 README quotes the crash ("mat1 and mat2 shapes
# cannot be multiplied (4096x3072 and 1x1179648)") and its loader keeps Falcon-H1's out_proj unquantized
# (loaders/model.py: "output projection cannot be quantized"). So rankwise neither adapts nor quantizes them.
# - Mamba2 mixers, with mamba-ssm on a GPU:
#   `mamba2_split_conv1d_scan_combined(..., outproj_weight=self.out_proj.weight)` (models/{mamba2, nemotron_h,
#   falcon_h1, granitemoehybrid, bamba, zamba2}); the torch path calls out_proj. peft 0.21 refuses out_proj itself in
#   three of them (spec.PEFT_MAMBA_TYPES), not in Granite 4.0-H, Bamba or Zamba2.
# - Mamba1 mixers, on every device: `time_step = self.dt_proj.weight @ time_step` (models/{jamba,falcon_mamba,mamba});
#   pure Mamba's fused path (`mamba_inner_fn`) takes x_proj's and out_proj's weights too.
FUSED_OUT = "mamba-ssm's fused kernel takes out_proj.weight on a GPU"
TIME_STEP = "the time step is dt_proj.weight @ x on a 16-bit base"
BARE_WEIGHTS = {  # model type -> (names, why)
    **dict.fromkeys(("mamba2", "nemotron_h", "falcon_h1", "granitemoehybrid", "bamba", "zamba2"),
                    (("out_proj",), FUSED_OUT)),
    "jamba": (("dt_proj",), TIME_STEP), "falcon_mamba": (("dt_proj",), TIME_STEP),
    "mamba": (("dt_proj", "x_proj", "out_proj"), f"{TIME_STEP}; mamba-ssm's fused kernel takes all three on a GPU"),
}
# Every layer one block: an RMSNorm and a Mamba1 mixer, no attention and no MLP (modeling_mamba.py MambaBlock,
# modeling_falcon_mamba.py FalconMambaBlock); with `residual_in_fp32` (the default) the residual, so each block's
# output and the next block's input, is fp32.
MIXER_ONLY_TYPES = frozenset({"mamba", "falcon_mamba"})
MIXER_KINDS = ("linear_attention", "mamba")
ATTENTION_KINDS = ("full_attention", "attention")


def other_mixers(model_type: str, cfg: dict, num_layers: int) -> tuple[int, str] | None:
    """(layers, kind) of sequence mixers beyond Mamba2 and Gated DeltaNet that, like them, read no position_ids, so
    rankwise's packing (position_ids restarting per example) runs one packed example into the next there
    (tests/test_mamba.py measures both). The Mamba1 mixers are estimated as such (read_mamba1); LFM2's short
    convolutions as attention layers (an approximation the estimate states):
    - Jamba's Mamba1 mixers (configuration_jamba.py `layers_block_type`: attention where i % attn_layer_period ==
      attn_layer_offset, Mamba1 elsewhere; every layer of Mamba and Falcon-Mamba) carry their state and conv1d on;
    - LFM2's gated short convolutions (configuration_lfm2.py `layer_types` "conv", else every layer not in
      `full_attn_idxs`) read the previous example's last conv_L_cache - 1 tokens.
    None for other models."""
    if model_type == "jamba":
        period, offset = int(cfg.get("attn_layer_period", 8) or 8), int(cfg.get("attn_layer_offset", 4) or 0)
        layers = sum(1 for i in range(num_layers) if i % period != offset)
        return (layers, "Mamba1") if layers else None
    if model_type in ("mamba", "falcon_mamba"):
        return num_layers, "Mamba1"
    if model_type in ("lfm2", "lfm2_moe"):
        types = cfg.get("layer_types")
        if types is None:
            attention = set(cfg.get("full_attn_idxs") or range(num_layers))
            types = ["full_attention" if i in attention else "conv" for i in range(num_layers)]
        layers = sum(1 for t in types if t == "conv")
        return (layers, "short-convolution") if layers else None
    return None


@dataclass(frozen=True)
class Mamba2:
    """The Mamba2 mixers of one model: how many, and their shapes (config.json); `attention`: the softmax-attention
    layers beside them; `blocks`: every layer is one block with one norm (Nemotron-H)."""

    layers: int
    attention: int
    heads: int
    head_dim: int
    state: int
    groups: int
    conv_kernel: int
    chunk: int
    blocks: bool = False
    parallel: bool = False  # beside attention in every layer (Falcon-H1), not in place of it
    gated_norm: bool = True  # the grouped gated RMSNorm; Falcon-H1 with mamba_rms_norm false gates with SiLU alone

    @property
    def inner(self) -> int:
        return self.heads * self.head_dim

    @property
    def conv_width(self) -> int:
        """Channels of the conv1d: x (inner) and B and C (groups x state each)."""
        return self.inner + 2 * self.groups * self.state

    @property
    def in_proj_width(self) -> int:
        """in_proj's output: the gate, x/B/C and dt."""
        return self.inner + self.conv_width + self.heads


def _kinds(cfg: dict, num_layers: int) -> list[str] | None:
    for key in ("layers_block_type", "layer_types"):
        kinds = cfg.get(key)
        if isinstance(kinds, list) and kinds:
            return [str(k) for k in kinds]
    attn = cfg.get("attn_layer_indices")  # Bamba: the attention layers by index, the rest Mamba2
    if isinstance(attn, list):
        return ["attention" if i in attn else "mamba" for i in range(num_layers)]
    return None


def read(model_type: str, cfg: dict, num_layers: int) -> Mamba2 | None:
    """The model's Mamba2 mixers, or None for a model without them."""
    keys = KEYS.get(model_type)
    if keys is None:
        return None
    values = [cfg.get(k) for k in keys]
    if not all(isinstance(v, int) and v > 0 for v in values):
        return None
    if model_type in PARALLEL_TYPES:
        return Mamba2(num_layers, num_layers, *values, parallel=True, gated_norm=bool(cfg.get("mamba_rms_norm", False)))
    kinds = _kinds(cfg, num_layers)
    layers = sum(k in MIXER_KINDS for k in kinds) if kinds else 0
    if not layers:
        return None
    return Mamba2(layers, sum(k in ATTENTION_KINDS for k in kinds), *values, blocks=model_type in BLOCK_TYPES)


@lru_cache(maxsize=None)
def installed_kernel() -> str:
    """The scan transformers runs on a GPU here: "mamba_ssm" when that package is importable, else "torch"."""
    return "mamba_ssm" if find_spec("mamba_ssm") is not None else "torch"


def saved_bytes(m: Mamba2, seq_len: int, dtype_bytes: int, kernel: str, stream: int | None = None,
                hidden: int = 0) -> int:
    """Per token, one Mamba2 mixer, from in_proj's output to out_proj's input: the tensors autograd keeps (LoRA's own
    inputs are counted with the other adapted linears). `dtype_bytes` is the compute dtype, 2 under 16-bit autocast.
    `stream`: the mixer input's bytes where they exceed it (fp32 under QLoRA's k-bit upcast, activations.stream_bytes;
    `hidden`: the model's width). On the torch path in_proj's output is then fp32, and so is the conv's (the reference
    conv1d casts its result back to its input's dtype), of which x, B and C are views: x's fp32 copy goes, and the gated
    norm's of the gate (without that norm, Falcon-H1's SiLU(gate) is fp32 instead), and the conv keeps autocast's 16-bit
    copy of its input; dt's two tensors are fp32. Per sequence out_proj's weight (read bare, so 16-bit at load and fp32
    after the upcast) and the conv's are cast to 16-bit and kept. Measured exactly under bitsandbytes NF4 on the CPU
    (tests/test_mamba.py); the kernel path under it is not (no GPU here)."""
    a, s = dtype_bytes, seq_len
    h, inner, n = m.heads, m.inner, m.state
    if kernel == "mamba_ssm":  # the in_proj output, the scan's output and the norm's fp32 rstd (one a group)
        return a * m.in_proj_width + a * inner + 4 * m.groups
    padded = -(-s // m.chunk) * m.chunk
    chunks = padded // m.chunk
    hc = h * m.chunk  # one row of a chunk's decay matrix, a head
    # the conv1d reads a view of in_proj's whole output (kept) and its padded output is SiLU's input
    total = a * m.in_proj_width * s + a * m.conv_width * (s + m.conv_kernel - 1)
    total += (2 * a + 4) * h * s  # dt: softplus's and clamp's inputs, and its fp32 copy scaling x
    total += 4 * inner * s  # x in fp32, kept by its scaling with dt
    # padded: B repeated to the heads (fp32), the decay matrix exp(segsum) (fp32) and the scores it masks with its
    # 16-bit copy; autocast's copies of C and B (twice each) and of x (twice); C·states; the two decay exps a head
    total += padded * (4 * h * n + 4 * hc + 2 * a * hc + 4 * a * h * n + 3 * a * inner + 8 * h)
    total += a * (2 * chunks + 1) * h * m.head_dim * n  # the chunks' states, and with the initial one their scan
    total += (4 + a) * h * (chunks + 1) ** 2 + 2 * m.chunk ** 2 + 2 * (chunks + 1) ** 2  # the chunk-to-chunk decay
    if m.gated_norm:  # the gated norm: fp32 x, gate, SiLU(gate), product; rstd
        total += (4 * 4 * inner + 4 * m.groups) * s
    else:  # x * silu(gate): the scan's fp32 output and SiLU's 16-bit output (the gate is in_proj's, kept)
        total += (4 + a) * inner * s
    if m.parallel:  # Falcon-H1 scales in_proj's output by its mup vector, a 16-bit buffer the product keeps
        total += a * m.in_proj_width
    f = stream or a
    if f > a:  # an fp32 stream (QLoRA's upcast): see the docstring
        gate = -f * inner if m.gated_norm else (f - a) * inner  # the gated norm's fp32 copy goes; or SiLU's is fp32
        total += s * (m.in_proj_width * (f - a) + m.conv_width * (f + a) - f * inner + gate + 2 * h * (f - a))
        total += a * (hidden * inner + m.conv_width * m.conv_kernel)
    return (total + 4 * h) // s


def flops_per_token(m: Mamba2) -> int:
    """Forward FLOPs a token, one mixer's chunked scan, by head: the chunk's C·Bᵀ scores (2·chunk·state) and their
    product with x (2·chunk·head_dim), the chunk state Bᵀ·x and its read C·state (2·head_dim·state each)."""
    return m.heads * (2 * m.chunk * (m.state + m.head_dim) + 4 * m.head_dim * m.state)


def describe(m: Mamba2, num_layers: int, seq_len: int, dtype_bytes: int, kernel: str, stream: int | None = None,
             hidden: int = 0) -> str:
    """The assumption line: which implementation the estimate counts, and what the other keeps."""
    where = (f"beside attention in all {num_layers} layers" if m.parallel else
             f"in {m.layers} of {num_layers} layers ({m.attention} softmax attention)")
    return _scan_line(f"Mamba2 {where}", kernel, lambda k: saved_bytes(m, seq_len, dtype_bytes, k, stream, hidden),
                      "mamba-ssm's fused kernel", "",
                      "pip install mamba-ssm causal-conv1d; transformers uses them on a GPU")


def _scan_line(what: str, kernel: str, count, fused: str, loop: str, install: str) -> str:
    """A Mamba kind's assumption line: the scan the estimate counts, its bytes a token a layer (`count(kernel)`), and
    what the other implementation would keep; where mamba-ssm is missing, how to install it."""
    other = "torch" if kernel == "mamba_ssm" else "mamba_ssm"
    which = (f"{fused} (installed here; on a GPU)" if kernel == "mamba_ssm" else
             f"transformers' torch fallback{loop} (mamba-ssm is not installed here, and a CPU always runs it)")
    return (f"{what}: the scan in {which} keeps {count(kernel) / 1024:.0f} KiB a token a layer; {other} would keep "
            f"{count(other) / 1024:.0f} KiB" + ("" if kernel == "mamba_ssm" else f" ({install})"))


# ---------------------------------------------------------------- Mamba1 mixers: Jamba, Mamba, Falcon-Mamba


SCAN_CHUNK = 2048  # mamba-ssm selective_scan.cpp: `n_chunks = (seqlen + 2048 - 1) / 2048` states kept for backward


@dataclass(frozen=True)
class Mamba1:
    """Mamba1 mixers (JambaMambaMixer, MambaMixer, FalconMambaMixer): in_proj to x and the gate (d_inner each),
    a depthwise causal conv1d with SiLU, x_proj to the time step (rank dt_rank) and B, C (d_state each), dt_proj back
    to d_inner, the selective scan with a d_state state per channel, the gate, out_proj. `attention`: the
    softmax-attention layers beside them (none in Mamba and Falcon-Mamba). `norms`: the time step, B and C each pass
    an RMSNorm after x_proj (Jamba, Falcon-Mamba; not Mamba). `fused_inner`: with mamba-ssm, training runs the whole
    mixer after in_proj as one function, `mamba_inner_fn` (Mamba; the other two call the scan alone)."""

    layers: int
    attention: int
    inner: int
    state: int
    dt_rank: int
    conv_kernel: int
    norms: bool = True
    fused_inner: bool = False
    hidden: int = 0  # the model's width: out_proj's output


# model type -> the config.json keys of (d_inner's expand factor, state size, time-step rank, conv kernel); Mamba and
# Falcon-Mamba also write d_inner itself (intermediate_size), which wins
MAMBA1_KEYS = {"jamba": ("mamba_expand", "mamba_d_state", "mamba_dt_rank", "mamba_d_conv"),
               **dict.fromkeys(MIXER_ONLY_TYPES, ("expand", "state_size", "time_step_rank", "conv_kernel"))}


def read_mamba1(model_type: str, cfg: dict, num_layers: int) -> Mamba1 | None:
    """The Mamba1 mixers of Jamba (other_mixers counts them), Mamba and Falcon-Mamba (every layer), or None."""
    found = other_mixers(model_type, cfg, num_layers) if model_type in MAMBA1_KEYS else None
    hidden = cfg.get("hidden_size")
    if found is None or not isinstance(hidden, int):
        return None
    expand, state, rank, conv = MAMBA1_KEYS[model_type]
    rank = cfg.get(rank, "auto")
    rank = -(-hidden // 16) if rank in ("auto", None) else int(rank)  # the configurations' "auto": ceil(hidden / 16)
    inner = cfg.get("intermediate_size") if model_type in MIXER_ONLY_TYPES else None
    inner = inner if isinstance(inner, int) and inner else int(cfg.get(expand) or 2) * hidden
    return Mamba1(found[0], num_layers - found[0], inner, int(cfg.get(state) or 16), rank, int(cfg.get(conv) or 4),
                  norms=model_type != "mamba", fused_inner=model_type == "mamba", hidden=hidden)


def mamba1_saved_bytes(m: Mamba1, seq_len: int, dtype_bytes: int, kernel: str, conv_fused: bool = False,
                       stream: int | None = None) -> int:
    """Per token, one Mamba1 mixer, from in_proj's output to out_proj's input: the tensors autograd keeps (LoRA's own
    inputs are counted with the other adapted linears; `dtype_bytes`: the compute dtype, 2 under 16-bit autocast).
    Jamba's and Falcon-Mamba's time step, B and C each keep their RMSNorm's fp32 input and rsqrt; Mamba's, views of
    x_proj's output, keep that output whole. Per sequence A = -exp(A_log) (fp32, d_inner x d_state) and D in fp32.
    - "mamba_ssm", the scan alone (Jamba, Falcon-Mamba; mamba_ssm/ops/selective_scan_interface.py SelectiveScanFn:
      `save_for_backward(u, delta, A, B, C, D, z, delta_bias, x, out)`): in_proj's output (the conv1d's input and the
      gate are views of it), u, the time step and the gate (contiguous copies where transformers hands views), the
      output, B and C (contiguous copies), delta_bias in fp32, and x, one fp32 (d_inner, 2 d_state) state per 2,048
      tokens; the conv1d (causal-conv1d's CausalConv1dFn) keeps only its input, or without that package the
      reference F.conv1d's padded output too (SiLU's input).
    - "mamba_ssm", the whole mixer (Mamba; MambaInnerFn at checkpoint_lvl 1, which recomputes the conv1d's output and
      the time step in backward: `save_for_backward(xz, ..., x_dbl, ..., A, B, C, D, delta_bias, scan_intermediates,
      ..., out)`): in_proj's output (a contiguous copy of transformers' transposed view), x_proj's output, B and C
      (contiguous copies), the scan's output; delta_bias and D in fp32, A, and the fp32 states per 2,048 tokens. It
      needs causal-conv1d (`assert causal_conv1d_fwd_function is not None`).
    - "torch" (modeling_jamba.py / modeling_mamba.py `mamba_selective_scan`, its token-by-token loop): exp(A·Δ) and
      B·Δ for every token and state (fp32), each step's state (fp32) and its 16-bit copy for the read by C, B in
      fp32, x and the output in fp32, Δ before and after softplus (16-bit: delta_bias is cast to Δ's dtype),
      SiLU(gate) and the conv's padded output (SiLU's input); per sequence the initial state. Measured exactly with
      autograd's saved tensors on tiny Jamba, Mamba and Falcon-Mamba mixers (tests/test_mamba.py).
    `stream`: the bytes of the mixer's input where they exceed the compute dtype's, i.e. fp32 under QLoRA's k-bit
    upcast (activations.stream_bytes: the norm before the mixer has an fp32 weight, so its output, and a 4-bit linear's,
    is fp32). On the torch path in_proj's output is then fp32, one more d_inner-wide fp32 tensor is kept on the gate's
    path, and where x_proj is 4-bit too (Jamba, Falcon-Mamba; Mamba reads it bare, 16-bit) the time step is fp32 from
    there on: two of its d_inner-wide tensors kept in fp32, not 16-bit. Per sequence the initial state is fp32, D is no
    copy (already an fp32 parameter), and the fp32 weights the mixer uses outside 4-bit linears are cast to 16-bit for
    their op and kept: the conv1d's and dt_proj's, and Mamba's x_proj and out_proj. Measured exactly under bitsandbytes
    NF4 on the CPU (tests/test_mamba.py). The kernel path under it is not measured (no GPU here) and left as above."""
    a, s, d, n, r = dtype_bytes, seq_len, m.inner, m.state, m.dt_rank
    # three RMSNorms (fp32 inputs, one rsqrt a token each), or x_proj's whole output beyond C (counted below)
    norms = 4 * r + 8 * n + 12 if m.norms else a * (r + n)
    states = 8 * d * n * -(-s // SCAN_CHUNK)  # the kernel's x
    if kernel == "mamba_ssm" and m.fused_inner:
        token = 3 * a * d + a * (r + 2 * n) + 2 * a * n  # xz, the output; x_dbl; B, C
        return (token * s + 4 * d * n + 8 * d + states) // s  # A; D and delta_bias; x
    if kernel == "mamba_ssm":
        token = 2 * a * d + 4 * a * d + 2 * a * n + norms  # in_proj's output; u, Δ, the gate, the output; B, C
        sequence = 4 * d * n + 8 * d + states  # A; D and delta_bias; x
        if not conv_fused:
            token += a * d
            sequence += a * d * (m.conv_kernel - 1)
        return (token * s + sequence) // s
    token = (12 + a) * d * n + (8 + 6 * a) * d + (4 + a) * n + norms  # exp(AΔ), BΔ, states, their copies; d_inner
    # wide: x and the output in fp32, in_proj's output (two), the conv's, Δ twice, SiLU(gate); B in fp32 and C
    sequence = a * d * n + 4 * d + a * d * (m.conv_kernel - 1)  # the initial state, D in fp32, the conv's padding
    f = stream or a
    if f > a:  # an fp32 stream (QLoRA's upcast): see the docstring
        token += 2 * d * (f - a) + f * d + (0 if m.fused_inner else 2 * d * (f - a))
        cast = r * d + d * m.conv_kernel + ((r + 2 * n) * d + m.hidden * d if m.fused_inner else 0)
        sequence += d * n * (f - a) - 4 * d + a * cast
    return (token * s + sequence) // s


def kernel_missing(m: "Mamba1 | Mamba2") -> list[str]:
    """What mamba-ssm's training path for these mixers needs and this machine lacks, where mamba-ssm is installed
    (transformers then calls it on a GPU, with no fallback: integrations/hub_kernels.py
    `use_kernel_func_from_hub_with_fallback` takes the torch path only where the package is missing or the device is not
    CUDA; since huggingface/transformers#47630, August 2026, in 5.25 here: before it, a missing piece sent the model to
    its slow path instead). mamba-ssm's setup.py leaves causal-conv1d out of install_requires ("[Option]" in its
    README), and:
    - Mamba2 (`mamba_split_conv1d_scan_combined`, ops/triton/ssd_combined.py) calls `causal_conv1d_fwd_function`
      unconditionally: None without causal-conv1d, a TypeError at the first step ("'NoneType' object is not callable":
      state-spaces/mamba#786, NVIDIA/Megatron-LM#1798);
    - Mamba1 (`selective_scan_fn`, and Mamba's whole-mixer `mamba_inner_fn`, ops/selective_scan_interface.py) needs the
      `selective_scan_cuda` extension (`_check_selective_scan_cuda()` raises "selective_scan_cuda is not installed. To
      use Mamba-1, ..."): an opt-in build since state-spaces/mamba f577286 ("Make CUDA selective scan install explicit
      opt-in", July 2026, on main after v2.3.2.post1: `MAMBA_KEEP_CUDA_BUILD=TRUE pip install mamba-ssm
      --no-build-isolation`); `mamba_inner_fn` also asserts causal-conv1d. Jamba's and Falcon-Mamba's mixers run the
      reference conv1d without it."""
    if find_spec("mamba_ssm") is None:
        return []
    one = isinstance(m, Mamba1)
    missing = ["selective_scan_cuda"] if one and find_spec("selective_scan_cuda") is None else []
    if (not one or m.fused_inner) and find_spec("causal_conv1d") is None:
        missing.append("causal-conv1d")
    return missing


def mamba1_flops_per_token(m: Mamba1) -> int:
    """Forward FLOPs a token, one selective scan: exp(A·Δ), B·Δ·x, the state update (a multiply-add) and its read by C,
    per channel and state."""
    return 7 * m.inner * m.state


def describe_mamba1(m: Mamba1, num_layers: int, seq_len: int, dtype_bytes: int, kernel: str,
                    conv_fused: bool, stream: int | None = None) -> str:
    """The assumption line: which implementation the estimate counts, and what the other keeps."""
    where = (f"in all {num_layers} layers (no attention, no MLP)" if not m.attention else
             f"in {m.layers} of {num_layers} layers ({m.attention} softmax attention)")
    return _scan_line(f"Mamba1 {where}", kernel,
                      lambda k: mamba1_saved_bytes(m, seq_len, dtype_bytes, k, conv_fused, stream),
                      "mamba-ssm's fused mamba_inner_fn" if m.fused_inner else "mamba-ssm's selective scan",
                      ", a loop over every token",
                      "pip install mamba-ssm causal-conv1d; transformers uses them on a GPU")
