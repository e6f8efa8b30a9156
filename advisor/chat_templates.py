"""model.chat_template: the template chat data is rendered with when it is not the tokenizer's own.

Unset, chat rows (and instruction rows, where the tokenizer has a template) are rendered with the tokenizer's
chat template. A base model often has none, and some runs train another format on purpose; axolotl's
`chat_template: chatml` and `chat_template_jinja` are how its users say so. The value is one of:
- a built-in name: `chatml` (the ChatML format, `<|im_start|>role` ... `<|im_end|>`; the Jinja template the
  Hugging Face chat-templating docs give for it, with a generation prompt);
- a Jinja template written inline (it holds `{{` or `{%`);
- a path to a Jinja file (relative paths in a preset are anchored to its folder, advisor/loader.py).
The worker, `rankwise chat`/`compare` and `rankwise merge` (which saves it with the merged model's tokenizer) set
it on the tokenizer the same way (`apply`), so the run is asked in the format it was trained in. No torch here.
"""
from __future__ import annotations

from pathlib import Path

from .errors import RankwiseError

# huggingface.co/docs/transformers/chat_templating ("What template should I use?": the ChatML example)
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' "
          "+ '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
BUILT_IN = {"chatml": CHATML}
HINT = ("model.chat_template is chatml, a Jinja template written inline, or a Jinja file (relative to the preset's "
        "folder); leave it unset for the tokenizer's own")


def is_inline(value: str) -> bool:
    return "{{" in value or "{%" in value


def is_path(value: str | None) -> bool:
    """Whether a model.chat_template value names a file (what the loader anchors)."""
    return bool(value) and value not in BUILT_IN and not is_inline(value)


def template_text(value: str | None) -> str | None:
    """The Jinja text model.chat_template names (None: the tokenizer's own); a file that cannot be read or a
    template that does not parse is bad input."""
    if not value:
        return None
    if value in BUILT_IN:
        return BUILT_IN[value]
    where = "model.chat_template"
    text = value
    if not is_inline(value):
        path = Path(value).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RankwiseError(f"{where}: cannot read {path} ({getattr(e, 'strerror', None) or e})", HINT) from None
        where = f"{where} {path}"
        if not is_inline(text):
            raise RankwiseError(f"{where}: the file holds no Jinja template (no {{{{ or {{% in it)", HINT)
    import jinja2  # light; transformers renders chat templates with it

    try:
        jinja2.Environment().parse(text)
    except jinja2.TemplateSyntaxError as e:
        raise RankwiseError(f"{where}: not a valid Jinja template (line {e.lineno}: {e.message})", HINT) from None
    return text


def folder_has_template(folder: str | Path) -> bool:
    """Whether a model folder's tokenizer has a chat template, read from its files as transformers reads them
    (chat_template.jinja, chat_template.json, or tokenizer_config.json's chat_template), without loading it."""
    folder = Path(folder)
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        import json

        return bool(json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return True  # unreadable here: the worker's tokenizer decides


def apply(tokenizer, value: str | None) -> None:
    """Set the template model.chat_template names on `tokenizer` (nothing when unset)."""
    text = template_text(value)
    if text is not None:
        tokenizer.chat_template = text
