"""The time planner: how long a resolved config trains on given hardware, and what it costs.

Physics first, as in memory.py: the work of one micro-batch is counted from the model's
shapes (`ModelSpec`) and the plan a `Fit` resolved (method, strategy, GPUs) —

- the frozen base's linears: forward 2 FLOPs per weight per token; backward computes
  activation gradients only (2 per weight per token: no weight gradients for a frozen base);
  gradient checkpointing runs each decoder layer's forward again in backward (+2, the output
  head is not checkpointed);
- the adapter: r·(d_in + d_out) weights per adapted linear, forward 2, backward 4 (its
  activation and weight gradients), recomputed under checkpointing;
- attention's quadratic term: QKᵀ and A·V, 4·L·heads·head_dim per token per layer forward,
  twice that backward; flash/SDPA kernels skip the masked half of a causal mask, eager
  attention computes it and writes the L×L scores to memory (bytes over bandwidth);
- the weights read per pass (16-bit), or for a 4-bit base the dequantization: 4-bit read,
  16-bit written and read back by the matmul — bytes over memory bandwidth;
- a fixed per-layer cost per pass (kernel launches and Python: what dominates tiny models);

divided by the device's sustained throughput: peak dense TFLOP/s and bandwidth from the GPU
table (hardware.GPU_SPEED, datasheets) times an efficiency factor for the stack
(`STACKS`, each with its source). Finished runs on this machine correct that factor
(`Calibration`, advisor/calibration.py reads them). No torch, no I/O here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from . import cadence, linear_attention, mamba
from .adapter_init import start_up_seconds
from .hardware import Hardware
from .memory import kbit_upcast
from .speeds import LOAD_GBS, PCIE_GBS, SCALING, SETUP_S, Device, fallback_loops, loop_ops
from .storage import expert_weights, experts_as_parameters, unquantized_experts, weights_of

if TYPE_CHECKING:
    from .config import RunConfig
    from .fit import Fit
    from .model import ModelSpec

ATTENTION = ("sdpa", "eager", "flash_attention_2")  # train.attention (auto: SDPA, transformers' default)

# One token ≈ 4 characters of English text (OpenAI's tokenizer documentation, "What are
# tokens"): how a scan's character lengths become tokens without a tokenizer. A vocabulary of
# at most 512 entries is a byte-level tokenizer (the shipped tiny model): 1 character, 1 token.
CHARS_PER_TOKEN = 4.0
BYTE_VOCAB = 512
# Tokens a chat/instruction template adds around a row (role markers, BOS/EOS): a judgment
# from Llama 3's template (~5 tokens per message header) for a two-message row.
TEMPLATE_TOKENS = 12
# ... and each message past the second: a chat template's tokens grow with the turns, ~5 a message for Llama 3's
# header and end of turn (<|start_header_id|>role<|end_header_id|> \n\n ... <|eot_id|>) and ChatML's
# (<|im_start|>role \n ... <|im_end|> \n). The longest row is planned with them (advisor/dataset.py, lengths.py).
TURN_TOKENS = 5


@dataclass(frozen=True)
class DataShape:
    """What the planner knows of the training data: rows and tokens per row."""

    rows: int  # training rows (after the validation split and max_rows)
    tokens_per_row: float  # mean tokens of a row as the model sees it
    long_tokens_per_row: float  # a long row (p95): what a padded micro-batch of several rows reaches
    source: str  # scan | recorded | assumed
    counted_by: str | None = None  # the tokenizer that counted a scan's rows (None: characters / 4)
    val_rows: int | None = None  # validation rows split off data.path (None: none, or a val_path not scanned)

    @classmethod
    def from_scan(cls, scan, cfg: "RunConfig", spec: "ModelSpec") -> "DataShape":
        """From advisor/dataset.scan (tokens when it counted them, else characters → tokens), with the
        config's split and max_rows. A scan that stopped early plans the whole data when it was counted (its rows at
        the lengths of those read)."""
        rows = scan.usable_rows()
        if cfg.data.max_rows:
            rows = min(rows, cfg.data.max_rows)
        val = 0 if cfg.data.val_path else int(rows * cfg.data.val_ratio)
        median, p95 = scan_tokens(scan, spec, "median"), scan_tokens(scan, spec, "p95")
        return cls(max(1, rows - val), median + TEMPLATE_TOKENS, p95 + TEMPLATE_TOKENS, "scan",
                   getattr(scan, "tokens_by", None), val or None)


def chars_per_token(spec: "ModelSpec") -> float:
    """The characters-to-tokens rate used when no tokenizer counted the rows."""
    return 1.0 if spec.vocab_size <= BYTE_VOCAB else CHARS_PER_TOKEN


def scan_tokens(scan, spec: "ModelSpec", which: str) -> float:
    """A scan's `which` (median | p95 | max) row length in tokens, template tokens not included:
    the tokenizer's count when scan had one, else characters at chars_per_token."""
    counted = getattr(scan, f"{which}_tokens", None)
    return counted if counted is not None else getattr(scan, f"{which}_chars") / chars_per_token(spec)


@dataclass(frozen=True)
class Calibration:
    """A finished run of this machine: its plan against what it measured."""

    run_id: str
    device: str  # Device.name it ran on
    method: str
    params: int
    seq_len: int
    measured_step_s: float  # wall seconds per optimizer step over its training steps
    planned_step_s: float  # what this planner says for that run, uncalibrated
    setup_s: float | None = None  # seconds before its first step and after its last (load, final save)

    @property
    def factor(self) -> float:
        return self.measured_step_s / self.planned_step_s

    def similar(self, device: str, method: str, params: int, seq_len: int) -> bool:
        """Same device and method; model size and sequence length within 4× (the shape the
        efficiency depends on)."""
        return (self.device == device and self.method == method and 0.25 <= self.params / max(params, 1) <= 4
                and 0.25 <= self.seq_len / max(seq_len, 1) <= 4)


@dataclass(frozen=True)
class TimePlan:
    tokens_per_s: float  # real (unpadded) training tokens per second, all GPUs
    step_s: float
    total_s: float | None  # setup + steps (None when the steps are not known)
    train_s: float | None  # the steps alone: what the panel's ETA counts down
    setup_s: float
    steps: int | None  # None: epochs over data the planner has not seen
    tokens: int | None  # real training tokens over the run
    device: str
    efficiency: float  # the stack's efficiency after calibration
    calibrated_from: tuple[str, ...]
    parts: dict[str, float]  # seconds per micro-batch: compute, memory, attention, overhead
    assumptions: tuple[str, ...]
    price_per_gpu_hour: float | None = None
    gpus: int = 1
    cost: float | None = None
    eval_s: float | None = None  # the evaluations' seconds over the run (in total_s, not in train_s)
    evaluations: int | None = None  # how many (advisor/cadence.py), each a forward over the validation rows

    def seconds_for(self, steps: int) -> float:
        """The planned seconds of `steps` steps (the worker's ETA before step 1): the steps and the evaluations
        among them, those at the plan's rate per step (a run's max_steps can differ from the plan's count)."""
        evaluating = (self.eval_s or 0.0) * steps / self.steps if self.steps else 0.0
        return round(self.step_s * steps + evaluating, 1)

    def to_dict(self) -> dict:
        return {"tokens_per_s": round(self.tokens_per_s, 1), "step_s": round(self.step_s, 4),
                "total_s": _round(self.total_s, 1), "train_s": _round(self.train_s, 1),
                "setup_s": round(self.setup_s, 1), "eval_s": _round(self.eval_s, 1), "evaluations": self.evaluations,
                "steps": self.steps, "tokens": self.tokens, "device": self.device,
                "efficiency": round(self.efficiency, 4), "calibrated_from": list(self.calibrated_from),
                "parts_s": {k: round(v, 5) for k, v in self.parts.items()},
                "cost": None if self.cost is None else {"price_per_gpu_hour": self.price_per_gpu_hour,
                                                        "gpus": self.gpus, "total": round(self.cost, 2)},
                "assumptions": list(self.assumptions)}


# ---------------------------------------------------------------------------- the work


def linear_work(spec: "ModelSpec", fit: "Fit") -> tuple[int, int, int]:
    """(base weights in decoder-layer linears, in the output head, adapter weights) for `fit`'s plan."""
    plan = fit.estimate.plan
    head = sum(l.params for l in spec.linears if l.family == "lm_head")
    body = sum(l.params for l in spec.linears if l.family != "lm_head")
    if spec.is_moe and spec.num_experts:  # a token runs through its routed experts only (all in a dense MoE)
        experts = sum(l.params for l in spec.linears if l.family == "experts")
        body -= experts - experts * spec.experts_run // spec.num_experts
    targets = plan.targets if isinstance(plan.targets, str) else list(plan.targets)
    adapter = spec.lora_params(targets, plan.r)
    return body, head, adapter


def activation_bytes(spec: "ModelSpec", plan, adapted) -> int:
    """Bytes the non-GEMM operations of one decoder layer read and write per token, forward: each
    elementwise op reads its inputs and writes its output through memory (PyTorch eager, no fusion),
    counted from transformers' modeling_llama and peft's LoRA forward —

    - RMSNorm (LlamaRMSNorm): the input upcast to fp32, squared mean, the rsqrt product, the cast back
      and the weight product: (4a + 20)·h per norm;
    - RoPE (apply_rotary_pos_emb: rotate_half's slices and cat, two products and a sum) on q and k: ~10·a
      bytes per element;
    - the attention kernel's own reads and writes (q, k, v in, the output out);
    - two residual additions in the stream's dtype (read two, write one);
    - SwiGLU: act(gate) and act·up (read three, write two intermediate-wide tensors);
    - LoRA per adapted linear (peft lora.Linear.forward): dropout's output and mask over the input
      when dropout > 0, and `result + lora_B(...) * scaling` (scale, add: read three, write two over
      the output).
    Backward touches about twice these bytes (the gradient and the saved input read, the input
    gradient written), and checkpointing runs the forward again. a: the compute dtype's bytes."""
    from .activations import stream_bytes

    a, s = plan.dtype_bytes, stream_bytes(plan)
    h = spec.hidden_size
    qd, kvd = spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
    out = spec.norms_per_layer * (4 * a + 20) * h + 10 * a * (qd + kvd) + a * (2 * qd + 2 * kvd)
    out += 2 * 3 * s * h + 5 * s * spec.mlp_width
    for l in {l.name: l for l in adapted if l.family != "lm_head"}.values():
        out += l.count * (((2 * a + 1) * l.d_in if plan.lora_dropout else 0) + 5 * a * l.d_out) // spec.num_layers
    return out


def parameter_lora_work(spec: "ModelSpec", plan, tokens: int, passes: int) -> tuple[float, float]:
    """(FLOPs, bytes) of one micro-batch's LoRA on fused expert tensors (lora.target_parameters).

    peft folds the adapter into each adapted tensor in every forward (baddbmm: 2·r FLOPs a weight; W read and the
    built weight written), and the built weight requires grad, so backward runs the weight-gradient GEMM of every
    expert on its routed tokens (2 FLOPs a weight a routed token, as a full fine-tune's), writes that weight-sized
    gradient and reads it back for A's and B's (2·2·r FLOPs a weight). Nothing per token on the adapter itself."""
    if not plan.target_parameters:
        return 0.0, 0.0
    weights = weights_of(spec.resolve_parameters(plan.target_parameters))
    routed = weights * max(1, spec.experts_run) / max(1, spec.num_experts)
    a = plan.dtype_bytes
    forwards = passes - 1  # forward (+ the recomputed forward)
    flops = forwards * 2 * plan.r * weights + 4 * plan.r * weights + 2 * tokens * routed
    return flops, (forwards + 1) * 2 * a * weights


def micro_batch_seconds(spec: "ModelSpec", fit: "Fit", device: Device, padded_len: int,
                        attention: str | None = None, efficiency: float | None = None,
                        trained: int = 0, forward_only: bool = False) -> dict[str, float]:
    """Seconds of one micro-batch (per GPU) by part, for sequences padded to `padded_len`;
    `attention` None: the plan's (train.attention). `trained`: weights whose own gradient backward computes
    (a full or partial fine-tune: 2 FLOPs a weight a token more, the weight-gradient GEMM beside the
    input-gradient one, and the gradient written); 0 for LoRA, whose adapter is counted apart.
    `forward_only`: an evaluation's micro-batch (no_grad): one forward, no backward, nothing recomputed."""
    plan = fit.estimate.plan
    attention = attention or plan.attention
    st = device.stack
    eff = st.efficiency if efficiency is None else efficiency
    quant = plan.descriptor.quant
    b, L = plan.micro_batch, padded_len
    tokens = b * L
    body, head, adapter = linear_work(spec, fit)
    ckpt = plan.grad_checkpointing and not forward_only
    back = 0 if forward_only else 1  # the backward pass, counted in units of a forward's work below
    passes = 1 if forward_only else 3 if ckpt else 2  # forward, backward (+ the recomputed forward)
    forwards = 1 if forward_only else passes - 1
    trained = 0 if forward_only else trained
    base_flops = tokens * (2 * (body + head) + back * 2 * (body + head) + (2 * body if ckpt else 0) + 2 * trained)
    adapter_flops = tokens * adapter * (2 + back * 4 + (2 if ckpt else 0))
    attn_width = spec.num_heads * spec.head_dim
    span = L if attention == "eager" else L / 2  # causal: flash/SDPA kernels skip the masked half
    # a hybrid's linear-attention and Mamba2/Mamba1 layers: their scans, no quadratic term
    gdn, ssm, m1 = spec.linear_attention, spec.mamba, spec.mamba1
    softmax_layers = spec.attention_layers
    per_layer = [(softmax_layers, 4 * span * attn_width)]  # (layers, forward FLOPs a token a layer)
    per_layer += [(gdn.layers, linear_attention.flops_per_token(gdn))] if gdn else []
    per_layer += [(ssm.layers, mamba.flops_per_token(ssm))] if ssm else []
    per_layer += [(m1.layers, mamba.mamba1_flops_per_token(m1))] if m1 else []
    sweeps = 1 + back * 2 + (1 if ckpt else 0)  # forward, backward (twice a forward's work), recompute
    attn_flops = tokens * sum(n * f for n, f in per_layer) * sweeps
    # the 4-bit slowdown is measured where peft's prepare_model_for_kbit_training upcasts (fp32 norms,
    # embeddings and output head beside bitsandbytes' unfused dequantize + GEMM); without the upcast
    # (quant.kbit_upcast false, or sharded QLoRA, which skips it) fms-acceleration's
    # accelerated-peft-bnb rows run at 0.95-0.97 of 16-bit LoRA: the dequantize bytes below cover that
    slow = st.kbit_factor if quant and kbit_upcast(plan) else 1.0
    peak = device.tflops * 1e12 * eff * slow
    bw = device.bandwidth_gbs * 1e9 * st.bandwidth_share
    if quant:  # dequantize: 4-bit read, 16-bit written, 16-bit read by the GEMM, each pass
        # transformers 5's fused MoE experts stay 16-bit (storage.quantized): read as they are, the routed share
        plain = unquantized_experts(spec, plan)
        if plain and spec.num_experts:
            plain = plain * spec.experts_run // spec.num_experts
        weight_bytes = passes * ((body - plain) * (quant.bits / 8 + 2 + 2) + plain * plan.dtype_bytes)
        if experts_as_parameters(plan) and spec.num_experts:
            # bitsandbytes' parametrization dequantizes every expert of a layer on access, not only the routed ones
            # (counted above): the rest read in 4 bits and written in 16, in each forward (and recompute)
            every = expert_weights(spec)
            rest = every - every * spec.experts_run // spec.num_experts
            weight_bytes += forwards * rest * (quant.bits / 8 + plan.dtype_bytes)
    else:
        weight_bytes = passes * body * plan.dtype_bytes
    weight_bytes += (1 + back) * head * plan.dtype_bytes + trained * plan.dtype_bytes  # + each trained weight's grad
    dora_flops = dora_bytes = 0.0
    if plan.descriptor.peft.get("use_dora"):
        # peft's DoRA (tuners/lora/dora.py) forms B·A and the row norms of W + s·B·A in each forward
        # (no backward: the norm is detached): 2·r·d_in·d_out FLOPs and ~14 bytes per weight
        # (W read, B·A written in fp32, both read for the norm) per adapted linear per forward pass
        for l in spec.resolve_targets(plan.targets if isinstance(plan.targets, str) else list(plan.targets)):
            dora_flops += forwards * l.count * 2 * plan.r * l.d_in * l.d_out
            dora_bytes += forwards * l.count * l.d_in * l.d_out * 14
    fold_flops, fold_bytes = (0.0, 0.0) if forward_only else parameter_lora_work(spec, plan, tokens, passes)
    adapted = spec.resolve_targets(plan.targets if isinstance(plan.targets, str) else list(plan.targets))
    act_bytes = tokens * spec.num_layers * activation_bytes(spec, plan, adapted) * sweeps
    attn_bytes = 0.0
    if attention == "eager":  # the L×L scores: written, softmaxed in fp32, read by A·V; twice in backward
        attn_bytes = b * spec.num_heads * L * L * softmax_layers * 12 * sweeps
    offload_s = 0.0
    if plan.sharded and plan.offload != "none":
        stored = (body * (quant.bits / 8 if quant else plan.dtype_bytes) + head * plan.dtype_bytes) \
            * (2 if plan.fp32_master else 1)
        offload_s = passes * stored / fit.gpus / (PCIE_GBS * 1e9 * st.bandwidth_share)
    act_offload_s = 0.0
    if fit.estimate.host_activation_bytes and device.kind == "gpu" and not forward_only:  # save_on_cpu: out and back
        act_offload_s = 2 * fit.estimate.host_activation_bytes / fit.gpus / (PCIE_GBS * 1e9 * st.bandwidth_share)
    loop_s = sum(layers * loop_ops(kind, L, forwards, backward=not forward_only)
                 for kind, layers in fallback_loops(spec, plan, device.kind)) \
        * st.op_s  # Python loops over tokens or chunks: launch-bound, whatever the batch
    return {"compute": (base_flops + adapter_flops + dora_flops + fold_flops) / peak,
            **({"offload": offload_s} if offload_s else {}),
            **({"scan_loop": loop_s} if loop_s else {}),
            **({"activation_offload": act_offload_s} if act_offload_s else {}),
            "attention": attn_flops / peak + attn_bytes / bw,
            "memory": (weight_bytes + dora_bytes + fold_bytes) / bw,  # FSDP gathers each full layer: the same bytes per GPU
            "activations": act_bytes / bw,
            "overhead": spec.num_layers * passes * st.layer_overhead_s}


def data_shape(cfg: "RunConfig", spec: "ModelSpec", scan=None) -> DataShape:
    """The data as far as it is known: a scan of data.path, else every row a full max_seq_len."""
    if scan is not None and scan.rows:
        return DataShape.from_scan(scan, cfg, spec)
    L = cfg.train.max_seq_len
    rows = cfg.data.max_rows or 0
    return DataShape(rows, L, L, "assumed")


def _round(x: float | None, n: int) -> float | None:
    return None if x is None else round(x, n)


def sequences(cfg: "RunConfig", data: DataShape, rows: int) -> int:
    """The sequences `rows` rows make: themselves, or data.packing's max_seq_len chunks."""
    L = cfg.train.max_seq_len
    if cfg.data.packing:
        return max(1, math.ceil(rows * min(data.tokens_per_row, L) / L)) if rows else 0
    return rows


def steps_and_tokens(cfg: "RunConfig", fit: "Fit", data: DataShape) -> tuple[int | None, int, int, int | None]:
    """(optimizer steps, real tokens per step, padded length per micro-batch, real tokens in total)."""
    t = cfg.train
    L = t.max_seq_len
    per_row = min(data.tokens_per_row, L)
    seqs = sequences(cfg, data, data.rows)
    if cfg.data.packing:
        real_per_seq, padded = L, L
    else:
        real_per_seq = per_row
        padded = int(min(L, data.long_tokens_per_row if t.micro_batch > 1 else per_row))
    batch = t.micro_batch * fit.gpus
    if t.max_steps:
        steps = t.max_steps
    elif seqs:
        steps = math.ceil(t.epochs * epoch_steps(cfg, fit, data))
    else:
        steps = None  # epochs over data the planner has not seen
    tokens_per_step = int(batch * t.grad_accum * real_per_seq)
    if not seqs and not t.max_steps:
        total = None
    elif t.max_steps or not seqs:
        total = steps * tokens_per_step
    else:
        total = int(min(steps * tokens_per_step, t.epochs * seqs * real_per_seq))
    return steps, tokens_per_step, max(1, padded), total


def plan_time(spec: "ModelSpec", cfg: "RunConfig", fit: "Fit", hw: Hardware | None, data: DataShape | None = None,
              calibration: Iterable[Calibration] = (), price: float | None = None,
              attention: str | None = None, trained: int = 0, optimizer_bytes: int = 0) -> TimePlan:
    """Tokens/s, step and total seconds, and cost of `cfg` as `fit` resolved it on `hw`. A full or partial fine-tune
    gives its `trained` weights (micro_batch_seconds) and `optimizer_bytes`: what one optimizer step reads and
    writes per GPU (the fused AdamW reads weights, gradients and both moments and writes weights and moments),
    once a step at the device's bandwidth."""
    attention = attention or fit.estimate.plan.attention
    if attention not in ATTENTION:
        raise ValueError(f"attention {attention!r}: one of {ATTENTION}")
    device = Device.of(hw)
    data = data or data_shape(cfg, spec)
    steps, tok_step, padded, tokens = steps_and_tokens(cfg, fit, data)
    parts = micro_batch_seconds(spec, fit, device, padded, attention, trained=trained)
    strategy = fit.strategy
    optimizer_s = optimizer_bytes / (device.bandwidth_gbs * 1e9 * device.stack.bandwidth_share)
    step_s = (cfg.train.grad_accum * sum(parts.values()) + device.stack.step_overhead_s + optimizer_s) \
        / SCALING[strategy]
    weights_gb = fit.estimate.components.get("base_weights", 0) / 1e9
    setup_s = SETUP_S[device.kind] + weights_gb * fit.gpus / LOAD_GBS
    init_s = start_up_seconds(fit.estimate.init_flops, device.tflops, device.stack.efficiency, device.kind == "gpu")
    plan = fit.estimate.plan
    similar = [c for c in calibration if c.similar(device.name, fit.method, spec.total_params, plan.seq_len)]
    notes = [f"{device.name}: {device.tflops:g} TFLOP/s, {device.bandwidth_gbs:g} GB/s ({device.source})",
             f"stack {device.stack.name}: efficiency {device.stack.efficiency:g} ({device.stack.source})",
             f"{'eager' if attention == 'eager' else 'flash/SDPA'} attention; "
             f"{'checkpointing recomputes each layer' if plan.grad_checkpointing else 'no recomputation'}"]
    efficiency = device.stack.efficiency
    k = 1.0  # the similar runs' measured/planned step time
    if similar:
        # the geometric mean of the similar runs' measured/planned ratios corrects the step time
        k = math.exp(sum(math.log(c.factor) for c in similar) / len(similar))
        step_s *= k
        efficiency /= k
        setups = [c.setup_s for c in similar if c.setup_s is not None]
        if setups:
            setup_s = sorted(setups)[len(setups) // 2]  # what this machine took (the load included)
        notes.append(f"calibrated ×{k:.2f} from {len(similar)} run(s) on {device.name}: "
                     + ", ".join(c.run_id for c in similar))
    if init_s:  # after calibration: a calibrating run's setup did not include this factorisation
        setup_s += init_s
        notes.append(f"lora.init {fit.estimate.plan.init}: at least {duration(init_s)} of factorisation at start-up "
                     "(fp32 FLOPs at the device's fp32 rate; cuSOLVER runs below it, see advisor/adapter_init.py)")
    if data.source == "assumed":
        notes.append("no data scanned: every row assumed a full max_seq_len" +
                     ("" if cfg.train.max_steps else "; give data.path (or --dataset) for steps from epochs"))
    elif data.source == "scan":
        per = (f"counted by {data.counted_by}" if data.counted_by else
               "1 character a token (byte-level vocabulary)" if spec.vocab_size <= BYTE_VOCAB else
               f"characters / {CHARS_PER_TOKEN:g}")
        notes.append(f"{data.rows} training rows, ~{data.tokens_per_row:.0f} tokens each ({per}, "
                     f"+ {TEMPLATE_TOKENS} template tokens)")
    if trained:
        notes.append(f"{trained / 1e9:.2f}B trained weights: their gradient GEMMs in backward, and an optimizer step "
                     f"over them of {optimizer_s:.2f} s (memory-bound)")
    if fit.gpus > 1:
        notes.append(f"{fit.gpus} GPUs ({strategy}): {SCALING[strategy]:.0%} scaling")
    if "offload" in parts:
        notes.append(f"CPU offload: each pass copies this rank's weight shards from host RAM over PCIe 4.0 x16 "
                     f"({PCIE_GBS:g} GB/s at {device.stack.bandwidth_share:.0%}): {parts['offload']:.2f} s a micro-batch")
    if "scan_loop" in parts:
        loops = fallback_loops(spec, plan, device.kind)
        units = " or ".join(dict.fromkeys("token" if k == "Mamba1" else "chunk" for k, _ in loops))
        notes.append(f"the torch fallback of the {' and '.join(k for k, _ in loops)} layers (no kernel package used): "
                     f"Python loops over every {units}, {round(parts['scan_loop'] / device.stack.op_s):,} kernels "
                     f"a micro-batch at ~{device.stack.op_s * 1e6:.0f} µs each: {parts['scan_loop']:.1f} s")
    if "activation_offload" in parts:
        notes.append(f"activation offload: the checkpointed inputs copied to host RAM and back over PCIe 4.0 x16, "
                     f"not overlapped with compute (torch save_on_cpu): {parts['activation_offload']:.2f} s a "
                     "micro-batch")
    train_s = None if steps is None else steps * step_s
    when = cadence.resolve(cfg.train, epoch_steps(cfg, fit, data))
    evaluations, eval_s = evaluation_seconds(spec, cfg, fit, device, data, steps, padded, attention, k, when)
    if evaluations:
        notes.append(f"{evaluations} evaluation{'s' if evaluations > 1 else ''} of {data.val_rows:,} validation rows "
                     f"(every {when.eval_steps:,} steps), a forward each: {duration(eval_s)}")
    elif cfg.data.val_path and steps:
        notes.append("evaluation time not counted: data.val_path is not scanned")
    gpus = fit.gpus if device.kind == "gpu" else 0
    cost = None
    total_s = None if train_s is None else setup_s + train_s + (eval_s or 0.0)
    if price is not None and gpus and total_s is not None:
        cost = price * gpus * total_s / 3600
    return TimePlan(tokens_per_s=tok_step / step_s if step_s else 0.0, step_s=step_s,
                    total_s=total_s,
                    train_s=train_s, setup_s=setup_s, steps=steps, tokens=tokens, device=device.name,
                    efficiency=efficiency, calibrated_from=tuple(c.run_id for c in similar), parts=parts,
                    assumptions=tuple(notes), price_per_gpu_hour=price if gpus else None, gpus=max(gpus, 1), cost=cost,
                    eval_s=eval_s, evaluations=evaluations)


def epoch_steps(cfg: "RunConfig", fit: "Fit", data: DataShape) -> int | None:
    """Optimizer steps an epoch takes (None: the data is not known)."""
    seqs = sequences(cfg, data, data.rows)
    return cadence.steps_per_epoch(seqs, cfg.train.micro_batch * fit.gpus, cfg.train.grad_accum) if seqs else None


def evaluation_seconds(spec: "ModelSpec", cfg: "RunConfig", fit: "Fit", device: Device, data: DataShape,
                       steps: int | None, padded: int, attention: str, k: float,
                       when: cadence.Cadence) -> tuple[int | None, float | None]:
    """(evaluations, their seconds) over a run of `steps` at the cadence `when`: each a forward over the validation
    rows at the training micro-batch (the worker's per_device_eval_batch_size), padded as training pads, at the
    step time's calibration `k`. (None, None) without validation rows the planner knows of."""
    if not data.val_rows or not steps:
        return None, None
    n = when.evaluations(steps)
    if not n:
        return 0, 0.0
    batches = math.ceil(sequences(cfg, data, data.val_rows) / (cfg.train.micro_batch * fit.gpus))
    forward = micro_batch_seconds(spec, fit, device, padded, attention, forward_only=True)
    return n, n * batches * sum(forward.values()) * k / SCALING[fit.strategy]


def rate(tokens_per_s: float) -> str:
    """Tokens a second, as many digits as the figure needs: 12,400 tok/s, 3.2 tok/s, 0.04 tok/s."""
    if tokens_per_s >= 100:
        return f"{tokens_per_s:,.0f} tok/s"
    return f"{tokens_per_s:.2g} tok/s" if tokens_per_s < 1 else f"{tokens_per_s:.1f} tok/s"


def per_step(seconds: float) -> str:
    """Seconds an optimizer step: 3.1 s/step, 0.25 s/step; a minute or more as a duration (8d 3h/step)."""
    if seconds >= 60:
        return f"{duration(seconds)}/step"
    return f"{seconds:.2g} s/step" if seconds < 1 else f"{seconds:.1f} s/step"


def duration(seconds: float | None) -> str:
    """3h 12m, 4m 05s, 37s."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s >= 86400:
        return f"{s // 86400}d {s % 86400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"
