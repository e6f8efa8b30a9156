"""A run's directory: where it lives, how it is created, what it holds.

```
<runs_dir>/<run-id>/          run id = <name>-<YYYYmmdd-HHMMSS>[-N]
    config.yaml               the resolved RunConfig (absolute model/data paths)
    events.jsonl              the event log (trainer/events.py)
    train.log                 the worker's stdout/stderr, Python logging, library warnings
    checkpoints/checkpoint-N/ HF checkpoints; complete once `.rankwise-complete` is in them
    adapter/                  the final PEFT adapter (safetensors)
    summary.json              what the run did (written at its end)
    deepspeed.json            its copy of distributed.deepspeed_config, when set
    chat_template.jinja       its copy of a model.chat_template file, when one is named
```

Creation is collision-safe: `os.mkdir` (never exist_ok) claims an id, and a second run
started in the same second with the same name gets the next `-N` suffix. The config is
written through a temporary file and a rename, so a reader never sees half of it. No torch.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from rankwise.advisor import chat_templates
from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.loader import parse_yaml, read_text, validate

CONFIG = "config.yaml"
LOG = "train.log"
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
SUMMARY = "summary.json"
MARKER = ".rankwise-complete"
PID = "worker.pid"  # the started process, written at once: a stop reaches a run that is still loading
DEFAULT_RUNS_DIR = "runs"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sanitise(name: str) -> str:
    """A run name safe as one path component: no separators, no `..`, no leading dot."""
    name = _UNSAFE.sub("-", str(name)).replace("..", "-").strip(".-_")
    return name[:60] or "run"


def run_name(cfg: RunConfig, preset: Path | None) -> str:
    return sanitise(cfg.output.name or cfg.name or (preset.stem if preset else "run"))


def runs_root(cfg: RunConfig, flag: str | None) -> Path:
    """`--runs-dir` wins over `output.dir`; both are relative to the current directory."""
    return Path(flag or cfg.output.dir or DEFAULT_RUNS_DIR).expanduser()


def check_writable(root: Path) -> None:
    """The runs dir (or the folder it would be created in) must be writable: fail before writing."""
    probe = root
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise RankwiseError(f"runs dir {root}: {probe} is a file, not a folder",
                            "pass --runs-dir DIR or set output.dir to a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RankwiseError(f"runs dir {root} is not writable ({probe} is read-only for you)",
                            "pass --runs-dir DIR or set output.dir to a folder you can write")


def create(root: Path, name: str, cfg: RunConfig, now: float | None = None) -> Path:
    """Claim a fresh `<root>/<name>-<timestamp>[-N]/` and write its config.yaml."""
    check_writable(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RankwiseError(f"cannot create runs dir {root}: {e.strerror}", "pass --runs-dir DIR") from None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = f"{sanitise(name)}-{stamp}"
    for n in range(1, 1000):
        run_dir = root / (base if n == 1 else f"{base}-{n}")
        try:
            os.mkdir(run_dir)
        except FileExistsError:
            continue
        except OSError as e:
            raise RankwiseError(f"cannot create run dir {run_dir}: {e.strerror}", "pass --runs-dir DIR") from None
        if cfg.distributed.deepspeed_config:  # the run keeps its own copy: a resume runs what the run started with
            kept = keep_deepspeed_config(run_dir, cfg.distributed.deepspeed_config)
            cfg = cfg.model_copy(update={"distributed": cfg.distributed.model_copy(
                update={"deepspeed_config": str(kept)})})
        if chat_templates.is_path(cfg.model.chat_template):  # its own copy too: chat, merge and a resume read it
            kept = run_dir / TEMPLATE_COPY
            write_atomic(kept, Path(cfg.model.chat_template).expanduser().read_text(encoding="utf-8"))
            cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"chat_template": str(kept)})})
        write_atomic(run_dir / CONFIG, cfg.to_yaml())
        return run_dir
    raise RankwiseError(f"could not claim a run id for {base} in {root}", "remove old runs or change output.name")


DS_COPY = "deepspeed.json"  # the run's own copy of distributed.deepspeed_config
TEMPLATE_COPY = "chat_template.jinja"  # the run's own copy of a model.chat_template file


def keep_deepspeed_config(run_dir: Path, path: str) -> Path:
    """`<run_dir>/deepspeed.json`: the DeepSpeed JSON the run trains with, copied once (a later call keeps the
    copy: a resume runs the settings the run started with even if the original is edited or moved)."""
    copy = Path(run_dir).resolve() / DS_COPY
    if not copy.exists():
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise RankwiseError(f"distributed.deepspeed_config {path}: {e.strerror}",
                                "point it at the DeepSpeed JSON the run should use") from None
        write_atomic(copy, text)
    return copy


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def load_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / CONFIG
    data, lines = parse_yaml(read_text(path, "run config"), str(path))
    return validate(data, str(path), lines)


def mark_complete(checkpoint: Path) -> None:
    """Written after HF finished saving: only marked checkpoints are ever resumed from."""
    fd = os.open(checkpoint / MARKER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, f"{time.time():.3f}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    dfd = os.open(checkpoint, os.O_RDONLY)  # make the marker's directory entry durable too
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def complete_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint that has its marker, oldest first."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _CHECKPOINT.match(p.name)
        if m and (p / MARKER).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None
