"""The model reader: catalog, analytic shapes vs the meta device, bad names."""
import json

import pytest

from rankwise.advisor import catalog
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.model import load_model, spec_from_config


def _shape(spec):
    linears = sorted((l.name, l.family, l.d_in, l.d_out, l.count, l.bias, l.adaptable) for l in spec.linears)
    return linears, spec.params_by_family, spec.tied_embeddings, spec.num_experts


@pytest.mark.parametrize("name", sorted(catalog.CATALOG))
def test_analytic_matches_meta_device(name):
    from rankwise.advisor.meta import read_on_meta

    analytic = spec_from_config(name, "catalog", dict(catalog.CATALOG[name]))
    exact = read_on_meta(name, "catalog", dict(catalog.CATALOG[name]))
    assert _shape(analytic) == _shape(exact)
    assert analytic.total_params == exact.total_params


@pytest.mark.parametrize("name,billions", [
    ("llama-3.1-8b", 8.03), ("llama-3.1-70b", 70.55), ("llama-3.2-1b", 1.24), ("mistral-7b", 7.25),
    ("mixtral-8x7b", 46.70), ("qwen2.5-7b", 7.62), ("gemma-2-9b", 9.24), ("phi-3-mini", 3.82), ("llama-2-7b", 6.74),
])
def test_published_parameter_counts(name, billions):
    assert load_model(name).total_params / 1e9 == pytest.approx(billions, abs=0.01)


def test_lora_param_arithmetic_llama_8b():
    spec = load_model("llama-3.1-8b")
    # q: 4096→4096, v: 4096→1024; 32 layers; r=16
    assert spec.lora_params("minimal", 16) == 32 * 16 * ((4096 + 4096) + (4096 + 1024))
    assert spec.target_set("aggressive") == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_fused_and_moe_targets():
    assert load_model("phi-3-mini").target_set("minimal") == ["qkv_proj"]
    mix = load_model("mixtral-8x7b")
    assert mix.is_moe and mix.num_experts == 8
    assert mix.target_set("aggressive") == mix.target_set("standard")  # experts are fused tensors, not nn.Linear


def test_unknown_target_lists_the_models_modules():
    with pytest.raises(RankwiseError) as e:
        load_model("phi-3-mini").resolve_targets(["q_proj"])
    assert "qkv_proj" in e.value.hint


def test_unknown_name_suggests_catalog():
    with pytest.raises(RankwiseError) as e:
        load_model("lama-3.1-8b")
    assert "llama-3.1-8b" in e.value.hint


def test_local_dir_and_hf_cache(tmp_path, monkeypatch):
    cfg = dict(catalog.CATALOG["qwen2.5-0.5b"])
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    assert load_model(str(d)).total_params == load_model("qwen2.5-0.5b").total_params
    assert load_model(str(d / "config.json")).source == "local"
    snap = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "hub" / "models--acme--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny" / "refs" / "main").write_text("abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    spec = load_model("acme/tiny")
    assert spec.source == "hf-cache" and spec.path == str(snap)


def test_other_architecture_goes_through_meta(tmp_path):
    cfg = {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 100, "n_positions": 128}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec = load_model(str(tmp_path))
    assert spec.model_type == "gpt2" and spec.num_layers == 2
    assert spec.linear("c_attn").d_in == 64 and spec.linear("c_attn").d_out == 192 and spec.linear("c_attn").count == 2
    assert spec.total_params == 2 * (4 * 64 * 64 + 4 * 64 + 8 * 64 * 64 + 5 * 64 + 4 * 64) + 100 * 64 + 128 * 64 + 2 * 64


def test_bad_config_json(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RankwiseError) as e:
        load_model(str(tmp_path))
    assert "config.json:1" in e.value.message


@pytest.mark.parametrize("name,namesake,tied", [("Qwen/Qwen2.5-Coder-32B-Instruct", "qwen2.5-32b", False),
                                                ("Qwen/Qwen2.5-Coder-14B", "qwen2.5-14b", False),
                                                ("Qwen/Qwen2.5-Coder-1.5B-Instruct", "qwen2.5-1.5b", True),
                                                ("Qwen/Qwen2.5-Coder-7B-Instruct", "qwen2.5-7b", False)])
def test_qwen25_coder_is_its_qwen25_namesake(name, namesake, tied):
    """Qwen2.5-Coder's report (Table 1): each size has its Qwen2.5 namesake's shape; the small ones tie the head."""
    coder, base = load_model(name), load_model(namesake)
    assert coder.total_params == base.total_params and coder.name == namesake
    assert ("lm_head" not in coder.params_by_family or not coder.params_by_family["lm_head"]) == tied
