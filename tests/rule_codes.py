"""Which finding codes the rules declare and the README documents (read, never retyped).

Shared by test_redflags.py and test_ignored.py: a deleted rule, a deleted README line or a
code no table row exercises makes their code tests fail.
"""
import ast
import inspect
import re
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
CODE = re.compile(r"\b[a-z0-9]+(?:-[a-z0-9]+)+\b")


def declared(rules) -> dict[str, set[str]]:
    """rule name → the codes of the `Finding(...)` calls in its source."""
    out = {}
    for rule in rules:
        tree = ast.parse(textwrap.dedent(inspect.getsource(rule)))
        out[rule.__name__] = {node.args[0].value for node in ast.walk(tree)
                              if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Finding"
                              and node.args and isinstance(node.args[0], ast.Constant)}
    return out


def documented() -> set[str]:
    """The codes in the README's `Codes:` paragraph (under `rankwise check`)."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\nCodes: ")
    paragraph = text[start:text.index("\n\n", start + 1)]
    return set(CODE.findall(paragraph))
