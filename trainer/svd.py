"""`rankwise svd`: the dimensionality of the training data as the base model represents it.

N samples go through the base model (no adapter, no gradients); at the chosen layers the
hidden state of every real token is collected, centred, and the singular-value spectrum
taken (through the hidden×hidden covariance, accumulated in float64, so memory stays
hidden² per layer whatever the number of tokens). We report how many components hold
90/95/99% of the variance and the LoRA rank band that suggests.

What this measures: how many directions the data's representations occupy at those
layers. What it does not measure: the rank the weight update needs. A low-dimensional
input can still need a high-rank update and vice versa; treat the band as a prior for where
to start a sweep (`rankwise sweep`), which is the measurement.

The model loads from local weights only (a folder or an id already in the HF cache): 32-bit
on CPU; on a GPU bf16/fp16, or 4-bit NF4 when the 16-bit weights would not fit its free memory.
"""
from __future__ import annotations

import math
from pathlib import Path

from rankwise.advisor.errors import RankwiseError

LEVELS = (0.9, 0.95, 0.99)
MEASURES = ("the dimensionality of the data's representations at these layers: how many directions "
            "of the hidden state the training samples actually use")
NOT_MEASURED = ("the rank the weight update needs: that depends on what must change, not on where the data "
                "lies; this is a heuristic prior, `rankwise sweep` is the measurement")
SPECTRUM_KEEP = 256  # normalised singular values kept per layer in the output


def parse_layers(text: str | None, n_layers: int) -> list[int]:
    """`--layers`: indices into the hidden states (0 = embeddings, n = last block), negatives from
    the end, or `all`. Default: the middle and the last block."""
    if not text:
        return sorted({max(1, n_layers // 2), n_layers})
    if text.strip() == "all":
        return list(range(1, n_layers + 1))
    out = []
    for part in text.split(","):
        try:
            i = int(part)
        except ValueError:
            raise RankwiseError(f"--layers {text!r}: {part!r} is not a layer number",
                                f"give indices 0..{n_layers} (0 = embeddings, {n_layers} = last block), "
                                "negatives from the end, or `all`") from None
        j = i + n_layers + 1 if i < 0 else i
        if not 0 <= j <= n_layers:
            raise RankwiseError(f"--layers: {i} is out of range for a model with {n_layers} blocks",
                                f"give indices 0..{n_layers} or -1..-{n_layers + 1}")
        out.append(j)
    return sorted(set(out))


def components(variances: list[float], levels=LEVELS) -> dict[str, int]:
    """Smallest k whose top-k components hold each share of the total variance."""
    total = sum(variances)
    out = {}
    for level in levels:
        acc, k = 0.0, 0
        for v in variances:
            acc += v
            k += 1
            if total <= 0 or acc >= level * total - 1e-12:
                break
        out[str(level)] = k
    return out


def _pow2_down(x: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(max(1.0, x)))))


def _pow2_up(x: float) -> int:
    return 1 << max(0, int(math.ceil(math.log2(max(1.0, x)))))


def rank_band(comp: dict[str, int], hidden: int) -> list[int]:
    """A LoRA rank band from the component counts: from the power of two at or below the 90%
    count to the one at or above the 95% count, capped at half the hidden size (a LoRA update of
    rank ≥ hidden/2 saves little over full fine-tuning). Heuristic, see the module docstring."""
    cap = max(1, hidden // 2)
    lo = min(_pow2_down(comp["0.9"]), cap)
    hi = min(max(_pow2_up(comp["0.95"]), lo), cap)
    return [lo, hi]


def _texts(path: str | Path, tokenizer, samples: int) -> tuple[list[str], int]:
    from rankwise.advisor.readers import iter_rows
    from rankwise.advisor.rowformat import detect_format, prepare_row

    texts, skipped = [], 0
    has_template = bool(getattr(tokenizer, "chat_template", None))
    for _, row in iter_rows(path, bad="yield"):
        fmt = detect_format(row) if isinstance(row, dict) else None
        row = prepare_row(row, fmt)[0] if fmt and fmt != "preference" else None  # ShareGPT → messages, parts joined
        if row is None:
            skipped += 1
            continue
        if fmt in ("chat", "sharegpt", "instruction"):
            msgs = row["messages"] if fmt != "instruction" else [
                {"role": "user", "content": row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")},
                {"role": "assistant", "content": row["output"]}]
            msgs = [{"role": m["role"], "content": m["content"] or ""} for m in msgs]
            text = (tokenizer.apply_chat_template(msgs, tokenize=False) if has_template
                    else "\n".join(f"{m['role']}: {m['content']}" for m in msgs))
        elif fmt == "prompt_completion":
            text = row["prompt"] + row["completion"]
        else:
            text = row["text"]
        texts.append(text)
        if len(texts) >= samples:
            break
    if not texts:
        raise RankwiseError(f"{path}: no usable rows", "rows need messages, instruction/output, prompt/completion "
                                                       "or text fields")
    return texts, skipped


def _load(model_dir: str, spec, trust_remote_code: bool = False):
    """The base model in eval mode: fp32 on CPU; on a GPU 16-bit, or 4-bit when 16-bit would not fit."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict = {"trust_remote_code": trust_remote_code, "use_safetensors": True}
    quant = "fp32"
    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        weights16 = 2 * spec.total_params
        if weights16 > 0.8 * free:  # leave room for activations of one batch
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                               bnb_4bit_compute_dtype=dtype)
            quant = "nf4"
        else:
            quant = "bf16" if dtype == torch.bfloat16 else "fp16"
        kwargs.update(dtype=dtype, device_map={"": 0})
    else:
        kwargs["dtype"] = torch.float32
    from rankwise.advisor.config import QuantSection

    from . import moe_quant

    fused = tuple(spec.fused_names()) if quant == "nf4" else ()  # an MoE's fused experts in 4 bits too
    try:
        model, _, _ = moe_quant.load(lambda: AutoModelForCausalLM.from_pretrained(model_dir, **kwargs), fused,
                                     QuantSection(double_quant=False))  # the BitsAndBytesConfig above
    except OSError as e:
        raise RankwiseError(f"cannot load the weights in {model_dir}: {str(e).splitlines()[0]}",
                            "the folder needs *.safetensors weights") from None
    return model.eval(), quant


def analyse(model_name: str, dataset: str | Path, samples: int = 64, layers: str | None = None,
            max_len: int = 512, batch: int = 8) -> dict:
    """Run the samples through the model and summarise the spectrum at each layer."""
    if samples < 2:
        raise RankwiseError(f"--samples {samples}: need at least 2", "e.g. --samples 64")
    from rankwise.advisor.model import load_model

    spec = load_model(model_name)
    if not spec.path:  # a catalog or model-index entry: the architecture only
        raise RankwiseError(f"--model {model_name!r} has no weights on this machine ({spec.source} entry)",
                            "give a local model folder or a model id already in ~/.cache/huggingface")
    if not Path(dataset).exists():
        raise RankwiseError(f"--dataset not found: {dataset}", "give a JSONL/JSON/CSV/Parquet file or a saved dataset folder")
    chosen = parse_layers(layers, spec.num_layers)  # bad --layers fails before anything loads
    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars on stderr say nothing here

    tokenizer = AutoTokenizer.from_pretrained(spec.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts, skipped = _texts(dataset, tokenizer, samples)
    model, quant = _load(spec.path, spec)
    hidden = model.config.hidden_size
    gram = {i: torch.zeros(hidden, hidden, dtype=torch.float64) for i in chosen}
    total = {i: torch.zeros(hidden, dtype=torch.float64) for i in chosen}
    tokens = 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            enc = tokenizer(texts[start:start + batch], return_tensors="pt", padding=True, truncation=True,
                            max_length=max_len).to(device)
            out = model(**enc, output_hidden_states=True)
            mask = enc["attention_mask"].bool()
            tokens += int(mask.sum())
            for i in chosen:
                h = out.hidden_states[i][mask].to(torch.float64).cpu()
                gram[i] += h.T @ h
                total[i] += h.sum(0)
    per_layer = []
    for i in chosen:
        mean = total[i] / tokens
        cov = (gram[i] - tokens * torch.outer(mean, mean)) / max(1, tokens - 1)
        var = torch.linalg.eigvalsh(cov).flip(0).clamp(min=0).tolist()  # = squared singular values / (n-1)
        comp = components(var)
        top = var[0] if var and var[0] > 0 else 1.0
        per_layer.append({"layer": i, "components": comp,
                          "spectrum": [round(math.sqrt(v / top), 6) for v in var[:SPECTRUM_KEEP]]})
    # the median over layers (the upper middle for an even count): one number per level
    summary = {lvl: sorted(l["components"][lvl] for l in per_layer)[len(per_layer) // 2]
               for lvl in per_layer[0]["components"]}
    return {
        "model": model_name, "dataset": str(dataset), "samples": len(texts), "skipped_rows": skipped,
        "tokens": tokens, "hidden_size": hidden, "layers": per_layer, "precision": quant,
        "components": summary, "suggested_rank_band": rank_band(summary, hidden),
        "measures": MEASURES, "does_not_measure": NOT_MEASURED,
    }
