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


def test_dependency_direction():
    """tui -> trainer -> advisor: advisor imports neither; trainer never imports tui."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    heavy = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "textual")
    for f in (root / "advisor").glob("*.py"):
        for mod in _imports(f):
            assert not mod.startswith(("rankwise.trainer", "rankwise.tui")), f"{f.name} imports {mod}"
            if f.name != "meta.py":  # the meta-device reader defers torch into its one function
                assert mod.split(".")[0] not in heavy, f"advisor/{f.name} imports {mod}"
    for f in (root / "trainer").glob("*.py"):
        for mod in _imports(f):
            assert not mod.startswith("rankwise.tui"), f"trainer/{f.name} imports {mod}"
