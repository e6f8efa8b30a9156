"""The model index: Hugging Face model ids → the config.json fields that decide their shapes.

`model_index.json` (beside this file, built by `bench/model_index_build.py`) holds groups of
ids that share one architecture, each with the fields the reader needs (no weights) and the
public source of every number (repository, path, commit). So `--model meta-llama/Llama-3.2-1B`
gets an estimate offline, before anything is downloaded.

An id resolves, case-insensitively, when it is
- listed: `Qwen/Qwen2.5-7B-Instruct`;
- a re-upload of a listed model by an organisation that mirrors models unchanged
  (`REUPLOADERS`): `NousResearch/Llama-2-7b-hf`, `unsloth/Qwen2.5-7B-Instruct`, matched on the
  name after the organisation (`Meta-Llama-3.1-8B` and `Llama-3.1-8B` are the same model: Meta
  renamed its repositories);
- a listed model with a quantized-upload suffix (`-bnb-4bit`: unsloth's pre-quantized copies,
  same architecture; how the weights are stored is the method's business, not the shape's);
- an instruct or chat variant (`-Instruct`, `-it`, `-Chat`, `-chat-hf`) of a listed base model:
  a fine-tune of the base, so the same architecture.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

INDEX_FILE = Path(__file__).with_name("model_index.json")

# Organisations whose uploads are unchanged copies of the original repositories (the name after
# the organisation is the original's): NousResearch's Llama mirrors, unsloth's copies and
# bitsandbytes-4bit uploads, mistral-community's Mixtral-8x22B.
REUPLOADERS = ("unsloth", "nousresearch", "mistral-community")
QUANT_SUFFIXES = ("-unsloth-bnb-4bit", "-bnb-4bit")
VARIANT_SUFFIXES = ("-instruct", "-it", "-chat-hf", "-chat")


@dataclass(frozen=True)
class Entry:
    """One resolved id: the listed id it stands for, its config.json fields and their sources."""

    model_id: str  # the listed id, as the index spells it
    config: dict
    sources: tuple[dict, ...]  # [{"ids", "shape": {repo, path, commit}, "tie_word_embeddings": ...}]
    via: str = ""  # how a name that is not listed reached model_id ("" when listed)


def _base_name(name: str) -> str:
    """The name after the organisation, the way re-uploads and renames spell it alike."""
    base = name.rsplit("/", 1)[-1].lower()
    return base.removeprefix("meta-")  # meta-llama/Meta-Llama-3.1-8B is now meta-llama/Llama-3.1-8B


@lru_cache(maxsize=1)
def _table() -> tuple[list[dict], dict[str, tuple[int, str]], dict[str, tuple[int, str] | None]]:
    """(groups, listed id → (group, id), base name → (group, id) or None when two groups share it)."""
    groups = json.loads(INDEX_FILE.read_text(encoding="utf-8"))["groups"]
    by_id: dict[str, tuple[int, str]] = {}
    by_base: dict[str, tuple[int, str] | None] = {}
    for i, g in enumerate(groups):
        for model_id in g["ids"]:
            by_id[model_id.lower()] = (i, model_id)
            base = _base_name(model_id)
            if base in by_base and by_base[base] and by_base[base][0] != i:
                by_base[base] = None  # the same name for two architectures: only the full id resolves
            else:
                by_base.setdefault(base, (i, model_id))
    return groups, by_id, by_base


def groups() -> list[dict]:
    """The index's groups (config, ids, sources), read once."""
    return _table()[0]


def listed_ids() -> list[str]:
    """Every id the index lists (re-uploads and variants resolve on top of these)."""
    return [model_id for g in _table()[0] for model_id in g["ids"]]


def _entry(found: tuple[int, str], via: str) -> Entry:
    group = _table()[0][found[0]]
    return Entry(found[1], dict(group["config"]), tuple(group["sources"]), via)


def lookup(name: str) -> Entry | None:
    """`name` (a Hugging Face id, any case) → its index entry, or None. Never touches the network."""
    _, by_id, by_base = _table()
    key = name.strip().lower()
    if key in by_id:
        return _entry(by_id[key], "")
    if "/" not in key:
        return None
    org, base = key.rsplit("/", 1)
    for suffix in QUANT_SUFFIXES:
        if base.endswith(suffix):
            base = base.removesuffix(suffix)
            break
    candidates = [base] + [base.removesuffix(s) for s in VARIANT_SUFFIXES if base.endswith(s)]
    for cand in candidates:
        if f"{org}/{cand}" in by_id:
            return _entry(by_id[f"{org}/{cand}"], f"same architecture as {by_id[f'{org}/{cand}'][1]}")
        hit = by_base.get(_base_name(cand))
        if hit and (org in REUPLOADERS or hit[1].lower().startswith(org + "/")):
            return _entry(hit, f"same architecture as {hit[1]}")
    return None


def by_base_name(base: str) -> Entry | None:
    """The listed model whose name after the organisation is `base` (any case), when exactly one architecture
    has that name (a local folder named after the model it holds: `models/Llama-2-7b-hf`)."""
    _, _, by_base = _table()
    hit = by_base.get(_base_name(base))
    return _entry(hit, f"its name is {hit[1]}'s") if hit else None


def close_ids(name: str, n: int = 3) -> list[str]:
    """Listed ids spelled most like `name` (for the unknown-model hint)."""
    from difflib import get_close_matches

    ids = listed_ids()
    lowered = {i.lower(): i for i in ids}
    return [lowered[m] for m in get_close_matches(name.strip().lower(), list(lowered), n=n, cutoff=0.6)]
