"""The event log: the one contract between a training process and everything that shows it.

A run's trainer appends one JSON object per line to `runs/<id>/events.jsonl`. The headless
panel, `rankwise attach`, `rankwise runs`, the TUI, the sweep and scripts only ever read this
file. No torch here: readers must stay light.

Every event has `type` and `time` (unix seconds); the classes below declare, once, the fields
of each type. The writer (`EventSink.emit`) and the reader (`parse_line`, `read_events`,
`Tail`, `typed`) both go through them:

- writing, a field the class does not declare, or a value of the wrong type, is a programming
  error (TypeError); a line holds `type`, `time`, then the fields given, in the order given;
- reading, a field of the wrong type (a hand-edited or damaged log) is dropped, never trusted,
  so a viewer cannot crash on it; a line that is not a JSON object with a string `type` is
  skipped. Fields a newer writer adds pass through; events of an unknown type are kept as
  dicts and have no class (`typed` returns None for them).
"""
from __future__ import annotations

import json
import math
import numbers
import os
import time
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

EVENTS_FILE = "events.jsonl"
END_STATUSES = ("finished", "interrupted", "failed")
PID = {"min": 1, "max": 2 ** 31 - 1}  # a "pid" outside this is damage, not a process


@dataclass(frozen=True, kw_only=True)
class Event:
    type: ClassVar[str] = ""
    time: float | None = None

    def to_dict(self) -> dict:
        """The JSON shape, as the log line holds it: `type`, then the fields that are set."""
        return {"type": self.type, **{k: v for k, v in asdict(self).items() if v is not None}}


@dataclass(frozen=True, kw_only=True)
class Start(Event):
    """Training begins in this process (a resumed run, or an OOM-free restart, appends a new one)."""

    type: ClassVar[str] = "start"
    run_id: str | None = None
    pid: int | None = field(default=None, metadata=PID)
    model: str | None = None
    method: str | None = None
    device: str | None = None
    device_total_bytes: int | None = None  # null on CPU
    max_steps: int | None = None
    epochs: float | None = None
    micro_batch: int | None = None
    grad_accum: int | None = None
    estimate_peak_gib: float | None = None
    resumed_from_step: int | None = None
    train_rows: int | None = None
    val_rows: int | None = None
    processes: int | None = None  # training processes (accelerate launch); 1 for a plain run
    sharded: bool | None = None  # FSDP or DeepSpeed shards the model over them
    truncated_rows: int | None = None
    skipped_rows: int | None = None
    train_tokens: int | None = None  # tokens in the training examples
    supervised_tokens: int | None = None  # ... of them with a label (trained on): the doctor's masked-share check
    planned_s: float | None = None  # the time planner's seconds for the training steps (advisor/time.py): the ETA before step 1
    device_name: str | None = None  # the GPU's name (NVML/torch) or "cpu": which runs calibrate which plans


@dataclass(frozen=True, kw_only=True)
class Step(Event):
    """One logged optimizer step."""

    type: ClassVar[str] = "step"
    step: int | None = None
    max_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    mem_bytes: int | None = None  # CUDA reserved on a GPU; process RSS on CPU
    peak_mem_bytes: int | None = None
    eta_s: float | None = None
    gpu_mem_bytes: list[int] | None = None  # several GPUs: memory in use on each local GPU (NVML)


@dataclass(frozen=True, kw_only=True)
class Eval(Event):
    type: ClassVar[str] = "eval"
    step: int | None = None
    eval_loss: float | None = None
    runtime_s: float | None = None  # seconds the evaluation took (HF's eval_runtime): the calibration leaves it out


@dataclass(frozen=True, kw_only=True)
class Checkpoint(Event):
    """A complete checkpoint (its marker written): what `--resume` continues from."""

    type: ClassVar[str] = "checkpoint"
    step: int | None = None
    path: str | None = None


@dataclass(frozen=True, kw_only=True)
class Retry(Event):
    """A CUDA OOM: the run restarts from its last checkpoint with half the micro-batch."""

    type: ClassVar[str] = "retry"
    attempt: int | None = None
    reason: str | None = None
    micro_batch: int | None = None
    grad_accum: int | None = None
    from_step: int | None = None


@dataclass(frozen=True, kw_only=True)
class Log(Event):
    type: ClassVar[str] = "log"
    level: str | None = None  # info | warning | error
    message: str | None = None


@dataclass(frozen=True, kw_only=True)
class End(Event):
    """The last event of a process; a run that dies without one was killed (see trainer/runs.py)."""

    type: ClassVar[str] = "end"
    status: str | None = None  # one of END_STATUSES
    step: int | None = None
    final_loss: float | None = None
    best_eval_loss: float | None = None
    peak_mem_bytes: int | None = None
    adapter_path: str | None = None
    exit_code: int | None = None


@dataclass(frozen=True, kw_only=True)
class Error(Event):
    """A failure the user should read; an `end` with status failed follows."""

    type: ClassVar[str] = "error"
    message: str | None = None
    hint: str | None = None


@dataclass(frozen=True, kw_only=True)
class Diagnosis(Event):
    """The run doctor (advisor/doctor.py) saw a problem: written once per code, when it first fires."""

    type: ClassVar[str] = "diagnosis"
    code: str | None = None  # one of advisor.doctor.CODES
    severity: str | None = None  # error | warning | info
    step: int | None = None  # where it was first seen
    message: str | None = None
    why: str | None = None
    fix: str | None = None
    evidence: dict | None = None  # the numbers that triggered it
    patch: dict | None = None  # dotted config keys that apply the fix


@dataclass(frozen=True, kw_only=True)
class Adapters(Event):
    """Which LoRA adapters the model's forward used, seen in their gradients over the first optimizer steps
    (trainer/callbacks.py AdapterUse): written once. The run doctor reads it (adapter-unused)."""

    type: ClassVar[str] = "adapters"
    step: int | None = None  # the optimizer step it was decided at (after ADAPTER_WATCH_STEPS, or the last)
    adapters: int | None = None  # adapted modules
    unused: dict | None = None  # module name -> [its adapters that got no gradient, its adapters]


@dataclass(frozen=True, kw_only=True)
class Sample(Event):
    """What the model in training answers to a held-out prompt (train.sample_every / sample_prompts)."""

    type: ClassVar[str] = "sample"
    step: int | None = None
    prompt: str | None = None
    text: str | None = None  # the generated answer (greedy)
    reference: str | None = None  # the validation row's own answer, when the prompt came from one


@dataclass(frozen=True, kw_only=True)
class Data(Event):
    """Data preparation (trainer/data_build.py): `progress` every few seconds while the training
    set is built, then `ready` once, saying what was done to the rows."""

    type: ClassVar[str] = "data"
    phase: str | None = None  # progress | ready
    rows: int | None = None  # rows read so far (progress) / training rows (ready)
    total_rows: int | None = None  # the file's rows, estimated from its size while reading
    rows_per_s: float | None = None
    eta_s: float | None = None
    cached: bool | None = None  # ready: read from the data cache instead of built
    cache_dir: str | None = None
    skipped_rows: int | None = None
    truncated_rows: int | None = None
    packing_efficiency: float | None = None
    examples: list[str] | None = None  # the first skipped rows, "file:line: reason"


CLASSES: dict[str, type[Event]] = {c.type: c for c in (Start, Step, Eval, Checkpoint, Retry, Log, End, Error,
                                                       Diagnosis, Adapters, Sample, Data)}
TYPES = tuple(CLASSES)


def _kinds(cls: type[Event]) -> dict[str, tuple[type, dict]]:
    """Field name → (base type, metadata), from the class's annotations (`int | None` → int); a list
    field's metadata also holds its item type under "item" (`list[str] | None` → list, {"item": str})."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in fields(cls):
        hint = hints[f.name]
        base = next(a for a in typing.get_args(hint) if a is not type(None))
        meta = dict(f.metadata)
        if typing.get_origin(base) is list:
            meta["item"] = typing.get_args(base)[0]
        out[f.name] = (typing.get_origin(base) or base, meta)
    return out


SCHEMA: dict[str, dict[str, tuple[type, dict]]] = {t: _kinds(c) for t, c in CLASSES.items()}
_BASE = _kinds(Event)


def _item_ok(item: type, v) -> bool:
    """One item of a list field: a str, or a whole number that is not a bool."""
    if item is int:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)
    return isinstance(v, item)


def _writable(kind: type, meta: dict, value) -> bool:
    """What a writer may pass: the declared type (NaN allowed: a diverging loss is a fact to record)."""
    if value is None:
        return True
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, numbers.Real)
    if kind is int:
        return isinstance(value, numbers.Integral)
    if kind is list:
        return isinstance(value, (list, tuple)) and all(_item_ok(meta["item"], v) for v in value)
    return isinstance(value, kind)


def _readable(kind: type, meta: dict, value):
    """The value as the declared type, or `_BAD` (a reader drops the field)."""
    if isinstance(value, bool):
        return value if kind is bool else _BAD
    if kind in (int, float):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return _BAD
        if kind is int:
            if value != int(value):
                return _BAD
            value = int(value)
            if not meta.get("min", -math.inf) <= value <= meta.get("max", math.inf):
                return _BAD
        return value
    if kind is list:
        item = meta["item"]
        ok = isinstance(value, list) and all(_item_ok(item, v) and (item is not int or v >= 0) for v in value)
        return value if ok else _BAD
    return value if isinstance(value, kind) else _BAD


_BAD = object()


def build(type_: str, **fields_) -> Event:
    """The typed event a writer means, checked: an unknown type, an undeclared field or a value of
    the wrong type raises (these are bugs in the caller, to be caught by its tests)."""
    cls = CLASSES.get(type_)
    if cls is None:
        raise ValueError(f"unknown event type {type_!r} (known: {', '.join(TYPES)})")
    schema = SCHEMA[type_]
    for name, value in fields_.items():
        if name not in schema:
            raise TypeError(f"{type_} event has no field {name!r} (declared: {', '.join(schema)})")
        kind, meta = schema[name]
        if not _writable(kind, meta, value):
            want = f"list[{meta['item'].__name__}]" if kind is list else kind.__name__
            raise TypeError(f"{type_} event field {name!r} wants {want}, got {type(value).__name__} {value!r}")
    return cls(**fields_)


class EventSink:
    """Appends events to one file, a line at a time, flushed so readers see each at once."""

    def __init__(self, path: str | Path, echo=None):
        self.path = Path(path)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._echo = echo  # optional callable(dict), e.g. --json-events

    def emit(self, type_: str, **fields_) -> Event:
        """Write one event of `type_` (the fields as its class declares them); returns it typed."""
        now = round(time.time(), 3)
        fields_.setdefault("time", now)
        event = build(type_, **fields_)
        line = {"type": type_, "time": fields_.pop("time"), **fields_}
        self._fh.write(json.dumps(line, default=_jsonable) + "\n")
        self._fh.flush()
        if type_ in ("end", "error", "checkpoint"):
            os.fsync(self._fh.fileno())  # these must survive a crash right after
        if self._echo:
            self._echo(line)
        return event

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def _jsonable(v):
    """Numbers of other libraries (numpy, a 0-d tensor) as plain floats."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def parse_line(line: str) -> dict | None:
    """One line → a validated event dict (fields of the wrong type dropped), or None for a
    torn/partial or foreign line."""
    line = line.strip()
    if not line:
        return None
    try:
        event = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    for name, (kind, meta) in SCHEMA.get(event["type"], _BASE).items():
        if name in event and event[name] is not None:
            value = _readable(kind, meta, event[name])
            if value is _BAD:
                del event[name]
            else:
                event[name] = value
    return event


def typed(event: dict) -> Event | None:
    """A validated event dict (from `parse_line`) as its class; None for a type without one."""
    cls = CLASSES.get(event.get("type"))
    if cls is None:
        return None
    return cls(**{k: event[k] for k in SCHEMA[cls.type] if k in event})


def read_events(path: str | Path) -> list[dict]:
    """All complete events in a log, as validated dicts (a half-written last line is skipped)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [e for e in map(parse_line, fh) if e is not None]
    except FileNotFoundError:
        return []


class Tail:
    """Incremental reader: `poll()` returns the events appended since the last call, as validated
    dicts. `offset`: start reading at this byte (a resumed run's earlier events are history)."""

    def __init__(self, path: str | Path, offset: int = 0):
        self.path = Path(path)
        self._pos = offset
        self._partial = b""

    def poll(self) -> list[dict]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._pos)
                chunk = fh.read()
                self._pos = fh.tell()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # incomplete until its newline arrives
        return [e for e in (parse_line(l.decode("utf-8", errors="replace")) for l in lines) if e is not None]
