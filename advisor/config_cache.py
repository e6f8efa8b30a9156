"""Fetched config.json files: the one download rankwise makes, and only when asked.

For a Hugging Face id that no local folder, HF cache, catalog entry or model-index entry knows,
`--fetch-config` fetches just that repository's `config.json` (a few KB: no weights, no
tokenizer, no hub library) over plain HTTP and keeps it in a cache folder, so later runs read it
offline without the flag. Nothing is fetched when the environment says offline
(HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE or RANKWISE_OFFLINE set to a true value).

The folder is $RANKWISE_CACHE/model-configs, else `<runs dir>/.model-configs` (the runs dir is the
one place the user chose for rankwise to write; default ./runs). The server is $HF_ENDPOINT, else
https://huggingface.co; $HF_TOKEN, when set, is sent for gated repositories.

The CLI calls `configure` once per command (the flag and the runs dir); `model.load_model` asks
`cached` at every resolution and `fetch` last, when the flag was given.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from .errors import RankwiseError

# transformers 5 writes the floats JSON cannot hold as {"__float__": "Infinity"} (configuration_utils.py
# `_encode_special_floats`: Nemotron-H's time_step_limit [0.0, inf]) and decodes them on load; so does `config_json`
SPECIAL_FLOATS = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
CACHE_DIR = ".model-configs"  # inside the runs directory
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "RANKWISE_OFFLINE")
DEFAULT_ENDPOINT = "https://huggingface.co"
MAX_BYTES = 1 << 20  # a config.json is a few KB; anything bigger is not one
TIMEOUT_S = 15
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")

_settings = {"enabled": False, "runs_dir": None}


def configure(enabled: bool, runs_dir: str | Path | None = None) -> None:
    """Set by the CLI for one command: whether --fetch-config was given, and the runs dir."""
    _settings["enabled"] = bool(enabled)
    _settings["runs_dir"] = runs_dir


def enabled() -> bool:
    return _settings["enabled"]


def cache_root() -> Path:
    if os.environ.get("RANKWISE_CACHE"):
        return Path(os.environ["RANKWISE_CACHE"]).expanduser() / "model-configs"
    return Path(_settings["runs_dir"] or "runs").expanduser() / CACHE_DIR


def offline_reason() -> str | None:
    """The variable that says offline, or None."""
    for var in OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return var
    return None


def is_model_id(name: str) -> bool:
    """`org/name` as Hugging Face spells ids (no path tricks: nothing but letters, digits, _ . -)."""
    return bool(_ID.match(name)) and ".." not in name


def _path(model_id: str) -> Path:
    return cache_root() / model_id.replace("/", "--") / "config.json"


def cached(name: str) -> Path | None:
    """The config.json fetched earlier for `name`, or None (reads the cache only)."""
    if not is_model_id(name):
        return None
    path = _path(name)
    return path if path.is_file() else None


def fetch(model_id: str) -> Path:
    """Fetch `model_id`'s config.json into the cache; RankwiseError when it cannot."""
    import urllib.error
    import urllib.request

    if not is_model_id(model_id):
        raise RankwiseError(f"{model_id!r} is not a Hugging Face model id", "ids look like org/name")
    var = offline_reason()
    if var:
        raise RankwiseError(f"unknown model {model_id!r}, and {var} is set: config.json not fetched",
                            f"unset {var} to let --fetch-config fetch it, or pass a local folder")
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    url = f"{endpoint}/{model_id}/resolve/main/config.json"
    headers = {"User-Agent": "rankwise (config.json only)"}
    if os.environ.get("HF_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['HF_TOKEN']}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S) as resp:
            body = resp.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as e:
        hint = ("a gated or private repository: set HF_TOKEN to a token with access" if e.code in (401, 403)
                else "check the id's spelling on the Hub")
        raise RankwiseError(f"fetching {url}: HTTP {e.code}", hint) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise RankwiseError(f"fetching {url}: {reason}", "check the network, or set HF_ENDPOINT to a mirror") from None
    if len(body) > MAX_BYTES:
        raise RankwiseError(f"{url}: over {MAX_BYTES} bytes, not a config.json")
    try:
        data = config_json(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RankwiseError(f"{url}: not valid JSON", "is this a transformers model repository?") from None
    if not isinstance(data, dict) or "model_type" not in data:
        raise RankwiseError(f"{url}: no model_type in it", "is this a transformers model repository?")
    path = _path(model_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def _special_float(obj: dict):
    tag = obj.get("__float__") if len(obj) == 1 else None
    return SPECIAL_FLOATS[tag] if isinstance(tag, str) and tag in SPECIAL_FLOATS else obj


def config_json(text: str):
    """A config.json's text parsed as transformers reads it: its tagged special floats decoded. Raises ValueError
    (json.JSONDecodeError) on text that is not JSON."""
    return json.loads(text, object_hook=_special_float)
