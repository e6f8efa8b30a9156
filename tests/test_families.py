"""Architecture families as data: every catalog entry is read analytically, and `advise`
answers for each of them with torch unimportable."""
import json
import subprocess
import sys

import pytest

from rankwise.advisor import catalog, model
from rankwise.advisor.families import FAMILIES, GENERIC, family_of
from rankwise.advisor.model import load_model, spec_from_config

HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "accelerate")
# `python -c PRELUDE advise ...`: the CLI with every heavy package made unimportable
PRELUDE = (f"import sys\nfor m in {HEAVY!r}: sys.modules[m] = None  # `import torch` now raises ImportError\n"
           "from rankwise.tui.cli import main\nsys.exit(main(sys.argv[1:]))")


@pytest.mark.parametrize("name", sorted(catalog.CATALOG))
def test_every_catalog_entry_is_computed_analytically(name, monkeypatch):
    def no_meta(*args, **kwargs):
        raise AssertionError(f"{name} went to the meta-device reader")

    monkeypatch.setattr(model, "read_on_meta", no_meta)
    cfg = dict(catalog.CATALOG[name])
    assert cfg["model_type"] in FAMILIES, f"{name}: no family record for {cfg['model_type']!r}"
    spec = spec_from_config(name, "catalog", cfg)
    assert spec.family is FAMILIES[cfg["model_type"]]
    assert spec.total_params > 0 and spec.target_set("minimal")


@pytest.mark.parametrize("name", sorted(catalog.CATALOG))
def test_advise_on_every_catalog_entry_without_torch(name):
    out = subprocess.run([sys.executable, "-c", PRELUDE, "advise", "--model", name, "--task", "instruction",
                          "--gpu-mem", "24GiB", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    advice = json.loads(out.stdout)
    assert advice["config"]["model"]["name"] == name
    assert set(advice["estimates"]) and all(e["peak_bytes"] > 0 for e in advice["estimates"].values())


def test_the_prelude_does_block_torch():
    """The test above would prove nothing if the prelude let torch through."""
    code = PRELUDE.replace("from rankwise.tui.cli import main\nsys.exit(main(sys.argv[1:]))", "import torch")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "import of torch halted" in out.stderr


def test_family_facts_reach_the_shapes():
    gemma, llama, phi, qwen = (load_model(n) for n in ("gemma-2-2b", "llama-3.2-1b", "phi-3-mini", "qwen2.5-0.5b"))
    h = gemma.hidden_size
    assert gemma.params_by_family["norm"] == (4 * gemma.num_layers + 1) * h  # Gemma 2: four RMSNorms a layer
    assert llama.params_by_family["norm"] == (2 * llama.num_layers + 1) * llama.hidden_size
    assert [l.name for l in phi.linears if l.family != "lm_head"] == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert all(qwen.linear(n).bias for n in ("q_proj", "k_proj", "v_proj")) and not qwen.linear("o_proj").bias
    assert not any(l.bias for l in llama.linears)


def test_unknown_family_is_estimated_as_generic():
    assert family_of("gpt2") is GENERIC and family_of("gemma2") is FAMILIES["gemma2"]


def test_gemma2_soft_capping_defaults_on_and_costs_one_more_logits_copy():
    from rankwise.advisor.memory import Plan, logits_peak_bytes

    capped = load_model("gemma-2-2b")  # the catalog's config, like many, leaves final_logit_softcapping out
    off = spec_from_config("gemma-2-2b", "catalog", {**catalog.CATALOG["gemma-2-2b"], "final_logit_softcapping": None})
    plan = Plan("lora")
    assert logits_peak_bytes(capped, plan) - logits_peak_bytes(off, plan) == plan.dtype_bytes * capped.vocab_size


# Families with q/k norms, read analytically since the index lists them (Qwen3, Qwen3-MoE, OLMo 2, Gemma 3 text):
# the same shapes as transformers builds on the meta device, and `advise` on them never imports torch.
QK_NORM_IDS = ["Qwen/Qwen3-0.6B", "Qwen/Qwen3-8B", "Qwen/Qwen3-30B-A3B", "allenai/OLMo-2-1124-7B",
               "google/gemma-3-1b-it"]


def _shape(spec):
    linears = sorted((l.name, l.family, l.d_in, l.d_out, l.count, l.bias, l.adaptable) for l in spec.linears)
    return linears, {k: v for k, v in spec.params_by_family.items() if v}, spec.tied_embeddings, spec.num_experts


@pytest.mark.parametrize("model_id", QK_NORM_IDS)
def test_qk_norm_families_are_analytic_and_match_the_meta_device(model_id, monkeypatch):
    from rankwise.advisor import model_index
    from rankwise.advisor.meta import read_on_meta

    cfg = model_index.lookup(model_id).config
    exact = read_on_meta(model_id, "index", dict(cfg))

    def no_meta(*args, **kwargs):
        raise AssertionError(f"{model_id} went to the meta-device reader")

    monkeypatch.setattr(model, "read_on_meta", no_meta)
    analytic = spec_from_config(model_id, "index", dict(cfg))
    assert analytic.family.qk_norm and _shape(analytic) == _shape(exact)


def test_a_qwen3_moe_with_dense_layers_goes_to_the_meta_device(monkeypatch):
    from rankwise.advisor import model_index

    cfg = {**model_index.lookup("Qwen/Qwen3-30B-A3B").config, "mlp_only_layers": [0]}
    called = []
    monkeypatch.setattr(model, "read_on_meta", lambda *a: called.append(a) or "meta")
    assert spec_from_config("mixed", "local", cfg) == "meta" and called


def test_qk_norms_keep_their_fp32_inputs_for_backward():
    """A Qwen3 layer saves 4 bytes per q and k element more than the same shapes without q/k norms."""
    from rankwise.advisor.activations import layer_saved_bytes
    from rankwise.advisor.plan import Plan

    qwen3 = load_model("Qwen/Qwen3-8B")
    as_llama = spec_from_config("llama-shaped", "local", {**qwen3.config, "model_type": "llama", "head_dim": 128})
    plan = Plan("lora", r=16, targets="standard")
    extra = layer_saved_bytes(qwen3, plan, qwen3.resolve_targets("standard")) - layer_saved_bytes(
        as_llama, plan, as_llama.resolve_targets("standard"))
    assert extra == 4 * (32 + 8) * 128


@pytest.mark.parametrize("model_id", ["Qwen/Qwen3-8B", "allenai/OLMo-2-1124-7B", "google/gemma-3-1b-it",
                                      pytest.param("Qwen/Qwen3-30B-A3B", marks=pytest.mark.slow)])
def test_advise_on_qk_norm_families_without_torch(model_id):
    out = subprocess.run([sys.executable, "-c", PRELUDE, "advise", "--model", model_id, "--task", "instruction",
                          "--gpu-mem", "24GiB", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    advice = json.loads(out.stdout)
    assert all(e["peak_bytes"] > 0 for e in advice["estimates"].values())
