"""Security: configs never run code, remote code and pickles stay off unless set, run ids and preset
names cannot escape their folders, nothing is fetched with HF_HUB_OFFLINE=1.

Each "nothing ran" claim is proved by a marker file the payload would have created.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rankwise.advisor import hardware, redflags
from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.foreign import load_any
from rankwise.advisor.loader import load_config, parse_yaml
from rankwise.advisor.model import load_model
from rankwise.advisor.presets import resolve_preset
from rankwise.trainer import rundir
from rankwise.trainer.runs import find_run

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "presets" / "assets"
CLI = [sys.executable, "-m", "rankwise.tui.cli"]
pytestmark = pytest.mark.timeout(180)


def cli(args, cwd: Path, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def payloads(marker: Path) -> list[str]:
    """YAML values that run `touch marker` (or import os.system) under an unsafe loader."""
    return [
        f"!!python/object/apply:os.system ['touch {marker}']",
        f"!!python/object/apply:subprocess.call [['touch', '{marker}']]",
        f"!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
        "!!python/name:os.system",
        "!!python/module:os",
    ]


def _unsafe_loader_would_run(text: str, marker: Path) -> bool:
    """Self-check of the payload: yaml's unsafe loader really does create the marker."""
    try:
        yaml.unsafe_load(text)
    except Exception:
        pass
    ran = marker.exists()
    marker.unlink(missing_ok=True)
    return ran


# --------------------------------------------------------------------------- no code from configs

def test_payload_is_real(tmp_path):
    marker = tmp_path / "ran"
    assert _unsafe_loader_would_run(f"x: {payloads(marker)[0]}\n", marker)


@pytest.mark.parametrize("shape", ["preset", "axolotl", "llama-factory", "top-level"])
@pytest.mark.parametrize("i", range(5))
def test_python_tags_refused_in_process(tmp_path, shape, i):
    marker = tmp_path / "ran"
    value = payloads(marker)[i]
    text = {"preset": f"model:\n  name: {value}\n",
            "axolotl": f"base_model: {value}\nadapter: lora\nlora_r: 8\n",
            "llama-factory": f"model_name_or_path: x\nfinetuning_type: lora\nlora_rank: {value}\n",
            "top-level": f"{value}\n"}[shape]
    path = tmp_path / "c.yaml"
    path.write_text(text)
    for load in (lambda: load_config(path), lambda: load_config(path, ["lora.r=8"]), lambda: load_any(path)):
        with pytest.raises(RankwiseError) as e:
            load()
        assert "not allowed" in e.value.message or "malformed YAML" in e.value.message
    assert not marker.exists()


@pytest.mark.parametrize("i", range(5))
def test_python_tags_in_set_are_plain_text(tmp_path, i):
    """`--set k=!!python/...` is read with the safe loader; the tag stays text and fails validation or lookup."""
    marker = tmp_path / "ran"
    for key in ("model.name", "train.seed", "lora.target_modules"):
        try:
            cfg = load_config(ROOT / "presets" / "demo-cpu.yaml", [f"{key}={payloads(marker)[i]}"])
        except RankwiseError:
            continue
        assert isinstance(cfg.model.name, str) and not marker.exists()
        with pytest.raises(RankwiseError):  # a tag as a model name is no model
            load_model(cfg.model.name)
    assert not marker.exists()


@pytest.mark.slow
def test_python_tags_refused_by_the_cli(tmp_path):
    marker = tmp_path / "ran"
    value = payloads(marker)[0]
    files = {"preset.yaml": f"model:\n  name: {value}\n",
             "axolotl.yaml": f"base_model: {value}\nadapter: lora\n",
             "lf.yaml": f"model_name_or_path: {value}\nfinetuning_type: lora\nlora_rank: 8\n"}
    runs = tmp_path / "runs"
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        for args in (["check", name], ["estimate", "--preset", name], ["train", "--preset", name, "--runs-dir", runs]):
            out = cli(args, tmp_path)
            assert out.returncode == 2, (args, out.stderr)
            assert "not allowed" in out.stderr and "Traceback" not in out.stderr
    out = cli(["train", "--preset", "demo-cpu", "--runs-dir", runs, "--set", f"model.name={value}"], tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert not marker.exists() and not runs.exists()


# --------------------------------------------------------------------------- remote code, pickled weights

def test_trust_remote_code_is_off_by_default_and_a_red_flag_when_on():
    assert RunConfig().model.trust_remote_code is False
    assert load_config(ROOT / "presets" / "demo-cpu.yaml").model.trust_remote_code is False
    cfg = load_config(ROOT / "presets" / "demo-cpu.yaml", ["model.trust_remote_code=true"])
    findings = redflags.check(cfg, load_model(cfg.model.name), hardware.planned(gpu_mem="24GiB"))
    assert "trust-remote-code" in {f.code for f in findings}


def test_no_loader_turns_remote_code_on_by_itself():
    """Every Auto*.from_pretrained in trainer/ either leaves trust_remote_code out (transformers' default: off)
    or passes the config's value / a parameter; none passes a literal True. (The real run below proves it.)"""
    import ast

    seen = 0
    for path in sorted((ROOT / "trainer").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "from_pretrained"):
                continue
            seen += 1
            for kw in node.keywords:
                if kw.arg == "trust_remote_code":
                    assert not isinstance(kw.value, ast.Constant) or kw.value.value is False, (path, node.lineno)
                    assert "trust_remote_code" in ast.unparse(kw.value), (path, node.lineno, ast.unparse(kw.value))
    assert seen >= 4


def _evil_model(folder: Path, marker: Path, weights: str = "safetensors") -> Path:
    """The tiny model plus remote code (config.json auto_map) that would create `marker` if imported."""
    shutil.copytree(ASSETS / "tiny-llama", folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(cfg))
    tok = json.loads((folder / "tokenizer_config.json").read_text())
    tok["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok))
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('remote code ran')\n"
                                    "from transformers import LlamaConfig as EvilConfig, LlamaForCausalLM as EvilModel\n"
                                    "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n")
    if weights == "bin":
        import torch
        from safetensors.torch import load_file

        torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()
    return folder


def _preset(folder: Path, model: Path, **train) -> Path:
    data = yaml.safe_load((ROOT / "presets" / "demo-cpu.yaml").read_text())
    data["model"]["name"] = str(model)
    data["data"]["path"] = str(ASSETS / "demo-chat.jsonl")
    data["train"].update(train)
    path = folder / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_pickled_weights_refused_unless_allowed(tmp_path):
    from rankwise.trainer.start import check_inputs

    model = _evil_model(tmp_path / "m", tmp_path / "ran", weights="bin")
    preset = _preset(tmp_path, model)
    with pytest.raises(RankwiseError) as e:
        check_inputs(load_config(preset))
    assert "only pickled .bin weights" in e.value.message and "allow_unsafe_weights" in e.value.hint
    check_inputs(load_config(preset, ["model.allow_unsafe_weights=true"]))  # the opt-in passes the check
    out = cli(["train", "--preset", preset, "--runs-dir", tmp_path / "runs"], tmp_path)
    assert out.returncode == 2 and "pickle can run code" in out.stderr, out.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ran").exists()


class ProxyTrap:
    """A local TCP listener used as every proxy: any network attempt lands here and is counted."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.hits = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def env(self) -> dict:
        url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        return {"HTTP_PROXY": url, "HTTPS_PROXY": url, "ALL_PROXY": url, "http_proxy": url, "https_proxy": url,
                "all_proxy": url, "NO_PROXY": "", "no_proxy": ""}

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.mark.slow
def test_offline_real_run_fetches_nothing_and_runs_no_remote_code(tmp_path):
    """demo-cpu (2 steps) on a copy of the tiny model that carries remote code: HF_HUB_OFFLINE=1 and every
    proxy pointed at a trap. It finishes, the trap sees no connection, the remote code never ran."""
    marker = tmp_path / "ran"
    model = _evil_model(tmp_path / "m", marker)
    preset = _preset(tmp_path, model, max_steps=2, save_steps=2, logging_steps=1)
    trap = ProxyTrap()
    try:
        out = cli(["train", "--preset", preset, "--runs-dir", tmp_path / "runs", "--json-events"], tmp_path,
                  env={**trap.env, "HF_HUB_CACHE": str(tmp_path / "empty-cache")}, timeout=300)
    finally:
        trap.close()
    assert out.returncode == 0, out.stderr[-3000:]
    assert trap.hits == 0, "something reached for the network"
    assert not marker.exists(), "the model's remote code ran without trust_remote_code"
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_uncached_model_id_is_bad_input_not_a_download(tmp_path):
    trap = ProxyTrap()
    env = {**trap.env, "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    try:
        outs = [cli(["train", "--preset", "demo-cpu", "--runs-dir", tmp_path / "runs",
                     "--set", "model.name=meta-llama/Llama-3.2-1B-Instruct"], tmp_path, env=env, timeout=60),
                cli(["estimate", "--model", "someone/not-in-the-cache"], tmp_path, env=env, timeout=60)]
    finally:
        trap.close()
    for out in outs:
        assert out.returncode == 2, out.stderr
        assert "nothing is downloaded" in out.stderr and "Traceback" not in out.stderr
    assert trap.hits == 0 and not (tmp_path / "runs").exists()


def test_readme_says_how_to_run_offline():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running fully offline", 1)[1].split("\n## ", 1)[0]
    assert "HF_HUB_OFFLINE=1" in section and "TRANSFORMERS_OFFLINE=1" in section


# --------------------------------------------------------------------------- paths cannot escape

def _fake_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(RunConfig().to_yaml())
    (folder / "events.jsonl").write_text(json.dumps({"type": "end", "status": "interrupted", "step": 1}) + "\n")
    return folder


@pytest.fixture
def escape_setup(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs / "inside-20260101-000000")
    outside = _fake_run(tmp_path / "outside-run")
    (runs / "link-20260101-000000").symlink_to(outside, target_is_directory=True)
    refs = ["../outside-run", str(outside), str(runs / "link-20260101-000000"), "link-20260101-000000", "link",
            "..", "/", "/etc", "inside-20260101-000000/../../outside-run", "~", ".", "./"]
    return tmp_path, runs, outside, refs


def test_run_ids_cannot_escape_the_runs_dir(escape_setup):
    tmp_path, runs, outside, refs = escape_setup
    for ref in refs:
        try:
            found = find_run(runs, ref)
        except RankwiseError:
            continue
        assert found.resolve().parent == runs.resolve(), (ref, found)
    assert find_run(runs, "inside").name == "inside-20260101-000000"


@pytest.mark.slow
def test_attach_stop_resume_merge_refuse_escapes(escape_setup):
    tmp_path, runs, outside, refs = escape_setup
    before = sorted(p.name for p in outside.rglob("*"))
    for ref in ["../outside-run", str(outside), "link-20260101-000000", "inside-20260101-000000/../../outside-run"]:
        for args in (["attach", ref, "--json-events"], ["stop", ref], ["train", "--resume", ref], ["merge", ref]):
            out = cli([*args, "--runs-dir", runs], tmp_path, timeout=60)
            assert out.returncode == 2, (args, out.returncode, out.stderr)
            assert "Traceback" not in out.stderr and "error" in out.stderr
    assert sorted(p.name for p in outside.rglob("*")) == before  # nothing written in the outside run


@settings(max_examples=300, deadline=None, database=None)
@given(name=st.text(max_size=80))
def test_run_names_are_one_safe_component(name):
    safe = rundir.sanitise(name)
    assert safe and "/" not in safe and "\\" not in safe and not safe.startswith(".") and ".." not in safe
    assert len(safe) <= 60


@pytest.mark.parametrize("name", ["../../escape", "/tmp/abs", "..", "a/../../b", "~root", ".hidden"])
def test_output_name_stays_inside_the_runs_dir(tmp_path, name):
    cfg = RunConfig.model_validate({"output": {"name": name}})
    runs = tmp_path / "runs"
    run = rundir.create(runs, rundir.run_name(cfg, None), cfg)
    assert run.resolve().parent == runs.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


@pytest.mark.parametrize("ref", ["../demo-cpu", "..", "demo-cpu/../../x", "/etc/passwd", "~/nothing", ".",
                                 "demo cpu", "demo-cpu\x00", "assets"])
def test_preset_names_resolve_only_to_files(ref):
    """A name is only ever a shipped preset; anything path-like must be an existing YAML file the user gave."""
    try:
        path = resolve_preset(ref)
    except RankwiseError:
        return
    assert path.is_file()
    with pytest.raises(RankwiseError):
        parse_yaml("\x00", str(path)) if path.suffix not in (".yaml", ".yml") else load_config(path)


@pytest.mark.slow
def test_evil_model_remote_code_is_real(tmp_path):
    """Self-check: with trust_remote_code=True the evil model's code does run, so the offline run's check can fail."""
    import subprocess
    import sys

    marker = tmp_path / "ran"
    model = _evil_model(tmp_path / "m", marker)
    # In a subprocess: remote code registers classes inside transformers, which would leak into later tests.
    load = "import sys; from transformers import AutoConfig; AutoConfig.from_pretrained(sys.argv[1], trust_remote_code={})"
    subprocess.run([sys.executable, "-c", load.format(False), str(model)], check=True, capture_output=True)
    assert not marker.exists()
    subprocess.run([sys.executable, "-c", load.format(True), str(model)], check=True, capture_output=True)
    assert marker.exists()
