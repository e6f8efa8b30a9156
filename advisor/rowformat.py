"""What a row of training data is: the formats, how each is recognised and checked, and the
row as the trainer reads it (chat and ShareGPT rows become clean `messages`).

Pure: no I/O but the JSON of tool-call arguments. `advisor/dataset.py` reads files into rows
and re-exports these names.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RankwiseError

FORMATS: tuple[str, ...] = ("chat", "sharegpt", "instruction", "prompt_completion", "text")
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
# The fields rankwise reads; data.columns maps a file's own names onto them.
COLUMNS: tuple[str, ...] = ("messages", "conversations", "tools", "instruction", "input", "output", "system",
                            "prompt", "completion", "text")
# ShareGPT speakers (`from`) → chat roles. function_call is an assistant's tool call (its value the
# call as JSON), observation a tool's result: LLaMA-Factory's ShareGPT layout.
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
                  "chatgpt": "assistant", "system": "system", "tool": "tool", "observation": "tool",
                  "function": "tool", "ipython": "tool", "function_call": "assistant"}

@dataclass(frozen=True)
class BadRow:
    """A row that could not be read (broken JSON line, ragged CSV row, not an object)."""

    reason: str


def _kind(obj: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(obj), "a number" if isinstance(obj, (int, float)) else type(obj).__name__)



# --------------------------------------------------------------------------- formats

def detect_format(row: dict) -> str | None:
    """chat (messages) | sharegpt (conversations) | instruction | prompt_completion | text,
    "preference" (chosen + rejected: recognised to be explained, never trained), or None."""
    if not isinstance(row, dict):
        return None
    if "chosen" in row and "rejected" in row:
        return "preference"
    if "messages" in row:
        return "chat"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row:
        return "instruction"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "text" in row:
        return "text"
    return None


FORMAT_HINT = ("rows need `messages` (chat), `conversations` (sharegpt), `instruction`+`output` (instruction), "
               "`prompt`+`completion` (prompt_completion) or `text` (text); or set data.format, and data.columns "
               "to map other field names (e.g. {output: answer})")


def apply_columns(row: Any, columns: dict[str, str] | None) -> Any:
    """data.columns: the file's field `src` is read as rankwise's field `dst` (moved, so a mapped
    `chosen` no longer marks the row as preference data)."""
    if not columns or not isinstance(row, dict):
        return row
    row = dict(row)
    for dst, src in columns.items():
        if src in row:
            row[dst] = row.pop(src)
    return row


def preference_error(path: str | Path, row: dict) -> RankwiseError:
    """Preference rows (a chosen and a rejected answer): what they are and how to use them for SFT."""
    fields = ", ".join(sorted(row))
    chosen = row.get("chosen")
    if isinstance(chosen, list):
        use = "data.columns: {messages: chosen} (the chosen conversation)"
    elif chosen is None:  # only the field names are known
        use = ("data.columns: {messages: chosen} (chosen conversations) or {completion: chosen} (a prompt and "
               "chosen answer texts)")
    elif "prompt" in row:
        use = "data.columns: {completion: chosen} (prompt + chosen answer, concatenated as written)"
    else:
        use = "data.columns: {text: chosen}"
    also = "; or data.format: chat to train on the rows' `messages`" if "messages" in row else ""
    return RankwiseError(
        f"{path}: this is preference data (fields {fields}: a chosen and a rejected answer per row); rankwise "
        "trains supervised fine-tuning (SFT), which does not learn from preferences",
        f"to fine-tune on the chosen answers only, set {use}{also}; the rejected answers are then not used. "
        "Preference training (DPO, ORPO, KTO) needs a preference trainer such as TRL")


def _string(row: dict, key: str, *, required: bool = True, nonempty: bool = False) -> str | None:
    if key not in row or row[key] is None:
        return f"missing field '{key}'" if required else None
    if not isinstance(row[key], str):
        return f"field '{key}' should be a string, got {_kind(row[key])}"
    if nonempty and not row[key].strip():
        return f"empty '{key}' (nothing to learn from)"
    return _surrogate(row[key], f"field '{key}'")


def _surrogate(text: str, what: str) -> str | None:
    """JSON allows "\ud800" escapes that are no character; tokenizers reject them mid-run."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"{what} holds a lone UTF-16 surrogate escape ({text[e.start]!r}), not a character"
    return None


def _content(content: Any, i: int) -> str | None | tuple[str]:
    """A message's content as text: a string, None, or a list of parts whose text parts are
    joined with a newline. A problem comes back as a 1-tuple (reason,)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        return (f"message {i} content should be a string or a list of parts, got {_kind(content)}",)
    texts = []
    for j, part in enumerate(content, start=1):
        kind = part.get("type", "text") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind is None:
            return (f"message {i} content part {j} should be an object like {{\"type\": \"text\", \"text\": ...}}, "
                    f"got {_kind(part)}",)
        elif kind == "text":
            return (f"message {i} content part {j} is a text part without a 'text' string",)
        else:
            return (f"message {i} content part {j} is of type {kind!r}: rankwise trains text-only models "
                    "(drop the part, or the row)",)
    return "\n".join(texts)


def _tool_calls(calls: Any, i: int) -> list[dict] | str:
    """OpenAI-style tool calls → [{"type": "function", "function": {"name", "arguments": dict}}]
    (chat templates expect the arguments as an object and write them as JSON), or a reason."""
    if not isinstance(calls, list) or not calls:
        return f"message {i} tool_calls should be a non-empty list, got {_kind(calls)}"
    out = []
    for j, call in enumerate(calls, start=1):
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            return f"message {i} tool call {j} needs a function name ({{\"function\": {{\"name\": ..., \"arguments\": ...}}}})"
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except (ValueError, RecursionError):
                return f"message {i} tool call {j} ({fn['name']}) has arguments that are not valid JSON"
        if not isinstance(args, dict):
            return f"message {i} tool call {j} ({fn['name']}) arguments should be an object, got {_kind(args)}"
        item = {"type": "function", "function": {"name": fn["name"], "arguments": args}}
        if isinstance(call.get("id"), str):
            item["id"] = call["id"]
        out.append(item)
    return out


def _sharegpt_turns(row: dict) -> list | str:
    turns = row.get("conversations")
    if turns is None:
        return "missing field 'conversations'"
    if not isinstance(turns, list) or not turns:
        return f"'conversations' should be a non-empty list of {{from, value}} objects, got {_kind(turns)}"
    msgs = []
    for i, t in enumerate(turns, start=1):
        if not isinstance(t, dict):
            return f"turn {i} should be an object with from and value, got {_kind(t)}"
        who = t.get("from", t.get("role"))
        if who not in SHAREGPT_ROLES:
            return (f"turn {i} has unknown speaker {who!r} (expected {', '.join(SHAREGPT_ROLES)})"
                    if who is not None else f"turn {i} has no 'from'")
        value = t.get("value", t.get("content"))
        if who == "function_call":  # the value is the call itself: {"name": ..., "arguments": ...}
            try:
                call = json.loads(value) if isinstance(value, str) else value
            except (ValueError, RecursionError):
                return f"turn {i} (function_call) is not a JSON tool call"
            msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            msgs.append({"role": SHAREGPT_ROLES[who], "content": value})
    out = {"messages": msgs}
    if "tools" in row:
        out["tools"] = row["tools"]
    return _chat_messages(out, "turn")


def _chat_messages(row: dict, noun: str = "message") -> list | str:
    """The row's conversation as clean messages ({role, content: str | None, tool_calls?,
    tool_call_id?, name?}), or the reason it cannot be trained on."""
    msgs = row.get("messages")
    if msgs is None:
        return "missing field 'messages'"
    if not isinstance(msgs, list) or not msgs:
        return f"'messages' should be a non-empty list of {{role, content}} objects, got {_kind(msgs)}"
    has_answer = False
    out = []
    for i, m in enumerate(msgs, start=1):
        if not isinstance(m, dict):
            return f"{noun} {i} should be an object with role and content, got {_kind(m)}"
        role = m.get("role")
        if role not in ROLES:
            return (f"{noun} {i} has unknown role {role!r} (expected {', '.join(ROLES)})" if "role" in m
                    else f"{noun} {i} has no 'role'")
        content = _content(m.get("content"), i)
        if isinstance(content, tuple):
            return content[0].replace("message", noun, 1)
        clean = {"role": role, "content": content}
        if role == "assistant" and m.get("tool_calls") is not None:
            calls = _tool_calls(m["tool_calls"], i)
            if isinstance(calls, str):
                return calls.replace("message", noun, 1)
            clean["tool_calls"] = calls
        if content is None and "tool_calls" not in clean:
            return f"{noun} {i} content should be a string, got null"
        if content is not None and _surrogate(content, f"{noun} {i} content"):
            return _surrogate(content, f"{noun} {i} content")
        if role == "tool":
            clean.update({k: m[k] for k in ("tool_call_id", "name") if isinstance(m.get(k), str)})
        if role == "assistant":
            if not (content or "").strip() and "tool_calls" not in clean:
                return f"{noun} {i} is an empty assistant response (nothing to learn from)"
            has_answer = True
        out.append(clean)
    if not has_answer:
        return "no assistant message (nothing to learn from)"
    return out


def _chat_row(row: dict, fmt: str) -> dict | str:
    msgs = _sharegpt_turns(row) if fmt == "sharegpt" else _chat_messages(row)
    if isinstance(msgs, str):
        return msgs
    out = {"messages": msgs}
    tools = row.get("tools")
    if isinstance(tools, str) and tools.strip():  # ShareGPT files often keep the tool list as a JSON string
        try:
            tools = json.loads(tools)
        except (ValueError, RecursionError):
            return "field 'tools' is not valid JSON"
    if tools:
        if not isinstance(tools, list):
            return f"field 'tools' should be a list of tool definitions, got {_kind(tools)}"
        out["tools"] = tools
    return out


def _check_instruction(row: dict) -> str | None:
    return (_string(row, "instruction", nonempty=True) or _string(row, "input", required=False)
            or _string(row, "system", required=False) or _string(row, "output", nonempty=True))


def _check_prompt_completion(row: dict) -> str | None:
    return _string(row, "prompt") or _string(row, "completion", nonempty=True)


def _check_text(row: dict) -> str | None:
    return _string(row, "text", nonempty=True)


def _check_preference(row: dict) -> str | None:
    return ("preference data (chosen/rejected): supervised fine-tuning does not train on it; "
            "set data.columns (e.g. {messages: chosen}) to train on the chosen answers")


CHECKS = {"instruction": _check_instruction, "prompt_completion": _check_prompt_completion, "text": _check_text,
          "preference": _check_preference}


def prepare_row(row: dict | BadRow, fmt: str) -> tuple[dict | None, str | None]:
    """(the row as the trainer reads it, None) or (None, why it cannot be trained on in format
    `fmt`). Chat and ShareGPT rows come back as {"messages": clean messages, "tools"?}."""
    if isinstance(row, BadRow):
        return None, row.reason
    if fmt in ("chat", "sharegpt"):
        out = _chat_row(row, fmt)
        reason = out if isinstance(out, str) else None
    else:
        out, reason = row, CHECKS[fmt](row)
    if reason:
        other = detect_format(row)
        if other and other != fmt:  # a row of another format in the middle of the file
            reason += f" (this row looks like {other} data, the file's format is {fmt})"
        return None, reason
    return out, None


def check_row(row: dict | BadRow, fmt: str) -> str | None:
    """Why this row cannot be trained on in format `fmt`, or None if it is fine."""
    return prepare_row(row, fmt)[1]


def row_text(row: dict, fmt: str) -> str:
    """The text of a prepared row (see prepare_row), its parts run together: what scan measures
    (characters, or tokens with the model's tokenizer). Tool calls count as their JSON arguments."""
    if fmt in ("chat", "sharegpt"):
        return "".join((m["content"] or "") + "".join(json.dumps(c["function"]["arguments"])
                                                        for c in m.get("tool_calls", ())) for m in row["messages"])
    keys = {"instruction": ("instruction", "input", "system", "output"), "prompt_completion": ("prompt", "completion"),
            "text": ("text",)}[fmt]
    return "".join(row.get(k) or "" for k in keys)


def trained_text(row: dict, fmt: str) -> str:
    """The part of a prepared row that training puts a loss on when the prompt is masked (trainer/data.py): the
    assistant turns of a conversation (with their tool calls), an instruction's output, a completion, a whole text."""
    if fmt in ("chat", "sharegpt"):
        return row_text({"messages": [m for m in row["messages"] if m["role"] == "assistant"]}, fmt)
    return row.get({"instruction": "output", "prompt_completion": "completion", "text": "text"}[fmt]) or ""


def row_chars(row: dict, fmt: str) -> int:
    """Characters of text in a prepared row: the size figure that scan reports."""
    return len(row_text(row, fmt))


def unknown_format(path: str | Path, fields: list[str]) -> RankwiseError:
    """The error for a file whose rows match no format, with the likeliest fix."""
    hint = FORMAT_HINT
    if "prompt" in fields or "completion" in fields:
        hint = "prompt_completion rows need both `prompt` and `completion`; " + FORMAT_HINT
    elif "chosen" in fields or "rejected" in fields:
        hint = "preference rows need both `chosen` and `rejected`; " + FORMAT_HINT
    return RankwiseError(f"{path}: cannot tell the data format from the fields {fields or '(no rows)'}", hint)
