"""Hardware probe: real logic, with NVML faked at the module seam (so the answers hold on any machine, GPU or not)."""
import json
import subprocess
import sys
import types

import pytest

from rankwise.advisor import hardware
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.units import GIB, parse_bytes, parse_count


def fake_nvml(cards):
    """A stand-in for pynvml with two 'devices': only what NVML would report."""
    m = types.SimpleNamespace()
    m.nvmlInit = lambda: None
    m.nvmlShutdown = lambda: None
    m.nvmlSystemGetDriverVersion = lambda: b"550.54.15"
    m.nvmlSystemGetCudaDriverVersion = lambda: 12040
    m.nvmlDeviceGetCount = lambda: len(cards)
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetName = lambda h: cards[h][0]
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=cards[h][1], free=cards[h][1] - cards[h][2],
                                                                 used=cards[h][2])
    m.nvmlDeviceGetCudaComputeCapability = lambda h: cards[h][3]
    return m


def test_probe_reads_every_gpu(monkeypatch):
    cards = [("NVIDIA A100-SXM4-80GB", 80 * GIB, 2 * GIB, (8, 0)), (b"Tesla T4", 15 * GIB, 0, (7, 5))]
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(cards))
    hw = hardware.probe()
    assert [g.name for g in hw.gpus] == ["NVIDIA A100-SXM4-80GB", "Tesla T4"]
    assert hw.gpus[0].free_bytes == 78 * GIB and hw.gpus[0].bf16 and not hw.gpus[1].bf16
    assert hw.driver_version == "550.54.15" and hw.cuda_version == "12.4"
    assert hw.gpu_bytes == 15 * GIB and not hw.bf16  # plans must fit the smallest card
    assert hw.host.cpu_cores >= 1 and hw.host.ram_total_bytes > 0


def test_no_driver_is_a_valid_cpu_machine(monkeypatch):
    m = fake_nvml([])

    def fail():
        raise RuntimeError("NVML Shared Library Not Found")

    m.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", m)
    hw = hardware.probe()
    assert not hw.has_gpu and hw.gpu_bytes is None and "no NVIDIA driver" in hw.notes[0]


@pytest.mark.parametrize("args,count,gib_each,bf16", [
    (dict(gpu_mem="24GiB"), 1, 24.0, True),
    (dict(gpu_mem="80GB", gpus=2), 2, 80e9 / GIB, True),
    (dict(gpu="T4"), 1, 15.0, False),
    (dict(gpu="a100", gpus=8), 8, 79.2, True),
])
def test_planned_machines(args, count, gib_each, bf16):
    hw = hardware.planned(**args)
    assert hw.gpu_count == count and hw.source == "declared"
    assert hw.gpus[0].total_bytes / GIB == pytest.approx(gib_each, rel=1e-3)
    assert hw.bf16 is bf16


@pytest.mark.parametrize("bad", [dict(gpu="A1000"), dict(gpu_mem="lots"), dict(gpu_mem="-3GiB"), dict(gpu_mem="24GiB", gpus=0)])
def test_bad_planning_flags(bad):
    with pytest.raises(RankwiseError):
        hardware.planned(**bad)


def test_units():
    assert parse_bytes("24GiB") == 24 * GIB and parse_bytes("24") == 24 * GIB and parse_bytes("80GB") == 80 * 10**9
    assert parse_count("10M") == 10**7 and parse_count("1.5B") == 1_500_000_000 and parse_count("500k") == 500_000


STUB = """# a stand-in for pynvml (the seam hardware.probe_gpus imports), written by test_hw.py
import types
CARDS = {cards!r}
def nvmlInit():
    if CARDS is None:
        raise RuntimeError("NVML Shared Library Not Found")
def nvmlShutdown(): pass
def nvmlSystemGetDriverVersion(): return "550.54.15"
def nvmlSystemGetCudaDriverVersion(): return 12040
def nvmlDeviceGetCount(): return len(CARDS)
def nvmlDeviceGetHandleByIndex(i): return i
def nvmlDeviceGetName(h): return CARDS[h][0]
def nvmlDeviceGetMemoryInfo(h): return types.SimpleNamespace(total=CARDS[h][1], free=CARDS[h][1], used=0)
def nvmlDeviceGetCudaComputeCapability(h): return CARDS[h][2]
"""


def run_cli(*args, nvml_dir=None):
    """The CLI in a subprocess; with `nvml_dir`, a stub pynvml there answers instead of the machine's."""
    import os

    env = dict(os.environ)
    if nvml_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(nvml_dir), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "rankwise.tui.cli", *args], capture_output=True, text=True, env=env)


def machine(tmp_path, cards):
    """A folder holding a pynvml stub for `cards` [(name, bytes, (major, minor))], or no driver for None."""
    (tmp_path / "pynvml.py").write_text(STUB.format(cards=cards), encoding="utf-8")
    return tmp_path


def test_hw_cli_without_a_driver(tmp_path):
    out = run_cli("hw", nvml_dir=machine(tmp_path, None))
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert "No GPU found" in out.stdout and "CPU cores" in out.stdout


def test_hw_cli_reads_the_probed_gpus(tmp_path):
    cards = [("NVIDIA L4", 24 * GIB, (8, 9)), ("NVIDIA L4", 24 * GIB, (8, 9))]
    out = run_cli("hw", nvml_dir=machine(tmp_path, cards))
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert "No GPU found" not in out.stdout and "NVIDIA L4" in out.stdout and "CPU cores" in out.stdout
    out = run_cli("hw", "--json", nvml_dir=machine(tmp_path, cards))
    data = json.loads(out.stdout)
    assert [g["name"] for g in data["gpus"]] == ["NVIDIA L4", "NVIDIA L4"] and data["driver_version"] == "550.54.15"


def test_hw_cli_planned_machine():
    out = run_cli("hw", "--gpu", "A100-80GB", "--gpus", "2", "--json")
    data = json.loads(out.stdout)
    assert out.returncode == 0 and len(data["gpus"]) == 2 and data["gpus"][0]["bf16"] is True
    out = run_cli("hw", "--gpu", "A1000")
    assert out.returncode == 2 and "unknown GPU" in out.stderr and "Traceback" not in out.stderr


def test_usage_error_exits_2():
    out = run_cli("hw", "--bogus")
    assert out.returncode == 2 and "Traceback" not in out.stderr


@pytest.mark.parametrize("typed,name", [("RTX-4090", "RTX4090"), ("rtx 4090", "RTX4090"), ("4090", "RTX4090"),
                                        ("a100 80g", "A100-80GB"), ("A100-40G", "A100-40GB"),
                                        ("A6000", "RTXA6000"), ("rtx 6000 ada", "RTX6000ADA"), ("h200", "H200"),
                                        ("A100-40", "A100-40GB"), ("h100 80", "H100-80GB")])
def test_gpu_names_as_people_type_them(typed, name):
    assert hardware.named_gpu(typed)[0] == name


def test_an_unknown_gpu_is_still_refused_with_the_near_names():
    with pytest.raises(RankwiseError) as e:
        hardware.named_gpu("RTX-4091")
    assert "'RTX4090'" in e.value.hint  # as the table spells it, not as it was compared ("V10032GB")
    with pytest.raises(RankwiseError) as e:
        hardware.named_gpu("H100SXM")
    assert "'H100-80GB'" in e.value.hint and "'H10080GB'" not in e.value.hint


def test_a_memory_size_given_as_a_gpu_name_points_to_gpu_mem():
    with pytest.raises(RankwiseError) as e:
        hardware.named_gpu("24 GiB")
    assert "memory size" in e.value.message and "--gpu-mem 24GiB" in e.value.hint
