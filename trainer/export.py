"""A run's model for serving: `merged` (trainer/merge.py's standalone folder) or `gguf` (one GGUF
file of the merged model for llama.cpp-based runtimes, written with the `gguf` package:
`pip install 'rankwise[export]'`), optionally with an Ollama `Modelfile` beside it.

What the GGUF writer here knows, said plainly:
- architectures: Llama (`LlamaForCausalLM`; Mistral's `MistralForCausalLM` has the same tensors).
  Others exit 2 naming llama.cpp's `convert_hf_to_gguf.py`, which `rankwise export --format
  merged` gives a folder for.
- tensor types: f16 (norms stay f32) and q8_0 (the package's own Q8_0 quantizer; a tensor whose
  rows are not a multiple of 32 stays f16). Other llama.cpp quantizations (q4_k_m, ...) need
  llama.cpp's `llama-quantize` on the f16 file.
- tokenizers: a Hugging Face byte-level BPE tokenizer (tokenizer.json), written as llama.cpp's
  `gpt2` tokenizer model with pre-tokenizer `default`, its merges, special tokens and chat
  template. SentencePiece (tokenizer.model) tokenizers exit 2 with the converter to use.
The tensor layout follows convert_hf_to_gguf.py's LlamaModel: q/k projection rows permuted
from Hugging Face's rotate-half order to GGML's interleaved RoPE order, names from gguf's own
TensorNameMap. The file is written beside `out` and renamed into place; a non-empty `out` is
never overwritten.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from rankwise.advisor.errors import RankwiseError

from . import rundir
from .merge import check_out, merge, merged_model

FORMATS = ("merged", "gguf", "ollama")
QUANTS = ("q8_0", "f16")
ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
CONVERTER = ("run llama.cpp's convert_hf_to_gguf.py on the merged folder (`rankwise export RUN --format merged`), "
             "e.g. python convert_hf_to_gguf.py RUN_DIR/merged --outtype q8_0")


def gguf_module():
    try:
        import gguf  # deferred: an optional extra
    except ModuleNotFoundError:
        raise RankwiseError("--format gguf needs the gguf package",
                            "pip install 'rankwise[export]' (or pip install gguf)") from None
    return gguf


def export(run_dir: Path, fmt: str, out: Path | None = None, quant: str = "q8_0") -> Path:
    """Write the export; returns the folder (merged) or the .gguf file."""
    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise RankwiseError(f"unknown export format {fmt!r}", f"one of {', '.join(FORMATS)}")
    if quant not in QUANTS:
        raise RankwiseError(f"--quant {quant}: the gguf writer here produces {' and '.join(QUANTS)} only",
                            "for other llama.cpp types (q4_k_m, ...) run llama.cpp's llama-quantize on the f16 file")
    from .chat import adapter_dir

    adapter_dir(run_dir)  # a missing adapter is bad input before anything is loaded
    if fmt == "merged":
        return merge(run_dir, out)
    out = Path(out) if out else run_dir / fmt
    check_out(out)
    gguf = gguf_module()
    _check_architecture(run_dir)
    model, tokenizer = merged_model(run_dir)
    name = f"{run_dir.name}-{quant}.gguf"
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write_gguf(gguf, model, tokenizer, tmp / name, quant, run_dir.name)
        if fmt == "ollama":
            (tmp / "Modelfile").write_text(modelfile(name, tokenizer), encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / name


def _check_architecture(run_dir: Path) -> None:
    from rankwise.advisor.model import load_model

    from .loading import weights_dir

    cfg = rundir.load_config(run_dir)
    folder = Path(weights_dir(load_model(cfg.model.name), cfg))
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    archs = config.get("architectures") or []
    if not any(a in ARCHITECTURES for a in archs):
        raise RankwiseError(f"the gguf writer here knows {', '.join(ARCHITECTURES)}; {cfg.model.name} is "
                            f"{', '.join(archs) or 'of an unnamed architecture'}", CONVERTER)
    if not (folder / "tokenizer.json").is_file() or (folder / "tokenizer.model").is_file():
        raise RankwiseError(f"{cfg.model.name} has a SentencePiece tokenizer (tokenizer.model): the gguf writer here "
                            "writes byte-level BPE tokenizers only", CONVERTER)
    tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    if tok.get("model", {}).get("type") != "BPE":
        raise RankwiseError(f"{cfg.model.name}'s tokenizer is {tok.get('model', {}).get('type')}, not byte-level BPE",
                            CONVERTER)


def _permute(w, n_head: int):
    """HF's q/k rows (rotate-half RoPE) in GGML's interleaved order (convert_hf_to_gguf.py LlamaModel.permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(gguf, model, tokenizer, path: Path, quant: str, name: str) -> None:
    import numpy as np

    c = model.config
    n_head, n_kv = c.num_attention_heads, c.num_key_value_heads or c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // n_head
    arch = gguf.MODEL_ARCH.LLAMA
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    w.add_name(name)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    rope = getattr(c, "rope_parameters", None) or {}
    w.add_rope_freq_base(float(rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))))
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    ftype = gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    w.add_file_type(ftype)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _write_tokenizer(gguf, w, tokenizer, c.vocab_size)

    names = gguf.TensorNameMap(arch, c.num_hidden_layers)
    state = model.state_dict()
    for key, tensor in state.items():
        if key == "lm_head.weight" and getattr(c, "tie_word_embeddings", False):
            continue
        data = tensor.detach().float().cpu().numpy()
        if key.endswith("q_proj.weight"):
            data = _permute(data, n_head)
        elif key.endswith("k_proj.weight"):
            data = _permute(data, n_kv)
        new = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise RankwiseError(f"no GGUF name for tensor {key}", CONVERTER)
        if data.ndim == 1:  # norms stay f32, as llama.cpp's converter keeps them
            w.add_tensor(new, data.astype(np.float32))
        elif quant == "q8_0" and data.shape[-1] % 32 == 0:
            q = gguf.quants.quantize(data.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(new, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(new, data.astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _write_tokenizer(gguf, w, tokenizer, vocab_size: int) -> None:
    vocab = tokenizer.get_vocab()
    by_id = {i: t for t, i in vocab.items()}
    special = set(tokenizer.all_special_ids)
    added = set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    tokens, types = [], []
    for i in range(vocab_size):
        tok = by_id.get(i)
        if tok is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(tok)
            types.append(gguf.TokenType.CONTROL if i in special else
                         gguf.TokenType.USER_DEFINED if i in added else gguf.TokenType.NORMAL)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    folder = Path(tokenizer.name_or_path)
    merges = bool(json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"].get("merges"))
    # a byte-level vocabulary without merges (the tiny demo model's) is complete as it is
    special_vocab = gguf.SpecialVocab(str(folder), load_merges=merges, n_vocab=len(tokens))
    special_vocab.add_to_gguf(w)
    template = getattr(tokenizer, "chat_template", None)
    if template and not special_vocab.chat_template:
        w.add_chat_template(template)


def modelfile(gguf_name: str, tokenizer) -> str:
    """An Ollama Modelfile: the GGUF and its stop token. The chat template travels inside the GGUF
    (tokenizer.chat_template); Ollama's own Go-template TEMPLATE is not written (no faithful
    translation from Jinja exists), so check `ollama show --template` after `ollama create`."""
    lines = [f"FROM ./{gguf_name}"]
    if tokenizer.eos_token:
        lines.append(f'PARAMETER stop "{tokenizer.eos_token}"')
    return "\n".join(lines) + "\n"
