"""Advice: the recommended config as a form; memory bars and red flags follow every edit.

The advisor does all the work: `advise()` once (in a worker, with the model read), then on
each edit `estimate()`/`fit()` for LoRA and QLoRA and `redflags.check()` — pure functions
that answer in milliseconds. A fix is the finding's `patch` (dotted key → value) applied to
the config and shown in the form.
"""
from __future__ import annotations

import time
from pathlib import Path

from pydantic import ValidationError
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from rankwise.advisor.config import field_help, get_key, with_values
from rankwise.advisor.coupling import lrs_text
from rankwise.advisor.methods import DEFAULT as DEFAULT_METHOD, METHODS

from ..context import LAUNCHED_PRESETS, SAVED_PRESETS
from ..style import FIT_LABEL, GOOD, SEVERITY_MARK, message_style, severity_style
from ..widgets.bars import estimate_bar, legend
from .advice_form import FIELDS, parsed, preset_path, shown, wid

NARROW = 80  # columns under which the form narrows (at 60 the flags had 14 columns)
TALL = 32  # rows from which the advisor's notes and fit suggestions are shown too


def notes_text(advice) -> Text:
    """The advisor's notes: the rank sweep, the budget arithmetic, what would make it fit."""
    out = Text()

    def line(head: str, body: str, style: str = "") -> None:
        if out:
            out.append("\n")
        out.append(head, style="bold")
        out.append(body, style=style)

    if advice.first_sweep:
        line("first sweep: ", "r = " + ", ".join(map(str, advice.first_sweep))
             + (f"; lr {lrs_text(advice.first_lrs)} at each rank" if advice.first_lrs else ""))
    if advice.budget_arithmetic:
        line("budget: ", advice.budget_arithmetic)
    for note in advice.notes:
        line("note: ", note, "dim")
    if advice.method is None:
        for sug in advice.suggestions[:4]:
            line("to fit: ", f"{sug['change']} → {sug['peak_gib']:.1f} GiB ({sug['fit']})")
    return out


class AdviceReady(Message):
    def __init__(self, spec=None, advice=None, cfg=None, error: str | None = None) -> None:
        super().__init__()
        self.spec, self.advice, self.cfg, self.error = spec, advice, cfg, error


class AdviceScreen(Screen):
    BINDINGS = [
        Binding("ctrl+f", "apply_fix", "Fix", tooltip="Apply the selected red flag's fix", id="advice.apply_fix"),
        Binding("ctrl+s", "save", "Save", tooltip="Save as a preset", id="advice.save"),
        Binding("ctrl+l", "launch", "Launch", id="advice.launch"),
        # priority: a focused Input would take ^w as delete-word (it wiped the rank)
        Binding("ctrl+w", "sweep", "Sweep", tooltip="Sweep ranks", priority=True, id="advice.sweep"),
        # F2: screen/tmux pass it at once
        Binding("escape,f2", "back", "Back", key_display="esc/F2", id="advice.back"),
        # ↑/↓ move between the form's fields (priority: a closed Select would open on them; an open
        # one, the flags list and a dialog keep them, see check_action); Tab too
        Binding("down", "field_step(1)", "Next field", show=False, priority=True, id="advice.next_field"),
        Binding("tab", "app.focus_next", "Field", key_display="tab/↑↓", id="advice.tab"),
        Binding("up", "field_step(-1)", "Previous field", show=False, priority=True, id="advice.previous_field"),
    ]

    def __init__(self, request=None, cfg=None) -> None:
        super().__init__()
        self.request = request
        self.base_cfg = cfg
        self.spec = None
        self.cfg = None  # the current, valid config
        self.reasons: dict[str, str] = {}
        self.citations: dict[str, list[str]] = {}  # field → claim keys (advisor/evidence.py)
        self.findings: list = []
        self.estimates: dict = {}
        self.invalid: dict[str, str] = {}  # field key -> why its text is not a valid value
        self.shown_cfg = None
        self._mem = Text()  # the bars of the last valid config
        self.hardware = request.hardware if request is not None else None
        self.advice = None  # the advisor's answer, whose first sweep (ranks, rates) ^w starts; None: an opened preset

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("reading the model…", style="dim"), id="mem")
        with Horizontal(id="advice-body"):
            with VerticalScroll(id="form"):
                for key, label, choices in FIELDS:
                    with Horizontal(classes="row", id=f"row-{wid(key)}"):
                        yield Label(label)
                        if choices:
                            yield Select([(c, c) for c in choices], allow_blank=False, id=wid(key), compact=True)
                        else:
                            yield Input(id=wid(key), compact=True)
            with Vertical(id="flags-col"):
                yield Label("Red flags", classes="title", id="flags-title")
                yield OptionList(id="flags", compact=True)
                yield Static("", id="flag-detail")
                yield Static("", id="notes")
        yield Static("", id="reason")
        yield Footer(compact=True, show_command_palette=False)  # room for tab/↑↓; ^p is in F1's list

    def on_mount(self) -> None:
        self.sub_title = "advice"
        if self.hardware is None:
            self.hardware = getattr(self.app.ctx, "planned", None) or self.app.ctx.hardware
        self.query_one("#form").disabled = True
        self.app.hold_keys("advice")  # keys typed ahead wait for the form (app.py's key queue)
        self.on_resize()
        self.prepare()

    def on_resize(self) -> None:
        self.set_class(self.app.size.height >= TALL, "-tall")  # room for the advisor's notes
        self.set_class(self.app.size.width < NARROW, "-narrow")  # a narrower form leaves the flags room

    # ---- the advisor, once, in a worker
    @work(thread=True, exclusive=True, group="advise", exit_on_error=False)
    def prepare(self) -> None:
        from rankwise.advisor.errors import RankwiseError
        from rankwise.advisor.model import load_model

        try:
            if self.base_cfg is not None:
                spec = load_model(self.base_cfg.model.name)
                self.post_message(AdviceReady(spec=spec, cfg=self.base_cfg))
                return
            from rankwise.advisor.recommend import advise

            r = self.request
            spec = load_model(r.model)
            data, note = {}, None
            if r.dataset:  # as `advise --dataset` reads it: one answer on both
                from rankwise.advisor.dataset import advice_data

                data, note = advice_data(Path(r.dataset).expanduser(), spec)
            advice = advise(spec, r.hardware, r.task, budget=r.budget, **data)
            if note:
                advice.notes.insert(0, note)
            cfg = advice.config
            if r.dataset:
                cfg = with_values(cfg, {"data.path": str(Path(r.dataset).expanduser().resolve())})
            from ..overrides import with_overrides

            cfg = with_overrides(cfg, self.app.ctx.overrides)  # `rankwise --set`: in the form, so it is what runs
            self.post_message(AdviceReady(spec=spec, advice=advice, cfg=cfg))
        except RankwiseError as e:
            self.post_message(AdviceReady(error=e.message + (f"\nhint: {e.hint}" if e.hint else "")))

    def on_advice_ready(self, message: AdviceReady) -> None:
        if message.error:
            self.query_one("#mem", Static).update(Text(message.error, style=message_style("error")))
            self.app.release_keys("advice")
            return
        self.spec = message.spec
        if message.advice is not None:
            self.advice = message.advice  # ^w sweeps as its first sweep says
            self.reasons = dict(message.advice.reasons)
            self.citations = dict(message.advice.citations)
            if message.advice.method is None:
                self.notify("nothing fits as recommended: see the red flags for what would", severity="warning")
        self.sub_title = f"advice · {self.spec.name}"
        # the expert tensors' row only where there are any (an MoE's, or a config that names some)
        self.query_one(f"#row-{wid('lora.target_parameters')}").display = bool(
            self.spec.fused_names() or message.cfg.lora.target_parameters)
        if message.advice is not None:
            self.query_one("#notes", Static).update(notes_text(message.advice))
        self.show_config(message.cfg)
        self.shown_cfg = self.cfg  # what Advice proposed: Esc asks first once the form differs
        if self.no_weights():
            self.notify(self.no_weights(), severity="warning", timeout=8)
            self.refresh_bindings()
        form = self.query_one("#form")
        form.disabled = False
        self.query_one(f"#{wid('lora.r')}", Input).focus()
        self.app.release_keys("advice")

    def on_unmount(self) -> None:
        self.app.release_keys("advice")

    # ---- form <-> config
    def show_config(self, cfg) -> None:
        """Put `cfg` in the form (without echo events) and recompute."""
        for key, _label, choices in FIELDS:
            w = self.query_one(f"#{wid(key)}")
            value = shown(key, get_key(cfg, key))
            with w.prevent(Input.Changed, Select.Changed):
                if choices:
                    w.value = value
                else:
                    w.value = value
            self.query_one(f"#row-{wid(key)}").remove_class("invalid")
        self.cfg = cfg
        self.recompute()

    def form_values(self) -> dict:
        out = {}
        for key, _label, _choices in FIELDS:
            w = self.query_one(f"#{wid(key)}")
            out[key] = parsed(key, str(w.value))
        return out

    @on(Input.Changed)
    @on(Select.Changed)
    def _edited(self, event) -> None:
        if self.spec is None or self.cfg is None:
            return
        try:
            cfg = with_values(self.cfg, self.form_values())
        except ValidationError as e:
            self.invalid = {}
            for err in e.errors():
                where = ".".join(str(p) for p in err["loc"])
                key = next((k for k, *_ in FIELDS if where == k or where.startswith(k + ".")), where)
                if not where:  # a rule over several fields (RunConfig's validators): the edited one if it names
                    named = [k for k, *_ in FIELDS if k in err["msg"]]  # it, else the first it names
                    edited = next((k for k in named if wid(k) == getattr(event.control, "id", None)), None)
                    key = edited or (named[0] if named else where)
                self.invalid.setdefault(key, err["msg"])
            for key, *_ in FIELDS:
                self.query_one(f"#row-{wid(key)}").set_class(key in self.invalid, "invalid")
            key, msg = next(iter(self.invalid.items()))
            self.query_one("#reason", Static).update(Text(f"{key}: {msg}", style=message_style("error")))
            self.show_stale()
            return
        for key, *_ in FIELDS:
            self.query_one(f"#row-{wid(key)}").remove_class("invalid")
        self.invalid = {}
        self.cfg = cfg
        self.recompute()
        self.show_reason(self.focused)

    def label_of(self, key: str) -> str:
        return next((label for k, label, _ in FIELDS if k == key), key)

    def show_stale(self) -> None:
        """Bars and flags are those of the last valid config while a field is invalid: say so."""
        stale = bool(self.invalid)
        mem = Text()
        if stale:
            label = self.label_of(next(iter(self.invalid)))
            mem.append(f"showing the last valid value: {label} is invalid\n", style=message_style("warning"))
        mem.append_text(self._mem)
        self.query_one("#mem", Static).update(mem)
        self.query_one("#flags-title", Label).update("Red flags (last valid value)" if stale else "Red flags")

    def refuse_invalid(self, what: str) -> bool:
        """Save and launch use what is on screen: while a field is invalid they refuse, naming and
        focusing it."""
        if not self.invalid:
            return False
        key, msg = next(iter(self.invalid.items()))
        widget = self.query(f"#{wid(key)}")
        if widget:
            widget.first().focus()
        self.notify(f"not {what}: {self.label_of(key)} is invalid ({msg})", severity="error")
        return True

    # ---- memory and red flags (pure advisor calls, milliseconds)
    def recompute(self) -> None:
        from rankwise.advisor.errors import RankwiseError
        from rankwise.advisor.fit import side_by_side
        from rankwise.advisor.redflags import context, run_rules

        hw = self.hardware
        mem = Text()
        width = max(20, self.size.width - 4)
        ctx = None
        try:  # a config the estimate refuses (a DeepSpeed file that is not there) is said where the bars were
            lengths = self._lengths()  # the peak at the data's longest row, as check and train judge it
            ctx = context(self.cfg, self.spec, hw, lengths=lengths)  # method auto resolved by advisor.fit, once
            judged = side_by_side(self.spec, self.cfg, hw, lengths)  # the same answer as check, presets and estimate
            chosen = ctx.method
        except RankwiseError as e:
            judged, chosen = {}, None
            mem.append(e.message + (f"\nhint: {e.hint}" if e.hint else ""), style=message_style("error"))
        self.judged, self.chosen = judged, chosen
        self.estimates = {m: f.estimate for m, f in judged.items()}
        top = max((e.peak_bytes for e in self.estimates.values()), default=0)
        for m, f in judged.items():  # the methods the table compares, in its order
            if mem:
                mem.append("\n")
            name = METHODS[m].label + ("*" if chosen == m else "")
            if f.gpus > 1:
                name += f" {f.gpus}×{f.strategy.upper()}"
            mem.append_text(estimate_bar(name, f.estimate, f.gpu_bytes, f.verdict, width, top))
        if self.estimates:
            mem.append("\n")
            mem.append_text(legend(self.estimates.get(chosen or DEFAULT_METHOD)))
            shown = judged.get(chosen or DEFAULT_METHOD)
            if shown is not None and shown.at_data:
                mem.append(f"\npeak at the data's longest row, ~{shown.lengths.longest:,} tokens "
                           f"(max_seq_len {self.cfg.train.max_seq_len:,}): batches are padded to their longest row",
                           style="dim")
            ahead = self._forecast(judged.get(chosen or DEFAULT_METHOD))
            if ahead is not None:
                mem.append("\n" + ahead.line(), style="dim")
        self._mem = mem
        self.show_stale()
        self.findings = run_rules(ctx) if ctx is not None else []
        flags = self.query_one("#flags", OptionList)
        keep = flags.highlighted
        flags.clear_options()
        for f in self.findings:
            label = Text(f"{SEVERITY_MARK.get(f.severity, '·')} ", style=severity_style(f.severity))
            label.append(f.code, style="bold")
            label.append(f" {f.message}")
            if f.patch:
                label.append(" [fix]", style=GOOD)
            flags.add_option(Option(label))
        if not self.findings:
            flags.add_option(Option(Text("no red flags", style=GOOD), disabled=True))
        if self.findings:
            flags.highlighted = min(keep or 0, len(self.findings) - 1)
        self.show_finding()

    def _data_scan(self):
        """The commands' scan of the data (forecast.data_scan), read once per data file, not on every edit:
        calibration's shorter one planned 4x fewer steps on a big file."""
        from rankwise.advisor.forecast import data_scan

        key = (self.cfg.data.path, self.cfg.data.format, self.spec.path)
        if getattr(self, "_scan", (None, None))[0] != key:
            self._scan = (key, data_scan(self.cfg, self.spec) if self.cfg.data.path else None)
        return self._scan[1]

    def _lengths(self):
        from rankwise.advisor.forecast import data_lengths

        scan = self._data_scan()
        return data_lengths(self.cfg, self.spec, scan) if scan is not None else None

    def _forecast(self, judged):
        """Time, cost, host RAM and disk beside the bars (advisor/forecast.py). The data scan and
        this machine's finished runs are read once per screen, not on every edit."""
        from rankwise.advisor.calibration import from_runs
        from rankwise.advisor.errors import RankwiseError
        from rankwise.advisor.forecast import forecast

        if judged is None:
            return None
        hw = self.hardware
        if getattr(self, "_points", None) is None:
            runs = getattr(getattr(self.app, "ctx", None), "runs_dir", None) or self.cfg.output.dir
            self._points = from_runs(runs, hw.host if hw is not None else None)
        try:
            return forecast(self.spec, self.cfg, judged, hw, scan=self._data_scan(), points=self._points)
        except RankwiseError:
            return None

    def selected_finding(self):
        flags = self.query_one("#flags", OptionList)
        if not self.findings:
            return None
        i = flags.highlighted if flags.highlighted is not None else 0
        return self.findings[min(i, len(self.findings) - 1)]

    def show_finding(self) -> None:
        f = self.selected_finding()
        detail = Text()
        if f is not None:  # the fix first: at 80×24 the box is short and the why is the part to lose
            detail.append("fix: ", style="bold")
            detail.append(f.fix)
            if f.patch:
                detail.append("  (^f applies it)", style=GOOD)
            detail.append("\nwhy: ", style="bold")
            detail.append(f.why)
        self.query_one("#flag-detail", Static).update(detail)

    @on(OptionList.OptionHighlighted, "#flags")
    def _flag_highlighted(self) -> None:
        self.show_finding()

    @on(OptionList.OptionSelected, "#flags")
    def _flag_selected(self) -> None:
        self.action_apply_fix()

    def on_descendant_focus(self, event) -> None:
        self.show_reason(getattr(event, "widget", None) or event.control)

    def show_reason(self, widget) -> None:
        for key, label, _ in FIELDS:
            if widget is not None and widget.id == wid(key):
                why = self.reasons.get(key) or " ".join((field_help(key) or "").split())  # a docstring: one paragraph
                text = Text(f"{label}: ", style="bold")
                text.append(why or "(no reason recorded)")
                if self.citations.get(key):  # the sources behind it (rankwise advise --why KEY quotes them)
                    from rankwise.advisor.evidence import names

                    text.append(f"\nsources: {names(self.citations[key])}", style="dim")
                self.query_one("#reason", Static).update(text)
                return

    # ---- actions
    def action_apply_fix(self) -> None:
        f = self.selected_finding()
        if f is None or self.cfg is None:
            return
        if not f.patch:
            self.notify(f"{f.code}: no automatic fix — {f.fix}", severity="warning")
            return
        try:
            cfg = with_values(self.cfg, dict(f.patch))
        except ValidationError as e:
            self.notify(f"fix for {f.code} does not validate: {e.errors()[0]['msg']}", severity="error")
            return
        self.show_config(cfg)
        self.notify(f"applied: {', '.join(f'{k}={v}' for k, v in f.patch.items())}")

    def preset_name(self) -> str:
        name = self.cfg.name or f"{Path(self.cfg.model.name).name}-{self.cfg.task}"
        return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)

    def action_save(self) -> None:
        if self.cfg is None or self.refuse_invalid("saved"):
            return
        from .dialogs import PathScreen

        folder = self.app.ctx.runs_dir / SAVED_PRESETS
        cfg = self.cfg

        def done(answer: str | None) -> None:
            if answer:
                self._write(preset_path(answer, folder), cfg)

        self.app.push_screen(PathScreen(f"Save as a preset: a name (saved in {folder}/) or a path:",
                                        self.preset_name()), done)

    def _write(self, path: Path, cfg=None) -> Path | None:
        from ..launch import write_preset

        try:
            write_preset(cfg or self.cfg, path)
        except OSError as e:
            self.notify(f"could not write {path}: {e}", severity="error")
            return None
        self.notify(f"saved {path}")
        return path

    def no_weights(self) -> str | None:
        """Why launch is off: a catalog or model-index entry has the architecture, not the weights."""
        if self.spec is None or self.spec.path:
            return None
        return (f"launch is off: {self.spec.name} has no weights on this machine (rankwise never downloads); "
                "give a local model folder or a model in the Hugging Face cache on Setup")

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """^l shows dimmed (not hidden) while there is nothing to train: see no_weights(). ^w stays
        live so a focused field never receives it as delete-word; the sweep then says why it is off."""
        if action == "launch" and self.no_weights():
            return None
        if action == "field_step":
            return self.in_form(self.focused) or False  # False: the key goes on to the focused widget
        return True

    def in_form(self, widget) -> bool:
        """An Input or a closed Select of the form (an open Select's list has the focus, not the Select)."""
        if self.app.screen is not self or not isinstance(widget, (Input, Select)):
            return False
        if isinstance(widget, Select) and widget.expanded:
            return False
        return any(a.id == "form" for a in widget.ancestors)

    def action_field_step(self, delta: int) -> None:
        fields = [self.query_one(f"#{wid(key)}") for key, *_ in FIELDS]
        fields = [w for w in fields if w.display and not w.disabled]
        if self.focused in fields:
            i = fields.index(self.focused)
            fields[max(0, min(len(fields) - 1, i + delta))].focus()

    def launch_line(self, sweep: bool = False) -> str:
        """The exact config a launch starts, in one line: method, rank, GPU fit."""
        cfg, chosen = self.cfg, getattr(self, "chosen", None)
        method = METHODS[chosen].label if chosen in METHODS else cfg.method
        f = getattr(self, "judged", {}).get(chosen)
        fit = f"{FIT_LABEL.get(f.verdict, f.verdict)}, peak {f.estimate.peak_bytes / 1024 ** 3:.1f} GiB" if f else "fit unknown"
        gpu = self.hardware.gpus[0].name if self.hardware is not None and self.hardware.gpus else "no GPU"
        what = "a rank sweep of" if sweep else "training"
        return f"Start {what} {cfg.model.name}: {method} r={cfg.lora.r} alpha={cfg.lora.alpha} on {gpu} — {fit}?"

    def action_launch(self, sweep: bool = False) -> None:
        if self.cfg is None or self.refuse_invalid("launched"):
            return
        if self.no_weights():
            self.notify(self.no_weights().replace("launch is off", "the sweep is off" if sweep else "launch is off"),
                        severity="warning", timeout=8)
            return
        if not self.cfg.data.path:
            self.notify("no dataset: give one on Setup before launching", severity="error")
            return
        from .dialogs import ConfirmScreen

        cfg = self.cfg

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = self._write(self.app.ctx.runs_dir / LAUNCHED_PRESETS / f"{self.preset_name()}-{stamp}.yaml", cfg)
            if path is None:
                return
            if not sweep:
                self.app.launch(path)
                return
            first = self.advice if self.advice is not None and self.advice.config.model.name == cfg.model.name else None
            # the advice's first sweep (its ranks, and its rates for a model narrower than the sources measured),
            # as `rankwise advise` prints it; a form without an advice for this model sweeps the defaults
            ranks, lrs = first.sweep_flags() if first else (None, None)
            self.app.sweep(path, ranks=ranks, lrs=lrs)

        if sweep:  # the sweep confirms its own size and planned time (app.sweep); asking twice helps no one
            confirmed(True)
            return
        self.app.push_screen(ConfirmScreen(self.launch_line(sweep)), confirmed)

    def action_sweep(self) -> None:
        self.action_launch(sweep=True)

    def edited(self) -> bool:
        return bool(self.invalid) or (self.cfg is not None and self.cfg != self.shown_cfg)

    def action_back(self) -> None:
        """Back to where Advice was opened from; with edits on the form, after asking."""
        if not self.edited():
            self.app.pop_screen()
            return
        from .dialogs import ConfirmScreen

        def answer(yes: bool | None) -> None:
            if yes:
                self.app.pop_screen()

        self.app.push_screen(ConfirmScreen("Leave Advice? Your edits to this config are lost "
                                           "(^s saves them first)."), answer)
