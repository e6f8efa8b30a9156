"""Generated bad input (hypothesis): presets, --set overrides, axolotl/LLaMA-Factory configs, dataset rows.

Every generated case must end in a valid result or a `RankwiseError` (exit 2 with a message) —
never another exception (a traceback), a hang or a partial write. Two layers:
1. in process, hundreds of examples against the loaders and the advisor's checks;
2. through the real CLI in subprocesses (`check`, `estimate --preset`, `train --preset FILE`),
   a few dozen examples each, marked slow.
Each generated input is counted per family (tests/faults/conftest.py prints the figures).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rankwise.advisor import hardware, redflags
from rankwise.advisor.config import RunConfig
from rankwise.advisor.dataset import check_row, scan
from rankwise.advisor.readers import iter_rows
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.foreign import AXOLOTL, LLAMAFACTORY, load_any
from rankwise.advisor.loader import apply_overrides, load_config, parse_yaml, validate
from rankwise.advisor.model import load_model
from rankwise.advisor.units import parse_bytes, parse_count

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "presets" / "demo-cpu.yaml"

pytestmark = pytest.mark.timeout(120)
EXAMPLES = int(os.environ.get("RANKWISE_FAULT_EXAMPLES", "150"))  # bench/fault_figures.py raises it
CLI_EXAMPLES = int(os.environ.get("RANKWISE_FAULT_CLI_EXAMPLES", "30"))  # each costs a subprocess (~0.5 s)
# No per-example deadline: a 5000-deep YAML takes seconds to parse on a busy machine, and a timing
# limit would fail for the machine's load, not the code's; a hang still meets the timeout above.
FAST = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.data_too_large])

# --------------------------------------------------------------------------- strategies

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-10**40, max_value=10**40)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
           | st.sampled_from(["", "auto", "lora", "qlora", "all-linear", "~", "1e999", "-1", "24GiB", "nan"]))
VALUES = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                      max_leaves=12)


def _schema_paths() -> list[tuple[str, ...]]:
    paths = []
    for key, info in RunConfig.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, RunConfig.__mro__[1]):
            paths += [(key, sub) for sub in ann.model_fields]
        paths.append((key,))
    return paths


PATHS = _schema_paths()


def _nest(pairs) -> dict:
    out: dict = {}
    for path, value in pairs:
        node = out
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return out


SCHEMA_SHAPED = st.lists(st.tuples(st.sampled_from(PATHS), VALUES), max_size=8).map(_nest)


def _dump(data) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


YAML_TRICKS = [
    "",  # empty file
    "\x00\x01\x02",
    "a: &a [1,2]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\nname: *h\n",  # billion laughs
    "lora: &x\n  r: 8\n  target_modules: *x\n",  # an alias inside its own anchor (recursive)
    "a: &a [*a]\n",
    "[" * 5000 + "]" * 5000,
    "lora:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 300)),
    "lora:\n\tr: 8\n",  # a tab
    "lora:\n  r: 8\n  r: 16\n",  # duplicate keys
    "train:\n  seed: " + "1" * 5000 + "\n",  # an int longer than Python parses by default
    "train:\n  seed: 2001-12-14\n",  # a YAML timestamp
    "name: !!binary aGVsbG8=\n",
    "lora: !!set {a, b}\n",
    "train:\n  epochs: .inf\n  lr: .nan\n",
    "train:\n  epochs: .inf\n",
    "train:\n  lr: .inf\n",
    "lora:\n  r: 100000000000000000000000000000000000000\n",
    "train:\n  max_seq_len: 10000000000000000000000000\n  micro_batch: 1000000000000000000\n",
    "? [a, b]\n: c\n",
    "1: 2\nnull: 3\n",
    "--- a\n--- b\n",
    "key: 'unterminated\n",
    "model: {name: \u202e\u0000}\n",
    "!!python/object/apply:os.system ['true']\n",
]
YAML_TEXT = st.one_of(
    SCHEMA_SHAPED.map(_dump),
    VALUES.map(_dump),
    st.text(max_size=200),
    st.sampled_from(YAML_TRICKS),
)
YAML_BYTES = st.one_of(YAML_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=200))
OVERRIDE = st.one_of(
    st.tuples(st.sampled_from([".".join(p) for p in PATHS]), st.text(max_size=20)).map("=".join),
    st.tuples(st.sampled_from([".".join(p) for p in PATHS]), SCALARS.map(lambda v: json.dumps(v)
              if not isinstance(v, float) or math.isfinite(v) else str(v))).map("=".join),
    st.text(max_size=30),
    st.sampled_from(["lora.r=" + "9" * 5000, "lora=1", "lora.r.x=1", "=", "a.b.c=", "train.seed=2001-12-14",
                     "model.name=!!python/name:os.system", "data.path=[1, 2", "lora.target_modules=[q_proj, *x]"]),
)


# --------------------------------------------------------------------------- helpers

def ended_cleanly(figures, family: str, fn, *args):
    """Run fn; a value or a RankwiseError is clean. Anything else is counted, then re-raised (a bug)."""
    try:
        result = fn(*args)
    except RankwiseError as e:
        assert str(e.message).strip(), "a RankwiseError without a message"
        figures.tried(family, True)
        return None
    except BaseException:
        figures.tried(family, False)
        raise
    figures.tried(family, True)
    return result


HW = hardware.planned(gpu_mem="24GiB")


def advise_on(cfg: RunConfig):
    """What `check` does with a config that validated: model, estimate, red flags."""
    try:
        spec = load_model(cfg.model.name)
    except RankwiseError:
        spec = None
    redflags.run_rules(redflags.context(cfg, spec, HW, None))
    redflags.run_rules(redflags.context(cfg, load_model("llama-3.2-1b"), HW, None))


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- presets and --set

@FAST
@given(text=YAML_BYTES, use_set=st.booleans())
@example(text=b"train:\n  seed: " + b"1" * 5000 + b"\n", use_set=False)
@example(text=b"train:\n  seed: 2001-12-14\n", use_set=True)
@example(text=b"name: !!binary aGVsbG8=\n", use_set=True)
@example(text=b"a: &a [*a]\n", use_set=False)
@example(text=b'data:\n  path: "\\ud800"\n', use_set=True)
@example(text=b'data:\n  path: "a\\0b"\nmodel:\n  name: "\\0"\n', use_set=False)
@example(text=b"train:\n  epochs: .inf\n", use_set=False)
@example(text=YAML_TRICKS[2].encode(), use_set=True)
def test_generated_presets(generated_figures, fault_tmp, text, use_set):
    path = _write(fault_tmp, "preset.yaml", text)

    def load():
        cfg = load_config(path, ["lora.r=8"] if use_set else [])
        advise_on(cfg)
        return cfg

    ended_cleanly(generated_figures, "preset file", load)


@FAST
@given(data=SCHEMA_SHAPED)
def test_generated_schema_values(generated_figures, data):
    """Every schema field with values of every type, validated and (when valid) checked."""
    def go():
        cfg = validate(data, "gen.yaml", {})
        advise_on(cfg)
    ended_cleanly(generated_figures, "preset values", go)


@FAST
@given(overrides=st.lists(OVERRIDE, min_size=1, max_size=4))
@example(overrides=["lora.r=" + "9" * 5000])
@example(overrides=["train.seed=2001-12-14"])
@example(overrides=["train.epochs=.inf"])
@example(overrides=['data.path="\\ud800\\udc00"'])
@example(overrides=["data.path=\x00"])
@example(overrides=['model.name="a\\0b"'])
def test_generated_overrides(generated_figures, overrides):
    def go():
        cfg = load_config(DEMO, overrides)
        advise_on(cfg)
    ended_cleanly(generated_figures, "--set overrides", go)


# --------------------------------------------------------------------------- axolotl / LLaMA-Factory

def _foreign(table, marks):
    keys = st.sampled_from(sorted(table))
    return st.tuples(st.dictionaries(keys, VALUES, min_size=1, max_size=8),
                     st.sampled_from(sorted(marks))).map(lambda t: {t[1]: t[0].get(t[1], "x"), **t[0]})


AXOLOTL_CFG = _foreign(AXOLOTL, {"base_model", "adapter", "lora_r", "micro_batch_size", "sequence_len"})
LF_CFG = _foreign(LLAMAFACTORY, {"model_name_or_path", "finetuning_type", "lora_rank", "cutoff_len", "stage"})


@FAST
@given(data=st.one_of(AXOLOTL_CFG, LF_CFG))
@example(data={"base_model": "x", "datasets": [{"path": "a"}, {"path": "b"}], "lora_r": "1" * 5000})
@example(data={"base_model": "x", "num_epochs": math.inf})
@example(data={"adapter": []})  # a list as the method crashed the quantized-only defaults (CI, 3 Dec)
@example(data={"base_model": "x", "deepspeed": ["z" * 300]})  # a name too long: is_file raised (4 Dec)
def test_generated_foreign_configs(generated_figures, fault_tmp, data):
    path = _write(fault_tmp, "foreign.yaml", _dump(data).encode())

    def go():
        cfg, kind, notes = load_any(path)
        assert kind in ("axolotl", "llama-factory", "rankwise")
        advise_on(cfg)
    ended_cleanly(generated_figures, "axolotl/LLaMA-Factory", go)


# --------------------------------------------------------------------------- dataset rows

ROW_FIELDS = ["messages", "instruction", "input", "output", "system", "prompt", "completion", "text", "role"]
MESSAGES = st.lists(st.one_of(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "x", ""])
                                                                | VALUES, "content": VALUES}), VALUES), max_size=4)
ROW = st.dictionaries(st.sampled_from(ROW_FIELDS), st.one_of(VALUES, MESSAGES), max_size=5)
JSON_LINE = st.one_of(
    ROW.map(lambda r: json.dumps(r, allow_nan=True)),
    VALUES.map(lambda v: json.dumps(v, allow_nan=True)),
    st.text(max_size=40),
    st.sampled_from(['{"text": ' + "1" * 5000 + "}", '{"text": "a"', "\x00", '{"text": "\\ud800"}', "[]", "\ufeff{}",
                     '{"text": NaN}', '{"text": 1e999}', "  ", '{"messages": [{"role": "assistant", "content": "x"}]}']),
)
JSONL = st.lists(JSON_LINE, max_size=6).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))


def _csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode("utf-8", "surrogatepass")


CELL = st.one_of(st.text(max_size=20), st.sampled_from(["\x00", "a\x00b", "x" * 200_000, '"', "\r\n", ""]))
CSV = st.one_of(
    st.lists(st.lists(CELL, max_size=4), max_size=5).map(_csv),  # ragged rows, any header
    st.tuples(st.sampled_from([["text"], ["instruction", "output"], ["prompt", "completion"], ["messages"]]),
              st.lists(st.lists(CELL, max_size=3), max_size=4)).map(lambda t: _csv([t[0], *t[1]])),
    st.binary(max_size=100),
)


def _parquet(columns: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


PARQUET_COLUMNS = st.dictionaries(
    st.sampled_from(["text", "instruction", "output", "prompt", "completion", "messages"]),
    st.sampled_from([[1, 2], [1.5, math.nan], [True, None], [b"\x00\xff", b""], [["a"], []], [{"role": "user"}, None],
                     [[{"role": "assistant", "content": 3}], []], ["ok", None], ["", " "]]),
    max_size=3,
).filter(lambda d: d)


def check_dataset(path: Path, fmt: str):
    """What `train` does before the run dir exists: scan every row, then the per-row check."""
    from rankwise.trainer.start import check_rows

    found = scan(path, declared=fmt)
    for _, row in iter_rows(path, bad="yield"):
        if found.format:
            check_row(row, found.format)
    cfg = RunConfig.model_validate({"data": {"path": str(path), "format": fmt}})
    check_rows("data.path", str(path), cfg)
    return found


FORMAT = st.sampled_from(["auto", "chat", "instruction", "prompt_completion", "text"])


@FAST
@given(kind=st.sampled_from([".jsonl", ".json", ".ndjson"]), body=JSONL, fmt=FORMAT)
@example(kind=".jsonl", body=b'{"text": ' + b"1" * 5000 + b"}", fmt="auto")
@example(kind=".json", body=b'[{"text": ' + b"1" * 5000 + b"}]", fmt="auto")
def test_generated_json_rows(generated_figures, fault_tmp, kind, body, fmt):
    path = _write(fault_tmp, "rows" + kind, body)
    ended_cleanly(generated_figures, "dataset JSON/JSONL", check_dataset, path, fmt)


@settings(FAST, max_examples=max(1, EXAMPLES * 8 // 15))
@given(body=CSV, fmt=FORMAT)
@example(body=b"text\na\x00b\n", fmt="auto")
def test_generated_csv_rows(generated_figures, fault_tmp, body, fmt):
    path = _write(fault_tmp, "rows.csv", body)
    ended_cleanly(generated_figures, "dataset CSV", check_dataset, path, fmt)


@settings(FAST, max_examples=max(1, EXAMPLES * 4 // 15))
@given(columns=PARQUET_COLUMNS, fmt=FORMAT, garbage=st.booleans())
def test_generated_parquet_rows(generated_figures, fault_tmp, columns, fmt, garbage):
    body = _parquet(columns) if not garbage else b"PAR1" + json.dumps(columns, default=repr).encode()
    path = _write(fault_tmp, "rows.parquet", body)
    ended_cleanly(generated_figures, "dataset parquet", check_dataset, path, fmt)


# --------------------------------------------------------------------------- units

@FAST
@given(text=st.one_of(st.text(max_size=20), st.floats(), st.integers(-10**30, 10**30),
                      st.sampled_from(["1e999", "1e400GiB", "nan", "inf", "-0", "0.0e0", "9" * 400 + "GB"])))
@example(text="1e999")
@example(text=math.nan)
@example(text=math.inf)
def test_generated_sizes_and_counts(generated_figures, text):
    ended_cleanly(generated_figures, "sizes/counts", parse_bytes, text, "--gpu-mem")
    ended_cleanly(generated_figures, "sizes/counts", parse_count, text, "--budget")


# --------------------------------------------------------------------------- through the real CLI (subprocesses)

CLI = [sys.executable, "-m", "rankwise.tui.cli"]
SLOW = settings(max_examples=CLI_EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _demo_dict() -> dict:
    data = yaml.safe_load(DEMO.read_text())
    data["model"]["name"] = str(DEMO.parent / data["model"]["name"])
    data["data"]["path"] = str(DEMO.parent / data["data"]["path"])
    return data


def _mutated(pairs) -> dict:
    data = _demo_dict()
    for path, value in pairs:
        node = data
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return data


DEMO_MUTATED = st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=3).map(_mutated).map(_dump)
CLI_PRESET = st.one_of(DEMO_MUTATED, YAML_TEXT).map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(max_size=80)


def cli(args, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1"}
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env=env, errors="replace")


def clean_exit(figures, family: str, out: subprocess.CompletedProcess, allowed=(0, 2)) -> None:
    ok = (out.returncode in allowed and "Traceback" not in out.stderr
          and (out.returncode == 0 or out.stderr.strip() or out.returncode == 3))
    figures.tried(family, ok)
    assert out.returncode in allowed, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    if out.returncode == 2:
        assert "error" in out.stderr.lower(), out.stderr


def _fresh(folder: Path, name: str) -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix=name, dir=folder))


@pytest.mark.slow
@SLOW
@given(text=CLI_PRESET)
@example(text=YAML_TRICKS[2].encode())
def test_cli_check_generated(generated_figures, fault_tmp, text):
    d = _fresh(fault_tmp, "check")
    path = _write(d, "c.yaml", text)
    clean_exit(generated_figures, "CLI check", cli(["check", path, "--gpu-mem", "24GiB"], d), allowed=(0, 2, 3))


@pytest.mark.slow
@SLOW
@given(text=CLI_PRESET, flags=st.lists(st.sampled_from(["--rank", "--seq", "--batch", "--gpu-mem"]), max_size=1),
       value=st.sampled_from(["0", "-1", "1e999", "nan", "99999999999999999999", "x", "24GiB"]))
def test_cli_estimate_generated(generated_figures, fault_tmp, text, flags, value):
    d = _fresh(fault_tmp, "est")
    path = _write(d, "e.yaml", text)
    args = ["estimate", "--preset", path] + [a for f in flags for a in (f, value)]
    clean_exit(generated_figures, "CLI estimate --preset", cli(args, d))


def _accepted_in_process(path: Path, overrides: list[str]) -> bool:
    """Would `train` accept this input (and so start training)? Those are not run here."""
    from rankwise.trainer.start import check_inputs

    try:
        check_inputs(load_config(path, overrides))
    except RankwiseError:
        return False
    return True


def _assert_no_run_dir(runs: Path) -> None:
    left = [p for p in runs.rglob("*")] if runs.exists() else []
    assert not left, f"a rejected input left files behind: {left}"


@pytest.mark.slow
@SLOW
@given(text=DEMO_MUTATED.map(str.encode) | CLI_PRESET,
       overrides=st.lists(OVERRIDE.filter(lambda o: "\x00" not in o), max_size=2))  # argv cannot hold NUL
@example(text=b"train:\n  epochs: .inf\n", overrides=[])
def test_cli_train_generated_preset(generated_figures, fault_tmp, text, overrides):
    d = _fresh(fault_tmp, "train")
    path = _write(d, "p.yaml", text)
    if _accepted_in_process(path, overrides):
        generated_figures.tried("CLI train --preset (valid: not trained)", True)
        return
    runs = d / "runs"
    args = ["train", "--preset", path, "--runs-dir", runs] + [a for o in overrides for a in ("--set", o)]
    clean_exit(generated_figures, "CLI train --preset", cli(args, d))
    _assert_no_run_dir(runs)
    assert not (d / "runs").exists() or not any((d / "runs").iterdir())


@pytest.mark.slow
@SLOW
@given(kind=st.sampled_from([".jsonl", ".json", ".csv", ".parquet"]), body=st.one_of(JSONL, CSV, st.binary(max_size=60)))
@example(kind=".jsonl", body=b'{"messages": [{"role": "assistant", "content": ' + b"1" * 5000 + b"}]}")
def test_cli_train_generated_data(generated_figures, fault_tmp, kind, body):
    d = _fresh(fault_tmp, "data")
    data = _write(d, "rows" + kind, body)
    preset = _write(d, "p.yaml", _dump(_mutated([(("data", "path"), str(data)), (("data", "val_ratio"), 0.0)])).encode())
    if _accepted_in_process(preset, []):
        generated_figures.tried("CLI train data rows (valid: not trained)", True)
        return
    runs = d / "runs"
    clean_exit(generated_figures, "CLI train data rows", cli(["train", "--preset", preset, "--runs-dir", runs], d))
    _assert_no_run_dir(runs)


# --------------------------------------------------------------------------- regressions found by the generators

def test_lone_surrogate_in_a_row_is_a_bad_row(tmp_path):
    """'{"text": "a\\ud800"}' passed the pre-check, then the tokenizer raised TypeError mid-run (exit 1)."""
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "a\\ud800"}\n{"messages": [{"role": "assistant", "content": "\\udfff"}]}\n')
    found = scan(path)
    assert found.bad_rows == 2 and "surrogate" in found.first_problems[0]


@pytest.mark.parametrize("text", [YAML_TRICKS[2], "a: &a [*a]\n", 'data:\n  path: "\\ud800"\n',
                                  "train:\n  seed: " + "1" * 5000 + "\n", "train:\n  epochs: .inf\n"])
def test_yaml_regressions_are_bad_input(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(RankwiseError):
        load_config(path, ["lora.r=8"])


def test_duplicate_keys_are_bad_input(tmp_path):
    """`lora: {r: 8}` then `r: 16` under it was silently read as 16 (YAML keeps the last)."""
    path = tmp_path / "p.yaml"
    path.write_text("lora:\n  r: 8\n  r: 16\n")
    with pytest.raises(RankwiseError, match=r"p.yaml:3: duplicate key 'r' \(also on line 2\)"):
        load_config(path)


def test_dates_and_bytes_survive_set(tmp_path):
    """A YAML date or !!binary value plus any --set raised TypeError (json round-trip copy)."""
    path = tmp_path / "p.yaml"
    path.write_text("name: !!binary aGVsbG8=\ntrain:\n  seed: 2001-12-14\n")
    with pytest.raises(RankwiseError) as e:
        load_config(path, ["lora.r=8"])
    assert "train.seed" in e.value.message


# --------------------------------------------------------------------------- damaged run directories

NUMBER = st.none() | st.integers(-10, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
# A damaged log is cut short, has garbage lines, odd numbers, or hand-edited fields of any type
# ({"type": "step", "time": [null]} and {"type": "start", "pid": 1e300} crashed `runs` and `attach`).
NUMBER = NUMBER | VALUES
EVENT = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["start", "step", "eval", "checkpoint", "end", "error", "retry"])},
                          optional={"step": NUMBER, "max_steps": NUMBER, "loss": NUMBER, "pid": NUMBER,
                                    "status": st.sampled_from(["finished", "failed", "interrupted", "running", "x"]),
                                    "time": NUMBER, "eval_loss": NUMBER, "message": st.text(max_size=20)}),
    VALUES,
)
EVENTS_TEXT = st.lists(st.one_of(EVENT.map(lambda e: json.dumps(e, allow_nan=True)), st.text(max_size=30)),
                       max_size=6).map("\n".join)


@settings(FAST, max_examples=max(1, EXAMPLES // 5))
@example(events="", config=YAML_TRICKS[5], summary="{}")
@example(events='{"type": "step", "time": [null]}', config="{}", summary="{}")
@example(events='{"type": "start", "pid": 1e300, "time": "x"}', config="{}", summary="{}")  # "[[[[…" 5000 deep: RecursionError in `runs`
@given(events=EVENTS_TEXT, config=YAML_TEXT, summary=VALUES.map(lambda v: json.dumps(v, allow_nan=True)))
def test_generated_run_dirs(generated_figures, fault_tmp, events, config, summary):
    """`runs`, `attach`, `--resume` read run dirs that a crash, a full disk or a hand edit may have damaged."""
    import tempfile

    from rankwise.trainer import rundir
    from rankwise.trainer.runs import find_run, list_runs, run_info

    runs = Path(tempfile.mkdtemp(prefix="runs", dir=fault_tmp))
    run = runs / "damaged-20260101-000000"
    run.mkdir()
    (run / "events.jsonl").write_text(events, errors="surrogatepass")
    (run / "config.yaml").write_text(config, errors="surrogatepass")
    (run / "summary.json").write_text(summary)

    def go():
        list_runs(runs)
        run_info(find_run(runs, "damaged")).to_dict()
        rundir.load_config(run)
    ended_cleanly(generated_figures, "damaged run dirs", go)


@pytest.mark.parametrize("args", [["estimate", "--model", "z" * 300], ["check", "z" * 300],
                                  ["train", "--preset", "demo-cpu", "--set", "data.path=" + "z" * 300]])
def test_a_name_too_long_for_the_file_system_is_bad_input(generated_figures, fault_tmp, args):
    """Path.is_file and friends raise ENAMETOOLONG (errno 36) where a name is over 255 bytes: wherever a model
    name or path is looked up, that is the user's input, so exit 2 with the name, never a traceback."""
    out = cli(args + (["--runs-dir", str(fault_tmp / "runs-too-long")] if args[0] == "train" else []), fault_tmp)
    clean_exit(generated_figures, "names too long", out, allowed=(2,))
    assert "too long" in out.stderr and not (fault_tmp / "runs-too-long").exists()
