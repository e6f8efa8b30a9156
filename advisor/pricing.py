"""What a GPU-hour costs: `--price`, else the user's config file, else a default per named GPU.

The user config is `~/.config/rankwise/config.yaml` (or `$XDG_CONFIG_HOME/rankwise/config.yaml`),
read with yaml.safe_load:

    prices:            # per GPU-hour, in your currency
      H100-80GB: 2.10
      A100-80GB: 1.20
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from .errors import RankwiseError
from .hardware import GPU_SPEED, speed_of

# On-demand list prices per GPU-hour in USD, as public cloud price pages listed them in 2025
# (Lambda's and RunPod's GPU pricing pages; AWS g4dn/g5/g6 per-GPU shares for T4/A10G/L4).
# Prices move: these are only a default, and the user config or --price replaces them. A named GPU without a list
# price here (a desktop card, or one those pages did not list) has no cost figure until --price gives one.
DEFAULT_PRICES: dict[str, float] = {
    "T4": 0.53, "V100-16GB": 0.50, "V100-32GB": 0.60, "RTX3090": 0.22, "RTX4090": 0.69, "RTX5090": 0.89,
    "A10G": 1.01, "A10": 0.75, "L4": 0.80, "L40S": 0.86, "RTXA6000": 0.80, "A40": 0.40, "RTX6000ADA": 0.77,
    "A100-40GB": 1.29, "A100-80GB": 1.79, "H100-80GB": 2.99, "H100-94GB": 2.79, "H200": 3.59, "B200": 5.99,
    "MI300X": 2.49,
}
PRICE_SOURCE = "default list price (2025 cloud on-demand); set --price or prices: in the user config"


def user_config_path() -> Path:
    root = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(root) / "rankwise" / "config.yaml"


def user_prices(path: Path | None = None) -> dict[str, float]:
    """`prices:` of the user config ({} when there is no file). A bad file is an error that names it."""
    path = path or user_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise RankwiseError(f"{path}: cannot read ({e.strerror})", "fix its permissions or remove it") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise RankwiseError(f"{path}: not valid YAML ({str(e).splitlines()[0]})",
                            "see `prices:` in the README") from None
    prices = data.get("prices", {}) if isinstance(data, dict) else None
    if not isinstance(prices, dict):
        raise RankwiseError(f"{path}: `prices` must be a mapping of GPU name to price per GPU-hour",
                            "e.g. prices: {H100-80GB: 2.10}")
    out = {}
    for name, value in prices.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise RankwiseError(f"{path}: prices.{name} = {value!r} is not a price", "give a number ≥ 0 per GPU-hour")
        known, _ = speed_of(str(name))
        out[known or str(name)] = float(value)
    return out


def price_for(device: str, price: float | None = None, path: Path | None = None) -> tuple[float | None, str]:
    """(price per GPU-hour, where it came from) for a device the time planner named; None on the CPU."""
    if price is not None:
        if price < 0:
            raise RankwiseError(f"--price {price}: a price cannot be negative",
                                "give the price per GPU-hour, e.g. 2.50")
        return price, "--price"
    if device == "cpu":
        return None, "no GPU"
    mine = user_prices(path)
    if device in mine:
        return mine[device], str(path or user_config_path())
    if device in GPU_SPEED and device in DEFAULT_PRICES:
        return DEFAULT_PRICES[device], PRICE_SOURCE
    return None, "no price for this GPU: give --price"
