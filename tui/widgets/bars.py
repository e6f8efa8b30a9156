"""Memory bars as rich Text: a GPU's used/free split, an estimate's components against a GPU.

Segments differ by character as well as colour, so the bars stay readable with NO_COLOR.
"""
from __future__ import annotations

from rich.text import Text

from ..style import FIT_LABEL, FIT_STYLE, fit_style

GIB = 1024 ** 3

# estimator component → (group label, bar character, style)
GROUPS = (
    ("weights", "█", "blue", ("base_weights", "unquantized_weights", "quant_constants")),
    ("adapter+optim", "▓", "magenta", ("lora_params", "lora_grads", "optimizer_states", "saved_modules",
                                       "saved_modules_grads", "saved_modules_optimizer")),
    ("activations", "▒", "cyan", ("activations", "logits_loss")),
    ("overhead", "░", "white", ("allocator_overhead", "allocator_cached", "cuda_context", "nccl_buffers",
                                "fsdp_grad_buffers")),
)


def gib(n: int | float | None) -> str:
    return "?" if n is None else f"{n / GIB:.1f}"


def grouped(components: dict[str, int]) -> list[tuple[str, str, str, int]]:
    """(label, char, style, bytes) per group; components no group names land in overhead."""
    known = {c for g in GROUPS for c in g[3]}
    out = []
    for label, char, style, names in GROUPS:
        total = sum(components.get(n, 0) for n in names)
        if label == "overhead":
            total += sum(v for k, v in components.items() if k not in known)
        out.append((label, char, style, total))
    return out


def usage_bar(used: int, total: int, width: int) -> Text:
    """A used/free bar for a GPU or host memory."""
    width = max(4, width)
    filled = 0 if total <= 0 else min(width, round(width * used / total))
    bar = Text("█" * filled, style="yellow")
    bar.append("·" * (width - filled), style="dim")
    return bar


def gpu_line(gpu, width: int = 20) -> Text:
    used = gpu.used_bytes if gpu.used_bytes is not None else 0
    free = gpu.free_bytes if gpu.free_bytes is not None else gpu.total_bytes - used
    line = Text(f"GPU{gpu.index} ", style="bold")
    line.append(f"{gpu.name[:22]:<22} ")
    line.append_text(usage_bar(used, gpu.total_bytes, width))
    line.append(f" {gib(used)}/{gib(gpu.total_bytes)} GiB used, {gib(free)} free")
    return line


def estimate_bar(label: str, est, gpu_bytes: int | None, verdict: str, width: int, scale: int = 0) -> Text:
    """`LoRA  12.3 GiB / 24.0  fits` then a bar of components scaled to the GPU (or to `scale`,
    the largest peak shown, so bars side by side compare)."""
    head = Text(f"{label:<6}", style="bold")
    head.append(f"{est.peak_gib:6.1f} GiB")
    if gpu_bytes:
        head.append(f" / {gib(gpu_bytes)} GiB ")
    else:
        head.append(" ")
    head.append(FIT_LABEL.get(verdict, verdict), style=fit_style(verdict))
    scale = max(gpu_bytes or 0, est.peak_bytes, scale, 1)
    width = max(8, width)
    bar = Text()
    used = 0
    for _label, char, style, n in grouped(est.components):
        cells = round(width * n / scale)
        cells = min(cells, width - used)
        bar.append(char * cells, style=style)
        used += cells
    if used < width:
        bar.append("·" * (width - used), style="dim")
    if gpu_bytes and est.peak_bytes > gpu_bytes:
        bar.append("▶", style=FIT_STYLE["wont-fit"])  # over the edge
    return Text.assemble(head, "\n", bar)


def legend(est) -> Text:
    out = Text()
    for label, char, style, n in grouped(est.components):
        if out:
            out.append("  ")
        out.append(char, style=style)
        out.append(f" {label} {gib(n)}")
    return out
