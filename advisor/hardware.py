"""What the machine has: GPUs through NVML, the host through psutil — or a declared plan.

`probe()` reads the real machine; `planned()` builds the same `Hardware` for a machine
you do not have (`--gpu-mem 24GiB --gpus 2`, `--gpu A100-80GB`). Everything downstream
takes a `Hardware` value, so tests pass one in as data.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass, field

from .errors import RankwiseError, closest
from .units import GIB, parse_bytes


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    total_bytes: int
    free_bytes: int | None = None
    used_bytes: int | None = None
    compute_capability: tuple[int, int] | None = None
    bf16: bool = True

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB


@dataclass(frozen=True)
class Host:
    cpu_cores: int
    ram_total_bytes: int
    ram_available_bytes: int
    disk_free_bytes: int | None
    disk_path: str


@dataclass(frozen=True)
class Hardware:
    gpus: tuple[Gpu, ...]
    host: Host | None = None
    source: str = "probe"  # probe | declared
    driver_version: str | None = None
    cuda_version: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def gpu_bytes(self) -> int | None:
        """Memory of the smallest GPU: per-GPU plans must fit the smallest."""
        return min(g.total_bytes for g in self.gpus) if self.gpus else None

    @property
    def bf16(self) -> bool:
        return bool(self.gpus) and all(g.bf16 for g in self.gpus)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["has_gpu"] = self.has_gpu
        return d


# Named GPUs for planning (memory as the card's marketing size in GiB-ish units,
# compute capability from NVIDIA's CUDA GPUs table). bf16 needs compute capability >= 8.0.
GPU_TABLE: dict[str, tuple[float, tuple[int, int]]] = {
    "T4": (15.0, (7, 5)), "V100-16GB": (16.0, (7, 0)), "V100-32GB": (32.0, (7, 0)),
    "RTX3090": (24.0, (8, 6)), "RTX4090": (24.0, (8, 9)), "RTX5090": (32.0, (12, 0)),
    "A10G": (24.0, (8, 6)), "A10": (24.0, (8, 6)), "L4": (24.0, (8, 9)), "L40S": (48.0, (8, 9)),
    "RTXA6000": (48.0, (8, 6)), "A40": (48.0, (8, 6)), "RTX6000ADA": (48.0, (8, 9)),
    "L40": (48.0, (8, 9)), "RTXA5000": (24.0, (8, 6)), "RTXA4000": (16.0, (8, 6)),
    "RTX4080": (16.0, (8, 9)), "RTX3080": (10.0, (8, 6)),
    "A100-40GB": (40.0, (8, 0)), "A100-80GB": (80.0, (8, 0)), "H100-80GB": (80.0, (9, 0)),
    "H100-94GB": (94.0, (9, 0)), "H200": (141.0, (9, 0)), "B200": (180.0, (10, 0)),
    "MI300X": (192.0, (9, 4)),
}
# nvidia-smi reports slightly less than the marketing size; plan with what the driver exposes.
_USABLE = {"T4": 15.0, "A100-40GB": 39.4, "A100-80GB": 79.2, "H100-80GB": 79.1, "RTX3090": 23.7,
           "RTX4090": 23.6, "A10G": 22.1, "L4": 22.0, "H200": 139.8}


@dataclass(frozen=True)
class GpuSpeed:
    """What the time planner (advisor/time.py) divides the work by: peak dense 16-bit tensor
    throughput (bf16, or fp16 where the card has no bf16; no 2:4 sparsity) and memory bandwidth."""

    tflops: float  # dense bf16/fp16 tensor TFLOP/s, FP32 accumulate
    bandwidth_gbs: float  # memory bandwidth, GB/s (10^9 bytes)
    source: str


# Vendor datasheets (NVIDIA product datasheets / architecture whitepapers, AMD's MI300X
# datasheet); the sparse figures they headline are halved to the dense rate. GeForce cards
# run FP16 with FP32 accumulate at half the FP16-accumulate rate (Ampere GA102 / Ada AD102
# whitepapers, "Peak FP16 Tensor TFLOPS with FP32 Accumulate"): that is the rate training uses.
GPU_SPEED: dict[str, GpuSpeed] = {
    "T4": GpuSpeed(65.0, 320.0, "NVIDIA T4 datasheet: 65 TFLOPS mixed-precision FP16, 320 GB/s"),
    "V100-16GB": GpuSpeed(125.0, 900.0, "NVIDIA V100 datasheet (SXM2): 125 tensor TFLOPS, 900 GB/s"),
    "V100-32GB": GpuSpeed(125.0, 900.0, "NVIDIA V100 datasheet (SXM2): 125 tensor TFLOPS, 900 GB/s"),
    "RTX3090": GpuSpeed(71.0, 936.0, "NVIDIA Ampere GA102 whitepaper: 71 FP16 tensor TFLOPS (FP32 acc.), 936 GB/s"),
    "RTX4090": GpuSpeed(165.2, 1008.0, "NVIDIA Ada AD102 whitepaper: 165.2 FP16 tensor TFLOPS (FP32 acc.), 1008 GB/s"),
    "RTX4080": GpuSpeed(97.5, 716.8, "NVIDIA Ada whitepaper, RTX 4080 16GB: 97.5 FP16 tensor TFLOPS (FP32 acc.), 716.8 GB/s"),
    "RTX3080": GpuSpeed(59.5, 760.0, "NVIDIA Ampere GA102 whitepaper, RTX 3080 10GB: 59.5 FP16 tensor TFLOPS (FP32 acc.), 760 GB/s"),
    "RTX5090": GpuSpeed(209.5, 1792.0, "NVIDIA Blackwell GB202 whitepaper: 209.5 FP16 tensor TFLOPS (FP32 acc.), 1792 GB/s"),
    "A10G": GpuSpeed(70.0, 600.0, "no datasheet (AWS-only A10 variant): ~70 TFLOPS as AWS g5 material states, A10's 600 GB/s"),
    "A10": GpuSpeed(125.0, 600.0, "NVIDIA A10 datasheet: 250 BF16 TFLOPS sparse (125 dense), 600 GB/s"),
    "L4": GpuSpeed(121.0, 300.0, "NVIDIA L4 datasheet: 242 BF16 TFLOPS sparse (121 dense), 300 GB/s"),
    "L40S": GpuSpeed(362.0, 864.0, "NVIDIA L40S datasheet: 733 BF16 TFLOPS sparse (362 dense), 864 GB/s"),
    "RTXA6000": GpuSpeed(154.8, 768.0, "NVIDIA RTX A6000 datasheet: 309.7 tensor TFLOPS sparse (154.8 dense), 768 GB/s"),
    "A40": GpuSpeed(149.7, 696.0, "NVIDIA A40 datasheet: 299.4 BF16 TFLOPS sparse (149.7 dense), 696 GB/s"),
    "L40": GpuSpeed(181.0, 864.0, "NVIDIA L40 datasheet: 362.1 BF16 TFLOPS sparse (181.05 dense), 864 GB/s"),
    "RTXA5000": GpuSpeed(111.1, 768.0, "NVIDIA RTX A5000 datasheet: 222.2 tensor TFLOPS sparse (111.1 dense), 768 GB/s"),
    "RTXA4000": GpuSpeed(76.7, 448.0, "NVIDIA RTX A4000 datasheet: 153.4 tensor TFLOPS sparse (76.7 dense), 448 GB/s"),
    "RTX6000ADA": GpuSpeed(364.2, 960.0, "NVIDIA RTX 6000 Ada datasheet: 728.5 tensor TFLOPS sparse (364.2 dense), 960 GB/s"),
    "A100-40GB": GpuSpeed(312.0, 1555.0, "NVIDIA A100 datasheet: 312 BF16 TFLOPS dense, 1555 GB/s (40GB)"),
    "A100-80GB": GpuSpeed(312.0, 2039.0, "NVIDIA A100 datasheet: 312 BF16 TFLOPS dense, 2039 GB/s (80GB SXM)"),
    "H100-80GB": GpuSpeed(989.0, 3350.0, "NVIDIA H100 datasheet (SXM): 1979 BF16 TFLOPS sparse (989 dense), 3.35 TB/s"),
    "H100-94GB": GpuSpeed(835.0, 3900.0, "NVIDIA H100 datasheet (NVL): 1671 BF16 TFLOPS sparse (835 dense), 3.9 TB/s"),
    "H200": GpuSpeed(989.0, 4800.0, "NVIDIA H200 datasheet (SXM): 1979 BF16 TFLOPS sparse (989 dense), 4.8 TB/s"),
    "B200": GpuSpeed(2250.0, 8000.0, "NVIDIA DGX B200 / HGX B200 datasheet: 4.5 PFLOPS BF16 sparse per GPU (2.25 dense), 8 TB/s"),
    "MI300X": GpuSpeed(1307.4, 5300.0, "AMD Instinct MI300X datasheet: 1307.4 BF16 TFLOPS dense, 5.3 TB/s"),
}
# A GPU with no name in the table (a declared `--gpu-mem` card, an unknown probe): planned as
# an A100-40GB, and the time output says so.
DEFAULT_SPEED_GPU = "A100-40GB"


def speed_of(name: str) -> tuple[str | None, GpuSpeed]:
    """The table's name and speed for a GPU name as NVML or `--gpu` gives it ("NVIDIA H100 80GB
    HBM3", "NVIDIA GeForce RTX 4090", "H200"); (None, the default card's) for an unknown one."""
    key = _norm(name)
    for k in GPU_SPEED:  # exact table names first
        if _norm(k) == key:
            return k, GPU_SPEED[k]
    words = _words(name)
    best = None
    for k in GPU_SPEED:
        parts = _norm(k).split("-")
        # the model as whole words ("L40" is not the L4, "RTX A4000" not the A40); the rest (40GB) within a word
        if parts[0] in words and all(any(p in w for w in words) for p in parts[1:]):
            if best is None or len(_norm(k)) > len(_norm(best)):
                best = k
    if best is None:
        for alias, real in (("A100", "A100-80GB"), ("H100NVL", "H100-94GB"), ("H100", "H100-80GB"),
                            ("V100", "V100-32GB"), ("A6000", "RTXA6000"), ("6000ADA", "RTX6000ADA")):
            if alias in words:
                best = real
                break
    return (best, GPU_SPEED[best]) if best else (None, GPU_SPEED[DEFAULT_SPEED_GPU])


def _words(name: str) -> set[str]:
    """A GPU name's words, single and run together two and three at a time: "NVIDIA GeForce RTX 4090" → RTX, 4090,
    RTX4090; "NVIDIA A100-SXM4-80GB" → A100, SXM4, 80GB, A100SXM4, ...; "RTX 6000 Ada" → RTX6000ADA."""
    tokens = [t for t in re.split(r"[\s_-]+", name.upper()) if t and t not in ("NVIDIA", "GEFORCE", "TESLA")]
    return {"".join(tokens[i:i + n]) for n in (1, 2, 3) for i in range(len(tokens) - n + 1)}



def _norm(name: str) -> str:
    return name.upper().replace(" ", "").replace("_", "-").replace("NVIDIA", "").replace("GEFORCE", "")


def _flat(name: str) -> str:
    """A GPU name as people type it, to its table spelling: case, spaces, hyphens and a trailing
    "G" for "GB" do not matter ("rtx-4090", "A100 80G", "a100-80gb")."""
    key = _norm(name).replace("-", "")
    return key + "B" if key.endswith("0G") else key


def named_gpu(name: str) -> tuple[str, int, tuple[int, int]]:
    key = _flat(name)
    table = {_flat(k): k for k in GPU_TABLE}
    for alias, real in (("A100", "A100-80GB"), ("H100", "H100-80GB"), ("V100", "V100-32GB"),
                        ("A6000", "RTXA6000"), ("6000ADA", "RTX6000ADA")):
        table.setdefault(alias, real)
    if key not in table and "RTX" + key in table:  # a GeForce card by its number: "4090"
        key = "RTX" + key
    if key not in table and key + "GB" in table:  # its memory without the unit: "A100-40", "H100 80"
        key += "GB"
    if key not in table:
        try:
            size = parse_bytes(name, "--gpu")
        except RankwiseError:
            size = None
        if size is not None:  # a memory size where a name was asked for
            raise RankwiseError(f"--gpu: {name!r} is a memory size, not a GPU name",
                                f"give it as --gpu-mem {name.replace(' ', '')}, or a GPU name: {', '.join(GPU_TABLE)}")
        near = list(dict.fromkeys(table[k] for k in closest(key, table)))  # as the table spells them
        hint = f"did you mean {' or '.join(map(repr, near))}?" if near else ""
        raise RankwiseError(f"--gpu: unknown GPU {name!r}",
                            f"{hint} known: {', '.join(GPU_TABLE)}; or give --gpu-mem 24GiB instead".strip())
    real = table[key]
    size, cc = GPU_TABLE[real]
    return real, int(_USABLE.get(real, size) * GIB), cc


def planned(gpu_mem: str | None = None, gpus: int | None = None, gpu: str | None = None,
            host: Host | None = None) -> Hardware:
    """A declared machine: `--gpu NAME` or `--gpu-mem SIZE`, times `--gpus N`."""
    count = 1 if gpus is None else gpus
    if count < 1:
        raise RankwiseError(f"--gpus: {count} is not a GPU count", "give 1 or more")
    if gpu:
        name, total, cc = named_gpu(gpu)
        if gpu_mem:
            total = parse_bytes(gpu_mem, "--gpu-mem")
    else:
        total = parse_bytes(gpu_mem, "--gpu-mem")
        name, cc = f"declared {total / GIB:g} GiB GPU", (8, 0)
    cards = tuple(Gpu(i, name, total, compute_capability=cc, bf16=cc >= (8, 0)) for i in range(count))
    return Hardware(gpus=cards, host=host, source="declared")


def probe_host(path: str = ".") -> Host:
    import psutil  # cheap, but only the probe needs it

    vm = psutil.virtual_memory()
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        free = None
    return Host(cpu_cores=os.cpu_count() or 1, ram_total_bytes=vm.total, ram_available_bytes=vm.available,
                disk_free_bytes=free, disk_path=os.path.abspath(path))


def probe_gpus() -> tuple[tuple[Gpu, ...], str | None, str | None, tuple[str, ...]]:
    """Every GPU through NVML. No NVML or no GPU is a valid, CPU-only answer."""
    try:
        import pynvml
    except ImportError:
        return (), None, None, ("nvidia-ml-py is not installed; no GPU probe",)
    try:
        pynvml.nvmlInit()
    except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no usable NVIDIA driver
        return (), None, None, (f"no NVIDIA driver found ({type(e).__name__})",)
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        try:
            v = pynvml.nvmlSystemGetCudaDriverVersion()
            cuda = f"{v // 1000}.{(v % 1000) // 10}"
        except Exception:
            cuda = None
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            try:
                cc = tuple(pynvml.nvmlDeviceGetCudaComputeCapability(h))
            except Exception:
                cc = None
            gpus.append(Gpu(i, _text(pynvml.nvmlDeviceGetName(h)), int(mem.total), int(mem.free), int(mem.used),
                            cc, bool(cc and cc >= (8, 0))))
        return tuple(gpus), driver, cuda, ()
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def probe(path: str = ".") -> Hardware:
    gpus, driver, cuda, notes = probe_gpus()
    if not gpus and not notes:
        notes = ("NVML found no GPU",)
    return Hardware(gpus=gpus, host=probe_host(path), source="probe", driver_version=driver,
                    cuda_version=cuda, notes=notes)


def resolve(gpu_mem: str | None = None, gpus: int | None = None, gpu: str | None = None,
            path: str = ".") -> Hardware:
    """The hardware an advising command plans for: declared when flags say so, else probed.
    `--gpus 0` plans for a machine without a GPU (the CPU demo, or a GPU server judged as if bare)."""
    if gpus == 0:
        if gpu_mem or gpu:
            raise RankwiseError("--gpus 0 plans for no GPU, but --gpu/--gpu-mem describe one",
                                "drop --gpu/--gpu-mem, or give --gpus 1 or more")
        return Hardware(gpus=(), host=probe_host(path), source="declared", notes=("planned without a GPU (--gpus 0)",))
    if gpu_mem or gpu:
        return planned(gpu_mem, gpus, gpu, probe_host(path))
    hw = probe(path)
    if gpus is not None:
        if not hw.gpus:
            raise RankwiseError("--gpus needs a GPU size when no GPU is detected",
                                "add --gpu-mem 80GiB or --gpu A100-80GB to plan for GPUs you do not have here")
        if gpus < 1:
            raise RankwiseError(f"--gpus: {gpus} is not a GPU count", "give 1 or more")
        first = hw.gpus[0]
        hw = Hardware(gpus=tuple(Gpu(i, first.name, first.total_bytes, compute_capability=first.compute_capability,
                                     bf16=first.bf16) for i in range(gpus)),
                      host=hw.host, source="declared", driver_version=hw.driver_version, cuda_version=hw.cuda_version)
    return hw
