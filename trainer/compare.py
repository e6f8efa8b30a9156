"""How much did the adapter change the model, on rows it did not train on?

`compare(run_dir, n, prompts=None, against=None, settings)` takes the run's validation rows,
re-created exactly as training split and masked them (trainer/data.py through the data cache:
the same seed, val_ratio or val_path, chat template and masks), or the rows of a prompts file
(any training data format, masked the same way; a `.txt` file is one prompt a line, with no
reference and so no loss). For each row: the response loss (mean cross-entropy over the
tokens training put a label on) under the base and under the adapter, and both models'
generations from the row's prompt (the tokens before its first trained token, so the model
sees exactly what it was trained to continue). The totals are token-weighted means, their
exp the perplexity. `against`: a second run's adapter on the same base, compared the same way.

Cost (for the planner): the base is loaded once as the run trained it (4-bit for QLoRA), plus
each adapter; per row one forward pass per model for the loss and `max_new_tokens` decoding
steps per model for the generations, so time grows as rows × models × (1 + max_new_tokens)
forward passes of one sequence, and memory is training's weights without gradients or
optimizer state.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from rankwise.advisor.errors import RankwiseError

from . import rundir
from .chat import adapter_dir, load_base
from .data import IGNORE
from .generation import Settings, generate_ids
from .prompts import Row, prompts_file, rows_from_examples, user_row


def held_out_rows(run_dir: Path, cfg, tokenizer, n: int, prompts: Path | None) -> list[Row]:
    if prompts is not None:
        prompts = Path(prompts).expanduser()
        if not prompts.is_file():
            raise RankwiseError(f"--prompts {prompts}: no such file", "give a .txt (one prompt a line) or a data file")
        if prompts.suffix == ".txt":
            return [user_row(tokenizer, l) for l in prompts_file(prompts, "--prompts")[:n]]
        from .data_build import build_datasets

        data = cfg.data.model_copy(update={"path": str(prompts), "val_path": None, "val_ratio": 0.0, "packing": False,
                                           "max_rows": n, "train_on_inputs": False})  # the prompt: what is asked
        examples, _, _ = build_datasets(cfg.model_copy(update={"data": data}), tokenizer)
        rows = rows_from_examples(examples, tokenizer, n)
    else:
        from .data_cache import cache_root, prepare_data

        _, val, _, _ = prepare_data(cfg, tokenizer, root=cache_root(run_dir.parent))  # the run's own build
        if not val:
            raise RankwiseError(f"{run_dir.name} held out no validation rows (data.val_ratio 0, no data.val_path)",
                                "pass --prompts FILE (a data file like the training data, or .txt prompts)")
        rows = rows_from_examples(val, tokenizer, n)
    if not rows:
        raise RankwiseError("no rows with a prompt to compare on", "text rows train on everything; pass --prompts FILE")
    return rows


def _nll(model, row: Row) -> tuple[float, int]:
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([row.input_ids], dtype=torch.long, device=device)
    labels = torch.tensor([row.labels], dtype=torch.long, device=device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    shift_logits, shift_labels = logits[0, :-1], labels[0, 1:]  # as HF's causal LM loss shifts them
    tokens = int((shift_labels != IGNORE).sum())
    nll = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE, reduction="sum")
    return float(nll), tokens


def _same_base(run_dir: Path, cfg, other: Path) -> None:
    from .chat import trained_method

    ocfg = rundir.load_config(other)
    mine = (cfg.model.name, trained_method(run_dir, cfg))
    theirs = (ocfg.model.name, trained_method(other, ocfg))
    if mine[0] != theirs[0]:
        raise RankwiseError(f"{other.name} trained {theirs[0]}, {run_dir.name} trained {mine[0]}: not the same base",
                            "--against compares two adapters of the same base model")
    if mine[1] != theirs[1]:
        from rankwise.advisor.methods import METHODS

        a, b = METHODS.get(mine[1]), METHODS.get(theirs[1])
        if a is not None and b is not None and a.quantized != b.quantized:
            raise RankwiseError(f"{other.name} trained on a {theirs[1]} base, {run_dir.name} on a {mine[1]} base",
                                "--against compares adapters trained on the same stored base (both 4-bit or neither)")


def compare(run_dir: Path, n: int = 20, prompts: Path | None = None, against: Path | None = None,
            settings: Settings = Settings(temperature=0.0, max_new_tokens=64),
            progress: Callable[[str, int, int], None] | None = None) -> dict:
    """The comparison as the JSON shape `rankwise compare --json` prints. `progress(stage, done,
    total)`: "load" once, then each model's rows as they are done."""
    run_dir = Path(run_dir)
    if n < 1:
        raise RankwiseError("--n must be at least 1")
    cfg = rundir.load_config(run_dir)
    mine = adapter_dir(run_dir)
    theirs = None
    if against is not None:
        theirs = adapter_dir(against)
        _same_base(run_dir, cfg, Path(against))
    if progress:
        progress("load", 0, 0)
    model, tokenizer, _ = load_base(run_dir, cfg)
    rows = held_out_rows(run_dir, cfg, tokenizer, n, prompts)
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, mine, adapter_name="adapter")
    if theirs is not None:
        model.load_adapter(theirs, adapter_name="against")
    model.eval()
    names = ["base", "adapter"] + (["against"] if theirs is not None else [])
    for name in names:
        if name == "base":
            with model.disable_adapter():
                _run_rows(model, tokenizer, rows, name, settings, progress)
        else:
            model.set_adapter(name)
            _run_rows(model, tokenizer, rows, name, settings, progress)
    return _report(run_dir, against, rows, names)


def _run_rows(model, tokenizer, rows: list[Row], name: str, settings: Settings, progress=None) -> None:
    for k, row in enumerate(rows):
        if progress:
            progress(name, k, len(rows))
        if row.labels is not None:
            row.losses[name] = _nll(model, row)
        row.answers[name] = generate_ids(model, tokenizer, row.prompt_ids, settings).strip()
    if progress:
        progress(name, len(rows), len(rows))


def _mean(rows: list[Row], name: str) -> float | None:
    nll = sum(r.losses[name][0] for r in rows if name in r.losses)
    tokens = sum(r.losses[name][1] for r in rows if name in r.losses)
    return nll / tokens if tokens else None


def _report(run_dir: Path, against: Path | None, rows: list[Row], names: list[str]) -> dict:
    out: dict = {"run": run_dir.name}
    if against is not None:
        out["against"] = Path(against).name
    for name in names:
        out[f"{name}_loss"] = _round(_mean(rows, name))
    out["rows_with_loss"] = sum(1 for r in rows if r.losses)
    out["rows"] = []
    for r in rows:
        item = {"prompt": r.prompt, "reference": r.reference}
        for name in names:
            item[name] = r.answers.get(name)
        for name in names:
            loss = r.losses.get(name)
            item[f"{name}_loss"] = _round(loss[0] / loss[1]) if loss and loss[1] else None
        out["rows"].append(item)
    return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def perplexity(loss: float | None) -> float | None:
    return None if loss is None else math.exp(min(loss, 700.0))


def summary(result: dict) -> str:
    """The sentence the text form leads with."""
    n = result["rows_with_loss"]
    base, adapter = result.get("base_loss"), result.get("adapter_loss")
    if base is None or adapter is None:
        return f"no reference answers, so no loss: generations of {len(result['rows'])} prompts below"
    verb = "lowers" if adapter < base else "raises" if adapter > base else "keeps"
    line = (f"the adapter {verb} response perplexity from {perplexity(base):.3g} to {perplexity(adapter):.3g} "
            f"on {n} held-out row{'s' if n != 1 else ''} (loss {base:.3f} → {adapter:.3f})")
    if result.get("against_loss") is not None:
        other = result["against_loss"]
        line += (f"; {result['against']} reaches {perplexity(other):.3g} (loss {other:.3f}): "
                 f"{'this run' if adapter < other else result['against'] if other < adapter else 'neither'} is lower")
    return line
