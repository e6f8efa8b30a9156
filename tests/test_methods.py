"""Methods as data: one table (advisor/methods.py) that every surface reads, and no method
name compared anywhere else."""
import ast
from pathlib import Path

import pytest

from rankwise.advisor import methods
from rankwise.advisor.config import METHOD_CHOICES, RunConfig
from rankwise.advisor.memory import Plan, estimate
from rankwise.advisor.methods import METHOD_NAMES, METHODS
from rankwise.advisor.model import load_model
from rankwise.tui import cli
from rankwise.tui.screens.advice_form import FIELDS

ROOT = Path(__file__).resolve().parent.parent
# Files that may spell a method's name: the table itself, and the foreign-config readers,
# whose `adapter: qlora` / `finetuning_type: lora` are axolotl's and LLaMA-Factory's own values.
MAY_SPELL = {"advisor/methods.py"}
MAY_SPELL_UNDER = "advisor/foreign/"  # one module per foreign tool (advisor/foreign.py was split)


def _spelled(path: Path) -> list[tuple[int, str]]:
    """Method names written as string literals in `path` (dict keys aside: `"lora":` is also
    the config section's name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    keys = {id(k) for n in ast.walk(tree) if isinstance(n, ast.Dict) for k in n.keys if k is not None}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and n.value in METHOD_NAMES and id(n) not in keys]


def test_no_method_name_is_spelled_outside_the_table():
    found = []
    for folder in ("advisor", "trainer", "tui"):
        for f in sorted((ROOT / folder).rglob("*.py")):
            rel = f.relative_to(ROOT).as_posix()
            if rel not in MAY_SPELL and not rel.startswith(MAY_SPELL_UNDER):
                found += [f"{rel}:{line}: {name!r}" for line, name in _spelled(f)]
    assert not found, "compare through advisor/methods.py instead:\n" + "\n".join(found)


def test_the_spelling_check_sees_a_comparison(tmp_path):
    """The test above would pass vacuously if it could not see `method == "qlora"`."""
    f = tmp_path / "x.py"
    f.write_text('def f(method):\n    return method == "qlora" or method in ("lora",)\nS = {"lora": 1}\n')
    assert _spelled(f) == [(2, "qlora"), (2, "lora")]


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_method_reaches_schema_cli_and_form(name):
    assert RunConfig(method=name).method == name
    assert name in METHOD_CHOICES and "auto" in METHOD_CHOICES
    parser = cli.build_parser()
    assert parser.parse_args(["estimate", "--method", name]).method == name
    assert parser.parse_args(["check", "x.yaml", "--method", name]).method == name
    assert name in dict((k, c) for k, _, c in FIELDS)["method"]
    assert RunConfig(method=name).resolved_optimizer() == METHODS[name].optimizer


def test_a_name_outside_the_table_is_refused_everywhere():
    with pytest.raises(Exception):
        RunConfig(method="no-such-method")
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["estimate", "--method", "no-such-method"])
    with pytest.raises(Exception) as e:
        estimate(load_model("llama-3.2-1b"), Plan("no-such-method"))
    assert all(n in e.value.hint for n in METHOD_NAMES)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_the_estimator_stores_the_base_as_the_descriptor_says(name):
    spec = load_model("llama-3.1-8b")
    m = METHODS[name]
    est = estimate(spec, Plan(name, optimizer=m.optimizer))
    quantized = sum(l.count * l.d_in * l.d_out for l in spec.linears if l.family != "lm_head")
    if m.quant is None:
        assert est.components["base_weights"] == 2 * spec.total_params and "quant_constants" not in est.components
    else:
        assert est.components["base_weights"] == quantized * m.quant.bits // 8
        rows = sum(l.count * l.d_out for l in spec.linears if l.family != "lm_head")
        assert est.components["quant_constants"] == m.quant.constants_bytes(quantized, True, rows) > 0
    assert any(a.startswith(m.label + ":") for a in est.assumptions)


@pytest.mark.parametrize("gpu,expected", [("16GiB", "qlora"), ("80GiB", "lora")])
def test_the_recommender_takes_lr_and_reasons_from_the_chosen_method(gpu, expected):
    from rankwise.advisor.coupling import learning_rate
    from rankwise.advisor.hardware import planned
    from rankwise.advisor.recommend import advise

    # Llama 3.1 8B: 16 GB of 16-bit weights alone overflow a 16 GiB card; on 80 GiB LoRA fits.
    # The learning rate is the same for LoRA and QLoRA (issue 18: QLoRA's recipe set it by model
    # size, not by quantization): advisor/coupling.py, 2e-4 for 8B at alpha 32.
    spec = load_model("llama-3.1-8b")
    a = advise(spec, planned(gpu), "chat")
    assert a.method == expected
    m = METHODS[a.method]
    assert a.config.train.lr == learning_rate(spec.total_params, a.config.lora.r) == 2e-4
    assert a.reasons["train.lr"].startswith(m.label + ":")
    assert a.reasons["train.optimizer"] == "auto: " + m.optimizer_why


def test_leanest_and_default_are_table_members():
    assert methods.DEFAULT in METHODS and methods.LEANEST in methods.COMPARED
    assert METHODS[methods.LEANEST].quantized and not METHODS[methods.DEFAULT].quantized
