"""Merge a run's adapter into its base model: W = W0 + (alpha/r)·BA, saved as a standalone model.

The base is loaded in 16-bit on a GPU (fp32 on CPU) even for a QLoRA run: merging into
4-bit weights would round the update away. The result (safetensors + tokenizer) loads with
`AutoModelForCausalLM.from_pretrained(out)` and needs neither peft nor rankwise. It is
written to a temporary folder beside `out` and renamed into place, so a failed merge
leaves nothing half-written; a non-empty `out` is never overwritten.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from rankwise.advisor import chat_templates
from rankwise.advisor.errors import RankwiseError

from . import rundir
from .process import drop_kernels_line
from .tokens import carry


def quiet_bitsandbytes() -> None:
    """bitsandbytes on a CPU with AVX512-BF16 tries, at import, to load a gemm kernel from the Hub
    through the optional `kernels` package (a dependency of transformers since 5.25): offline, that
    package logs a skipped trust check and bitsandbytes logs the failed load (or, without the package,
    that it is missing). Keep those harmless lines out of the user's terminal; other messages still show."""
    import logging

    for name in ("bitsandbytes", "kernels"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.addFilter(drop_kernels_line)
            logger.addHandler(handler)
            logger.propagate = False


def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RankwiseError(f"{out} exists and is not empty", "pass --out to a new folder, or remove it first")
    rundir.check_writable(out.parent)


def merge(run_dir: Path, out: Path | None = None) -> Path:
    run_dir = Path(run_dir)
    adapter = run_dir / rundir.ADAPTER
    if not (adapter / "adapter_config.json").is_file():
        raise RankwiseError(f"{run_dir.name} has no final adapter ({adapter})",
                            "only a finished run can be merged; `rankwise train --resume` finishes an interrupted one")
    out = Path(out) if out else run_dir / "merged"
    check_out(out)
    merged, tokenizer = merged_model(run_dir)
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def quiet_libraries() -> None:
    """Offline, no progress bars, no library chatter: for the commands that load a model in the
    user's terminal (merge, export, chat, compare)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    quiet_bitsandbytes()
    import logging
    import warnings

    # DeepSpeed (an optional extra), when installed, is imported along the way and says on a machine without a
    # GPU that it set its accelerator to the CPU: a logger-level filter outlives the handler it adds at import
    logging.getLogger("DeepSpeed").addFilter(lambda r: "Setting accelerator to CPU" not in r.getMessage())

    import transformers  # deferred: only the model-loading commands need it

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def merged_model(run_dir: Path):
    """(the merged model in memory, its tokenizer): what `merge` saves and `export` converts."""
    adapter = Path(run_dir) / rundir.ADAPTER
    cfg = rundir.load_config(run_dir)
    quiet_libraries()

    import torch  # deferred: only merging needs it
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rankwise.advisor.model import load_model

    from .loading import weights_dir

    model_dir = weights_dir(load_model(cfg.model.name), cfg)
    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code,
                                                use_safetensors=None if cfg.model.allow_unsafe_weights else True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=cfg.model.trust_remote_code)
    carry(tokenizer, base, cfg.model.added_tokens)  # the run's tokens, the same ids, the resized embeddings
    chat_templates.apply(tokenizer, cfg.model.chat_template)  # saved with the merged model's tokenizer
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    return merged, tokenizer
