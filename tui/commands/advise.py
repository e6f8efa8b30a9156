"""`rankwise advise`: recommend LoRA or QLoRA and every knob, each with its reason."""
from __future__ import annotations

import os
from pathlib import Path

from rankwise.advisor.config import STRATEGY_CHOICES, TASKS, get_key  # the schema's enumerations; a field by dotted key
from rankwise.advisor.coupling import lrs_text
from rankwise.advisor.fit import STRATEGY_NAMES
from rankwise.advisor.methods import LEANEST, label

from ..style import FIT_STYLE, GOOD, SEVERITY_STYLE
from .common import add_json, add_planning, hardware_from, print_json


def _value(value) -> str:
    """A config value as the table shows it: a list as its names (as a preset writes them), an empty one as none."""
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def register(sub) -> None:
    p = sub.add_parser("advise", help="recommend LoRA/QLoRA hyperparameters with reasons",
                       description="Recommend the method (LoRA if it fits with headroom, else QLoRA), rank, alpha, "
                                   "targets, dropout, learning rate, schedule and batch shape for a model, task and "
                                   "GPU; every value with its reason. When nothing fits, says what would.")
    p.add_argument("--model", required=True, help="catalog name, Hugging Face id (model index or local cache), local model folder/config.json")
    p.add_argument("--task", required=True, choices=TASKS,
                   help="what the fine-tune teaches: classification/format/style (rank 4–8), instruction/chat "
                        "(16–32), domain/code/reasoning (64–128)")
    p.add_argument("--budget", metavar="N", help="most trainable parameters, e.g. 10M: caps the rank")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--dataset", metavar="PATH", help="training data (.jsonl/.json/.csv/.parquet): rows are counted "
                                                        "and lengths measured")
    data.add_argument("--samples", type=int, metavar="N", help="number of training rows, if you know it")
    p.add_argument("--seq", "--seq-len", "--max-seq-len", dest="seq", type=int, metavar="TOKENS", help="sequence length (default: from --dataset, else 2048)")
    p.add_argument("--strategy", choices=STRATEGY_CHOICES,
                   help="how --gpus N share the run: ddp (full copy per GPU), fsdp (sharded), deepspeed (ZeRO-3); "
                        "auto (default): DDP if the model fits one GPU, else FSDP")
    p.add_argument("--write-preset", metavar="FILE", help="also write the config as a YAML preset for `rankwise train`")
    p.add_argument("--force", action="store_true", help="let --write-preset overwrite an existing file")
    p.add_argument("--why", metavar="FIELD", help="the sources behind one advised value, with locators and quotes "
                                                  "(a dotted field: lora.alpha, train.lr, lora.target_modules, ...)")
    add_json(p)
    add_planning(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from rankwise.advisor.errors import RankwiseError
    from rankwise.advisor.model import UnknownModel, load_model
    from rankwise.advisor.recommend import advise
    from rankwise.advisor.units import parse_count

    if args.samples is not None and args.samples < 1:
        raise RankwiseError(f"--samples: {args.samples} is not a row count", "give the number of training rows, e.g. 5000")
    if args.seq is not None and args.seq < 8:
        raise RankwiseError(f"--seq: {args.seq} tokens is too short", "e.g. --seq 2048")
    if args.write_preset and os.path.exists(args.write_preset) and not args.force:
        raise RankwiseError(f"--write-preset: {args.write_preset} already exists", "pick another name or add --force")
    budget = parse_count(args.budget, "--budget") if args.budget else None
    try:
        spec = load_model(args.model)
    except UnknownModel as unknown:
        return _name_bound(args, unknown)
    hw = hardware_from(args)
    from rankwise.advisor.config import RunConfig

    base = RunConfig()
    if getattr(args, "strategy", None):
        base.distributed.strategy = args.strategy
    local = Path(args.model).expanduser()
    base.model.name = str(local.resolve()) if local.exists() else args.model  # presets resolve relative paths
    data, data_note = {"dataset_rows": args.samples}, None
    if args.dataset:  # the rows read, in the model's own tokens when its tokenizer is here (advisor/tokens.py)
        from rankwise.advisor.dataset import advice_data

        data, data_note = advice_data(args.dataset, spec)
        base.data.path = str(Path(args.dataset).resolve())
    advice = advise(spec, hw, args.task, budget=budget, seq_len=args.seq, base=base, **data)
    if args.why and args.why not in advice.reasons:
        raise RankwiseError(f"--why {args.why}: advise sets no such field",
                            f"one of: {', '.join(k for k in advice.reasons)}")
    if data_note:
        advice.notes.insert(0, data_note)
    if args.write_preset:
        _write_preset(Path(args.write_preset), advice, args)
    ahead = _forecast(spec, advice, hw, args, data["dataset_rows"])
    if args.json:
        d = advice.to_dict()
        if args.why:
            d["why"] = why_dict(advice, args.why)
        if ahead is not None:
            d.update(ahead.to_dict())
        d["hardware"] = {"gpus": hw.gpu_count, "gpu_gib": round(hw.gpu_bytes / 1024 ** 3, 2) if hw.gpu_bytes else None,
                         "bf16": hw.bf16, "source": hw.source}
        if args.write_preset:
            d["preset"] = str(args.write_preset)
        print_json(d)
        return 0
    _render(advice, spec, hw, args, ahead)
    return 0


def _name_bound(args, unknown) -> int:
    """A model rankwise does not know whose name states its size (as `estimate` and `check` answer it,
    advisor/size_bound.py): the method from the range each method's peak lies in, said as approximate; the rest of
    the advice needs the shape. Re-raises `unknown` where the name states no size or no indexed model stands in;
    --dataset (the tokenizer), --write-preset and --why need the model itself."""
    from rankwise.advisor import size_bound
    from rankwise.advisor.config import RunConfig
    from rankwise.advisor.errors import RankwiseError
    from rankwise.advisor.methods import COMPARED

    name = args.model
    if size_bound.name_size(name) is None:
        raise unknown
    need = next((flag for flag, given in (("--dataset", args.dataset), ("--write-preset", args.write_preset),
                                          ("--why", args.why)) if given), None)
    if need:
        raise RankwiseError(f"{unknown.message}; {need} needs the model's shape", unknown.hint)
    cfg = RunConfig()
    cfg.model.name = name
    if args.seq:
        cfg.train.max_seq_len = args.seq
    if getattr(args, "strategy", None):
        cfg.distributed.strategy = args.strategy
    hw = hardware_from(args)
    bounds = {m: size_bound.bound(name, cfg, hw, m) for m in COMPARED}
    picked = size_bound.auto_method(name, cfg, hw)
    if picked is None or not any(b is not None and b.stand_ins for b in bounds.values()):
        raise unknown
    method, why, _ = picked
    fits = not (bounds[method] is not None and bounds[method].verdict == "wont-fit")
    exact = ("the rest of the advice (rank, alpha, targets, learning rate, batch) needs the shape: --fetch-config "
             "(this id's config.json only, no weights), or --model with a local folder or config.json")
    if args.json:
        print_json({"model": name, "approximate": True, "fit_basis": "name-size", "method": method if fits else None,
                    "reasons": {"method": why}, "bounds": {m: b.to_dict() for m, b in bounds.items() if b is not None},
                    "exact": exact})
        return 0
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    console.print(f"[bold]{escape(name)}[/bold], task [bold]{args.task}[/bold] (not in the catalog or the model "
                  "index: approximate, from the size its name states)")
    if not fits:
        console.print(f"\n[{FIT_STYLE['wont-fit']}]Nothing fits[/] — {escape(why)} does not fit either")
    else:
        console.print(f"\n[bold {GOOD}]Method: {label(method)}[/] — {escape(why)}")
    for m, b in bounds.items():
        if b is not None:
            console.print(f"  {label(m)}: {escape(size_bound.finding_text(b))}")
    console.print(escape(exact))
    return 0


def _forecast(spec, advice, hw, args, rows):
    """Time, cost, host RAM and disk of the recommended config (advisor/forecast.py)."""
    from rankwise.advisor.fit import assess
    from rankwise.advisor.forecast import forecast
    from rankwise.advisor.methods import LEANEST

    judged = assess(spec, advice.config, hw, method=advice.method or LEANEST, lengths=advice.lengths)
    return forecast(spec, advice.config, judged, hw, price=getattr(args, "price", None), rows=rows)


# ------------------------------------------------------------------ preset


def _scalar(value) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").removesuffix("...").strip()


def preset_text(advice, command: str) -> str:
    """The advice as a commented YAML preset (reasons beside the knobs)."""
    cfg = advice.config
    data = cfg.model_dump(mode="json", exclude_none=True)
    lines = [f"# Written by: {command}",
             f"# Method: {advice.method or f'none fits ({label(LEANEST)} written; see the suggestions)'} — "
             f"{advice.reasons.get('method', '')}",
             "# Check it: rankwise check FILE [--gpu-mem ...]   Launch: rankwise train --preset FILE",
             f"# First sweep (ranks): {', '.join(map(str, advice.first_sweep))}"
             + (f"; learning rates {lrs_text(advice.first_lrs)} at each rank (--lrs)" if advice.first_lrs else "")]
    if not cfg.data.path:
        lines.append("# Set data.path to your training data (.jsonl/.json/.csv/.parquet) before training.")
    wanted = {"model": ("name",), "task": None, "data": ("path",), "method": None,
              "lora": ("r", "alpha", "dropout", "bias", "target_modules", "use_rslora"),
              "train": ("lr", "scheduler", "warmup_ratio", "epochs", "micro_batch", "grad_accum", "max_seq_len",
                        "grad_checkpointing", "optimizer", "precision", "evals_per_epoch", "stop_on")
                        + (("loss",) if cfg.train.loss != "standard" else ())}
    wanted["data"] = ("path", "val_ratio")
    if cfg.distributed.gpus != 1:
        wanted["distributed"] = ("strategy", "gpus")
    for section, keys in wanted.items():
        if keys is None:
            reason = advice.reasons.get(section)
            lines.append(f"{section}: {_scalar(data[section])}" + (f"  # {reason}" if reason else ""))
            continue
        body = [k for k in keys if k in data.get(section, {})]
        if not body:
            continue
        lines.append(f"{section}:")
        for key in body:
            reason = advice.reasons.get(f"{section}.{key}")
            lines.append(f"  {key}: {_scalar(data[section][key])}" + (f"  # {reason}" if reason else ""))
    return "\n".join(lines) + "\n"


def _write_preset(path: Path, advice, args) -> None:
    from rankwise.advisor.errors import RankwiseError

    import shlex
    import sys

    command = "rankwise " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "rankwise advise"
    text = preset_text(advice, command.replace("\n", " "))
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        if path.exists() and not args.force:  # appeared while we worked
            raise RankwiseError(f"--write-preset: {path} already exists", "pick another name or add --force")
        os.replace(tmp, path)
    except OSError as e:
        raise RankwiseError(f"--write-preset: cannot write {path}: {e.strerror}", "check the folder exists and is writable") from None
    finally:
        if tmp.exists():
            tmp.unlink()


# ------------------------------------------------------------------ text


def _render(advice, spec, hw, args, ahead=None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from rankwise.advisor.units import human_count

    console = Console(highlight=False)
    where = (f"{hw.gpu_count} × {hw.gpus[0].name} ({hw.gpu_bytes / 1024 ** 3:.1f} GiB)" if hw.has_gpu
             else "no GPU (CPU only)")
    console.print(f"[bold]{escape(args.model)}[/bold] ({human_count(spec.total_params)} parameters), task "
                  f"[bold]{args.task}[/bold], on {escape(where)}")
    for note in advice.notes:
        console.print(f"  [dim]{escape(note)}[/dim]")
    if advice.method:
        console.print(f"\n[bold {GOOD}]Recommended: {label(advice.method)}[/] — {escape(advice.reasons['method'])}")
    else:
        console.print(f"\n[{FIT_STYLE['wont-fit']}]Nothing fits[/] — {escape(advice.reasons['method'])}")

    if advice.strategy and hw.gpu_count > 1:
        s = advice.strategy
        name = STRATEGY_NAMES[s["strategy"]]
        reason = s["reason"].removeprefix(f"{name}: ")  # the reason opens with the name the line already gives
        if reason.startswith(f"{name} as configured: "):
            name, reason = f"{name} (as configured)", reason.removeprefix(f"{name} as configured: ")
        console.print(f"[bold]{s['gpus']} GPUs as {name}[/bold]: {escape(reason)}")
    est = Table(title="Memory per GPU (same settings)", title_justify="left")
    for col in ("method", "peak", "weights", "activations + loss", "fit"):
        est.add_column(col, justify="left" if col in ("method", "fit") else "right")
    for m, e in advice.estimates.items():
        c = e.components
        w = sum(v for k, v in c.items() if k in ("base_weights", "quant_constants", "unquantized_weights"))
        act = c.get("activations", 0) + c.get("logits_loss", 0)
        f = advice.fits[m]
        est.add_row(label(m) + (" ◀" if m == advice.method else ""), f"{e.peak_gib:.1f} GiB",
                    f"{w / 1024 ** 3:.1f} GiB", f"{act / 1024 ** 3:.1f} GiB", f"[{FIT_STYLE[f]}]{f}[/{FIT_STYLE[f]}]")
    console.print(est)
    if ahead is not None:
        console.print(escape(ahead.line()))

    if advice.method:
        t = Table(title="Config", title_justify="left", show_lines=False)
        t.add_column("field")
        t.add_column("value")
        t.add_column("why", overflow="fold")
        cfg = advice.config.model_dump(mode="json")
        for key, reason in advice.reasons.items():
            if key == "method":
                continue
            t.add_row(key, escape(_value(get_key(cfg, key))), escape(reason))
        console.print(t)
    if advice.budget_arithmetic:
        console.print("[bold]Budget arithmetic[/bold]")
        console.print(escape(advice.budget_arithmetic))
    if advice.suggestions:
        s = Table(title="What would make it fit (re-estimated)", title_justify="left")
        for col in ("change", "peak", "fit"):
            s.add_column(col)
        for item in advice.suggestions:
            f = item["fit"]
            s.add_row(escape(item["change"]), f"{item['peak_gib']:.1f} GiB", f"[{FIT_STYLE[f]}]{f}[/{FIT_STYLE[f]}]")
        console.print(s)
    if advice.findings:
        console.print("[bold]Red flags[/bold]")
        for f in advice.findings:
            st = SEVERITY_STYLE[f.severity]
            console.print(f"  [{st}]{f.severity}[/{st}] {f.code}: {escape(f.message)} — fix: {escape(f.fix)}")
    if advice.method:
        rates = (f"learning rates {lrs_text(advice.first_lrs)} at each rank, each at its best: this model is narrower "
                 "than any the learning rate's sources measured" if advice.first_lrs
                 else f"lr {advice.config.train.lr:g} at each rank")
        ranks, lrs = advice.sweep_flags()
        console.print(f"\n[bold]First sweep[/bold]: ranks {', '.join(map(str, advice.first_sweep))} "
                      f"(alpha {advice.config.lora.alpha_value:g} and {rates}; compare validation loss)"
                      + (f": rankwise sweep --preset {escape(str(args.write_preset))} --ranks {ranks}"
                         + (f" --lrs {lrs}" if lrs else "") if args.write_preset else ""))
    if args.why:
        print_why(console, advice, args.why)
    elif advice.method:
        console.print("[dim]Sources for a value: add --why FIELD (e.g. --why lora.alpha); all: rankwise evidence[/dim]")
    if args.write_preset:
        console.print(f"\nwrote {escape(str(args.write_preset))}: rankwise train --preset {escape(str(args.write_preset))}")


# ------------------------------------------------------------------ sources (--why)


def why_dict(advice, key: str) -> dict:
    """{field, value, reason, status, sources: [{key, title, authors, year, url, locator, quote, verbatim,
    setting, kind}]} for one advised field."""
    from rankwise.advisor.config import get_key
    from rankwise.advisor.evidence import CLAIMS, SOURCES

    out = []
    for k in advice.citations.get(key, []):
        c, src = CLAIMS[k], SOURCES[CLAIMS[k].source]
        out.append({"key": k, "title": src.title, "authors": src.authors, "year": src.year, "url": src.url,
                    "locator": c.locator, "quote": c.quote, "verbatim": c.verbatim, "setting": c.setting,
                    "kind": c.kind})
    return {"field": key, "value": get_key(advice.config.model_dump(mode="json"), key),
            "reason": advice.reasons.get(key), "status": advice.statuses.get(key), "sources": out}


def print_why(console, advice, key: str) -> None:
    from rich.markup import escape

    d = why_dict(advice, key)
    console.print(f"\n[bold]Why {escape(key)} = {escape(str(d['value']))}[/bold] [dim]({d['status']})[/dim]")
    console.print(f"  {escape(d['reason'] or '')}")
    if not d["sources"]:
        console.print("  [dim]no source cited: arithmetic from the other values, or unsourced (said as such)[/dim]")
    for s in d["sources"]:
        console.print(f"  [bold]{escape(s['title'])}[/bold] — {escape(s['authors'])} ({s['year'] or 'n.d.'})"
                      + (f" {escape(s['url'])}" if s["url"] else ""))
        quote = f"\u201c{s['quote']}\u201d" if s["verbatim"] else f"paraphrase: {s['quote']}"
        console.print(f"    {escape(s['locator'])}: {escape(quote)}")
        console.print(f"    [dim]setting: {escape(s['setting'])}[/dim]")
