"""How the adapter starts (`lora.init`) and LoRA+ (`lora.loraplus_lr_ratio`): what each costs at
start-up, where each cannot run, and when each is worth it, with the papers' results.

peft 0.21 (tuners/lora/layer.py `LoraLayer.update_layer`) initialises the adapter while
`get_peft_model` wraps the base, on the device the base weights are on, one adapted linear at a
time; the start-up peak is therefore the weights already loaded plus the temporaries of the
largest adapted linear's factorisation:

- pissa (`pissa_init`): an fp32 copy of the weight W (d_out × d_in), its SVD (exact:
  `torch.linalg.svd(full_matrices=False)`, U d_out × k and Vᵀ k × d_in with k = min(d_out, d_in);
  fast: `svd_lowrank` to rank r), the product B·A and the residual W − s·B·A, both fp32;
- olora (`olora_init`): an fp32 copy, its reduced QR (Q d_out × k, R k × d_in), B·A subtracted in place;
- loftq on a 4-bit base (peft utils/loftq_utils.py `replace_lora_weights_loftq` / `_loftq_init_new`):
  the original weight read from the safetensors file in fp32, the 4-bit weight de-quantized to 16-bit,
  the fp32 residual, and the exact SVD of the residual — on CUDA (`compute_device = "cuda"`);
- eva (tuners/lora/eva.py): no-grad forwards over the first training batches; per adapted linear an
  incremental PCA of its input (components of rank·rho × d_in, fp32; EvaConfig rho 2.0).

FLOPs of the factorisations (for an m × n matrix, m ≥ n): the exact SVD with U₁ and V, 6mn² + 20n³
(Golub & Van Loan, Matrix Computations, 4th ed., §8.6, the R-SVD count); Householder QR with the thin Q,
4mn² − 4n³/3 (ibid. §5.2); the randomized SVD with q power iterations to rank r, (2q + 2)·2mnr (Halko,
Martinsson & Tropp 2011, Algorithm 4.4). They run in fp32 without tensor cores: a GPU's fp32 rate is
its dense bf16 rate / 16 (A100: 19.5 vs 312 TFLOP/s; H100 SXM: 67 vs 989, NVIDIA datasheets). That
gives a floor: cuSOLVER's SVD is bandwidth-bound in its bidiagonalisation, and the peft PiSSA example
(examples/pissa_finetuning/README.md) says the exact SVD of Llama-2-7B "may take several minutes",
the fast one seconds.

No torch here.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import RankwiseError
from .plan import Plan
from .spec import Linear, ModelSpec

FP32_SHARE_OF_BF16 = 1 / 16  # fp32 (no tensor cores) over dense bf16 TFLOP/s: A100 19.5/312, H100 SXM 67/989
EVA_RHO = 2.0  # peft EvaConfig.rho default: a layer's rank may grow to r·rho (the total stays r × layers)

# When each is worth it, from the papers (said in the reasons the advisor gives).
WHY = {
    "pissa": "PiSSA (Meng, Wang & Zhang 2024, NeurIPS): trains the principal singular directions and freezes "
             "the residual; converges faster than LoRA and ended higher on all five benchmarks it reports "
             "(Mistral-7B GSM8K 72.9% vs LoRA 67.7%); worth it when the task is far from the base's behaviour "
             "and a 16-bit base fits; costs an SVD per adapted linear at start-up (init_iters for the fast SVD)",
    "olora": "OLoRA (Büyükakyüz 2024): A·B start from an orthonormal QR basis of the weight; reported faster "
             "convergence than LoRA on LLaMA-class models at the same rank; a QR per adapted linear at start-up",
    "loftq": "LoftQ (Li et al. 2024, ICLR): A·B start from the SVD of the 4-bit quantization error, so training "
             "begins closer to the 16-bit model; the gains are largest at 2-3 bits and small at 4 bits (the "
             "PiSSA authors' Llama-2-7B 4-bit GSM8K: QLoRA 39.8%, LoftQ 40.7%); worth it for QLoRA when "
             "the quantized base loses accuracy",
    "eva": "EVA (Paischer et al. 2024, 'One Initialization to Rule them All'): A starts from the SVD of the "
           "adapted layers' inputs on the first training batches and ranks move to where the variance is; "
           "reported faster convergence and the best average over its language, vision and RL tasks; costs "
           "a few no-grad forward passes at start-up",
    "gaussian": "Gaussian A (as Diffusers initialises LoRA): no reported gain for language models over the default",
    "loraplus": "LoRA+ (Hayou, Ghosh & Yu 2024, ICML): B learns ratio × faster than A; up to ~2× faster "
                "fine-tuning and 1-2% better results at LoRA's cost; the paper suggests a ratio of 2^4 = 16 and a "
                "somewhat lower base learning rate; worth it for harder tasks where LoRA learns slowly",
}


@dataclass(frozen=True)
class StartUp:
    """What the adapter's initialisation adds before the first step."""

    transient_bytes: int  # temporaries on top of the loaded weights, at their largest
    flops: float  # factorisation FLOPs over every adapted linear (0 for none)
    note: str  # one line for the estimate's assumptions


def _largest(adapted: list[Linear]) -> Linear | None:
    body = [l for l in adapted if l.family != "lm_head"]
    return max(body, key=lambda l: l.d_in * l.d_out) if body else None


def _svd_flops(m: int, n: int) -> float:
    m, n = max(m, n), min(m, n)
    return 6.0 * m * n * n + 20.0 * n ** 3


def _qr_flops(m: int, n: int) -> float:
    m, n = max(m, n), min(m, n)
    return 4.0 * m * n * n - 4.0 * n ** 3 / 3


def _fast_svd_flops(m: int, n: int, r: int, iters: int) -> float:
    return (2 * iters + 2) * 2.0 * m * n * r


def start_up(spec: ModelSpec, plan: Plan, adapted: list[Linear]) -> StartUp:
    """The start-up cost of `plan.init` (see the module docstring for each count)."""
    init, r = plan.init, plan.r
    big = _largest(adapted)
    if init in ("default", "gaussian") or big is None:
        return StartUp(0, 0.0, "")
    m, n = big.d_out, big.d_in
    k = min(m, n)
    each = [(l.count, l.d_out, l.d_in) for l in adapted if l.family != "lm_head"]
    if init == "pissa":
        if plan.init_iters:
            tmp = 12 * m * n + 4 * r * (m + n)
            flops = sum(c * _fast_svd_flops(a, b, r, plan.init_iters) for c, a, b in each)
            how = f"fast SVD ({plan.init_iters} iterations, Halko et al. 2011)"
        else:
            tmp = 12 * m * n + 4 * k * (m + n)
            flops = sum(c * _svd_flops(a, b) for c, a, b in each)
            how = "exact SVD"
        how = ("an " if how.startswith("exact") else "a ") + how
        note = (f"PiSSA start-up: {how} of each adapted linear in fp32; the largest ({big.name}, {m}x{n}) holds "
                f"{tmp / 2**30:.2f} GiB of temporaries on top of the loaded weights (peft pissa_init)")
    elif init == "olora":
        tmp = 8 * m * n + 4 * k * (m + n)
        flops = sum(c * _qr_flops(a, b) for c, a, b in each)
        note = (f"OLoRA start-up: a QR of each adapted linear in fp32; the largest ({big.name}) holds "
                f"{tmp / 2**30:.2f} GiB of temporaries (peft olora_init)")
    elif init == "loftq" and plan.descriptor.quantized:
        tmp = 10 * m * n + 4 * k * (m + n)
        flops = sum(c * _svd_flops(a, b) for c, a, b in each)
        note = (f"LoftQ start-up: each adapted 4-bit linear's original weight read from the safetensors in fp32, "
                f"its quantization residual and that residual's SVD; the largest ({big.name}) holds "
                f"{tmp / 2**30:.2f} GiB of temporaries (peft replace_lora_weights_loftq)")
    elif init == "loftq":  # a 16-bit base: peft loftq_init NF4-rounds each adapted weight in place
        tmp = 16 * m * n + m * n // 2 + 4 * k * (m + n)
        flops = sum(c * _svd_flops(a, b) for c, a, b in each)
        note = (f"LoftQ start-up on a 16-bit base: each adapted weight in fp32, its residual, the NF4 copy, the "
                f"de-quantized fp32 weight and the residual's SVD; the largest ({big.name}) holds {tmp / 2**30:.2f} GiB "
                "of temporaries (peft loftq_init); the base trains NF4-rounded (still 16-bit in memory): the "
                "adapter is for the 4-bit base")
    else:  # eva
        tmp = int(sum(c * 4 * EVA_RHO * r * b for c, a, b in each))
        flops = 0.0
        note = (f"EVA start-up: no-grad forwards over the first training batches and an incremental PCA per "
                f"adapted linear ({tmp / 2**30:.2f} GiB of fp32 components, rank up to {EVA_RHO:g}·r; peft eva.py); "
                "the forwards' time is not counted")
    return StartUp(int(tmp), flops, note)


def start_up_seconds(flops: float, tflops: float, efficiency: float, gpu: bool) -> float:
    """A floor on the factorisations' wall time: FLOPs at the device's fp32 rate × the stack's efficiency."""
    if not flops:
        return 0.0
    rate = tflops * 1e12 * efficiency * (FP32_SHARE_OF_BF16 if gpu else 1.0)
    return flops / rate


def check(plan: Plan, *, cuda: bool | None = None) -> None:
    """Combinations of lora.init and the method that peft cannot start (exit 2, naming the fix).
    `cuda`: whether the machine has a CUDA GPU (None: not known here, e.g. planning for another machine)."""
    m = plan.descriptor
    init = plan.init
    if init == "pissa" and m.quantized:
        raise RankwiseError(f"lora.init pissa on a {m.base} base: peft's pissa_init takes the SVD of a float weight "
                            "and refuses quantized ones (LLaMA-Factory refuses it too: hparams/parser.py)",
                            "use method: lora (16-bit base), or lora.init: loftq for a 4-bit base")
    if init == "loftq" and (m.dora or (m.quant is not None and m.quant.bits != 4)):
        raise RankwiseError(f"lora.init loftq with method {m.name}: peft's LoftQ starts plain LoRA on a 16-bit base "
                            "(loftq_init) or on a 4-bit one (replace_lora_weights_loftq), not on this base or DoRA",
                            "use method: qlora (or lora) with lora.init: loftq")
    if init == "loftq" and plan.sharded:
        raise RankwiseError("lora.init loftq with FSDP/ZeRO-3: peft re-initialises each 4-bit linear from the full "
                            "weight on one GPU, before sharding, which the sharded QLoRA recipe does not load",
                            "train LoftQ on one GPU or with DDP, or use lora.init: default")
    if init == "loftq" and cuda is False:
        raise RankwiseError("lora.init loftq needs a CUDA GPU: peft 0.21 runs LoftQ's quantization and SVD on "
                            "'cuda' (utils/loftq_utils.py), and this machine has none",
                            "set lora.init: default (or olora, which runs on the CPU) here")
    if plan.init_iters and init != "pissa":
        raise RankwiseError(f"lora.init_iters is PiSSA's fast-SVD iteration count; lora.init is {init}",
                            "remove lora.init_iters, or set lora.init: pissa")
