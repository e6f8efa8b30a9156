"""`rankwise chat RUN --serve`: the chat as JSON lines, for a program (the TUI's chat screen) that
must not load the model itself.

Requests, one JSON object a line on stdin:
  {"prompt": TEXT, "who": "adapter" | "base" | "both"}   answer (both: the base, then the adapter)
  {"reset": true}                                         forget the conversation
Replies, one JSON object a line on stdout (`type` says which):
  ready  {run, adapter, checkpoint}    the model is loaded (first line) / the turn is over (later lines)
  token  {who, text}                   new text of the answer being generated
  done   {who, text}                   that answer, whole
  error  {message, hint}               a bad request (the server goes on) or a failed load (it exits 2)
The conversation is kept as the terminal chat keeps it: with `both`, the adapter's answer.
Whatever the libraries print goes to stderr, so stdout holds nothing but these lines.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

from rankwise.advisor.errors import RankwiseError

from .generation import Settings

WHO = ("adapter", "base", "both")


def reply(out: IO[str], kind: str, **fields) -> None:
    out.write(json.dumps({"type": kind, **fields}) + "\n")
    out.flush()


def serve(run_dir: Path, checkpoint: int | None, settings: Settings, stdin: IO[str] | None = None,
          stdout: IO[str] | None = None) -> int:
    """Load the run's bench, then answer requests until stdin ends. Exit code: 0, or 2 when the
    run cannot be loaded (said as an error line first)."""
    out = stdout or sys.stdout
    stdin = stdin or sys.stdin
    sys.stdout = sys.stderr  # a library's print must not break the protocol
    try:
        from .chat import Bench

        try:
            bench = Bench.open(run_dir, checkpoint)
        except RankwiseError as e:
            reply(out, "error", message=e.message, hint=e.hint)
            return 2
        reply(out, "ready", run=Path(run_dir).name, adapter=str(bench.adapter), checkpoint=checkpoint)
        history: list[dict] = []
        for line in stdin:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                reply(out, "error", message=f"not a JSON object: {e}", hint='send {"prompt": TEXT, "who": "adapter"}')
                continue
            if request.get("reset"):
                history = []
                reply(out, "ready", run=Path(run_dir).name, adapter=str(bench.adapter), checkpoint=checkpoint)
                continue
            who, text = request.get("who", "adapter"), request.get("prompt")
            if who not in WHO or not isinstance(text, str) or not text.strip():
                reply(out, "error", message=f"bad request {line.strip()[:80]}",
                      hint=f"prompt: a non-empty string; who: one of {', '.join(WHO)}")
                continue
            messages = history + [{"role": "user", "content": text}]
            kept = ""
            try:
                for one in (("base", "adapter") if who == "both" else (who,)):
                    answer = bench.answer(messages, adapter=one == "adapter", settings=settings,
                                          on_text=lambda t, one=one: reply(out, "token", who=one, text=t))
                    reply(out, "done", who=one, text=answer)
                    kept = answer
            except Exception as e:  # a generation that failed (out of memory, ...): said, the server goes on
                reply(out, "error", message=f"generation failed: {type(e).__name__}: {e}", hint=None)
                reply(out, "ready", run=Path(run_dir).name, adapter=str(bench.adapter), checkpoint=checkpoint)
                continue
            history = messages + [{"role": "assistant", "content": kept}]
            reply(out, "ready", run=Path(run_dir).name, adapter=str(bench.adapter), checkpoint=checkpoint)
        return 0
    finally:
        sys.stdout = out
