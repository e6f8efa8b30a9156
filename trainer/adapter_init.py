"""The adapter's start and its optimizer, as the worker runs them: `lora.init` (peft
`init_lora_weights`: PiSSA, OLoRA, EVA, LoftQ) and LoRA+ (`lora.loraplus_lr_ratio`, peft's
`create_loraplus_optimizer`). What each costs and when each is worth it: advisor/adapter_init.py.

- pissa / olora change the frozen base too (it keeps the residual W − s·B·A), so the trained adapter
  only fits that residual; before training the initial adapter is saved (`adapter-init/`), and the
  final adapter is converted against it into an ordinary LoRA of rank 2r for the original base
  (peft `save_pretrained(path_initial_model_for_weight_conversion=...)`, the peft PiSSA example's
  recipe), so merge, chat and compare load it on the unchanged base.
- eva: `initialize_lora_eva_weights` runs no-grad forwards over the training batches after the model is
  wrapped (peft tuners/lora/eva.py).
- loftq: `replace_lora_weights_loftq` re-initialises each 4-bit linear's adapter from the original
  weights in the model's safetensors (peft utils/loftq_utils.py; needs CUDA).
Torch and peft are imported inside the functions that need them (the CLI checks import this module).
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from rankwise.advisor.errors import RankwiseError

INIT_DIR = "adapter-init"  # the initial PiSSA/OLoRA adapter, kept in the run dir for the conversion
CONVERTED = ("pissa", "olora")
log = logging.getLogger("rankwise.worker")


def check_options(cfg, device: str, sharded: bool, method: str | None = None) -> None:
    """lora.init and LoRA+ where this machine or this launch cannot run them (exit 2, before any run dir
    when called from `rankwise train`'s checks); `method`: the resolved method (None: cfg.method)."""
    from rankwise.advisor import adapter_init
    from rankwise.advisor.plan import Plan

    adapter_init.check(Plan.from_config(cfg, method=method, strategy="fsdp" if sharded else "ddp"),
                       cuda=device == "cuda")
    init, ratio = cfg.lora.init, cfg.lora.loraplus_lr_ratio
    if ratio is not None and sharded:
        raise RankwiseError("lora.loraplus_lr_ratio with FSDP/ZeRO-3: LoRA+ puts the B matrices in their own "
                            "optimizer group by parameter name, and the sharded model's flattened parameters "
                            "(fsdp_use_orig_params false, which PEFT's memory savings need) have no such names",
                            "train LoRA+ on one GPU or with DDP, or remove lora.loraplus_lr_ratio")
    if init in CONVERTED and sharded:
        raise RankwiseError(f"lora.init {init} with FSDP/ZeRO-3: the {init.upper()} adapter is converted for the "
                            "original base on save, from the full adapter on one process; rankwise does not do "
                            "that for a sharded save", "train it on one GPU or with DDP, or use lora.init: default")
    if init == "loftq" and importlib.util.find_spec("bitsandbytes") is None:
        raise RankwiseError("lora.init loftq needs bitsandbytes", "pip install bitsandbytes")


def peft_init(cfg, quantized: bool) -> dict:
    """LoraConfig arguments for lora.init. loftq on a 4-bit base starts as default and is replaced after
    wrapping; on a 16-bit base peft's loftq_init NF4-rounds each adapted weight and fits A·B to the error."""
    init = cfg.lora.init
    if init == "loftq" and not quantized:
        from peft import LoftQConfig

        return {"init_lora_weights": "loftq", "loftq_config": LoftQConfig(loftq_bits=4)}
    if init in ("default", "loftq"):
        return {}
    if init == "pissa":
        return {"init_lora_weights": f"pissa_niter_{cfg.lora.init_iters}" if cfg.lora.init_iters else "pissa"}
    if init == "eva":
        from peft import EvaConfig

        return {"init_lora_weights": "eva", "eva_config": EvaConfig()}
    return {"init_lora_weights": init}  # gaussian, olora


def after_wrap(model, cfg, run_dir: Path, model_dir: str, batches, quantized: bool) -> None:
    """What lora.init does once the model is wrapped: EVA's forwards, LoftQ's replacement, or keeping the
    initial PiSSA/OLoRA adapter for the conversion at save. `batches`: a callable giving an iterable of
    collated training batches (EVA only)."""
    init = cfg.lora.init
    if init == "eva":
        from peft import initialize_lora_eva_weights

        log.info("lora.init eva: no-grad forwards over the training batches for the input SVD")
        initialize_lora_eva_weights(model, batches(), show_progress_bar=False)
    elif init == "loftq" and quantized:
        from peft import replace_lora_weights_loftq

        log.info("lora.init loftq: re-initialising each 4-bit linear's adapter from %s", model_dir)
        replace_lora_weights_loftq(model, model_path=model_dir)
    elif init in CONVERTED:
        config = model.peft_config["default"]
        kept, config.init_lora_weights = config.init_lora_weights, True  # saved as a plain initial adapter
        try:
            model.save_pretrained(run_dir / INIT_DIR)
        finally:
            config.init_lora_weights = kept


def save_adapter(model, path: Path, cfg, run_dir: Path) -> None:
    """The final adapter; PiSSA/OLoRA converted to a LoRA for the original base (rank 2r)."""
    if cfg.lora.init in CONVERTED:
        model.save_pretrained(path, path_initial_model_for_weight_conversion=str(run_dir / INIT_DIR))
    else:
        model.save_pretrained(path)


def keep_checkpoint(model, checkpoint: Path, path: Path, cfg, run_dir: Path) -> None:
    """The adapter of an earlier checkpoint (train.stop_on keeps the best) as the run's adapter. A PiSSA/OLoRA
    checkpoint holds the adapter for the residual base: it is loaded into the model and saved converted,
    like the final one; any other is copied as is."""
    if cfg.lora.init not in CONVERTED:
        from .checkup import keep_adapter

        keep_adapter(checkpoint, path)
        return
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(checkpoint / "adapter_model.safetensors")))
    save_adapter(model, path, cfg, run_dir)


def trainer_class(cfg):
    """The HF Trainer, or with lora.loraplus_lr_ratio one whose optimizer is peft's LoRA+ optimizer
    (the same optimizer class and arguments the Trainer would build, B matrices at lr × ratio)."""
    from transformers import Trainer

    ratio = cfg.lora.loraplus_lr_ratio
    if ratio is None:
        return Trainer

    class LoraPlusTrainer(Trainer):
        def create_optimizer(self, model=None):
            if self.optimizer is None:
                from peft.optimizers import create_loraplus_optimizer

                opt_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
                lr = kwargs.pop("lr", self.args.learning_rate)
                self.optimizer = create_loraplus_optimizer(self.model, opt_cls, lr=lr, loraplus_lr_ratio=ratio,
                                                           loraplus_weight_decay=self.args.weight_decay, **kwargs)
            return self.optimizer

    return LoraPlusTrainer


def start_from(model, folder: str) -> str:
    """Load a trained adapter's tensors (lora.init_from, safetensors only) into the adapter get_peft_model built
    from the config, which advisor/adapter_from.py checked has its shape; what was loaded, for the log."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from rankwise.advisor.adapter_from import WEIGHTS

    state = load_file(str(Path(folder).expanduser() / WEIGHTS))
    result = set_peft_model_state_dict(model, state)
    unread = list(result.unexpected_keys)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if unread or missing:
        raise RankwiseError(f"lora.init_from {folder}: its tensors do not fit this model's adapter "
                            f"({len(unread)} not placed, e.g. {(unread or missing)[0]}; {len(missing)} missing)",
                            "continue an adapter on the base model it was trained on")
    return f"lora.init_from: {len(state)} adapter tensors loaded from {folder}"
