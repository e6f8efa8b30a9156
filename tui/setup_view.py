"""Setup's words, as rich Text: the machine, the GPU the advice is for, the dataset's quick scan
and token check, and the advisor's CLI flags said as the Setup fields they are. Pure functions
of their data (no widgets), so the screen stays about the screen."""
from __future__ import annotations

from rich.text import Text

from .style import message_style, severity_style
from .widgets.bars import gib, gpu_line, usage_bar


def datacheck_text(report: dict) -> Text:
    """The tokenizing check in one or two lines: what is trained, what is cut, the worst finding."""
    tokens = report.get("tokens") or 0
    share = (report.get("trained_tokens") or 0) / tokens if tokens else 0.0
    if report.get("tokenizer") == "model":
        t = Text(f"tokens p50 {report.get('token_p50')}, p95 {report.get('token_p95')} · {share:.0%} trained · "
                 f"{report.get('no_trained_rows', 0)} rows with nothing trained · "
                 f"{report.get('truncated_rows', 0)} truncated at {report.get('max_seq_len')}")
    else:  # a byte-level stand-in counted them: bytes, several times the model's tokens; its truncation is not the run's
        t = Text(f"bytes p50 {report.get('token_p50')}, p95 {report.get('token_p95')} · {share:.0%} trained · "
                 f"{report.get('no_trained_rows', 0)} rows with nothing trained")
        t.append(" (rendered and counted by a byte-level stand-in: the model has no local tokenizer, so truncation "
                 "at max_seq_len is not counted)", style="dim")
    worst = next(iter(report.get("findings") or []), None)
    if worst:
        head = worst["message"].split(": ", 1)[0]  # the count; the rows are in `rankwise check --data`
        t.append(f"\n{worst['code']}: {head}", style=severity_style(worst["severity"]))
    return t


def hardware_text(hw) -> Text:
    if hw is None:
        return Text("probing the machine…", style="dim")
    out = Text()
    for g in hw.gpus:
        out.append_text(gpu_line(g, 16))
        out.append("\n")
    if not hw.gpus:
        out.append("No GPU found", style="bold " + message_style("warning"))
        note = f" ({hw.notes[0]})" if getattr(hw, "notes", None) else ""
        out.append(note + ": plan for one below (memory and count, or a GPU name)\n", style=message_style("warning"))
    host = hw.host
    if host is not None:
        used = host.ram_total_bytes - host.ram_available_bytes
        out.append("host ", style="bold")
        out.append(f"{host.cpu_cores} cores  RAM ")
        out.append_text(usage_bar(used, host.ram_total_bytes, 12))
        out.append(f" {gib(host.ram_total_bytes)} GiB, {gib(host.ram_available_bytes)} free")
    return out


def plan_text(probed, hw) -> Text:
    """One line: the GPU the advice is for, and where that came from (probed here, or declared in
    the fields). `hw` None: not decided yet (the fields are empty); False: the fields are wrong."""
    if probed is None and not hw:
        return Text("advice for: this machine, once probed…", style="dim")
    if hw is False:
        return Text("advice for: the GPU in the fields, once they are right (^n says what is wrong)",
                    style=message_style("warning"))
    hw = hw or probed
    t = Text("advice for: ", style="bold")
    if hw.gpus:
        g = hw.gpus[0]
        name = f"{gib(hw.gpu_bytes)} GiB GPU" if g.name.startswith("declared") else f"{g.name} {gib(hw.gpu_bytes)} GiB"
        t.append(f"{hw.gpu_count}× {name}" if hw.gpu_count > 1 else name)
    else:
        return t.append("no GPU found on this machine: plan for one in the row above")
    if hw is probed or hw.source == "probe":
        t.append(" (probed here)", style="dim")
    else:
        t.append(" (declared, not this machine's)" if probed is not None and probed.gpus else " (declared)",
                 style=message_style("warning"))
    return t


def scan_text(scan) -> Text:
    fmt = scan.format or "unknown format"
    if scan.total_rows:  # the quick scan stopped early and the rows were counted
        rows = f"{scan.total_rows:,} rows ({scan.rows:,} scanned)"
    else:
        rows = f"{scan.rows:,}{'' if scan.complete else '+'} rows"
    t = Text(f"{rows} · {fmt} · chars median {scan.median_chars:,}, "
             f"p95 {scan.p95_chars:,}, max {scan.max_chars:,}" + (" of all rows" if scan.longest_of else ""))
    if scan.bad_rows:
        t.append(f" · {scan.bad_rows} bad", style=severity_style("error"))
        if scan.first_problems:
            t.append(f": {scan.first_problems[0]}", style=message_style("error"))
    return t


# the CLI's flags in the advisor's messages, as the Setup fields they are here
TUI_WORDS = (("--gpu-mem", "the GPU memory field"), ("--gpus", "the GPU count field"),
             ("--gpu", "the GPU name field"), ("pass --dataset or --samples", "pick a dataset"),
             ("--dataset", "the dataset field"), ("--budget", "the budget field"), ("--model", "the model field"))


def in_tui_words(text: str) -> str:
    for flag, words in TUI_WORDS:
        text = text.replace(flag, words)
    return text
