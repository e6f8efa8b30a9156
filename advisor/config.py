"""The one schema: `RunConfig` describes a run everywhere.

Presets are YAML files of this schema; `--set lora.r=32` edits it; the TUI form shows it;
the advisor emits it; the trainer consumes it. Each field's docstring is its help text.
Unknown keys are errors naming the file, the line and the closest valid key; every
problem is collected before one `ConfigError` reports them all.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, Problem, RankwiseError, did_you_mean

TaskKind = Literal["classification", "format", "style", "instruction", "chat", "domain", "code", "reasoning"]
TASKS: tuple[str, ...] = get_args(TaskKind)
TargetSet = Literal["minimal", "standard", "aggressive", "all-linear"]
TARGET_SETS: tuple[str, ...] = ("minimal", "standard", "aggressive", "all-linear")
OPTIMIZERS: tuple[str, ...] = ("auto", "adamw_torch", "adamw_8bit", "paged_adamw_8bit")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True,
                              allow_inf_nan=False)  # .inf epochs or .nan lr are mistakes, not settings


class ModelSection(Section):
    name: str = "llama-3.2-1b"
    """A catalog name (`rankwise presets`/`estimate --model` list them), a local model
    directory or config.json, or a model id already in the local Hugging Face cache."""
    trust_remote_code: bool = False
    """Run Python code shipped with the model. Off unless you trust the source."""
    allow_unsafe_weights: bool = False
    """Also load pickled `.bin` weights when no safetensors exist (pickle can run code)."""


class DataSection(Section):
    path: str | None = None
    """Training data: a .jsonl, .json, .csv or .parquet file, or a saved HF dataset folder.
    Relative paths are resolved against the preset's folder."""
    format: Literal["auto", "chat", "instruction", "prompt_completion", "text"] = "auto"
    """Row format. auto: `messages` → chat, `instruction`/`output` → instruction,
    `prompt`/`completion` → prompt_completion, `text` → text."""
    val_path: str | None = None
    """Validation data in its own file (same formats). Overrides val_ratio."""
    val_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    """Fraction of the training rows held out for validation when val_path is unset."""
    packing: bool = False
    """Pack several short examples into each max_seq_len sequence (faster, no padding)."""
    skip_bad_rows: bool = False
    """Skip and count rows with missing fields or wrong types instead of stopping."""
    max_rows: int | None = Field(None, ge=1)
    """Use at most this many training rows (quick trials)."""


class LoraSection(Section):
    r: int = Field(16, ge=1)
    """Rank. Higher: more capacity, memory and risk of overfitting small data."""
    alpha: float | None = Field(None, gt=0)
    """Scaling numerator (update is alpha/r · BA). Unset: 2·r."""
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    """Dropout on the LoRA input. More for small datasets (0.05–0.1 typical)."""
    bias: Literal["none", "all", "lora_only"] = "none"
    """Which biases train. none keeps the adapter mergeable and small."""
    target_modules: Union[TargetSet, list[str]] = "standard"
    """Adapted linears: a named set (minimal = q,v; standard = q,k,v,o; aggressive =
    standard + gate/up/down; all-linear) or a list of module names."""
    use_rslora: bool = False
    """Rank-stabilised scaling alpha/sqrt(r): keeps high ranks learning."""

    @property
    def alpha_value(self) -> float:
        return float(self.alpha) if self.alpha is not None else 2.0 * self.r


class QuantSection(Section):
    quant_type: Literal["nf4", "fp4"] = "nf4"
    """4-bit data type for QLoRA. NF4 is the QLoRA paper's choice."""
    double_quant: bool = True
    """Quantize the quantization constants too (saves ~0.37 bit/param)."""
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Dtype of the de-quantized matmuls. auto: bf16 where supported, else fp16 (fp32 on CPU)."""


class TrainSection(Section):
    lr: float = Field(2e-4, gt=0.0)
    """Peak learning rate."""
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    """Learning-rate schedule after warmup."""
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    """Fraction of steps spent warming up (ignored when warmup_steps is set)."""
    warmup_steps: int | None = Field(None, ge=0)
    """Warmup steps; overrides warmup_ratio."""
    epochs: float = Field(1.0, gt=0.0)
    """Passes over the training data (ignored when max_steps is set)."""
    max_steps: int | None = Field(None, ge=1)
    """Optimizer steps to run; overrides epochs."""
    micro_batch: int = Field(1, ge=1)
    """Sequences per forward pass per GPU. Higher: faster, more activation memory."""
    grad_accum: int = Field(8, ge=1)
    """Micro-batches per optimizer step. Effective batch = micro_batch · grad_accum · GPUs."""
    max_seq_len: int = Field(2048, ge=8)
    """Longest sequence in tokens; longer rows are truncated and counted."""
    grad_checkpointing: bool = True
    """Recompute activations in the backward pass: much less memory, ~30% slower."""
    optimizer: Literal["auto", "adamw_torch", "adamw_8bit", "paged_adamw_8bit"] = "auto"
    """auto: paged 8-bit AdamW for QLoRA (the QLoRA recipe), AdamW for LoRA."""
    weight_decay: float = Field(0.0, ge=0.0)
    """AdamW weight decay on the adapter weights."""
    max_grad_norm: float = Field(1.0, ge=0.0)
    """Gradient clipping norm (0 disables)."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Training precision. auto: bf16 where the GPU has it, else fp16; fp32 on CPU."""
    seed: int = 42
    """Seed for data order, dropout and LoRA init."""
    logging_steps: int = Field(10, ge=1)
    """Steps between progress events."""
    eval_steps: int | None = Field(None, ge=1)
    """Steps between evaluations (needs validation data). Unset: at each save."""
    save_steps: int = Field(100, ge=1)
    """Steps between checkpoints."""
    save_total_limit: int = Field(2, ge=1)
    """Checkpoints kept on disk."""
    report_to: Literal["none", "tensorboard"] = "none"
    """Also log to TensorBoard (in the run directory)."""

    @property
    def effective_batch(self) -> int:
        return self.micro_batch * self.grad_accum


class DistributedSection(Section):
    strategy: Literal["auto", "ddp", "fsdp", "deepspeed"] = "auto"
    """How several GPUs share the run. auto: DDP when the model fits one GPU, else FSDP.
    ddp: a full copy per GPU. fsdp: weights, gradients and optimizer sharded across GPUs
    (also FSDP+QLoRA). deepspeed: ZeRO-3 (needs the deepspeed package)."""
    gpus: Union[Annotated[int, Field(ge=1)], Literal["auto"]] = 1
    """GPUs per machine to train on: a count, or auto for every visible GPU. More than one
    launches through `accelerate launch` (`rankwise train --gpus N` overrides it)."""

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpu_count(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError("give a GPU count (1 or more) or auto")


class OutputSection(Section):
    dir: str = "runs"
    """Where run directories are created (relative to the current directory)."""
    name: str | None = None
    """Run name; the run id is `<name>-<timestamp>`. Unset: the preset's name."""


class RunConfig(Section):
    """A whole run: what to train, on what, how, and where the results go."""

    name: str | None = None
    """Preset name (informational)."""
    description: str | None = None
    """One line on what this preset is for."""
    model: ModelSection = Field(default_factory=ModelSection)
    task: TaskKind = "instruction"
    """What the fine-tune teaches; sets the rank band the advisor starts from."""
    data: DataSection = Field(default_factory=DataSection)
    method: Literal["lora", "qlora", "auto"] = "auto"
    """lora: 16-bit base. qlora: 4-bit NF4 base. auto: LoRA if it fits with headroom."""
    lora: LoraSection = Field(default_factory=LoraSection)
    quant: QuantSection = Field(default_factory=QuantSection)
    train: TrainSection = Field(default_factory=TrainSection)
    output: OutputSection = Field(default_factory=OutputSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)

    @model_validator(mode="after")
    def _val_ratio_or_path(self) -> "RunConfig":
        if self.data.val_path and self.data.val_ratio:
            raise ValueError("set data.val_path or data.val_ratio, not both")
        return self

    def resolved_optimizer(self, method: str | None = None) -> str:
        method = method or self.method
        if self.train.optimizer != "auto":
            return self.train.optimizer
        return "paged_adamw_8bit" if method == "qlora" else "adamw_torch"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)


# ---------------------------------------------------------------- loading with locations


def _all_keys(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    out: dict[str, type[BaseModel] | None] = {}
    for key, info in model.model_fields.items():
        ann = info.annotation
        out[key] = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return out


def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """(key, subkey, ...) → 1-based line, from a composed YAML node tree."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
            out[path + (key,)] = k.start_mark.line + 1
            _line_map(v, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[path + (i,)] = v.start_mark.line + 1
            _line_map(v, path + (i,), out)
    return out


MAX_YAML_NODES = 100_000  # a preset has a few hundred; aliases may not expand past this ("billion laughs")


def _expanded_size(node: yaml.Node, source: str) -> int:
    """Nodes in the tree with every alias expanded, without expanding it; a recursive alias is refused."""
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        if id(n) in busy:
            raise RankwiseError(f"{source}:{n.start_mark.line + 1}: a YAML alias refers to its own anchor",
                                "presets are plain data: remove the recursive &anchor/*alias")
        busy.add(id(n))
        if isinstance(n, yaml.ScalarNode) and "\x00" in n.value:  # "\0" escapes: no path or name holds one
            raise RankwiseError(f"{source}:{n.start_mark.line + 1}: a NUL character in a value",
                                "remove the \\0 escape")
        if isinstance(n, yaml.ScalarNode) and not n.value.isascii():
            try:
                n.value.encode("utf-8")
            except UnicodeEncodeError:  # "\ud800" escapes: no file name or message can hold them
                raise RankwiseError(f"{source}:{n.start_mark.line + 1}: a lone UTF-16 surrogate escape in a value",
                                    "write the character itself, or a \\U escape of a real code point") from None
        if isinstance(n, yaml.MappingNode):
            _no_duplicate_keys(n, source)
        children = [c for kv in n.value for c in kv] if isinstance(n, yaml.MappingNode) else (
            n.value if isinstance(n, yaml.SequenceNode) else [])
        total = 1
        for c in children:
            total += size(c)
            if total > MAX_YAML_NODES:
                raise RankwiseError(f"{source}: YAML aliases expand to more than {MAX_YAML_NODES:,} values",
                                    "presets are small: write the values out instead of nesting &anchors/*aliases")
        busy.discard(id(n))
        sizes[id(n)] = total
        return total

    return size(node)


def _no_duplicate_keys(node: yaml.MappingNode, source: str) -> None:
    """YAML keeps the last of two equal keys silently; a preset with `r: 8` and `r: 16` is a mistake."""
    seen: dict[str, int] = {}
    for k, _ in node.value:
        if not isinstance(k, yaml.ScalarNode) or k.value == "<<":
            continue
        line = k.start_mark.line + 1
        if k.value in seen:
            raise RankwiseError(f"{source}:{line}: duplicate key '{k.value}' (also on line {seen[k.value]})",
                                "keep one of them: YAML would silently use the last")
        seen[k.value] = line


def parse_yaml(text: str, source: str) -> tuple[Any, dict[tuple, int]]:
    """Safe-load YAML, returning the data and where each key sits. Never runs code."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _expanded_size(node, source)  # before anything walks the aliases
        data = yaml.load(text, Loader=yaml.SafeLoader)
        lines = _line_map(node) if node is not None else {}
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = e.problem or str(e)
        hint = "check the indentation and quoting near that line"
        if "could not determine a constructor" in str(e):
            what, hint = "YAML tags that construct objects are not allowed", "remove the !!tag; presets are plain data"
        raise RankwiseError(f"{where}: malformed YAML: {what}", hint) from None
    except yaml.YAMLError as e:
        raise RankwiseError(f"{source}: malformed YAML: {e}", "check the file is YAML text") from None
    except RecursionError:
        raise RankwiseError(f"{source}: YAML nested too deeply", "presets are at most a few levels deep") from None
    except (ValueError, OverflowError) as e:  # e.g. an integer longer than Python reads (4300 digits)
        raise RankwiseError(f"{source}: a value rankwise cannot read ({str(e)[:120]})",
                            "check the numbers in the file") from None
    return data, lines


def _where(source: str, lines: dict[tuple, int], loc: tuple) -> str:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return f"{source}:{lines[loc[:n]]}"
    return source


def _unknown_key_problems(data: Any, model: type[BaseModel], source: str, lines: dict, path: tuple = ()) -> list[Problem]:
    """Unknown keys, each with file:line and the closest valid key."""
    if not isinstance(data, dict):
        return []
    problems = []
    keys = _all_keys(model)
    for key, value in data.items():
        dotted = ".".join(str(p) for p in path + (key,))
        if key not in keys:
            hint = did_you_mean(str(key), keys) or f"valid keys here: {', '.join(keys)}"
            problems.append(Problem(_where(source, lines, path + (key,)), f"unknown key '{dotted}'", hint))
        elif keys[key] is not None:
            problems.extend(_unknown_key_problems(value, keys[key], source, lines, path + (key,)))
    return problems


def _field_help(loc: tuple) -> str | None:
    model: type[BaseModel] = RunConfig
    info = None
    for part in loc:
        if not isinstance(part, str) or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
    return info.description if info else None


def _validation_problems(err: ValidationError, source: str, lines: dict) -> list[Problem]:
    problems = []
    for e in err.errors():
        if e["type"] == "extra_forbidden":
            continue  # reported with its closest key by _unknown_key_problems
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("literal[", "list["))))
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        msg = e["msg"]
        if e["type"] == "literal_error":
            msg = f"{msg}, got {e.get('input')!r}"
        elif "input" in e and not isinstance(e["input"], (dict, list)):
            msg = f"{msg} (got {e['input']!r})"
        problems.append(Problem(_where(source, lines, loc), f"{dotted}: {msg}", _field_help(loc)))
    # a union reports one error per branch; keep one line per location
    seen, unique = set(), []
    for p in problems:
        if (p.where, p.message.split(":")[0]) not in seen:
            seen.add((p.where, p.message.split(":")[0]))
            unique.append(p)
    return unique


def validate(data: Any, source: str = "config", lines: dict | None = None) -> RunConfig:
    """Dict → RunConfig, or one ConfigError listing every problem with file:line."""
    lines = lines or {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(problems=[Problem(source, f"expected a mapping of settings, got {type(data).__name__}",
                                            "a preset is YAML like `lora: {r: 16}`")], source=source)
    problems = _unknown_key_problems(data, RunConfig, source, lines)
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        problems += _validation_problems(e, source, lines)
        cfg = None
    if problems:
        raise ConfigError(problems=problems, source=source)
    return cfg


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `--set a.b=value` overrides (values parsed as YAML scalars) to a raw dict."""
    data = copy.deepcopy(data or {})  # YAML may hold dates/bytes (not JSON); validation reports them
    problems = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(Problem(f"--set {item}", "expected key=value", "for example --set lora.r=32"))
            continue
        if "\x00" in raw:
            problems.append(Problem(f"--set {key}", "a NUL character in the value", "remove it"))
            continue
        try:
            value = parse_yaml(raw, f"--set {key}")[0] if raw.strip() else None
        except RankwiseError:
            value = raw
        node, model = data, RunConfig
        parts = key.split(".")
        for i, part in enumerate(parts):
            keys = _all_keys(model) if model else {}
            if model is not None and part not in keys:
                dotted = ".".join(parts[: i + 1])
                problems.append(Problem(f"--set {key}", f"unknown key '{dotted}'",
                                        did_you_mean(part, keys) or f"valid keys: {', '.join(keys)}"))
                break
            if i == len(parts) - 1:
                node[part] = value
            else:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node, model = node[part], keys.get(part)
                if model is None:
                    problems.append(Problem(f"--set {key}", f"'{'.'.join(parts[: i + 1])}' is not a group"))
                    break
    if problems:
        raise ConfigError(problems=problems, source="--set")
    return data


def read_text(path: Path, what: str = "file") -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RankwiseError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise RankwiseError(f"{what} is a directory, not a file: {path}") from None
    except OSError as e:
        raise RankwiseError(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RankwiseError(f"{path}: not UTF-8 text (byte {e.start})", "is this really a YAML file?") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a preset file, apply overrides, validate. Relative paths written in the file are
    anchored to the file's folder; relative paths given with `--set` to the current directory
    (where the user typed them)."""
    path = Path(path)
    data, lines = parse_yaml(read_text(path, "preset"), str(path))
    if overrides:
        if data is not None and not isinstance(data, dict):
            validate(data, str(path), lines)  # raises the "expected a mapping" problem
        data = _anchor_raw(data or {}, path.parent)
        data = _anchor_raw(apply_overrides(data, overrides), Path.cwd())
    cfg = validate(data, str(path), lines)
    return resolve_paths(cfg, path.parent)


_PATH_KEYS = (("data", "path"), ("data", "val_path"))


def _is_local_model(name: str, base: Path) -> bool:
    return name.startswith((".", "/", "~")) or (base / name).exists()


def _anchor_raw(data: dict, base: Path) -> dict:
    """Anchor the relative paths of a raw (unvalidated) dict to `base`, leaving bad types to validation."""
    data = copy.deepcopy(data)
    for group, key in _PATH_KEYS:
        value = data.get(group, {}).get(key) if isinstance(data.get(group), dict) else None
        if isinstance(value, str) and value and not Path(value).is_absolute():
            data[group][key] = str((base / value).resolve())
    model = data.get("model")
    name = model.get("name") if isinstance(model, dict) else None
    if isinstance(name, str) and name and _is_local_model(name, base) and not Path(name).is_absolute():
        model["name"] = str((base / Path(name).expanduser()).resolve())
    return data


def resolve_paths(cfg: RunConfig, base: Path) -> RunConfig:
    """Make data and local-model paths absolute, relative to the preset's folder."""
    def anchor(p: str | None) -> str | None:
        if p is None or Path(p).is_absolute():
            return p
        return str((base / p).resolve())

    cfg = cfg.model_copy(deep=True)
    cfg.data.path = anchor(cfg.data.path)
    cfg.data.val_path = anchor(cfg.data.val_path)
    name = cfg.model.name
    if _is_local_model(name, base):
        cfg.model.name = anchor(str(Path(name).expanduser()))
    return cfg


def with_values(cfg: RunConfig, patch: dict[str, Any]) -> RunConfig:
    """A new RunConfig with dotted keys set (`{"lora.r": 32}`): how a red flag's fix, a TUI form
    edit or a recommender trial changes a config. Raises pydantic's ValidationError on a bad value."""
    data = cfg.model_dump()
    for key, value in patch.items():
        node = data
        *head, last = key.split(".")
        for part in head:
            node = node[part]
        node[last] = value
    return RunConfig.model_validate(data)


def json_schema() -> dict:
    """JSON Schema of RunConfig, for editors validating presets."""
    schema = RunConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rankwise preset"
    return schema
