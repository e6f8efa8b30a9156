"""`rankwise hw`: what this machine has (or the declared one)."""
from __future__ import annotations

from rankwise.advisor.units import gib

from .common import add_json, add_planning, hardware_from, print_json


def register(sub) -> None:
    p = sub.add_parser("hw", help="show GPUs (NVML) and host memory, cores and disk")
    add_json(p)
    add_planning(p)
    p.set_defaults(func=run)


def run(args) -> int:
    hw = hardware_from(args)
    if args.json:
        print_json(hw.to_dict())
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if hw.gpus:
        t = Table(title=f"GPUs ({hw.source})", title_justify="left")
        for col in ("#", "name", "total", "used", "free", "compute", "bf16"):
            t.add_column(col, justify="right" if col in ("total", "used", "free") else "left")
        for g in hw.gpus:
            fmt = lambda b: "-" if b is None else f"{gib(b):.1f} GiB"
            cc = ".".join(map(str, g.compute_capability)) if g.compute_capability else "?"
            t.add_row(str(g.index), g.name, fmt(g.total_bytes), fmt(g.used_bytes), fmt(g.free_bytes), cc,
                      "yes" if g.bf16 else "no")
        console.print(t)
        if hw.driver_version:
            console.print(f"driver {hw.driver_version}, CUDA {hw.cuda_version or '?'}")
    else:
        console.print("No GPU found: this machine is CPU-only. "
                      "(That is fine for the demo presets; plan for a GPU with --gpu-mem 24GiB or --gpu A100-80GB.)")
        for note in hw.notes:
            console.print(f"  [dim]{note}[/dim]")
    if hw.host:
        h = hw.host
        disk = f"{gib(h.disk_free_bytes):.1f} GiB free at {h.disk_path}" if h.disk_free_bytes is not None else "?"
        console.print(f"host: {h.cpu_cores} CPU cores, RAM {gib(h.ram_available_bytes):.1f} of "
                      f"{gib(h.ram_total_bytes):.1f} GiB available, disk {disk}")
    return 0
