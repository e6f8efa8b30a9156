"""Each red-flag rule fires where it should and stays quiet where it should; each patch fixes its flag."""
import json
from contextlib import contextmanager
from dataclasses import replace
from importlib.machinery import ModuleSpec

import pytest
from rule_codes import declared, documented

from rankwise.advisor import ignored, mamba
from rankwise.advisor.config import RunConfig
from rankwise.advisor.hardware import Hardware, Host, planned
from rankwise.advisor.loader import apply_overrides, validate
from rankwise.advisor.model import load_model
from rankwise.advisor.redflags import RULES, check
from rankwise.advisor.units import GIB

# a config with no red flags on a 24 GiB GPU: the baseline every row tweaks
CLEAN = {"model.name": "llama-3.1-8b", "method": "qlora", "lora.r": 16, "lora.alpha": 32, "train.lr": 1e-4,
         "train.micro_batch": 1, "train.grad_accum": 16}

HW = {
    "24g": lambda: planned("24GiB"),
    "80g": lambda: planned("80GiB"),
    "80g-x4": lambda: planned("80GiB", gpus=4),
    "16g": lambda: planned("16GiB"),
    "t4": lambda: planned(gpu="T4"),
    "a100": lambda: planned(gpu="A100-80GB"),
    "cpu": lambda: Hardware(gpus=(), source="probe"),
    # a probed machine's host as data: RAM available / free disk (advisor/host_plan.py judges against them)
    "24g-ram2": lambda: probed(Host(8, 4 * GIB, 2 * GIB, 500 * GIB, "/runs")),
    "24g-ram12": lambda: probed(Host(8, 16 * GIB, 12 * GIB, 500 * GIB, "/runs")),
    "24g-ram64": lambda: probed(Host(8, 64 * GIB, 64 * GIB, 500 * GIB, "/runs")),
    "24g-disk35": lambda: probed(Host(8, 64 * GIB, 64 * GIB, 35 * GIB, "/runs")),
    "24g-disk5": lambda: probed(Host(8, 64 * GIB, 64 * GIB, 5 * GIB, "/runs")),
    "24g-declared-ram2": lambda: planned("24GiB", host=Host(8, 4 * GIB, 2 * GIB, 500 * GIB, "/runs")),
    # kernel packages this machine lacks, said installed (installed() below)
    "80g+mamba_ssm": lambda: planned("80GiB"),
    "80g+mamba_ssm+scan": lambda: planned("80GiB"),
    "80g+mamba_ssm+causal_conv1d": lambda: planned("80GiB"),
    "cpu+mamba_ssm": lambda: Hardware(gpus=(), source="probe"),
}
# The packages a machine of HW has, at the one seam the rules read them through (mamba.find_spec); the rest as here
KERNEL_PACKAGES = ("mamba_ssm", "selective_scan_cuda", "causal_conv1d")


@contextmanager
def installed(hw: str):
    """Within: the kernel packages named in the HW key (after a "+") importable, the others of KERNEL_PACKAGES not."""
    if "+" not in hw:
        yield
        return
    names = set(hw.split("+")[1:])
    names |= {"selective_scan_cuda"} if "scan" in names else set()
    real = mamba.find_spec
    def fake(name, *a):
        return (ModuleSpec(name, None) if name in names else None) if name in KERNEL_PACKAGES else real(name, *a)

    mamba.installed_kernel.cache_clear()  # the estimate's scan follows the fake too, and after it this machine again
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(mamba, "find_spec", fake)
            yield
    finally:
        mamba.installed_kernel.cache_clear()


def probed(host: Host) -> Hardware:
    """A 24 GiB GPU machine as the probe would report it, with this host."""
    return replace(planned("24GiB"), host=host, source="probe")


def make(tweak: dict) -> RunConfig:
    sets = [f"{k}={json.dumps(v)}" for k, v in {**CLEAN, **tweak}.items()]
    return validate(apply_overrides({}, sets))


UNKNOWN = "a-model-rankwise-does-not-know"  # checked without a spec, as `rankwise check` does then


def run(tweak: dict, hw: str, method=None):
    cfg = make(tweak)
    spec = None if cfg.model.name == UNKNOWN else load_model(cfg.model.name)
    with installed(hw):
        return cfg, check(cfg, spec, HW[hw](), method)


# (tweak, hardware, {code: severity} expected present, codes expected absent)
TABLE = [
    ({}, "24g", {}, ["*"]),
    ({"lora.r": 512, "lora.alpha": 1024, "lora.dropout": 0.3}, "80g", {"high-rank-high-dropout": "warning"}, []),
    ({"lora.r": 512, "lora.alpha": 1024, "lora.dropout": 0.1}, "80g", {}, ["high-rank-high-dropout"]),
    ({"lora.r": 256, "lora.alpha": 512, "lora.dropout": 0.3}, "80g", {}, ["high-rank-high-dropout"]),
    # the guide's alpha >= r: info, the published recipes train below it (QLoRA alpha/r = 0.25)
    ({"lora.r": 32, "lora.alpha": 16}, "24g", {"alpha-below-rank": "info"}, []),
    ({"lora.r": 64, "lora.alpha": 32, "lora.target_modules": "all-linear"}, "80g", {}, ["alpha-below-rank"]),
    ({"lora.r": 32, "lora.alpha": 32}, "24g", {}, ["alpha-below-rank"]),
    ({"lora.r": 32, "lora.alpha": 16, "lora.use_rslora": True}, "24g", {}, ["alpha-below-rank"]),
    ({"lora.r": 8, "lora.alpha": 128}, "24g", {"alpha-far-above-rank": "warning"}, []),
    # rank-aware: TML's RL recipe (r = 1, alpha = 32) is rankwise's own fixed alpha, not far above it
    ({"lora.r": 1, "lora.alpha": 32, "lora.target_modules": "all-linear"}, "24g", {"all-modules-low-rank": "info"},
     ["alpha-far-above-rank"]),
    ({"lora.r": 4, "lora.alpha": 8, "lora.target_modules": "aggressive"}, "24g", {"all-modules-low-rank": "info"}, []),
    ({"lora.r": 4, "lora.alpha": 8, "lora.target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"]}, "24g",
     {"all-modules-low-rank": "info"}, []),
    ({"lora.r": 4, "lora.alpha": 8, "lora.target_modules": "standard"}, "24g", {}, ["all-modules-low-rank"]),
    ({"lora.r": 8, "lora.alpha": 16, "lora.target_modules": "all-linear"}, "24g", {}, ["all-modules-low-rank"]),
    ({"train.lr": 1e-3}, "24g", {"qlora-high-lr": "info"}, ["lr-out-of-range"]),
    ({"train.lr": 2e-4}, "24g", {}, ["qlora-high-lr", "lr-out-of-range"]),
    ({"method": "lora", "train.lr": 1e-3}, "80g", {}, ["qlora-high-lr", "lr-out-of-range"]),
    ({"method": "lora", "train.lr": 3e-3}, "80g", {"lr-out-of-range": "warning"}, ["qlora-high-lr"]),
    ({"method": "lora", "train.lr": 5e-6}, "80g", {"lr-out-of-range": "warning"}, []),
    ({"method": "lora", "train.lr": 5e-2}, "80g", {"lr-out-of-range": "error"}, []),
    ({"train.lr": 5e-6}, "24g", {"lr-out-of-range": "warning"}, ["qlora-high-lr"]),
    # the band follows model size and alpha (advisor/coupling.py): 2e-3 is high for 8B, fine for 1B
    ({"method": "lora", "train.lr": 2e-3}, "80g", {"lr-out-of-range": "warning"}, []),
    ({"model.name": "llama-3.2-1b", "method": "lora", "train.lr": 2e-3}, "80g", {}, ["lr-out-of-range"]),
    ({"method": "lora", "lora.r": 256, "lora.alpha": 512, "train.lr": 5e-4}, "80g", {"lr-out-of-range": "warning"}, []),
    ({"method": "lora", "lora.r": 256, "lora.alpha": 512, "train.lr": 1e-4}, "80g", {}, ["lr-out-of-range"]),
    ({"lora.r": 4096, "lora.alpha": 8192}, "80g", {"rank-out-of-range": "error"}, []),
    ({"lora.r": 2048, "lora.alpha": 4096}, "80g", {}, ["rank-out-of-range"]),
    # model-aware: half of Llama-3.2-1B's 2048 hidden size is 1024 (ModelSpec.low_rank_limit)
    ({"model.name": "llama-3.2-1b", "method": "lora", "lora.r": 2048}, "80g", {"rank-above-width": "warning"},
     ["rank-out-of-range"]),
    ({"model.name": "llama-3.2-1b", "method": "lora", "lora.r": 1024}, "80g", {}, ["rank-above-width"]),
    ({"lora.r": 4096}, "80g", {"rank-out-of-range": "error"}, ["rank-above-width"]),  # one finding, the error
    ({"lora.dropout": 0.6}, "24g", {"dropout-out-of-range": "warning"}, []),
    ({"lora.dropout": 0.5}, "24g", {}, ["dropout-out-of-range"]),
    ({"model.name": "llama-3.1-70b"}, "24g", {"wont-fit": "error"}, []),
    ({"method": "lora", "train.micro_batch": 2, "train.grad_accum": 8}, "24g", {"wont-fit": "warning"}, []),
    ({}, "cpu", {"wont-fit": "info"}, ["bf16-unsupported"]),
    ({"model.name": "llama-3.1-70b"}, "80g", {}, ["wont-fit"]),
    # 70B LoRA: a full copy per GPU (~140 GiB) cannot fit 80 GiB, sharded over four GPUs it does
    ({"model.name": "llama-3.1-70b", "method": "lora", "distributed.strategy": "ddp"}, "80g-x4",
     {"ddp-wont-fit": "error"}, []),
    ({"model.name": "llama-3.1-70b", "method": "lora", "distributed.strategy": "fsdp"}, "80g-x4", {},
     ["ddp-wont-fit", "wont-fit"]),
    ({"model.name": "llama-3.1-8b", "method": "lora", "distributed.strategy": "ddp"}, "80g-x4", {}, ["ddp-wont-fit"]),
    ({"distributed.gpus": 2}, "24g", {"too-few-gpus": "error"}, []),  # one GPU declared, the config wants two
    ({"distributed.gpus": 4}, "80g-x4", {}, ["too-few-gpus"]),
    ({"distributed.gpus": "auto"}, "80g-x4", {}, ["too-few-gpus"]),
    ({"model.name": UNKNOWN}, "24g", {"checks-skipped": "info"}, ["wont-fit"]),
    ({}, "24g", {}, ["checks-skipped"]),
    ({"train.precision": "bf16"}, "t4", {"bf16-unsupported": "error"}, []),
    ({"quant.compute_dtype": "bfloat16"}, "t4", {"bf16-unsupported": "error"}, []),
    ({"train.precision": "bf16"}, "a100", {}, ["bf16-unsupported"]),
    ({"train.precision": "bf16"}, "cpu", {}, ["bf16-unsupported"]),
    ({"train.precision": "fp16"}, "a100", {"fp16-on-bf16-gpu": "info"}, []),
    ({"train.precision": "fp16"}, "t4", {}, ["fp16-on-bf16-gpu"]),
    ({"model.name": "llama-2-7b", "train.max_seq_len": 8192}, "80g", {"seq-beyond-positions": "warning"}, []),
    ({"model.name": "llama-2-7b", "train.max_seq_len": 4096}, "80g", {}, ["seq-beyond-positions"]),
    ({"lora.target_modules": ["q_proj", "qkv_proj"]}, "24g", {"unknown-target-module": "error"}, ["wont-fit"]),
    ({"lora.target_modules": ["q_proj", "v_proj"]}, "24g", {}, ["unknown-target-module"]),
    ({"model.name": "phi-3-mini", "lora.target_modules": ["q_proj", "v_proj"]}, "24g",
     {"unknown-target-module": "error"}, []),
    ({"model.trust_remote_code": True}, "24g", {"trust-remote-code": "warning"}, []),
    ({"train.grad_accum": 2}, "24g", {"effective-batch-small": "warning"}, []),
    ({"train.grad_accum": 4}, "24g", {}, ["effective-batch-small"]),
    ({"train.grad_accum": 1}, "80g-x4", {}, ["effective-batch-small"]),
    ({"train.micro_batch": 16, "train.grad_accum": 128}, "80g", {"effective-batch-large": "warning"}, []),
    ({"train.grad_accum": 64}, "80g-x4", {}, ["effective-batch-large"]),
    # rsLoRA's case is alpha held small at a high rank; at alpha = 2r rsLoRA's fix gives the same scale
    ({"lora.r": 256, "lora.alpha": 16}, "80g", {"rslora-off-high-rank": "info"}, []),
    ({"lora.r": 128, "lora.alpha": 256}, "80g", {}, ["rslora-off-high-rank"]),
    ({"lora.r": 128, "lora.alpha": 32}, "80g", {}, ["rslora-off-high-rank"]),
    ({"lora.r": 128, "lora.alpha": 22.6, "lora.use_rslora": True}, "80g", {}, ["rslora-off-high-rank"]),
    ({"lora.r": 64, "lora.alpha": 128}, "80g", {}, ["rslora-off-high-rank"]),
    ({"train.grad_checkpointing": False, "train.max_seq_len": 4096}, "80g",
     {"no-grad-checkpointing-long-seq": "warning"}, []),
    ({"train.grad_checkpointing": False, "train.max_seq_len": 2048}, "80g", {}, ["no-grad-checkpointing-long-seq"]),
    ({"train.warmup_ratio": 0.0}, "24g", {"no-warmup": "info"}, []),
    ({"train.warmup_ratio": 0.0, "train.warmup_steps": 10}, "24g", {}, ["no-warmup"]),
    # the machine around the GPU: an 8B QLoRA loads a 5 GB shard at a time on a ~3 GiB process;
    # merging holds the base in 16-bit (~15 GiB); 400 checkpoints of ~0.12 GiB fill 35 GiB
    ({}, "24g-ram2", {"host-ram-short": "error"}, []),
    ({}, "24g-ram12", {"host-ram-short": "warning"}, []),
    ({}, "24g-ram64", {}, ["host-ram-short", "disk-short"]),
    ({"train.save_total_limit": 400}, "24g-disk35", {"disk-short": "error"}, []),
    ({"train.save_total_limit": 100}, "24g-disk35", {}, ["disk-short"]),
    ({}, "24g-disk5", {"disk-short": "warning"}, []),  # the run fits; a merged 16 GB model would not
    ({}, "24g-declared-ram2", {}, ["host-ram-short"]),  # a declared machine's host is not this one: not judged
    # method auto resolves like the recommender: LoRA on 80 GiB (no QLoRA lr flag), QLoRA on 16 GiB
    ({"method": "auto", "train.lr": 1e-3}, "80g", {}, ["qlora-high-lr"]),
    ({"method": "auto", "train.lr": 1e-3}, "16g", {"qlora-high-lr": "info"}, []),
    # lora.init / LoRA+: an error where peft cannot start it (PiSSA's SVD refuses a 4-bit weight, LoftQ needs
    # one), else the papers' case for it
    ({"method": "qlora", "lora.init": "pissa"}, "24g", {"adapter-start": "error"}, []),
    ({"method": "lora-8bit", "lora.init": "loftq"}, "80g", {"adapter-start": "error"}, []),
    ({"method": "lora", "lora.init": "pissa", "lora.init_iters": 4}, "80g", {"adapter-start": "info"}, []),
    ({"method": "qlora", "lora.init": "loftq"}, "24g", {"adapter-start": "info"}, []),
    ({"lora.loraplus_lr_ratio": 16}, "24g", {"adapter-start": "info"}, []),
    ({"method": "lora", "lora.init": "default"}, "80g", {}, ["adapter-start"]),
    # offload / FSDP sharding / fp32 master weights the strategy cannot run: what train and estimate refuse
    ({"distributed.offload": "params_and_optimizer"}, "80g", {"distributed-setting": "error"}, []),  # one GPU
    ({"distributed.gpus": 4, "distributed.strategy": "ddp", "distributed.offload": "params_and_optimizer"}, "80g-x4",
     {"distributed-setting": "error"}, []),
    ({"distributed.gpus": 4, "distributed.strategy": "fsdp", "distributed.offload": "params"}, "80g-x4",
     {"distributed-setting": "error"}, []),
    ({"distributed.gpus": 4, "distributed.strategy": "deepspeed", "distributed.fsdp_sharding": "shard_grad_op"},
     "80g-x4", {"distributed-setting": "error"}, []),
    ({"method": "qlora", "distributed.gpus": 4, "distributed.strategy": "fsdp", "train.precision": "fp32_master"},
     "80g-x4", {"distributed-setting": "error"}, []),
    ({"distributed.gpus": 4, "distributed.strategy": "deepspeed", "distributed.offload": "params"}, "80g-x4", {},
     ["distributed-setting"]),
    ({"method": "lora", "distributed.gpus": 4, "distributed.strategy": "fsdp",
      "distributed.offload": "params_and_optimizer", "distributed.fsdp_sharding": "hybrid", "train.precision": "fp32_master"}, "80g-x4", {}, ["distributed-setting"]),
    # an MoE's fused experts stay 16-bit under a bitsandbytes method (transformers 5) unless rankwise quantizes them
    ({"model.name": "mixtral-8x7b", "method": "qlora", "quant.quantize_experts": False}, "80g",
     {"moe-experts-16bit": "info"}, []),
    ({"model.name": "mixtral-8x7b", "method": "qlora"}, "80g", {}, ["moe-experts-16bit"]),
    ({"model.name": "mixtral-8x7b", "method": "lora"}, "80g", {}, ["moe-experts-16bit"]),
    # packing on a Gated DeltaNet hybrid: its linear-attention layers run across the packed examples
    ({"model.name": "Qwen/Qwen3.5-9B", "data.packing": True}, "80g", {"packing-linear-attention": "warning"}, []),
    ({"model.name": "Qwen/Qwen3.5-9B"}, "80g", {}, ["packing-linear-attention"]),
    ({"data.packing": True}, "80g", {}, ["packing-linear-attention"]),
    # ... and on a GPU without flash-linear-attention (not installed where the suite runs), its torch fallback
    ({"model.name": "Qwen/Qwen3.5-9B"}, "80g", {"linear-attention-fallback": "info"}, []),
    ({"model.name": "Qwen/Qwen3.5-9B"}, "cpu", {}, ["linear-attention-fallback"]),
    ({}, "80g", {}, ["linear-attention-fallback"]),
    # the same two for a Mamba2 hybrid (mamba-ssm not installed where the suite runs)
    ({"model.name": "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "data.packing": True}, "80g",
     {"packing-linear-attention": "warning", "linear-attention-fallback": "info"}, []),
    ({"model.name": "moonshotai/Kimi-Linear-48B-A3B-Instruct", "data.packing": True}, "80g",
     {"packing-linear-attention": "warning", "linear-attention-fallback": "info"}, []),
    # Jamba's Mamba1 layers and LFM2's short convolutions (no kernel to name) read no position_ids either
    ({"model.name": "ai21labs/Jamba-v0.1", "data.packing": True}, "80g",
     {"packing-linear-attention": "warning", "linear-attention-fallback": "info"}, []),
    ({"model.name": "LiquidAI/LFM2-8B-A1B", "data.packing": True}, "80g", {"packing-linear-attention": "warning"},
     ["linear-attention-fallback"]),
    ({"model.name": "LiquidAI/LFM2-8B-A1B"}, "80g", {}, ["packing-linear-attention", "linear-attention-fallback"]),
    # Falcon-Mamba (Mamba1 alone) without mamba-ssm: the fallback, with its figure
    ({"model.name": "tiiuae/falcon-mamba-7b"}, "80g", {"linear-attention-fallback": "info"},
     ["mamba-kernel-incomplete"]),
    # mamba-ssm without its CUDA selective scan (an opt-in build since July 2026): Mamba1 fails at the first step
    ({"model.name": "ai21labs/Jamba-v0.1"}, "80g+mamba_ssm", {"mamba-kernel-incomplete": "warning"},
     ["linear-attention-fallback"]),
    ({"model.name": "tiiuae/falcon-mamba-7b"}, "80g+mamba_ssm", {"mamba-kernel-incomplete": "warning"}, []),
    ({"model.name": "ai21labs/Jamba-v0.1"}, "80g+mamba_ssm+scan", {}, ["mamba-kernel-incomplete"]),
    ({"model.name": "tiiuae/falcon-mamba-7b"}, "80g+mamba_ssm+scan", {}, ["mamba-kernel-incomplete"]),  # no fused mixer
    ({"model.name": "ai21labs/Jamba-v0.1"}, "cpu+mamba_ssm", {}, ["mamba-kernel-incomplete"]),  # the CPU runs torch
    # ... and Mamba2 without causal-conv1d, which mamba-ssm does not install: its fused path calls it unconditionally
    ({"model.name": "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"}, "80g+mamba_ssm",
     {"mamba-kernel-incomplete": "warning"}, ["linear-attention-fallback"]),
    ({"model.name": "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"}, "80g+mamba_ssm+causal_conv1d", {},
     ["mamba-kernel-incomplete", "linear-attention-fallback"]),
    ({"model.name": "Qwen/Qwen3.5-9B"}, "80g+mamba_ssm", {}, ["mamba-kernel-incomplete"]),  # no Mamba layers
]


@pytest.mark.parametrize("tweak,hw,present,absent", TABLE, ids=[f"{i}-{list(p) or a}" for i, (_, _, p, a) in enumerate(TABLE)])
def test_rule_table(tweak, hw, present, absent):
    _, findings = run(tweak, hw)
    got = {f.code: f.severity for f in findings}
    for code, severity in present.items():
        assert got.get(code) == severity, (code, got)
    if absent == ["*"]:
        assert got == {}
    for code in absent:
        assert code not in got, (code, got)
    for f in findings:
        assert f.message and f.why and f.fix and f.severity in ("error", "warning", "info")


@pytest.mark.parametrize("tweak,hw,present", [(t, h, p) for t, h, p, _ in TABLE if p],
                         ids=[f"{i}" for i, (_, _, p, _) in enumerate(TABLE) if p])
def test_patch_fixes_its_flag(tweak, hw, present):
    """A finding's patch, applied as --set overrides, makes that finding go away."""
    cfg, findings = run(tweak, hw)
    for f in findings:
        if f.code not in present or not f.patch:
            continue
        fixed = {**tweak, **f.patch}
        _, again = run(fixed, hw)
        assert f.code not in {g.code for g in again}, (f.code, f.patch)


def test_unknown_model_runs_config_rules_only():
    cfg = make({"lora.r": 32, "lora.alpha": 8, "train.lr": 2e-3})
    findings = check(cfg, None, planned("24GiB"))
    codes = {f.code: f.severity for f in findings}
    assert codes["checks-skipped"] == "info"
    assert {"alpha-below-rank", "qlora-high-lr"} <= set(codes)
    assert "wont-fit" not in codes


def test_method_argument_overrides_config():
    cfg = make({"method": "lora", "train.lr": 1e-3})
    spec = load_model("llama-3.1-8b")
    assert "qlora-high-lr" in {f.code for f in check(cfg, spec, planned("24GiB"), "qlora")}
    assert "qlora-high-lr" not in {f.code for f in check(cfg, spec, planned("80GiB"), "lora")}


def test_errors_sort_first():
    _, findings = run({"model.name": "llama-3.1-70b", "model.trust_remote_code": True, "train.warmup_ratio": 0.0}, "24g")
    order = [f.severity for f in findings]
    assert order == sorted(order, key=["error", "warning", "info"].index)
    assert order[0] == "error" and "info" in order


def test_every_code_has_one_rule_a_table_row_and_a_readme_line():
    """The codes the rules declare, the codes this table expects and produces, and the README's
    code list are the same set: deleting a rule, a row or a README line fails here."""
    by_rule = declared(RULES)
    assert all(by_rule.values()), [name for name, codes in by_rule.items() if not codes]  # every rule says a code
    codes = set().union(*by_rule.values())
    assert sum(map(len, by_rule.values())) == len(codes), by_rule  # one rule per code
    assert len(RULES) == len(set(RULES))
    expected = {c for _, _, p, _ in TABLE for c in p}
    assert expected == codes, (codes - expected, expected - codes)
    produced = {f.code for tweak, hw, _, _ in TABLE for f in run(tweak, hw)[1]}
    assert codes <= produced, codes - produced  # each rule fires for real on some row
    everything = codes | set().union(*declared(ignored.RULES).values())  # check runs both lists
    assert documented() == everything, (everything - documented(), documented() - everything)
