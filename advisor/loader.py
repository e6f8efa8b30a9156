"""Reading a config file into the schema: hardened YAML, problems with file:line, `--set`.

`load_config(path, overrides)` is the one way a preset becomes a `RunConfig`: the YAML is
parsed safely (no tags that build objects, no alias bombs, no duplicate keys, no NUL or lone
surrogates), `--set a.b=value` overrides are applied, relative paths are anchored, and
`validate` collects every problem — unknown keys with the closest valid one, bad values with
the field's help — each located at its file and line, before one `ConfigError` reports them.
The schema itself lives in `config.py`; finding a preset by name in `presets.py`.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from . import chat_templates, launcher
from .config import RunConfig, field_help, set_key
from .errors import ConfigError, Problem, RankwiseError, did_you_mean

# ---------------------------------------------------------------- hardened YAML


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
        loader = yaml.SafeLoader(text)  # parsed once: the node gives the lines, then the data (as yaml.load does)
        try:
            node = loader.get_single_node()
            if node is not None:
                _expanded_size(node, source)  # before anything walks the aliases
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
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


# ---------------------------------------------------------------- validation with locations


def _all_keys(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """A section's keys → the nested section each opens (None for a value)."""
    out: dict[str, type[BaseModel] | None] = {}
    for key, info in model.model_fields.items():
        ann = info.annotation
        out[key] = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return out


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
        problems.append(Problem(_where(source, lines, loc), f"{dotted}: {msg}", field_help(loc)))
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
    stranger = _not_a_training_config(data, source)
    if stranger is not None:
        raise ConfigError(problems=[stranger], source=source)
    problems = _unknown_key_problems(data, RunConfig, source, lines)
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        problems += _validation_problems(e, source, lines)
        cfg = None
    if problems:
        raise ConfigError(problems=problems, source=source)
    return cfg


def read_launcher(path: str | Path) -> launcher.Launch:
    """An accelerate config file → its settings; missing, not YAML or not an accelerate config → exit 2."""
    p = Path(path).expanduser()
    data, _ = parse_yaml(read_text(p, "accelerate config"), str(p))
    if not isinstance(data, dict) or not launcher.MARKS & set(map(str, data)):
        raise RankwiseError(f"--accelerate-config {path}: not an accelerate config (it has no compute_environment or "
                            "distributed_type)", "give the file `accelerate config` wrote (e.g. "
                            "~/.cache/huggingface/accelerate/default_config.yaml), the one `accelerate launch "
                            "--config_file` is given")
    return _with_deepspeed_file(launcher.settings(data))


def _with_deepspeed_file(launch: launcher.Launch) -> launcher.Launch:
    """An accelerate config's deepspeed_config_file, read as `accelerate launch` opens it (from the current
    directory): ZeRO-3 → distributed.deepspeed_config (its offload and buckets are the estimate's); stage 0/1/2 →
    judged as DDP; not readable → ZeRO-3 assumed without it. Each said."""
    from dataclasses import replace

    from . import deepspeed_file

    name = launch.values.get("distributed.deepspeed_config")
    if not name:
        return launch
    values = dict(launch.values)
    path = Path(name).expanduser().resolve()
    try:
        found = deepspeed_file.parse(deepspeed_file.load_json(path), str(path))
    except RankwiseError as e:
        del values["distributed.deepspeed_config"]
        return replace(launch, values=values,
                       notes=launch.notes + (f"DeepSpeed config {name}: {e.message}; ZeRO-3 assumed without it",))
    if found.stage != 3:
        del values["distributed.deepspeed_config"]
        values["distributed.strategy"] = "ddp"
        zero = (deepspeed_file.Zero12(found.stage, found.reduce_bucket, found.overlap, found.contiguous)
                if found.stage in (1, 2) else None)
        return replace(launch, values=values, zero=zero, notes=launch.notes + (launcher.zero_note(found.stage, name),))
    values["distributed.deepspeed_config"] = str(path)
    if found.offload != "none":
        values["distributed.offload"] = found.offload
    return replace(launch, values=values)


def _not_a_training_config(data: dict, source: str) -> Problem | None:
    """One problem for a file that is not a rankwise preset (rather than one per key): an accelerate launcher
    config, an axolotl, LLaMA-Factory or TRL config (`check` and `import` read those; `train`, `estimate` and the
    other preset readers do not), or 3+ keys none of which a rankwise preset has."""
    keys = [str(k) for k in data]
    if set(keys) & set(RunConfig.model_fields):
        return None
    if launcher.MARKS & set(keys):
        flags = launcher.settings(data).flags()
        return Problem(source, "an accelerate launcher config (compute_environment, distributed_type), not a training "
                               "config: rankwise runs `accelerate launch` itself",
                       "give the training config (a rankwise preset, an axolotl, a LLaMA-Factory or a TRL YAML)"
                       + (f"; this file's launch settings are {' '.join(flags)}" if flags else "")
                       + f"; `check` and `estimate` read it beside one: --accelerate-config {source}")
    from .foreign.marks import LABELS, which  # not at the top: the foreign mappers import this module

    layout = which(set(keys))
    if layout is not None:  # read by `check` and `import`, not trained or estimated as it is
        tool = LABELS[layout]
        return Problem(source, f"an {tool} config, not a rankwise preset: rankwise trains its own presets",
                       f"`rankwise check {source}` judges it as it is (memory, fit, red flags); `rankwise import "
                       f"{source} --out OUT.yaml` writes a rankwise preset from it, to train with `rankwise train --preset "
                       "OUT.yaml`")
    if len(keys) < 3:
        return None  # a typo or two: the per-key messages say "did you mean"
    shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
    return Problem(source, f"not a training config rankwise reads: none of its {len(keys)} keys ({shown}) is a "
                           "rankwise preset's, nor an axolotl, LLaMA-Factory or TRL config's",
                   "give a rankwise preset (`rankwise presets` lists the shipped ones), an axolotl, a "
                   "LLaMA-Factory or a TRL config")


# ---------------------------------------------------------------- --set overrides


def _key_problem(key: str) -> Problem | None:
    """Why `--set KEY=...` names no setting of the schema, or None when it does."""
    parts = key.split(".")
    model: type[BaseModel] | None = RunConfig
    for i, part in enumerate(parts):
        if model is None:
            return Problem(f"--set {key}", f"'{'.'.join(parts[:i])}' is not a group")
        keys = _all_keys(model)
        if part not in keys:
            return Problem(f"--set {key}", f"unknown key '{'.'.join(parts[: i + 1])}'",
                           did_you_mean(part, keys) or f"valid keys: {', '.join(keys)}")
        model = keys[part]
    return None


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
        problem = _key_problem(key)
        if problem is not None:
            problems.append(problem)
            continue
        try:
            value = parse_yaml(raw, f"--set {key}")[0] if raw.strip() else None
        except RankwiseError:
            value = raw
        set_key(data, key, value)
    if problems:
        raise ConfigError(problems=problems, source="--set")
    return data


# ---------------------------------------------------------------- loading a preset


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a preset file, apply overrides, validate. Relative paths written in the file are
    anchored to the file's folder; relative paths given with `--set` to the current directory
    (where the user typed them)."""
    path = Path(path)
    data, lines = parse_yaml(read_text(path, "preset"), str(path))
    data = anchor_paths(data, path.parent)
    if overrides:
        if data is not None and not isinstance(data, dict):
            validate(data, str(path), lines)  # raises the "expected a mapping" problem
        data = anchor_paths(apply_overrides(data, overrides), Path.cwd())
    return validate(data, str(path), lines)


_PATH_KEYS = ("data.path", "data.val_path", "train.sample_prompts", "distributed.deepspeed_config", "lora.init_from")
_NOT_PATHS = ("auto",)  # words a path key also takes (train.sample_prompts: auto)


def _is_local_model(name: str, base: Path) -> bool:
    return name.startswith((".", "/", "~")) or (base / name).exists()


def anchor_paths(data: Any, base: Path) -> Any:
    """A copy of a raw (unvalidated) config with its relative data paths and local model folder
    made absolute against `base`; absolute paths, catalog names and bad types (validation
    reports those) are left as they are."""
    if not isinstance(data, dict):
        return data
    data = copy.deepcopy(data)
    model = data.get("model")
    template = model.get("chat_template") if isinstance(model, dict) else None
    keys = _PATH_KEYS + (("model.chat_template",) if isinstance(template, str) and chat_templates.is_path(template) else ())
    for key in keys:
        group, _, name = key.partition(".")
        value = data[group].get(name) if isinstance(data.get(group), dict) else None
        if isinstance(value, str) and value and value not in _NOT_PATHS:
            local = Path(value).expanduser()  # ~ is the user's home, not a folder beside the preset
            data[group][name] = str(local if local.is_absolute() else (base / local).resolve())
    name = model.get("name") if isinstance(model, dict) else None
    if isinstance(name, str) and name and _is_local_model(name, base):
        local = Path(name).expanduser()
        if not local.is_absolute():
            model["name"] = str((base / local).resolve())
    return data
