"""A DeepSpeed JSON config (`distributed.deepspeed_config`): what rankwise reads from it, and what it refuses.

The file goes to accelerate as it is (trainer/launch.py writes `deepspeed_config_file` into the run's
accelerate.yaml), so DeepSpeed runs its zero_optimization settings and the HF Trainer fills its "auto" values.
The estimate reads what changes memory:

- `stage`: rankwise's DeepSpeed strategy is ZeRO-3; a stage 0/1/2 file is refused here (stage 1/2 shard only
  optimizer states and gradients, which rankwise does not estimate).
- `offload_param` / `offload_optimizer` (`device` cpu or nvme): distributed.offload params or
  params_and_optimizer. The optimizer alone (no offload_param) has no rankwise mode: estimated without offload
  (the states counted on the GPU, an over-estimate), said.
- `reduce_bucket_size` and `stage3_prefetch_bucket_size` (elements): ZeRO-3's gradient bucket and parameter
  prefetch (advisor/sharding.py). "auto" is filled from the model's hidden size as transformers'
  `HfTrainerDeepSpeedConfig.trainer_config_finalize` and accelerate's `_prepare_deepspeed` fill it:
  hidden_size**2 and int(0.9 * hidden_size**2) (transformers 5.25 integrations/deepspeed.py L234-240; accelerate
  1.16 accelerator.py L2286-2288). Unset: DeepSpeed's defaults, 5e8 and 5e7 (sharding.DS_*).
- `stage3_max_live_parameters` (also spelt `max_live_parameters`, DeepSpeed's field name with its alias): the
  prefetcher fetches at most this many elements beyond those gathered (partitioned_param_coordinator.py
  `max_params_to_prefetch = min(max_n_available_params - n_available_params, prefetch_bucket_sz)`): 0, as
  axolotl's offload configs set it, turns the prefetch off. Default 1e9.
- `bf16.enabled` / `fp16.enabled` when not "auto": they must agree with train.precision (transformers refuses a
  mismatch when the run starts; rankwise says it before).
- An `optimizer` or `scheduler` section: the HF Trainer lets DeepSpeed build that one from the file in place of
  its own (`deepspeed_optim_sched`), so train.optimizer / train.scheduler go unused (said: ignored-by-deepspeed)
  and the estimate counts DeepSpeed's Adam/AdamW, two fp32 moments a trained weight (adamw_torch's bytes).

Plain JSON (json.loads): nothing in the file is executed. No torch here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from .errors import RankwiseError

FILE_MAX = 1 << 20  # bytes: a DeepSpeed JSON is a few hundred; anything larger is not one
DS_MAX_LIVE = 1_000_000_000  # stage3_max_live_parameters default (DeepSpeed zero/config.py, pp_int(1e9))
OFFLOAD_DEVICES = ("cpu", "nvme")
KEY = "distributed.deepspeed_config"


class Zero12(NamedTuple):
    """DeepSpeed ZeRO-1/2 as a foreign config or launcher sets it (Reading.zero, Launch.zero): rankwise trains it as
    DDP, and the estimate adds what DeepSpeed holds beside (full_ft.zero_bucket_bytes)."""

    stage: int
    reduce_bucket: int | str | None = None  # elements, "auto", or None (DeepSpeed's default)
    overlap: bool = False  # overlap_comm: a second reduce bucket
    contiguous: bool = True  # contiguous_gradients (DeepSpeed's default): the buckets are allocated at full size


@dataclass(frozen=True)
class DsFile:
    """What the estimate and the launcher take from a DeepSpeed JSON."""

    path: str
    stage: int | None
    offload_param: bool
    offload_optimizer: bool
    nvme: bool
    reduce_bucket: int | str | None  # elements, "auto", or None (DeepSpeed's default)
    prefetch_bucket: int | str | None
    max_live: int | None
    bf16: bool | str | None  # bf16.enabled: True / False / "auto" / None (absent)
    fp16: bool | str | None
    overlap: bool = False  # zero_optimization.overlap_comm (ZeRO-1/2: two reduce buckets)
    contiguous: bool = True  # zero_optimization.contiguous_gradients (ZeRO-1/2's buckets, DeepSpeed's default on)
    optimizer: str | None = None  # the "optimizer" section's type: DeepSpeed builds it in place of the HF one
    scheduler: str | None = None  # the "scheduler" section's type: likewise for the learning-rate schedule

    @property
    def offload(self) -> str:
        """As distributed.offload (the optimizer alone has no rankwise mode: none)."""
        if self.offload_param:
            return "params_and_optimizer" if self.offload_optimizer else "params"
        return "none"


def load_json(path: Path) -> dict:
    """The file as a dict, or RankwiseError naming the file and what is wrong with it (callers say which setting
    named it: `read`, and the foreign readers' `deepspeed:` notes)."""
    try:
        if path.stat().st_size > FILE_MAX:
            raise RankwiseError(f"{path} is over {FILE_MAX // 1024} KiB, not a DeepSpeed config",
                                "point it at a DeepSpeed JSON config (zero_optimization and the like)")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RankwiseError(f"{path} not found",
                            "a relative path in a preset is resolved against the preset's folder, one given on the "
                            "command line against the current directory") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RankwiseError(f"{path} could not be read as JSON ({type(e).__name__}: {e})",
                            "fix the file, or unset distributed.deepspeed_config") from None
    if not isinstance(data, dict):
        raise RankwiseError(f"{path} is not a JSON object", "a DeepSpeed config is an object: {...}")
    return data


def _elements(value, name: str, path: str) -> int | str | None:
    """A bucket size: an int (DeepSpeed also takes 5e8 as a float), "auto", or absent."""
    if value is None or value == "auto":
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise RankwiseError(f"{path}: zero_optimization.{name} {value!r} is not a size",
                        "give a number of elements or \"auto\"")


def device(zero: dict, key: str) -> str:
    """offload_param's / offload_optimizer's device in a zero_optimization section: cpu, nvme or none."""
    sub = zero.get(key)
    return str(sub.get("device", "none")).lower() if isinstance(sub, dict) else "none"


def _enabled(data: dict, section: str) -> bool | str | None:
    sub = data.get(section)
    return sub.get("enabled") if isinstance(sub, dict) else None


def parse(data: dict, path: str) -> DsFile:
    zero = data.get("zero_optimization") if isinstance(data.get("zero_optimization"), dict) else {}
    try:
        stage = int(zero.get("stage", 0))
    except (TypeError, ValueError):
        stage = None
    live = zero.get("stage3_max_live_parameters", zero.get("max_live_parameters"))
    live = _elements(live, "stage3_max_live_parameters", path)
    param, optim = device(zero, "offload_param"), device(zero, "offload_optimizer")
    return DsFile(path, stage, param in OFFLOAD_DEVICES, optim in OFFLOAD_DEVICES, "nvme" in (param, optim),
                  _elements(zero.get("reduce_bucket_size"), "reduce_bucket_size", path),
                  _elements(zero.get("stage3_prefetch_bucket_size", zero.get("prefetch_bucket_size")),
                            "stage3_prefetch_bucket_size", path),
                  live if isinstance(live, int) else None, _enabled(data, "bf16"), _enabled(data, "fp16"),
                  zero.get("overlap_comm") is True, zero.get("contiguous_gradients") is not False,
                  _section_type(data, "optimizer"), _section_type(data, "scheduler"))


def _section_type(data: dict, section: str) -> str | None:
    """An "optimizer" / "scheduler" section's type (the HF Trainer then lets DeepSpeed build it:
    transformers integrations/deepspeed.py `deepspeed_optim_sched`), None without one."""
    sub = data.get(section)
    return str(sub.get("type", "unnamed")) if isinstance(sub, dict) else None


@lru_cache(maxsize=32)
def _read(path: str, _mtime: float, _size: int) -> DsFile:
    return parse(load_json(Path(path)), path)


def read(path: str) -> DsFile:
    """The file at `path` (absolute, as the loader anchors it), ZeRO-3 only; cached while it is unchanged."""
    p = Path(path).expanduser()
    try:
        try:
            st = p.stat()
        except OSError:
            load_json(p)  # raises the not-found message
            raise
        got = _read(str(p), st.st_mtime, st.st_size)
    except RankwiseError as e:
        raise RankwiseError(f"{KEY}: {e.message}", e.hint) from None
    if got.stage != 3:
        raise RankwiseError(f"{KEY}: {path} is ZeRO stage {got.stage}; rankwise's DeepSpeed strategy is ZeRO-3",
                            "set zero_optimization.stage: 3 in the file, or unset distributed.deepspeed_config "
                            "(distributed.strategy ddp for one copy per GPU)")
    return got


def offload(ds: DsFile, configured: str) -> str:
    """distributed.offload as the file decides it; the config may leave it at none or say the same."""
    if configured not in ("none", ds.offload):
        raise RankwiseError(f"distributed.offload {configured}, but {ds.path} offloads "
                            f"{ds.offload.replace('_', ' ')}: the file decides what runs",
                            f"set distributed.offload: {ds.offload}"
                            + (" (or none: the file decides)" if ds.offload != "none" else "")
                            + ", or change the file's offload_param / offload_optimizer")
    return ds.offload


def fill(value: int | str | None, auto: int, default: int) -> int:
    """A bucket size in elements: "auto" as the HF integration fills it, None as DeepSpeed's default."""
    if value == "auto":
        return auto
    return default if value is None else int(value)


def precision_problem(ds: DsFile, mixed_precision: str) -> str | None:
    """Why the file's bf16/fp16 sections disagree with the run's precision ("bf16" | "fp16" | "no"), or None."""
    for section, value in (("bf16", ds.bf16), ("fp16", ds.fp16)):
        if value is True and mixed_precision != section:
            return f"{ds.path} enables {section}, and the run's precision is {mixed_precision}"
    return None
