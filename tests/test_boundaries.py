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
