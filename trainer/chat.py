"""Talk to what a run trained: its base model with the adapter on top, loaded the way training
loaded it (a QLoRA run's base in 4-bit NF4 through the methods table's quant settings), so the
answers are the trained model's, and the same model answers with the adapter switched off.

`Bench.open(run_dir, checkpoint=None)` loads once; `answer(messages, adapter=True|False, ...)`
renders the conversation as trainer/prompts.py does, generates (trainer/generation.py), and
streams the new text through `on_text`. Base answers come from the same weights with peft's
`disable_adapter()`, so /base, /adapter and /both never load a second copy. `load_base` is also compare's loader.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from rankwise.advisor import chat_templates
from rankwise.advisor.errors import RankwiseError

from . import rundir
from .generation import Settings, generate_ids
from .prompts import encode
from .tokens import carry


def adapter_dir(run_dir: Path, checkpoint: int | None = None) -> Path:
    """The run's final adapter, or checkpoint N's (HF saves the PEFT adapter in each checkpoint)."""
    run_dir = Path(run_dir)
    if checkpoint is None:
        path = run_dir / rundir.ADAPTER
        if not (path / "adapter_config.json").is_file():
            steps = [s for s, _ in rundir.complete_checkpoints(run_dir)]
            raise RankwiseError(f"{run_dir.name} has no final adapter ({path})",
                                f"pass --checkpoint N (complete checkpoints: {', '.join(map(str, steps))})" if steps
                                else "only a finished run has one; `rankwise train --resume` finishes an interrupted run")
        return path
    found = dict(rundir.complete_checkpoints(run_dir))
    if checkpoint not in found or not (found[checkpoint] / "adapter_config.json").is_file():
        raise RankwiseError(f"{run_dir.name} has no complete checkpoint {checkpoint}",
                            f"complete checkpoints: {', '.join(map(str, sorted(found))) or 'none'}")
    return found[checkpoint]


def latest_adapter(run_dir: Path) -> tuple[Path, int | None]:
    """(adapter, checkpoint step or None) to talk to: the final adapter, else the latest complete
    checkpoint's (a run still training, stopped or failed after saving one). RankwiseError when
    the run has neither."""
    try:
        return adapter_dir(run_dir), None
    except RankwiseError:
        pass
    for step, folder in reversed(rundir.complete_checkpoints(run_dir)):
        if (folder / "adapter_config.json").is_file():
            return folder, step
    raise RankwiseError(f"{Path(run_dir).name} has no adapter yet: no final adapter and no complete checkpoint",
                        "a run saves one at each train.save_steps and at its end; try again once it has")


def trained_method(run_dir: Path, cfg) -> str:
    """The method the run resolved (`auto` becomes lora or qlora at start): summary.json, else the
    start event, else the config's own value."""
    try:
        method = json.loads((Path(run_dir) / rundir.SUMMARY).read_text(encoding="utf-8")).get("method")
    except (OSError, ValueError, AttributeError):
        method = None
    if not method:
        from .events import EVENTS_FILE, read_events

        method = next((e.get("method") for e in reversed(read_events(Path(run_dir) / EVENTS_FILE))
                       if e.get("type") == "start" and e.get("method")), None)
    return method or cfg.method


def load_base(run_dir: Path, cfg):
    """(model, tokenizer, model_dir) with the base loaded as the run trained it: 4-bit for a
    quantized method (methods.py's quant settings, compute dtype as the worker picks it), else
    bf16/fp16 on a GPU and fp32 on the CPU."""
    from .merge import quiet_libraries

    quiet_libraries()
    import torch  # deferred: heavy, and only the bench needs it
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from rankwise.advisor.methods import METHODS
    from rankwise.advisor.model import load_model

    from .loading import weights_dir

    spec = load_model(cfg.model.name)
    model_dir = weights_dir(spec, cfg)
    method = trained_method(run_dir, cfg)
    how = METHODS.get(method)
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    dtype = (torch.bfloat16 if bf16 else torch.float16) if cuda else torch.float32
    kwargs = dict(trust_remote_code=cfg.model.trust_remote_code,
                  use_safetensors=None if cfg.model.allow_unsafe_weights else True)
    if how is not None and how.quantized:
        compute = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(
            cfg.quant.compute_dtype, dtype)
        bnb = how.quant.load_kwargs(cfg.quant, compute, False, keep=spec.bare_names)
        kwargs.update(quantization_config=BitsAndBytesConfig(**bnb),
                      device_map={"": 0 if cuda else "cpu"}, dtype=compute)
    else:
        kwargs["dtype"] = dtype
        if cuda:
            kwargs["device_map"] = {"": 0}
    from . import moe_quant

    fused = moe_quant.fused_to_quantize(cfg, spec, how, sharded=False) if how is not None else ()
    try:  # an MoE's fused experts in 4 bits as the run held them (one process here)
        model, _, _ = moe_quant.load(lambda: AutoModelForCausalLM.from_pretrained(model_dir, **kwargs), fused,
                                     cfg.quant, how.quant.bits if fused else 4)
    except OSError as e:
        raise RankwiseError(f"cannot load the weights in {model_dir}: {str(e).splitlines()[0]}",
                            "the run's model.name must still point at its base weights") from None
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=cfg.model.trust_remote_code)
    carry(tokenizer, model, cfg.model.added_tokens)  # the run's tokens, the same ids, the resized embeddings
    chat_templates.apply(tokenizer, cfg.model.chat_template)  # asked in the format it was trained in
    model.eval()
    return model, tokenizer, model_dir


class Bench:
    """One run's base + adapter in memory; answers with or without the adapter."""

    def __init__(self, run_dir: Path, model, tokenizer, cfg, adapter: Path):
        self.run_dir, self.model, self.tokenizer, self.cfg, self.adapter = run_dir, model, tokenizer, cfg, adapter

    @classmethod
    def open(cls, run_dir: Path, checkpoint: int | None = None) -> "Bench":
        run_dir = Path(run_dir)
        adapter = adapter_dir(run_dir, checkpoint)  # before the slow load: a missing adapter is bad input
        cfg = rundir.load_config(run_dir)
        base, tokenizer, _ = load_base(run_dir, cfg)
        from peft import PeftModel

        model = PeftModel.from_pretrained(base, adapter)
        model.eval()
        return cls(run_dir, model, tokenizer, cfg, adapter)

    def encode(self, messages: list[dict]) -> list[int]:
        return encode(self.tokenizer, messages)

    def answer_ids(self, prompt_ids: list[int], adapter: bool, settings: Settings,
                   on_text: Callable[[str], None] | None = None) -> str:
        if adapter:
            return generate_ids(self.model, self.tokenizer, prompt_ids, settings, on_text)
        with self.model.disable_adapter():
            return generate_ids(self.model, self.tokenizer, prompt_ids, settings, on_text)

    def answer(self, messages: list[dict], adapter: bool = True, settings: Settings = Settings(),
               on_text: Callable[[str], None] | None = None) -> str:
        return self.answer_ids(self.encode(messages), adapter, settings, on_text)
