"""`rankwise export RUN --format merged|gguf|ollama [--out DIR] [--quant q8_0|f16]`: a run's model for serving."""
from __future__ import annotations

import sys
from pathlib import Path

from .runs import _add_runs_dir, runs_dir_of


def register(sub) -> None:
    from rankwise.trainer.export import FORMATS, QUANTS

    p = sub.add_parser("export", help="a finished run's model for serving: merged folder, GGUF file, Ollama Modelfile",
                       description="merged: the adapter merged into the base (a standalone transformers folder, as "
                                   "`rankwise merge`). gguf: one GGUF file of the merged model for llama.cpp-based "
                                   "runtimes (Llama-architecture models with byte-level BPE tokenizers; needs "
                                   "`pip install 'rankwise[export]'`). ollama: the GGUF and a Modelfile beside it. "
                                   "Exit 2: bad run id, no adapter, an existing non-empty --out, an architecture "
                                   "or quantization the writer does not know (the message names the converter).")
    p.add_argument("run", metavar="RUN", help="run id, unique id prefix, or run directory")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="merged", help="default merged")
    p.add_argument("--out", metavar="DIR", help="a new or empty folder (default RUN_DIR/<format>)")
    p.add_argument("--quant", choices=QUANTS, default=QUANTS[0],
                   help="GGUF tensor type: q8_0 (8-bit, norms f32) or f16 (default q8_0)")
    _add_runs_dir(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from rankwise.trainer.chat import adapter_dir
    from rankwise.trainer.merge import check_out
    from rankwise.trainer.runs import find_run

    run_dir = find_run(runs_dir_of(args), args.run)
    adapter_dir(run_dir)
    out = Path(args.out).expanduser() if args.out else run_dir / args.fmt
    check_out(out)  # before the slow imports
    if args.fmt != "merged":
        from rankwise.trainer.export import gguf_module

        gguf_module()
    print(f"exporting {run_dir.name} as {args.fmt} into {out} …", file=sys.stderr, flush=True)
    from rankwise.trainer.export import export

    print(export(run_dir, args.fmt, out, args.quant))
    return 0
