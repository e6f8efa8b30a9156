"""rankwise export on the session's real demo run: the merged folder loads with plain transformers
and computes the adapter's logits; the GGUF file reads back with the gguf package, and a Llama
forward pass written here from GGML's conventions (interleaved RoPE) over its tensors gives the
merged model's logits, which checks the names, shapes and the q/k permutation together."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from rankwise.trainer import rundir
from rankwise.tui.cli import main

gguf = pytest.importorskip("gguf")  # the [export] extra (a dev dependency: CI has it)
TEXT = "<s><|user|>\nWhat is the capital of Canada?</s>\n<|assistant|>\n"


def export(capsys, run_dir, *args) -> tuple[int, str, str]:
    code = main(["export", run_dir.name, "--runs-dir", str(run_dir.parent), *args])
    out = capsys.readouterr()
    return code, out.out.strip(), out.err


@pytest.fixture(scope="module")
def reference(demo_run):
    """(token ids, the PEFT model's logits on them): base + adapter as peft computes them."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = rundir.load_config(demo_run).model.name
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                                      demo_run / rundir.ADAPTER).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].numpy()
    return ids, logits


def test_merged_loads_with_transformers_and_matches_the_peft_logits(demo_run, reference, tmp_path, capsys):
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "merged"
    code, printed, err = export(capsys, demo_run, "--format", "merged", "--out", str(out))
    assert code == 0, err
    assert Path(printed) == out and (out / "config.json").is_file() and not list(out.glob("adapter_*"))
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids, expected = reference
    with torch.no_grad():
        got = model(input_ids=torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_a_non_empty_out_is_never_overwritten(demo_run, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    for fmt in ("merged", "gguf"):
        code, _, err = export(capsys, demo_run, "--format", fmt, "--out", str(out))
        assert code == 2 and "exists and is not empty" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def _field(reader, key):
    return reader.fields[key].contents()


def _rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _rope(x, base):
    """GGML's LLaMA RoPE (mode 0): adjacent pairs (2i, 2i+1) rotate together."""
    d = x.shape[-1]
    ang = np.arange(x.shape[0])[:, None] * base ** (-np.arange(0, d, 2) / d)[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
    out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
    return out


def gguf_logits(path: Path, ids: list[int]) -> np.ndarray:
    r = gguf.GGUFReader(str(path))
    t = {x.name: gguf.quants.dequantize(x.data, x.tensor_type).astype(np.float64) for x in r.tensors}
    n_head, n_kv = _field(r, "llama.attention.head_count"), _field(r, "llama.attention.head_count_kv")
    eps, base = _field(r, "llama.attention.layer_norm_rms_epsilon"), _field(r, "llama.rope.freq_base")
    d = _field(r, "llama.rope.dimension_count")
    n = len(ids)
    h = t["token_embd.weight"][ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for b in range(_field(r, "llama.block_count")):
        p = lambda name: t[f"blk.{b}.{name}.weight"]  # noqa: E731
        x = _rms(h, p("attn_norm"), eps)
        q = _rope((x @ p("attn_q").T).reshape(n, n_head, d), base)
        k = np.repeat(_rope((x @ p("attn_k").T).reshape(n, n_kv, d), base), n_head // n_kv, axis=1)
        v = np.repeat((x @ p("attn_v").T).reshape(n, n_kv, d), n_head // n_kv, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(d) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        h = h + np.einsum("hts,shd->thd", s, v).reshape(n, n_head * d) @ p("attn_output").T
        x = _rms(h, p("ffn_norm"), eps)
        g = x @ p("ffn_gate").T
        h = h + ((g / (1 + np.exp(-g))) * (x @ p("ffn_up").T)) @ p("ffn_down").T
    return _rms(h, t["output_norm.weight"], eps) @ t["output.weight"].T


@pytest.mark.parametrize("quant, atol", [("f16", 2e-2), ("q8_0", 0.3)])  # q8_0: 8-bit weights, ~1% error each
def test_gguf_reads_back_and_computes_the_merged_logits(demo_run, reference, tmp_path, capsys, quant, atol):
    from safetensors.torch import load_file

    out = tmp_path / f"gguf-{quant}"
    code, printed, err = export(capsys, demo_run, "--format", "gguf", "--quant", quant, "--out", str(out))
    assert code == 0, err
    path = Path(printed)
    assert path.parent == out and path.suffix == ".gguf" and [p.name for p in out.iterdir()] == [path.name]
    reader = gguf.GGUFReader(str(path))
    base = load_file(str(Path(rundir.load_config(demo_run).model.name) / "model.safetensors"))
    assert len(reader.tensors) == len(base)  # one GGUF tensor per model tensor (the tiny model's head is untied)
    shapes = sorted(tuple(int(s) for s in reversed(t.shape)) for t in reader.tensors)  # GGUF lists dims innermost first
    assert shapes == sorted(tuple(v.shape) for v in base.values())
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["output_norm.weight"] == "F32" and kinds["blk.0.ffn_down.weight"] == quant.upper()
    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "tokenizer.ggml.tokens")[:1] and "<|assistant|>" in _field(reader, "tokenizer.chat_template")
    ids, expected = reference
    np.testing.assert_allclose(gguf_logits(path, ids), expected, atol=atol)
    assert np.array_equal(gguf_logits(path, ids).argmax(-1), expected.argmax(-1))


def test_ollama_writes_a_modelfile_beside_the_gguf(demo_run, tmp_path, capsys):
    out = tmp_path / "ollama"
    code, printed, err = export(capsys, demo_run, "--format", "ollama", "--quant", "f16", "--out", str(out))
    assert code == 0, err
    lines = (out / "Modelfile").read_text().splitlines()
    assert lines[0] == f"FROM ./{Path(printed).name}" and (out / Path(printed).name).is_file()
    assert 'PARAMETER stop "</s>"' in lines


def test_an_architecture_the_writer_does_not_know_exits_2_naming_the_converter(demo_run, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(rundir.load_config(demo_run).model.name, model)
    config = json.loads((model / "config.json").read_text())
    config["architectures"] = ["Qwen3MoeForCausalLM"]
    (model / "config.json").write_text(json.dumps(config))
    runs = tmp_path / "runs"
    copy = runs / demo_run.name
    shutil.copytree(demo_run, copy)
    cfg = yaml.safe_load((copy / rundir.CONFIG).read_text())
    cfg["model"]["name"] = str(model)
    (copy / rundir.CONFIG).write_text(yaml.safe_dump(cfg))
    code = main(["export", copy.name, "--runs-dir", str(runs), "--format", "gguf", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Qwen3MoeForCausalLM" in err and "convert_hf_to_gguf.py" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, message", [(["no-such-run"], "no run 'no-such-run'"),
                                           (["{run}", "--quant", "q4_k_m"], "invalid choice")])
def test_bad_input_exits_2(demo_run, capsys, args, message):
    code = main(["export", *[a.format(run=demo_run.name) for a in args], "--runs-dir", str(demo_run.parent)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
