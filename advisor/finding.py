"""A finding about a run config: what, how bad, why, and the fix.

Declared apart from the rules so that every rule module (`redflags`, `ignored`) can make
findings without importing another rule module.
Severities: error (the run will crash or cannot work), warning (it will run but is likely
a mistake), info (worth knowing). `patch` holds dotted RunConfig keys whose values apply
the fix (the TUI's "apply fix" key and `--set` use the same keys).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # error | warning | info
    message: str
    why: str
    fix: str
    patch: dict[str, object] | None = None

    def to_dict(self) -> dict:
        from .evidence import rule  # data only

        status, keys = rule(self.code)
        return dict(asdict(self), status=status, citations=list(keys))
