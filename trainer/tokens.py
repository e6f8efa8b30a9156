"""model.added_tokens: new tokens in the tokenizer, the embeddings resized to hold them, and their rows trained.

The tokens are added as axolotl adds its `tokens:` (tokenizers' AddedToken, not normalized, so "<|tool|>" stays one
token), in the config's order, so the same base tokenizer gives the same ids in training and in every command that
loads the adapter afterwards (merge, chat, compare, export). The model's embeddings are resized to the tokenizer
(`resize_token_embeddings`; transformers initialises the new rows from the old ones' mean and covariance) and the
rows of the configured tokens train through peft's trainable tokens (`trainable_token_indices`): the input
embedding's rows, and the output head's where it is not tied to it. peft saves the resized embedding and head whole
beside those rows (its `save_embedding_layers="auto"` on a resized vocabulary), so the adapter loads onto a base
resized the same way. A module in lora.modules_to_save trains in full instead (every row).
"""
from __future__ import annotations


def add_to(tokenizer, tokens) -> list[int]:
    """Add `tokens` the tokenizer does not have; their ids, in the config's order."""
    from tokenizers import AddedToken

    tokens = list(tokens)
    have = tokenizer.get_vocab()
    new = [t for t in dict.fromkeys(tokens) if t not in have]
    if new:
        tokenizer.add_tokens([AddedToken(t, normalized=False) for t in new])
    return tokenizer.convert_tokens_to_ids(tokens)


def fit_model(model, tokenizer) -> None:
    """Resize the model's embeddings (and an untied head) to hold every token of the tokenizer."""
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))


def carry(tokenizer, model, tokens) -> None:
    """A command that loads a run's adapter (merge, chat, compare): the run's tokens added to the base tokenizer,
    so they get the ids they trained with, and the base resized to hold them, as the adapter's embeddings are."""
    if tokens:
        add_to(tokenizer, tokens)
        fit_model(model, tokenizer)


def _leaf(model, module) -> str | None:
    for name, mod in model.named_modules():
        if mod is module:
            return name.rsplit(".", 1)[-1]
    return None


def trainable_indices(model, ids: list[int], full: list[str]) -> dict[str, list[int]] | None:
    """peft's trainable_token_indices for `ids`: the input embedding, and the output head when it is not tied;
    a module trained in full (lora.modules_to_save) is left out. None: nothing to train this way."""
    if not ids:
        return None
    out = {}
    emb = _leaf(model, model.get_input_embeddings())
    if emb and emb not in full:
        out[emb] = list(ids)
    head_module = model.get_output_embeddings()
    tied = head_module is not None and head_module.weight is model.get_input_embeddings().weight
    head = _leaf(model, head_module) if head_module is not None else None
    if head and not tied and head not in full:
        out[head] = list(ids)
    return out or None
