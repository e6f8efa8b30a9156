"""The user's keymap: `keys:` in the user config.

Every binding has an id (`screen.action`); `keys:` in `~/.config/rankwise/config.yaml` maps ids to
keys (Textual's keymap: `App.set_keymap`), e.g.

    keys:
      app.presets: f3          # Presets on F3 instead of ^o
      runs.stop: k,x           # several keys, comma-separated

An unknown id or a value that is not a key string is an error naming the file (exit 2): a
misspelt id would otherwise do nothing, silently.
"""
from __future__ import annotations

from pathlib import Path

from rankwise.advisor.errors import RankwiseError, closest


def user_keymap(known: dict[str, str], path: Path | None = None) -> dict[str, str]:
    """`keys:` of the user config ({} without a file or section), checked against the binding ids
    `known` (app.binding_ids())."""
    import yaml

    from rankwise.advisor.pricing import user_config_path

    path = path or user_config_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise RankwiseError(f"{path}: cannot read ({e.strerror})", "fix its permissions or remove it") from None
    except yaml.YAMLError as e:
        raise RankwiseError(f"{path}: not valid YAML ({str(e).splitlines()[0]})", "see `keys:` in the README") from None
    keys = data.get("keys", {}) if isinstance(data, dict) else None
    if keys is None:
        keys = {}
    if not isinstance(keys, dict):
        raise RankwiseError(f"{path}: `keys` must be a mapping of binding id to keys",
                            "e.g. keys: {app.presets: f3}; F1 in the TUI lists the keys")
    out = {}
    for bid, value in keys.items():
        if str(bid) not in known:
            near = closest(str(bid), list(known))
            raise RankwiseError(f"{path}: keys.{bid}: no such binding id",
                                (f"did you mean {', '.join(near)}? " if near else "")
                                + "the ids are listed in the README (The TUI: keys)")
        if not isinstance(value, str) or not value.strip() or any(not k.strip() for k in value.split(",")):
            raise RankwiseError(f"{path}: keys.{bid} = {value!r} is not a key",
                                "give Textual key names, e.g. f3, ctrl+t, k (several: k,x)")
        out[str(bid)] = ",".join(k.strip() for k in value.split(","))
    return out
