"""train.loss: chunked (trainer/chunked_loss.py): transformers' causal-LM loss and gradients exactly, an eighth of the
logits at a time in fp32; what it holds, measured live on the CPU against the estimate; the schema, the estimate
flag, axolotl's key; and a real run whose losses match the standard loss's."""
import json
import subprocess
import sys

import pytest
import torch
from train_helpers import events, of_type, only_run, tail_log, train
from transformers.loss.loss_utils import ForCausalLMLoss

from rankwise.advisor.activations import chunked_loss_bytes
from rankwise.advisor.config import RunConfig
from rankwise.advisor.foreign import read
from rankwise.advisor.memory import Plan, estimate
from rankwise.advisor.model import load_model
from rankwise.trainer.chunked_loss import chunked_causal_lm_loss

V = 97


def _batch(dtype, b=3, s=17):
    torch.manual_seed(0)
    logits = torch.randn(b, s, V, dtype=dtype).requires_grad_()
    labels = torch.randint(0, V, (b, s))
    labels[0, :5] = -100  # a prompt's tokens, not supervised
    labels[2, -3:] = -100
    return logits, labels


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("items", [None, 23])
@pytest.mark.parametrize("chunks", [1, 4, 8, 50])  # 50 pieces of 51 rows: uneven, some of one row
def test_the_loss_and_its_gradient_are_transformers(dtype, items, chunks):
    logits, labels = _batch(dtype)
    n = None if items is None else torch.tensor(items)
    want = ForCausalLMLoss(logits, labels, V, num_items_in_batch=n)
    (grad_want,) = torch.autograd.grad(want, logits)
    got = chunked_causal_lm_loss({"logits": logits}, labels, num_items_in_batch=n, chunks=chunks)
    (grad_got,) = torch.autograd.grad(got, logits)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert grad_got.dtype == logits.dtype
    assert torch.allclose(grad_got.float(), grad_want.float(), atol=1e-6 if dtype == torch.float32 else 1e-2)


def test_what_it_holds_is_what_the_estimate_counts_measured_live():
    """Live bytes over the loss's forward and backward (torch's profiler on the CPU: the same tensors a GPU would
    allocate), beyond the 16-bit logits themselves: transformers' loss holds 12 bytes a logit (3 fp32 copies at
    its backward), the chunked one 3 (the 16-bit gradient and an eighth of the rows' fp32 work). The estimate's
    chunked figure, with the logits, is 2 + 3."""
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import MemoryProfileTimeline

    b, s, vocab = 2, 256, 8000
    labels = torch.randint(0, vocab, (b, s))

    def extra(fn) -> float:
        logits = torch.randn(b, s, vocab, dtype=torch.bfloat16).requires_grad_()
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                     with_stack=True) as prof:
            fn(logits).backward()
        _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
        live = [sum(x) for x in sizes]
        return (max(live) - live[0]) / (b * s * vocab)

    standard = extra(lambda logits: ForCausalLMLoss(logits, labels, vocab))
    chunked = extra(lambda logits: chunked_causal_lm_loss({"logits": logits}, labels))
    spec = load_model("llama-3.1-8b")
    per_logit = chunked_loss_bytes(spec, Plan("lora", loss="chunked")) / spec.vocab_size
    assert standard == pytest.approx(12, rel=0.02)
    assert chunked + 2 == pytest.approx(per_logit, rel=0.05) and per_logit == 5


def test_the_estimate_counts_it_and_the_flag_writes_it_down():
    spec = load_model("llama-3.1-8b")
    plan = Plan("lora", seq_len=8192, loss="chunked")
    est, std = estimate(spec, plan), estimate(spec, Plan("lora", seq_len=8192))
    assert est.components["logits_loss"] == 8192 * chunked_loss_bytes(spec, plan) < std.components["logits_loss"] / 2
    assert any("loss: chunked" in a for a in est.assumptions)
    base = [sys.executable, "-m", "rankwise.tui.cli", "estimate", "--model", "llama-3.1-8b", "--seq", "8192",
            "--gpu-mem", "80GiB", "--json"]
    d = json.loads(subprocess.run(base + ["--loss", "chunked"], capture_output=True, text=True, timeout=120).stdout)
    assert d["plan"]["loss"] == "chunked" and d["peak_bytes"] == est.peak_bytes
    bad = subprocess.run(base + ["--loss", "chunked", "--kernels", "liger"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "disagree" in bad.stderr


def test_chunked_with_liger_is_bad_input():
    with pytest.raises(ValueError, match="fused already"):
        RunConfig.model_validate({"train": {"loss": "chunked", "kernels": "liger"}})
    assert Plan.from_config(RunConfig.model_validate({"train": {"loss": "chunked"}})).loss == "chunked"


@pytest.mark.parametrize("extra,loss,said", [("chunked_cross_entropy: true\n", "chunked", False),
                                             ("chunked_cross_entropy: true\nchunked_cross_entropy_num_chunks: 16\n",
                                              "chunked", True),
                                             ("", "standard", False)])
def test_axolotls_chunked_cross_entropy_maps_to_it(tmp_path, extra, loss, said):
    f = tmp_path / "axolotl.yaml"
    f.write_text("base_model: meta-llama/Llama-3.1-8B\nadapter: lora\nsequence_len: 4096\n" + extra)
    r = read(f)
    assert r.cfg.train.loss == loss
    assert any("loss chunks" in s.message for s in r.said) == said


@pytest.mark.slow
def test_a_run_with_the_chunked_loss_trains_with_the_standard_losses(tmp_path):
    """The same preset, seed and data: the chunked loss logs the standard loss's values (fp32 on the CPU)."""
    logged = {}
    for loss in ("standard", "chunked"):
        runs = tmp_path / loss
        p = train(runs, "--set", f"train.loss={loss}")
        run = only_run(runs)
        assert p.returncode == 0, p.stderr[-2000:] + tail_log(run)
        logged[loss] = [e["loss"] for e in of_type(events(run), "step") if e.get("loss") is not None]
        assert of_type(events(run), "end")[-1]["status"] == "finished"
    assert len(logged["chunked"]) == len(logged["standard"]) >= 3
    assert logged["chunked"] == pytest.approx(logged["standard"], rel=1e-3)


def test_a_run_that_the_chunked_loss_alone_fits_is_told_so_first():
    """Llama-3.1-8B LoRA at 8192 tokens: ~32 GiB with transformers' loss, ~23 GiB chunked. On 28 GiB the
    chunked loss alone fits, and costs nothing in quality, so it is the fix check gives (before QLoRA)."""
    from rankwise.advisor import fit
    from rankwise.advisor.config import with_values
    from rankwise.advisor.hardware import resolve
    from rankwise.advisor.redflags import check

    spec, hw = load_model("llama-3.1-8b"), resolve("28GiB", None, None)
    cfg = with_values(RunConfig(), {"model.name": "llama-3.1-8b", "method": "lora", "train.max_seq_len": 8192})
    fixes = {s["change"].split(":")[0]: s for s in fit.suggest_fixes(spec, hw, cfg, "lora")}
    assert fixes["chunked loss"]["fit"] == "fits" and fixes["chunked loss"]["saves_gib"] > 6
    wont = next(f for f in check(cfg, spec, hw) if f.code == "wont-fit")
    assert wont.patch == {"train.loss": "chunked"} and wont.fix.startswith("chunked loss")


def test_the_oom_message_offers_the_chunked_loss_with_what_it_saves():
    """After the last OOM retry the worker lists what to change: the chunked loss first where the standard one
    ran, with the GiB the estimate says it saves (the loss's bytes a logit, 12 -> 5 on this stack)."""
    from rankwise.trainer.oom import oom_message

    spec = load_model("llama-3.1-8b")
    std, chunked = estimate(spec, Plan("lora", seq_len=8192)), estimate(spec, Plan("lora", seq_len=8192, loss="chunked"))
    text = oom_message(std, 24 * 2 ** 30, 1, 8, 2, RunConfig.model_validate({"method": "lora"}))
    saved = (std.components["logits_loss"] - chunked.components["logits_loss"]) / 2 ** 30
    assert f"train.loss: chunked (the same loss, its fp32 work a chunk at a time, ~{saved:.1f} GiB less" in text
    already = oom_message(chunked, 24 * 2 ** 30, 1, 8, 2,
                          RunConfig.model_validate({"method": "lora", "train": {"loss": "chunked"}}))
    assert "train.loss: chunked" not in already
