"""Chat: talk to a run's adapter (or its base, or both side by side), opened from Runs with `c`.

The model lives in `rankwise chat RUN --serve` (trainer/chat_serve.py's JSON lines), started when
the screen opens and killed when it closes: this process never imports torch. A worker reads its
replies and posts them; tokens are shown as they come. `^t` switches who answers (adapter → base →
both); `/adapter`, `/base`, `/both`, `/reset` typed in the line do the same as in `rankwise chat`.
A run without a final adapter talks with its latest complete checkpoint's, and says so.
"""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from ..style import message_style

MODES = ("adapter", "base", "both")
BOTH_MIN_WIDTH = 60  # narrower than this, "both" answers stack instead of standing side by side


class ChatReply(Message):
    def __init__(self, reply: dict) -> None:
        super().__init__()
        self.reply = reply


class ChatEnded(Message):
    def __init__(self, code: int, said: str) -> None:
        super().__init__()
        self.code, self.said = code, said


class ChatScreen(Screen):
    BINDINGS = [
        Binding("ctrl+t", "toggle", "Adapter/base/both", id="chat.toggle"),
        Binding("escape,f2", "back", "Back", key_display="esc/F2", id="chat.back"),
    ]

    def __init__(self, run_dir: Path, extra_args: list[str] | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.extra_args = list(extra_args or [])  # generation flags of `rankwise chat` (tests: --max-new-tokens)
        self.mode = "adapter"
        self.proc = None  # BenchProcess
        self.checkpoint: int | None = None
        self.loaded = False
        self.outstanding = 0  # requests sent whose turn is not over yet (each ends with a `ready`)
        self.ended = False
        self.answers: dict[str, Static] = {}  # who → the widget its streamed text goes to
        self.texts: dict[str, str] = {}
        self.chunks: dict[str, int] = {}  # who → pieces of text streamed for the answer being shown
        self.turns_over = 0  # requests answered (their `ready` came back)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="chat-status")
        yield VerticalScroll(id="transcript")
        yield Input(id="chat-input", placeholder="ask… (Enter sends; /base /adapter /both /reset)", compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        from rankwise.advisor.errors import RankwiseError
        from rankwise.trainer.chat import latest_adapter

        self.sub_title = f"chat with {self.run_dir.name}"
        self.query_one(Input).focus()
        try:
            _, self.checkpoint = latest_adapter(self.run_dir)
        except RankwiseError as e:
            self.fail(e.message, e.hint)
            return
        from ..bench_process import BenchProcess

        args = ["chat", self.run_dir.name, "--runs-dir", str(self.run_dir.parent), "--serve", *self.extra_args]
        if self.checkpoint is not None:
            args += ["--checkpoint", str(self.checkpoint)]
        self.proc = BenchProcess(args)
        self.proc.start()
        self.show_status()
        self.talk()

    @work(thread=True, exclusive=True, group="chat", exit_on_error=False)
    def talk(self) -> None:
        proc = self.proc
        for reply in proc.replies():
            self.post_message(ChatReply(reply))
        self.post_message(ChatEnded(proc.wait(), proc.said()))

    def on_unmount(self) -> None:
        self.ended = True
        if self.proc is not None:
            self.proc.stop()  # leaving while it generates: the process and its children go

    # ---- what the line says
    def show_status(self, extra: Text | None = None) -> None:
        t = Text(self.run_dir.name, style="bold")
        if self.checkpoint is not None:
            t.append(f" (no final adapter: checkpoint {self.checkpoint}'s)", style=message_style("warning"))
        t.append(" · ")
        t.append({"adapter": "the adapter answers", "base": "the base answers (adapter off)",
                  "both": "base and adapter answer"}[self.mode], style="bold")
        t.append("  ^t switches", style="dim")
        if not self.loaded and not self.ended:
            t.append("\nloading the model in its own process…", style="dim")
        if extra is not None:
            t.append("\n").append_text(extra)
        self.query_one("#chat-status", Static).update(t)

    def fail(self, message: str, hint: str | None = None) -> None:
        self.ended = True
        t = Text(message, style=message_style("error"))
        hint = (hint or "").strip().removeprefix("hint:").strip()
        if hint:
            t.append(f"\nhint: {hint}", style="dim")
        t.append("\nesc/F2 goes back", style="dim")
        self.query_one("#chat-status", Static).update(t)
        self.query_one(Input).disabled = True
        self.outstanding = 0

    # ---- the conversation
    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if text.startswith("/"):
            event.input.value = ""
            self.command(text[1:].lower(), text)
            return
        if self.ended:
            return
        if self.outstanding:
            self.notify("still answering the last prompt", severity="warning", timeout=3)
            return
        event.input.value = ""
        self.ask(text)

    def command(self, cmd: str, typed: str) -> None:
        if cmd in MODES:
            self.mode = cmd
            self.show_status()
        elif cmd == "reset":
            if self.outstanding or self.proc is None or self.ended:
                self.notify("still answering the last prompt" if self.outstanding else "no model to reset",
                            severity="warning", timeout=3)
                return
            if self.proc.send({"reset": True}):
                self.outstanding += 1
                self.query_one("#transcript").remove_children()
                self.notify("conversation forgotten", timeout=3)
        else:
            self.notify(f"unknown command {typed}: /adapter, /base, /both, /reset", severity="warning")

    def ask(self, text: str) -> None:
        log = self.query_one("#transcript", VerticalScroll)
        you = Text("you> ", style="bold")
        you.append(text)
        log.mount(Static(you, classes="chat-you"))
        whos = ("base", "adapter") if self.mode == "both" else (self.mode,)
        self.answers = {who: Static(self.label(who, "…"), classes=f"chat-answer chat-{who}") for who in whos}
        self.texts = {who: "" for who in whos}
        self.chunks = {who: 0 for who in whos}
        if len(whos) == 1:
            log.mount(self.answers[whos[0]])
        else:
            box = Horizontal if self.size.width >= BOTH_MIN_WIDTH else Vertical
            log.mount(box(*self.answers.values(), classes="chat-both"))
        log.scroll_end(animate=False)
        if self.proc.send({"prompt": text, "who": self.mode}):
            self.outstanding += 1

    def label(self, who: str, text: str) -> Text:
        t = Text(f"{who}> ", style="bold")
        t.append(text)  # Text: a model's "[b]" is not markup
        return t

    def on_chat_reply(self, message: ChatReply) -> None:
        r = message.reply
        kind = r.get("type")
        if kind == "ready":
            if not self.loaded:  # the first: the model is loaded (a prompt typed meanwhile is answered next)
                self.loaded = True
                self.show_status()
            else:
                self.outstanding = max(0, self.outstanding - 1)
                self.turns_over += 1
        elif kind in ("token", "done"):
            who = r.get("who")
            if who not in self.answers:
                return
            if kind == "token":
                self.texts[who] += r.get("text", "")
                self.chunks[who] += 1
            else:
                self.texts[who] = r.get("text", "")
            self.answers[who].update(self.label(who, self.texts[who].strip() or ("…" if kind == "token" else "(nothing)")))
            self.query_one("#transcript", VerticalScroll).scroll_end(animate=False)
        elif kind == "error":
            if not self.loaded:
                self.fail(r.get("message", "the model did not load"), r.get("hint"))
            else:
                self.notify(r.get("message", "error"), severity="error", timeout=8)

    def on_chat_ended(self, message: ChatEnded) -> None:
        if self.ended:
            return  # said already (a failed load), or leaving
        self.fail(f"the model process ended (exit {message.code})" + (f": {message.said}" if message.said else ""),
                  f"c on Runs starts it again")

    # ---- keys
    def action_toggle(self) -> None:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self.show_status()

    def action_back(self) -> None:
        self.app.pop_screen()
