"""`lora.init_from`: a run that starts from a trained adapter's weights (continued fine-tuning, a second stage).

The run builds its adapter from the config's lora settings, as any run does, then loads the trained adapter's
tensors into it (trainer/worker.py `start_from`). So the config must describe that adapter: its r, alpha,
targets and variant are what the estimate, the advice and peft's wrapper read. This module reads the
adapter's adapter_config.json (peft's LoraConfig, saved by `save_pretrained`) and refuses, before a run
exists, a folder that is not a LoRA adapter or whose shape differs from the config's (exit 2, with the
`--set` values that match it). axolotl's lora_model_dir and LLaMA-Factory's adapter_name_or_path load the
adapter with peft's PeftModel.from_pretrained instead, taking its shape from the file: the same adapter.

No torch here.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RankwiseError

if TYPE_CHECKING:
    from .config import RunConfig
    from .spec import ModelSpec

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


def read(folder: str) -> dict:
    """The adapter's peft config; bad input (exit 2) where the folder is not a saved LoRA adapter."""
    where = Path(folder).expanduser()
    if not (where / CONFIG).is_file():
        raise RankwiseError(f"lora.init_from {folder}: no {CONFIG} there",
                            "point it at a saved adapter folder, e.g. an earlier run's runs/<id>/adapter")
    if not (where / WEIGHTS).is_file():
        raise RankwiseError(f"lora.init_from {folder}: no {WEIGHTS} there",
                            "rankwise loads adapter weights from safetensors only (pickled .bin files can run code)")
    try:
        found = json.loads((where / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RankwiseError(f"lora.init_from {folder}: {CONFIG} is not readable JSON ({e})",
                            "save the adapter again with peft's save_pretrained") from None
    if not isinstance(found, dict) or found.get("peft_type") != "LORA":
        kind = found.get("peft_type") if isinstance(found, dict) else None
        raise RankwiseError(f"lora.init_from {folder}: a {kind or 'unknown'} adapter, not LoRA",
                            "rankwise continues LoRA adapters (LoRA, QLoRA, DoRA)")
    return found


def _targets(value) -> object:
    return sorted(value) if isinstance(value, (list, tuple, set)) else value


def _value(v) -> str:
    """A value as --set takes it: a list in YAML flow style without spaces, a number without a needless .0."""
    if isinstance(v, list):
        return "[" + ",".join(map(str, v)) + "]"
    if isinstance(v, bool):
        return str(v).lower()
    return f"{v:g}" if isinstance(v, float) else str(v)


def mismatches(cfg: "RunConfig", spec: "ModelSpec", found: dict) -> list[tuple[str, object, object]]:
    """(rankwise key, the adapter's value, the config's value) where they differ."""
    lora = cfg.lora
    pairs = [("lora.r", found.get("r"), lora.r), ("lora.alpha", found.get("lora_alpha"), lora.alpha_value),
             ("lora.target_modules", _targets(found.get("target_modules")),
              _targets(spec.peft_targets(lora.target_modules))),
             ("lora.use_rslora", bool(found.get("use_rslora")), lora.use_rslora),
             ("lora.modules_to_save", sorted(found.get("modules_to_save") or []), sorted(lora.modules_to_save))]
    out = []
    for key, theirs, ours in pairs:
        same = float(theirs) == float(ours) if key == "lora.alpha" and theirs is not None else theirs == ours
        if not same:
            out.append((key, theirs, ours))
    return out


HEADER_LIMIT = 100 << 20  # bytes a safetensors JSON header may take (the format's own limit)
LORA_KEY = re.compile(r"(?P<module>.+)\.lora_(?P<side>[AB])(?:\.[^.]+)?\.weight$")  # peft's saved names, any adapter


def tensor_shapes(path: Path) -> dict[str, list[int]]:
    """Each tensor's shape from a safetensors file's header (8 bytes of length, then JSON): no torch, no weights
    read. Bad input (exit 2) where the file is not safetensors."""
    try:
        with open(path, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            if not 2 <= size <= HEADER_LIMIT:
                raise ValueError(f"a header of {size} bytes")
            header = json.loads(fh.read(size))
    except (OSError, ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise RankwiseError(f"lora.init_from: {path} is not a readable safetensors file ({e})",
                            "save the adapter again with peft's save_pretrained") from None
    return {k: v["shape"] for k, v in header.items() if isinstance(v, dict) and isinstance(v.get("shape"), list)}


def foreign_widths(spec: "ModelSpec", shapes: dict[str, list[int]]) -> list[str]:
    """The adapted linears whose width in the adapter is none of this model's linears of that name: an adapter
    trained on another model. lora_A is r × d_in, lora_B d_out × r. Names the model lacks are left to the
    target_modules comparison (a fused expert tensor's adapter is named otherwise)."""
    said: dict[str, str] = {}
    for key, shape in shapes.items():
        m = LORA_KEY.match(key)
        if m is None or len(shape) != 2:
            continue
        leaf = m["module"].rsplit(".", 1)[-1]
        linears = [lin for lin in spec.linears if lin.name == leaf]
        if not linears or leaf in said:
            continue
        side, width = ("input", shape[1]) if m["side"] == "A" else ("output", shape[0])
        ours = sorted({lin.d_in if side == "input" else lin.d_out for lin in linears})
        if width not in ours:
            said[leaf] = f"{leaf} {side} {width:,} there, {' or '.join(f'{w:,}' for w in ours)} here"
    return list(said.values())


def check(cfg: "RunConfig", spec: "ModelSpec", dora: bool) -> None:
    """Before a run exists: the folder is a LoRA adapter of this config's shape (exit 2 otherwise)."""
    folder = cfg.lora.init_from
    if not folder:
        return
    if cfg.lora.init != "default":
        raise RankwiseError(f"lora.init {cfg.lora.init} with lora.init_from: the adapter's weights would replace "
                            "the initialisation", "remove one of them")
    found = read(folder)
    if bool(found.get("use_dora")) != dora:
        raise RankwiseError(f"lora.init_from {folder}: a {'DoRA' if found.get('use_dora') else 'plain LoRA'} "
                            f"adapter, and this run's method trains {'DoRA' if dora else 'plain LoRA'}",
                            "set the method the adapter was trained with")
    other = foreign_widths(spec, tensor_shapes(Path(folder).expanduser() / WEIGHTS))
    if other:
        base = found.get("base_model_name_or_path")
        raise RankwiseError(f"lora.init_from {folder}: the adapter was trained on another model: {'; '.join(other[:3])}"
                            + (f" (its base: {base})" if base else ""),
                            f"continue it on the model it was trained on (model.name), or train a new adapter for "
                            f"{spec.name} without lora.init_from")
    wrong = mismatches(cfg, spec, found)
    if wrong:
        said = "; ".join(f"{key} {_value(theirs)} there, {_value(ours)} here" for key, theirs, ours in wrong)
        fix = " ".join(f"--set {key}={_value(theirs)}" for key, theirs, _ in wrong)
        raise RankwiseError(f"lora.init_from {folder}: the adapter's shape differs from this config's: {said}",
                            f"describe the adapter in the config: {fix}")
