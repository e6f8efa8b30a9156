"""Activations: what autograd keeps per token from forward to backward, and the transients on
top of it (one layer's backward, the loss's vocabulary-sized buffers), for the stack rankwise
trains with. memory.py adds them to the static memory; the constants behind each count are cited
where they are used.
"""
from __future__ import annotations

from . import linear_attention, liger, mamba
from .plan import Plan
from .spec import Linear, ModelSpec
from .storage import experts_as_parameters, fused_experts


def kbit_upcast(plan: Plan) -> bool:
    """Does peft's prepare_model_for_kbit_training cast the non-4-bit weights to fp32?

    Not under FSDP/ZeRO-3: FSDP flattens each unit's parameters into one tensor of one dtype,
    so the FSDP+QLoRA recipe loads the model in the 4-bit storage dtype (bf16,
    `bnb_4bit_quant_storage`) and skips the fp32 upcast (peft docs, accelerate/fsdp.md "Use PEFT
    QLoRA and FSDP"; TRL's SFTTrainer skips prepare_model_for_kbit_training for sharded QLoRA).
    Nor with `quant.kbit_upcast: false` (the worker casts them back to the compute dtype, as axolotl's
    loaders/model.py `_convert_embedding_modules_dtype` does after prepare_model_for_kbit_training)."""
    return plan.stack.kbit_upcast and plan.kbit_upcast and not plan.sharded


def stream_bytes(plan: Plan) -> int:
    """Bytes per element of the residual stream and of what 4-bit linears return.

    With a quantized base (QLoRA) on the hf stack, prepare_model_for_kbit_training leaves the embedding in
    fp32, so the hidden states entering layer 0 are fp32; bitsandbytes' Linear4bit casts
    its output back to its input's dtype (bitsandbytes nn/modules.py Linear4bit.forward:
    `.to(inp_dtype)`) and fp32 + bf16 promotes to fp32, so the residual stream and the MLP
    stay fp32 while the matmuls run in 16-bit."""
    if plan.descriptor.quantized and kbit_upcast(plan):
        return 4
    return plan.dtype_bytes


def residual_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Bytes per element of the hidden state between layers (what a checkpointed layer keeps as its input): the
    stream's, or fp32 where the model keeps its residual in fp32 (spec.residual_fp32: Mamba, Falcon-Mamba)."""
    return 4 if spec.residual_fp32 else stream_bytes(plan)


def _lora_input_bytes(l: Linear, plan: Plan) -> int:
    """Per token: what an adapted linear's LoRA branch saves for backward.

    lora_A's matmul saves its 16-bit input: under autocast that is the cast copy (the fp32
    dropout output or the fp32 input peft's `_cast_input_dtype` makes is not kept);
    dropout keeps a bool mask; lora_B saves lora_A's r-wide output."""
    a = plan.dtype_bytes
    return a * l.d_in + (l.d_in if plan.lora_dropout else 0) + a * plan.r


def layer_saved_bytes(spec: ModelSpec, plan: Plan, adapted: list[Linear], largest: bool = False) -> int:
    """Per token, one decoder layer: tensors autograd keeps from forward to backward.

    Frozen linears save nothing (their weight is frozen, their input is not needed);
    RMSNorm saves its fp32 upcast input; SDPA (flash/mem-efficient) saves 16-bit q, k, v,
    the output and an fp32 logsumexp per head; SwiGLU saves gate, up and act(gate) in the
    stream's dtype (fp32 for QLoRA on the hf stack, see `stream_bytes`).

    A hybrid with linear-attention, Mamba2 or Mamba1 layers (linear_attention.py, mamba.py) has kinds of layer: the
    average over the layers, or with `largest` the largest kind (the layer a checkpointed backward recomputes at the
    peak)."""
    a = plan.dtype_bytes
    s = stream_bytes(plan)
    h = spec.hidden_size
    qd, kvd = spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
    # RMSNorm keeps the fp32 copy of its input; Liger's its input (the stream's dtype) and an fp32 RMS a row (liger.py)
    total = spec.norms_per_layer * ((s * h + 4) if _liger(spec, plan) else 4 * h)
    mixer = 4 * spec.family.qk_norm_inputs(spec.num_heads, spec.num_kv_heads, spec.head_dim)  # q/k norms: the same
    mixer += a * (qd + 2 * kvd) + a * qd  # q, k, v and the attention output
    mixer += _attention_saved_bytes(spec, plan)
    gdn, ssm = spec.linear_attention, spec.mamba
    kinds = []  # (layers, bytes a token) of each mixer kind beside softmax attention
    if gdn is not None:
        if gdn.gated_attention:
            mixer += linear_attention.gated_attention_bytes(spec.num_heads, spec.num_kv_heads, spec.head_dim, a)
        kinds.append((gdn.layers, linear_attention.saved_bytes(gdn, plan.seq_len, a, plan.linear_kernel,
                                                               plan.causal_conv1d, s)))
    if ssm is not None and ssm.parallel:  # beside attention in every layer (Falcon-H1)
        mixer += mamba.saved_bytes(ssm, plan.seq_len, a, plan.mamba_kernel, s, h)
    elif ssm is not None:
        kinds.append((ssm.layers, mamba.saved_bytes(ssm, plan.seq_len, a, plan.mamba_kernel, s, h)))
    m1 = spec.mamba1
    if m1 is not None:
        kinds.append((m1.layers, mamba.mamba1_saved_bytes(m1, plan.seq_len, a, plan.mamba_kernel, plan.causal_conv1d,
                                                          stream=s)))
    if kinds:
        kinds.append((spec.attention_layers, mixer))
        present = [b for n, b in kinds if n]
        mixer = max(present) if largest else sum(n * b for n, b in kinds) // spec.num_layers
    total += mixer
    # gate, up, act(gate) saved by act and mul, in each expert a token runs; Liger's SwiGLU (dense MLPs) gate and up
    total += (2 if _liger(spec, plan) and not spec.is_moe else 3) * s * spec.mlp_width
    if spec.is_moe:
        total += 4 * spec.num_experts  # router logits/softmax in fp32
    if spec.dense_moe:  # the layer's input repeated for every expert, kept by its scaling with the router's scores
        total += s * spec.num_experts * h
    for kernel in plan.fused_lora:
        total -= fused_lora_bytes(kernel, spec, plan, adapted)
    dora = plan.descriptor.dora
    for l in {l.name: l for l in adapted if l.family != "lm_head"}.values():
        total += l.count * _lora_input_bytes(l, plan) // spec.num_layers  # a module in only some layers: averaged
        if dora:
            # peft dora.py forward: `(mag_norm_scale - 1) * base_result + mag_norm_scale * lora_result
            # * scaling` saves base_result and lora_result (both d_out wide) for the magnitude's gradient
            total += l.count * 2 * a * l.d_out // spec.num_layers
    q = plan.descriptor.quant
    if q is not None and q.saves_input:
        # bnb MatMul8bitLt keeps each frozen linear's input (`ctx.tensors = (CAt, subA, A)`); new beyond
        # what is counted above: the two norm outputs (attention and MLP inputs) and down_proj's input; an MoE's
        # fused experts are no Linear8bitLt (16-bit, or int8 behind a parametrization): only its shared MLP's
        total += s * (2 * h + spec.dense_mlp_width)
    return total


def fused_lora_bytes(kernel: str, spec: ModelSpec, plan: Plan, adapted: list[Linear]) -> int:
    """Per token, one decoder layer: what one of axolotl's fused LoRA kernels keeps less than transformers' layer
    under peft (axolotl kernels/lora.py @067b021). 0 where axolotl does not patch: unless every projection the kernel
    fuses carries LoRA (monkeypatch/lora_kernels.py `can_patch_mlp` / `can_patch_qkv`), and for "mlp" on an MoE, whose
    routed experts are no gate/up/down linears it fuses.
    - "mlp" (LoRA_MLP: `ctx.save_for_backward(X, X_drop, gate, up, ...)`; backward recomputes act(gate) and the
      product down_proj takes): less act(gate), and down_proj's LoRA branch input (its copy, dropout mask, r-wide
      output).
    - "qkv" (LoRA_QKV: `ctx.save_for_backward(X, X_drop, ...)`, the LoRA matrices cast once): q, k and v's LoRA
      branch inputs (each module's own copy of its input, mask and r-wide output) give way to the input once (and
      one dropout output with its mask)."""
    by_name = {l.name: l for l in adapted}
    s = stream_bytes(plan)
    if kernel == "mlp":
        if spec.is_moe or not {"gate_proj", "up_proj", "down_proj"} <= set(by_name):
            return 0
        return s * spec.mlp_width + _lora_input_bytes(by_name["down_proj"], plan)
    if kernel == "qkv":
        if not {"q_proj", "k_proj", "v_proj"} <= set(by_name):
            return 0
        h = spec.hidden_size
        kept = s * h + ((s + 1) * h if plan.lora_dropout else 0)
        return sum(_lora_input_bytes(by_name[n], plan) for n in ("q_proj", "k_proj", "v_proj")) - kept
    raise ValueError(f"unknown fused LoRA kernel {kernel!r}")


def built_expert_bytes(spec: ModelSpec, plan: Plan, wrapped: list[Linear]) -> tuple[int, int]:
    """(per token, per layer) bytes one decoder layer keeps for backward for fused expert tensors that are built in
    each forward: those LoRA adapts as parameters (lora.target_parameters; peft ParamWrapper), and a 4-bit method's
    experts quantized as parameters (storage.experts_as_parameters: bitsandbytes dequantizes them on access).

    peft 0.21 folds the adapter into the weight (`_LoraFactorsProxy`: baddbmm(W, B·A)), and bitsandbytes'
    parametrization dequantizes it: either way the layer's expert tensor is built in full in the compute dtype,
    and transformers' experts (grouped_mm, its default) keep it for the input gradient. A LoRA fold also keeps the
    compute-dtype copies of fp32 A and B, and its built weight requires grad, so each expert matmul keeps its input:
    each token is routed to experts_per_token experts, d_in of each adapted tensor there. Per layer, averaged over
    the layers that have experts. Measured with autograd's saved tensors on a tiny Mixtral
    (tests/test_target_parameters.py, tests/test_moe_quant.py): exactly these bytes."""
    a = plan.dtype_bytes
    k = max(1, spec.experts_run)
    copies = plan.adapter_bytes != a  # fp32 adapters (the stack's) are cast for the fold; bf16 ones are read as they are
    built = {l.name: l for l in spec.linears if fused_experts(l)} if experts_as_parameters(plan) else {}
    built.update((l.name, l) for l in wrapped)
    per_token = per_layer = 0
    for l in built.values():
        per_layer += l.count * l.d_in * l.d_out * a // spec.num_layers
    for l in wrapped:
        per_layer += l.count * copies * plan.r * (l.d_in + l.d_out) * a // spec.num_layers
        per_token += l.count * k * a * l.d_in // (spec.num_layers * max(1, spec.num_experts))
    return per_token, per_layer


def _liger(spec: ModelSpec, plan: Plan) -> bool:
    """Liger's kernels patch this model (train.kernels liger on a model type it has kernels for)."""
    return plan.liger and liger.supports(spec.config.get("model_type"))


def _attention_saved_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Per token, one layer: what attention saves beyond q, k, v and its output.

    sdpa / flash_attention_2 (flash or memory-efficient kernels): an fp32 logsumexp per head,
    no seq×seq scores. eager (transformers' eager_attention_forward): `softmax(..., dtype=float32)`
    saves its fp32 output for backward and the `.to(query.dtype)` copy is saved by the matmul with
    v: (4 + a) bytes per score, B×H×S² scores a layer, i.e. H·S per token (dropout 0 keeps no mask)."""
    if plan.attention == "eager":
        return (4 + plan.dtype_bytes) * spec.num_heads * plan.seq_len
    return 4 * spec.num_heads


def layer_backward_transient_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Per token: gradients alive while one layer runs backward (residual-stream grads
    in and out, the MLP's intermediate grads).

    The MLP term is config.json's intermediate_size, not spec.mlp_width, for an MoE too: the experts run
    one after another (transformers' MoE blocks loop over the experts, each on the tokens routed to it), so
    the intermediate gradients alive at once are one expert's, for its tokens. intermediate_size bounds that
    from above in both layouts: Mixtral's expert width taking every token, or DeepSeek/GLM/Qwen-MoE's dense
    layers (first_k_dense_replace), which are that wide. The top-k width (mlp_width) over-counts: on the
    fms-acceleration Mixtral rows it moved the estimate from +2.5%/+3.7% to +6.8%/+9.8% (QLoRA, batch 4/8)."""
    out = stream_bytes(plan) * (3 * spec.hidden_size + 2 * spec.intermediate_size)
    if plan.attention == "eager":  # the scores' gradient: 16-bit from the matmul, fp32 through softmax
        out += (4 + plan.dtype_bytes) * spec.num_heads * plan.seq_len
    return out


def layer_weight_transient_bytes(spec: ModelSpec, plan: Plan, adapted: list[Linear]) -> int:
    """Bytes, not per token: the largest weight-sized temporary one linear makes while its layer runs.

    DoRA (peft tuners/lora/dora.py, `get_weight_norm` in every training forward): the adapted
    weight `weight + scaling * lora_weight` is built in full to take its row norms: the 16-bit
    lora_weight, its scaled copy and the sum (3 weight-sized 16-bit tensors), plus the de-quantized
    base weight for a quantized base (`dequantize_module_weight`). An 8-bit base (bnb
    MatMul8bitLt.backward): the whole weight de-quantized to 16-bit for the input gradient."""
    a = plan.dtype_bytes
    m = plan.descriptor
    lin = [l for l in spec.linears if l.family != "lm_head"]
    out = 0
    if m.dora and adapted:
        big = max(l.d_in * l.d_out for l in adapted if l.family != "lm_head")
        out = (3 + (1 if m.quantized else 0)) * a * big
    if m.quant is not None and m.quant.backward_dequant and lin:
        out = max(out, a * max(l.d_in * l.d_out for l in lin))
    return out


CHUNKS = 8  # the pieces trainer/chunked_loss.py cuts the logits into (torchtune's and axolotl's default)


def chunked_loss_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Per token: vocab-sized bytes at the chunked loss's peak (train.loss chunked; trainer/chunked_loss.py).

    Its backward holds the 16-bit logits (saved), their gradient in the same dtype (written piece by piece)
    and one piece's fp32 work (forward: the upcast piece and logsumexp's temporary; backward: the piece's
    softmax, worked in place, and the gradient it is written from): 2a + 2 x 4 / CHUNKS bytes a logit,
    5 for 16-bit training, against 12 beside the 16-bit logits for transformers' loss (logits_peak_bytes).
    No softcap term: Gemma 2's tanh output is the logits the loss reads."""
    return int(chunked_bytes_a_logit(plan.dtype_bytes) * spec.logit_width)


def chunked_bytes_a_logit(a: int) -> float:
    """The chunked loss's bytes a logit at its peak for compute dtype `a` (`chunked_loss_bytes`)."""
    return 2 * a + 2 * 4 / CHUNKS


def fused_loss_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Bytes at the peak of Liger's fused linear cross-entropy (the whole micro-batch).

    liger_kernel/ops/fused_linear_cross_entropy.py (linkedin/Liger-Kernel @ead96b6,
    fused_linear_cross_entropy_forward): tokens are cut into chunks of
    `next_power_of_2(cdiv(BT, cdiv(V, H)))` rows; one chunk's logits (chunk × V, the input's
    dtype) exist at a time and the kernel overwrites them with their gradient in place;
    `grad_input` (BT × H, the input's dtype) is filled during forward and kept for backward;
    `loss_1d` is fp32 per token. The vocabulary-sized logits of the whole batch never exist."""
    bt = plan.micro_batch * plan.seq_len
    v, h = spec.logit_width, spec.hidden_size
    inc = -(-v // h)
    chunk = 1 << max(0, (-(-bt // inc) - 1).bit_length())
    return plan.dtype_bytes * chunk * v + stream_bytes(plan) * bt * h + 4 * bt


def logits_peak_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Per token: vocab-sized buffers at the loss's peak (see `Stack.logits_bytes`).

    On the hf stack, transformers 5 `ForCausalLMLoss` upcasts the 16-bit logits with `logits.float()`, and
    cross_entropy keeps the fp32 log_softmax for backward: forward peak 16-bit logits +
    fp32 copy + fp32 log_softmax. In backward, NLL's dense fp32 gradient, the saved
    log_softmax and log_softmax's fp32 input-gradient are alive together: 3 fp32 copies,
    which is the larger of the two for 16-bit training (12 vs 10 bytes per logit)."""
    softcap = plan.dtype_bytes if spec.family.final_softcap(spec.config) else 0  # Gemma 2 keeps tanh's output
    return (plan.stack.logits_bytes(plan.dtype_bytes) + softcap) * spec.logit_width
