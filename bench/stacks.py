"""Memory layouts of training stacks other than the one rankwise trains with.

The estimator (rankwise.advisor.memory) models what rankwise runs: `memory.HF`. Published
memory figures come from older transformers, fms-acceleration, Answer.AI's fsdp_qlora, LitGPT and
torchtune, whose code keeps different tensors alive; these layouts let bench/estimator_accuracy.py
hold the same arithmetic against those figures. Benchmark-only: product code never reads this file.
"""
from __future__ import annotations

from dataclasses import replace

from rankwise.advisor.memory import HF, Stack

STACKS: dict[str, Stack] = {"hf": HF}
# transformers 4.46-4.49: ForCausalLMLoss also made `shift_logits = logits[..., :-1, :]
# .contiguous()`, one more fp32 copy in the forward peak.
STACKS["hf-4.46"] = Stack("hf-4.46", 4, True, False, True, True, True, 3, checkpoint_wraps_unit=True,
                          fsdp_start_16bit="cpu", fsdp_start_quantized="cpu", zero3_start_quantized="gpu",
                          quantizes_fused_experts=True)
# transformers 4.40-4.45 (Llama/Mistral/Mixtral ForCausalLM.forward before the 4.46 loss
# refactor): `logits = logits.float()` rebinds the name, so the 16-bit logits are freed
# (the frozen lm_head saves no input), then `shift_logits = logits[..., :-1, :].contiguous()`
# and CrossEntropyLoss: fp32 logits + shifted copy + log_softmax in forward, 3 fp32 copies
# in backward. peft 0.13 (autocast_adapter_dtype) keeps adapters fp32; TRL's SFTTrainer runs
# peft's prepare_model_for_kbit_training (fp32 upcast) on 4-bit models.
STACKS["hf-4.40"] = Stack("hf-4.40", 4, True, False, True, False, True, 3, checkpoint_wraps_unit=True,
                          fsdp_start_16bit="cpu", fsdp_start_quantized="cpu", zero3_start_quantized="gpu",
                          quantizes_fused_experts=True)
# Under FSDP both start as Answer.AI's fsdp_qlora does: a 16-bit base on rank 0's CPU (cpu_ram_efficient_loading),
# and a 4-bit one quantized on the GPU, then moved to rank 0's CPU (the others' to meta) with its quant_state left
# on the GPU (modeling_utils `_load_state_dict_into_meta_model`, 4.40-4.4x); FSDP moves each unit back as it wraps.
# Both (transformers before 4.52) checkpoint around each decoder layer from the model's forward,
# `self._gradient_checkpointing_func(decoder_layer.__call__, ...)`: under FSDP the checkpoint wraps the
# FSDP unit, and reentrant checkpointing then holds every layer's input and its gradient to the end of
# backward (advisor/sharding.py, checkpoint_hold_bytes). Answer.AI's fsdp_qlora applies torch's
# apply_activation_checkpointing after wrapping (train.py @50efa1e), which puts the checkpoint inside
# each FSDP unit: no hold.
# fms-acceleration's accelerated-peft-bnb plugin on the same transformers: its own
# `_prepare_model_for_kbit_training` (plugins/accelerated-peft/.../framework_plugin_bnb.py)
# only freezes and enables checkpointing, without peft's fp32 upcast, so embeddings,
# norms and lm_head stay 16-bit and the residual stream stays 16-bit: hf-4.40 with the
# product option `quant.kbit_upcast: false` (the CSV's options column: kbit_upcast=no).
# LitGPT (bf16-true): everything bf16 incl. LoRA and AdamW states; chunked
# cross-entropy in bf16 (the logits list and bf16 log_softmax kept through backward);
# Lightning's BitsandbytesPrecision quantizes every Linear incl. lm_head, no upcast.
STACKS["litgpt"] = Stack("litgpt", 2, False, True, False, True, False, 3, quantizes_fused_experts=True)
# Answer.AI fsdp_qlora train.py (github.com/AnswerDotAI/fsdp_qlora @50efa1e, Mar 2024, the
# benchmarks_03_2024.md runs) with its default `--precision bf16`: every parameter bf16, no
# autocast, no FSDP MixedPrecision (README "bf16": "updates will be done in bf16"), so LoRA and
# AdamW states are bf16; its own loading (replace_linear on model.model: lm_head stays bf16) and no
# prepare_model_for_kbit_training, so no fp32 upcast. transformers 4.38-4.39 LlamaForCausalLM:
# `logits.float()` rebinds, `shift_logits ... .contiguous()`, CrossEntropyLoss (as hf-4.40). The
# training loop keeps `output` (and so the fp32 `output.logits`) alive through `loss.backward()`
# and only then sets `output = None`: one more fp32 vocab-sized tensor at the loss's backward peak
# (the saved log_softmax, NLL's grad and log_softmax's grad_input beside it: 4 copies), and that one fp32 copy stays
# beside every layer's recompute after it (keeps_output_in_backward).
STACKS["fsdp-qlora"] = Stack("fsdp-qlora", 2, False, False, True, False, True, 4, fsdp_start_16bit="cpu",
                              fsdp_start_quantized="cpu", keeps_output_in_backward=True,
                              quantizes_fused_experts=True)
# torchtune (2024): bf16 LoRA params and AdamW states; the model returns fp32 logits
# (`self.output(h).float()`), cross_entropy keeps fp32 log_softmax.
STACKS["torchtune"] = Stack("torchtune", 2, False, False, True, False, False, 3, quantizes_fused_experts=True)

# The stacks that are what rankwise itself trains with: HF transformers + peft under the HF Trainer
# (TRL's SFTTrainer is one) with accelerate. Issue 11 counts their rows twice in the benchmark's median.
# fsdp-qlora, LitGPT and torchtune run their own training loops.
# Every stack above predates transformers 5's fused experts (or quantizes every linear itself): their MoE experts were
# nn.Linear modules that bitsandbytes replaced (quantizes_fused_experts).
TRAINER_STACKS = frozenset({"hf", "hf-4.46", "hf-4.40"})

# axolotl (at 067b021: transformers 5.14, peft, the HF Trainer) keeps rankwise's layout, with its own patches beside
# it (Cut Cross Entropy, Liger's layers, its fused LoRA kernels, linearized Llama 4 experts), which the rows' options
# name; not rankwise's own stack, so its rows count once.
STACKS["axolotl"] = replace(HF, name="axolotl")
