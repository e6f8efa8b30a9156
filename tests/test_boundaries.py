"""The advice path never imports torch or textual (it must answer in well under a second)."""
import pkgutil
import subprocess
import sys

import rankwise.advisor


def test_advisor_modules_import_no_heavy_packages():
    mods = [m.name for m in pkgutil.iter_modules(rankwise.advisor.__path__)]
    code = ("import sys, importlib\n"
            f"for m in {mods!r}: importlib.import_module('rankwise.advisor.' + m)\n"
            "bad = [m for m in ('torch', 'transformers', 'peft', 'bitsandbytes', 'textual') if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_help_imports_no_torch():
    code = ("import sys\nfrom rankwise.tui import cli\ncli.build_parser()\n"
            "print(','.join(m for m in ('torch', 'transformers', 'peft', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _imports(path):
    """Every module a file imports, deferred (in-function) imports included."""
    import ast

    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package folder name
                yield "rankwise." + path.parent.name + ("." + node.module if node.module else "")
            elif node.module:
                yield node.module


UP_INTO_TUI = ("rankwise.tui", "tui.cli")  # a module path of the UI layer, e.g. `python -m rankwise.tui.cli`


def _named_modules(source: str, names: tuple[str, ...] = UP_INTO_TUI) -> list[str]:
    """String constants (f-string parts included, docstrings not) that name one of `names`:
    what a subprocess argv or an importlib call would start, which an import scan cannot see."""
    import ast

    tree = ast.parse(source)
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docs and any(name in n.value for name in names)]


def test_the_string_scan_sees_a_cli_started_in_a_subprocess():
    """What trainer/sweep.py did before trainer/start.py: the import scan passed it."""
    old_sweep = ('"""Starts trials (not rankwise.tui itself)."""\nimport subprocess, sys\n'
                 'def launch(run):\n'
                 '    cli = [sys.executable, "-m", "rankwise.tui.cli", "train", "--detach"]\n'
                 '    return subprocess.run(cli + [f"--runs-dir={run}"], capture_output=True)\n')
    assert _named_modules(old_sweep) == ["rankwise.tui.cli"]  # the docstring is prose, not a call
    assert _named_modules('run(["python", "-m", "rankwise.advisor.hw"])') == []


def test_dependency_direction():
    """tui -> trainer -> advisor: advisor imports neither; trainer never imports tui, and never
    names it in a string either (no `python -m rankwise.tui.cli` in a subprocess)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    heavy = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "textual")
    for f in (root / "advisor").rglob("*.py"):  # advisor/foreign/ too
        for mod in _imports(f):
            assert not mod.startswith(("rankwise.trainer", "rankwise.tui")), f"{f.name} imports {mod}"
            if f.name != "meta.py":  # the meta-device reader defers torch into its one function
                assert mod.split(".")[0] not in heavy, f"advisor/{f.name} imports {mod}"
        named = _named_modules(f.read_text(), UP_INTO_TUI + ("rankwise.trainer", "trainer.worker"))
        assert not named, f"advisor/{f.name} names {named}"
    for f in (root / "trainer").rglob("*.py"):
        for mod in _imports(f):
            assert not mod.startswith("rankwise.tui"), f"trainer/{f.name} imports {mod}"
        assert not _named_modules(f.read_text()), f"trainer/{f.name} names {_named_modules(f.read_text())}"


def test_import_linter_contracts_hold():
    """The same direction through import-linter (pyproject.toml [tool.importlinter]): it resolves
    the package-dir mapping when the three packages are its roots, and sees deferred imports too."""
    import pytest

    pytest.importorskip("importlinter")
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = "from importlinter.cli import lint_imports\nraise SystemExit(lint_imports(no_cache=True, no_logo=True))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "tui -> trainer -> advisor KEPT" in out.stdout and "0 broken" in out.stdout
