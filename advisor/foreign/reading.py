"""A config file of any supported kind → a `Reading`: the RunConfig, what each rankwise key came
from (the foreign key and its line), the tool's defaults used, and what was said about keys
rankwise does not model, does not know, or left blank.

Detection: a rankwise preset's keys are the schema's; otherwise the tool whose marker keys the
file uses (the newer LLaMA-Factory layout by its `peft_config:`/`quant_config:`/... sections).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import RunConfig, set_key
from ..errors import ConfigError, Problem, RankwiseError, did_you_mean
from ..loader import _key_problem, anchor_paths, apply_overrides, parse_yaml, read_text, validate
from ..methods import METHODS
from . import axolotl, llamafactory, marks, trl
from .mapping import ROLE, ROLE_FAMILIES, Default, Out, Said, Tool, match_targets, resolve_dora

if TYPE_CHECKING:
    from ..spec import ModelSpec

RANKWISE_KEYS = set(RunConfig.model_fields)
TOOLS = (axolotl.TOOL, llamafactory.TOOL, llamafactory.TOOL_V1, trl.TOOL)
BY_LAYOUT = {"axolotl": axolotl.TOOL, "llama-factory": llamafactory.TOOL, "llama-factory-v1": llamafactory.TOOL_V1,
             "trl": trl.TOOL}


def detect_tool(data: Any) -> Tool | None:
    """The foreign tool (and layout) a parsed file is written for; None for a rankwise preset."""
    if not isinstance(data, dict):
        return None
    keys = set(map(str, data))
    if keys <= RANKWISE_KEYS:
        return None
    return BY_LAYOUT.get(marks.which(keys))


def detect(data: Any) -> str:
    """rankwise | axolotl | llama-factory."""
    tool = detect_tool(data)
    return tool.kind if tool else "rankwise"


@dataclass
class Reading:
    """One file read: the config and everything needed to speak about it in the file's own terms."""

    cfg: RunConfig
    kind: str  # rankwise | axolotl | llama-factory
    source: str
    tool: Tool | None = None
    notes: list[str] = field(default_factory=list)
    said: list[Said] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)  # dotted rankwise key → foreign key
    defaulted: dict[str, Default] = field(default_factory=dict)  # dotted → the tool's default used
    lines: dict[tuple, int] = field(default_factory=dict)
    targets: tuple | None = None  # (raw value, foreign key, regex|names): peft semantics, resolved per model
    stage: str | None = None
    full: str | None = None  # the foreign key that makes it a full fine-tune (full_ft.py), or None
    unread: list[str] = field(default_factory=list)  # keys the tool has that change neither memory nor advice
    blank: list[str] = field(default_factory=list)  # keys written without a value: unset
    partial: Any = None  # full_ft.Freeze where only some weights train (LLaMA-Factory freeze), else None
    eval_batch: tuple[str, int] | None = None  # (key, rows): an evaluation batch the file sets
    evaluates: bool = False  # the file names an evaluation dataset
    loads_fp32: bool = False  # the model loads in float32 (TRL's default): full_ft.upcaster
    score_head: int = 0  # a reward model: its score head's outputs (ModelSpec.with_score_head), 0: a causal LM
    paired_rows: bool = False  # a reward model's chosen and rejected answers: twice the micro-batch
    reference: bool | None = None  # a full fine-tune keeps a reference copy (None: as its stage says)
    state_dict: str | None = None  # FSDP checkpoints: "full" | "sharded" (full_ft.host_ram); None: the default
    zero: Any = None  # DeepSpeed ZeRO-1/2 (deepspeed_file.Zero12), full_ft.floor
    # the precision the tool trains a full fine-tune in where it departs from the file's (LLaMA-Factory v1: fp32), used
    # for the full fine-tune only (its LoRA alternative keeps the file's); None: the file's
    full_precision: str | None = None
    linear_experts: bool = False  # the experts load as one nn.Linear each (ModelSpec.with_linear_experts)

    @property
    def layout(self) -> str:
        return self.tool.layout if self.tool else "rankwise"

    def line(self, foreign_key: str) -> int | None:
        return self.lines.get(tuple(foreign_key.split(".")))


def _is_known(tool: Tool, key: str) -> bool:
    head, _, sub = key.partition(".")
    if head not in tool.known:
        return False
    return not (sub and head == "peft_config") or sub in llamafactory.V1_PEFT_KEYS


def translate(data: dict, tool: Tool, config_dir: Path | None = None) -> tuple[dict, Out, list[str], list[str]]:
    """Foreign mapping → (nested rankwise dict, Out, unread keys, blank keys). `config_dir`: the file's folder,
    where a path the file names (a DeepSpeed JSON) is looked for after the working directory."""
    flat = llamafactory.flatten_v1(data) if tool.layout == "v1" else data
    out = Out()
    out.extra["config_dir"] = config_dir
    unread, blank = [], []
    for key, value in flat.items():
        key = str(key)
        out.key = key
        if value is None or (isinstance(value, str) and not value.strip()):
            blank.append(key)  # both tools read a blank value as unset
        elif key in tool.table:
            tool.table[key](value, out)
        elif key in tool.not_modelled:
            if value not in (False, 0, [], {}):
                out.not_modelled(tool.not_modelled[key])
        elif _is_known(tool, key):
            unread.append(key)
        else:
            near = difflib.get_close_matches(key, sorted(tool.known | set(tool.table)), 1, 0.75)  # a typo, not a guess
            refuses = tool.unknown_severity == "error"
            used = ""
            if near and near[0] in tool.table and near[0] not in flat:
                used = f"; {near[0]} is unset, so {tool.label}'s default is used"
            out.said.append(Said(
                "unknown-key", tool.unknown_severity, key,
                f"{key}: not {'an' if tool.label[0].lower() in 'aeiou' else 'a'} {tool.label} key{used}",
                f"{tool.label} {'refuses the file (unknown keys are an error)' if refuses else 'warns and drops it'}",
                f"did you mean {near[0]}?" if near else "remove it", {near[0]: value} if near else None))
    if tool.finish:
        tool.finish(out)
    resolve_dora(out)
    defaulted = {}
    method = out.values.get("method")  # unset (auto): rankwise chooses, so a quantized base is not the file's
    quantized = isinstance(method, str) and method in METHODS and METHODS[method].quantized  # invalid: said later
    for d in tool.defaults:
        if d.quantized_only and not quantized:
            continue  # a default the tool applies to a quantized base only: not "written" in a LoRA file
        if d.dotted not in out.values and not any(u in out.values for u in d.unless):
            out.values[d.dotted] = d.value
            defaulted[d.dotted] = d
    out.extra["defaulted"] = defaulted
    nested: dict = {}
    for dotted, value in out.values.items():
        set_key(nested, dotted, value)
    return nested, out, unread, blank


def _split_overrides(tool: Tool | None, overrides: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """`--set` items → (the file's own keys, rankwise keys); a key of neither is a bad flag."""
    own, ours, problems = [], [], []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if tool is not None and sep and (key in tool.table or key in tool.not_modelled or _is_known(tool, key)):
            own.append((key, raw))
        elif not sep or _key_problem(key) is None:
            ours.append(item)  # apply_overrides reports a missing "="
        else:
            choices = sorted(tool.known | set(tool.table)) if tool else []
            hint = did_you_mean(key, choices) if tool else None
            p = _key_problem(key)
            article = "an" if tool and tool.label[0].lower() in "aeiou" else "a"
            problems.append(Problem(f"--set {key}", f"not {article} {tool.label} key nor a rankwise key" if tool else p.message,
                                    hint or p.hint))
    if problems:
        raise ConfigError(problems=problems, source="--set")
    return own, ours


def _in_file_keys(text: str, origin: dict[str, str], tool) -> str:
    """A rule over several keys, said with the file's own keys where their values read the same
    ("lora.dropout 0.05" → "lora_dropout 0.05"); rankwise's key stays where the file has none."""
    from .language import DOTTED

    def swap(m):
        used = origin.get(m.group(0))
        return used if used and tool.renames.get(m.group(0)) == used else m.group(0)
    return DOTTED.sub(swap, text)


def read(path: str | Path, overrides: list[str] | None = None) -> Reading:
    """Any supported config file (or a shipped preset's name) → Reading. Invalid values raise a
    ConfigError located at the file's lines; an empty file is bad input."""
    path = Path(path)
    if not path.exists() and not str(path).endswith((".yaml", ".yml")) and "/" not in str(path):
        from ..presets import resolve_preset  # a shipped preset's name, as `train --preset` takes

        path = resolve_preset(str(path))
    source = str(path)
    data, lines = parse_yaml(read_text(path, "config"), source)
    if data is None or data == {}:
        raise RankwiseError(f"{source}: no settings (the file is empty or only comments)",
                            "give a rankwise preset, an axolotl or a LLaMA-Factory config")
    tool = detect_tool(data)
    own, ours = _split_overrides(tool, overrides or [])
    if tool is None:
        data = anchor_paths(data, path.parent)
        if ours:
            data = anchor_paths(apply_overrides(data, ours), Path.cwd())
        return Reading(validate(data, source, lines), "rankwise", source, lines=lines)
    if own:
        data = dict(data)
        for key, raw in own:
            value = parse_yaml(raw, f"--set {key}")[0] if raw.strip() else None
            head, _, sub = key.partition(".")
            if sub and isinstance(data.get(head), dict):
                data[head] = {**data[head], sub: value}
            else:
                data[key] = value
    nested, out, unread, blank = translate(data, tool, path.parent)
    if ours:
        nested = apply_overrides(nested, ours)
    where = {tuple(d.split(".")): lines.get(tuple(f.split(".")), 0) for d, f in out.origin.items()}
    try:
        cfg = validate(nested, source, {k: v for k, v in where.items() if v})
    except ConfigError as e:
        problems = []
        for p in e.problems:
            foreign = out.origin.get(p.message.split(":")[0])
            text = f"{foreign} (→ {p.message})" if foreign else _in_file_keys(p.message, out.origin, tool)
            problems.append(Problem(p.where, text, p.hint))
        raise ConfigError(problems=problems, source=f"{source} ({tool.kind})") from None
    notes = list(out.notes)
    defaulted = out.extra["defaulted"]
    if defaulted:
        notes.append(f"{tool.label} defaults used: " + ", ".join(
            f"{d.dotted} {d.value}" for d in defaulted.values()))
    return Reading(cfg, tool.kind, source, tool, notes, list(out.said), dict(out.origin), defaulted, lines,
                   out.targets, out.stage, out.full, unread, blank, out.partial, out.eval_batch, out.evaluates,
                   out.loads_fp32, out.score_head, out.paired_rows, out.reference,
                   out.state_dict or ("sharded" if out.fsdp_version == 2 else None), out.zero,
                   full_precision=out.full_precision, linear_experts=out.linear_experts)


def load_any(path: str | Path) -> tuple[RunConfig, str, list[str]]:
    """Any supported config file → (RunConfig, kind, notes)."""
    r = read(path)
    return r.cfg, r.kind, r.notes + [s.message for s in r.said] + unread_notes(r)


def unread_notes(r: Reading) -> list[str]:
    """The keys the tool has that change neither memory nor advice, said once."""
    if not r.unread:
        return []
    n = len(r.unread)
    return [f"ignored {n} {r.kind} key{'s' if n > 1 else ''} with no rankwise equivalent (no effect on memory "
            f"or advice): {', '.join(r.unread)}"]


def resolve_targets(reading: Reading, spec: "ModelSpec") -> RunConfig:
    """The file's target modules under peft's rules against the model's own linear names: a
    regex matched against full module names, list items by suffix (`self_attn.q_proj` is q_proj).
    Items that name no linear of the model are dropped with a note when others match (peft too
    only fails when nothing matches): a path into a vision tower or projector quietly, a bare name
    said by what it leaves out (`missed_names`)."""
    if reading.targets is None:
        return reading.cfg
    raw, key, how = reading.targets
    names = spec.adaptable_names()
    hit, missed = match_targets(raw, how, names)
    if not hit:
        return reading.cfg  # the checks say "unknown target module" with the model's names
    paths = [m for m in missed if "." in m or how == "regex"]
    if paths:
        reading.notes.append(f"{key}: {', '.join(map(str, paths))} name no linear layer of the language model "
                             "(vision tower, projector or embeddings): not counted, as peft skips them")
    plain = [m for m in missed if m not in paths]  # a bare name the model lacks: a typo or another architecture's
    if plain:
        reading.said.append(missed_names(key, plain, hit, spec, list if isinstance(raw, list) else ",".join))
    from ..config import with_values

    return with_values(reading.cfg, {"lora.target_modules": hit})


def missed_names(key: str, plain: list[str], hit: list[str], spec: "ModelSpec", written=list) -> Said:
    """Bare target names `spec` lacks, beside names it has (`hit`). peft adapts the names that match and
    skips the rest without a word (it fails only when none matches), so the run trains; what matters is
    what the skipped names meant to adapt. A name of another architecture's attention or MLP (`ROLE`) whose
    part of this model is left frozen: a warning naming this model's modules for that part (GLM-4's MLP is
    `gate_up_proj`, so `gate_proj, up_proj` adapt nothing of it). A part this model has no module for
    beyond those adapted (Apertus has no gate projection): info. A name of no known role: a warning (a typo
    or a module this model lacks). The fix is the key's value as the file writes it (`written`: a list, or
    a comma string)."""
    model = spec.name
    roles = {ROLE[m] for m in plain if m in ROLE}
    families = {f for r in roles for f in ROLE_FAMILIES[r]}
    frozen = [l.name for l in spec.linears if l.adaptable and l.family in families and l.name not in hit]
    unknown = [m for m in plain if m not in ROLE]
    skipped = f"{key}: {', '.join(plain)} not in {model}: peft skips {'them' if len(plain) > 1 else 'it'} " \
              f"and adapts {', '.join(hit)}"
    if frozen:
        parts = " and ".join(f"its {r}" for r in sorted(roles))
        return Said("unknown-target-module", "warning", key, skipped,
                    f"{', '.join(plain)} {'are' if len(plain) > 1 else 'is'} another architecture's name"
                    f"{'s' if len(plain) > 1 else ''}: {model} names {parts} modules {', '.join(frozen)}, which stay"
                    f"{'' if len(frozen) > 1 else 's'} frozen", f"target {', '.join(frozen)} in place of "
                    f"{', '.join(plain)}", {key: written(hit + frozen)})
    if not unknown:
        return Said("unknown-target-module", "info", key, skipped,
                    f"{model} has no such module{'s' if len(plain) > 1 else ''}: its {' and '.join(sorted(roles))} "
                    "modules are all adapted already, so nothing is left out", f"drop {', '.join(plain)}",
                    {key: written(hit)})
    return Said("unknown-target-module", "warning", key, skipped,
                "a typo or a module of another architecture: what it meant to adapt stays frozen",
                f"use names {model} has: {', '.join(spec.adaptable_names())}", {key: written(hit)})
