"""Setup: the machine (or a planned GPU), the model, the task, the dataset and a budget."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from ..bindings import GO_PRESETS, GO_RUNS
from ..setup_view import datacheck_text, hardware_text, in_tui_words, plan_text, scan_text
from ..style import message_style

from rankwise.advisor.config import TASKS  # the schema's task kinds
PROBE_EVERY_S = 5.0
DATACHECK_TIMEOUT_S = 300  # the tokenizing check of a large file; past it the quick scan stands alone


@dataclass(frozen=True)
class Request:
    """What the Advice screen asks the advisor about."""

    model: str
    task: str
    hardware: object
    budget: int | None = None
    dataset: str | None = None  # Advice reads it whole, as `advise --dataset` does (Setup's scan is a quick look)


class HardwareProbed(Message):
    def __init__(self, hardware) -> None:
        super().__init__()
        self.hardware = hardware


class CachedModels(Message):
    def __init__(self, ids: list[str]) -> None:
        super().__init__()
        self.ids = ids


def cached_model_ids() -> list[str]:
    """Models already in the local Hugging Face cache (folder names only; nothing is read or fetched)."""
    from rankwise.advisor.model import hf_cache_dir

    root = hf_cache_dir()
    try:
        repos = sorted(root.glob("models--*"))
    except OSError:
        return []
    return [d.name[len("models--"):].replace("--", "/") for d in repos if (d / "snapshots").is_dir()]


class DatasetScanned(Message):
    def __init__(self, path: str, result=None, error: str | None = None) -> None:
        super().__init__()
        self.path, self.result, self.error = path, result, error


class DataChecked(Message):
    def __init__(self, path: str, report: dict | None = None, error: str | None = None) -> None:
        super().__init__()
        self.path, self.report, self.error = path, report, error


class SetupScreen(Screen):
    BINDINGS = [
        Binding("ctrl+n", "advice", "Advice", id="setup.advice"),
        Binding("tab", "app.focus_next", "Field", key_display="tab", id="setup.next_field"),
        Binding("escape", "blur", "Leave field", show=False, id="setup.leave_field"),
        Binding("down", "model_step(1)", "Next model", show=False, id="setup.next_model"),
        Binding("up", "model_step(-1)", "Previous model", show=False, id="setup.previous_model"),
        GO_PRESETS, GO_RUNS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self._scan = None
        self._scan_timer = None
        self._cached: list[str] = []
        self._filtered_for = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(hardware_text(self.app.ctx.hardware), id="hw")
        with Horizontal(id="plan"):
            yield Label("Plan GPU", classes="label")
            yield Input(placeholder="memory e.g. 24GiB", id="gpu-mem", compact=True)
            yield Input(placeholder="count", id="gpus", compact=True, restrict=r"[0-9]*")
            yield Input(placeholder="or name: L4, A100-80GB", id="gpu-name", compact=True)
        yield Static("", id="plan-error", classes="field-error")
        yield Static(plan_text(self.app.ctx.hardware, None), id="plan-note")
        with Horizontal(id="setup-body"):
            with Vertical(id="model-col"):
                yield Label("Model: filter, path or HF id", classes="title", id="model-title")
                yield Input(placeholder="filter or path", id="model", compact=True)
                yield Static("", id="model-error", classes="field-error")
                yield OptionList(*self._options(""), id="models", compact=True)
            with Vertical(id="task-col"):
                yield Label("Task", classes="title", id="task-title")
                yield Select([(t, t) for t in TASKS], value="instruction", allow_blank=False, id="task",
                             compact=True)
                yield Label("Dataset (optional)", classes="title")
                yield Input(placeholder="path to .jsonl/.json/.csv/.parquet", id="dataset", compact=True)
                yield Static(Text("no dataset: advice from the task alone", style="dim"), id="scan")
                yield Static("", id="dataset-error", classes="field-error")
                yield Label("Trainable-parameter budget (optional)", classes="title")
                yield Input(placeholder="e.g. 10M", id="budget", compact=True)
                yield Static("", id="setup-error")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        ctx = self.app.ctx
        self.sub_title = "setup"
        if ctx.hardware is None and ctx.probe:
            self.app.hold_keys("probe")  # typed-ahead keys wait for the first focus the probe decides
            self.probe()
            self.set_interval(PROBE_EVERY_S, self.probe)  # GPU memory in use changes; keep the bars true
        self.query_one("#models", OptionList).highlighted = 0
        self.first_focus(ctx.hardware)
        self.find_cached()

    def first_focus(self, hw) -> None:
        """The first field the screen asks for: the GPU row when no GPU was found (its banner asks for
        one), else the model. A probe that answers late moves the focus only if nothing was typed yet."""
        untouched = all(not w.value for w in self.query(Input)) and self.focused in (
            None, self.query_one("#model"), self.query_one("#gpu-mem"))
        if untouched:
            self.query_one("#gpu-mem" if hw is not None and not hw.gpus else "#model", Input).focus()

    @on(Input.Submitted, "#plan Input")
    def _plan_enter(self) -> None:
        self.query_one("#model", Input).focus()  # Enter in the GPU row: on to the model

    @on(Input.Changed, "#plan Input")
    def _plan_changed(self) -> None:
        self.show_plan()

    def show_plan(self) -> None:
        """Confirm the GPU the advice will be for, and whether it was probed or declared here."""
        from rankwise.advisor.errors import RankwiseError

        try:
            hw = self.planned_hardware()
        except (RankwiseError, ValueError):
            hw = False  # said when Advice is asked for (the plan's error line)
        note = self.query_one("#plan-note", Static)
        note.update(plan_text(self.app.ctx.hardware, hw))

    @work(thread=True, exclusive=True, group="hf-cache", exit_on_error=False)
    def find_cached(self) -> None:
        self.post_message(CachedModels(cached_model_ids()))

    def on_cached_models(self, message: CachedModels) -> None:
        self._cached = [m for m in message.ids if m not in self.app.ctx.catalog]
        if self._cached:
            self._filter_to(self.query_one("#model", Input).value)

    # ---- hardware
    @work(thread=True, exclusive=True, group="probe", exit_on_error=False)
    def probe(self) -> None:
        from rankwise.advisor.hardware import probe

        try:
            self.post_message(HardwareProbed(probe()))
        except BaseException:
            self.app.call_from_thread(self.app.release_keys, "probe")  # the worker's error is shown by the app
            raise

    def on_hardware_probed(self, message: HardwareProbed) -> None:
        first = self.app.ctx.hardware is None
        self.app.ctx.hardware = message.hardware
        self.query_one("#hw", Static).update(hardware_text(message.hardware))
        self.show_plan()
        if first:
            self.first_focus(message.hardware)
            self.app.call_later(self.app.release_keys, "probe")  # after the focus (focus() is deferred too)

    # ---- model list
    def _options(self, text: str) -> list[Option]:
        text = text.strip().lower()
        names = [n for n in self.app.ctx.catalog if text in n.lower()]
        cached = [m for m in self._cached if text in m.lower()]
        return [Option(n, id=n) for n in names] + [Option(Text.assemble(m, ("  HF cache", "dim")), id=m)
                                                   for m in cached]

    @on(Input.Changed, "#model")
    def _filter(self, event: Input.Changed) -> None:
        self._filter_to(event.value)

    def _filter_to(self, text: str) -> None:
        ol = self.query_one("#models", OptionList)
        keep = ol.get_option_at_index(ol.highlighted).id if ol.option_count and ol.highlighted is not None else None
        ol.clear_options()
        ol.add_options(self._options(text))
        if ol.option_count:
            ids = [ol.get_option_at_index(i).id for i in range(ol.option_count)]
            ol.highlighted = ids.index(keep) if keep in ids and text == self._filtered_for else 0
        self._filtered_for = text

    def action_model_step(self, delta: int) -> None:
        """Up/Down in the filter box move through the matching models."""
        ol = self.query_one("#models", OptionList)
        if self.focused is not self.query_one("#model", Input) or not ol.option_count:
            self.focus_next() if delta > 0 else self.focus_previous()
            return
        ol.highlighted = max(0, min(ol.option_count - 1, (ol.highlighted or 0) + delta))

    @on(OptionList.OptionHighlighted, "#models")
    @on(Input.Changed, "#model")
    def _show_choice(self) -> None:
        model = self.chosen_model()
        self.query_one("#model-title", Label).update(f"Model: {model}" if model else "Model: filter, path or HF id")

    @on(Input.Submitted, "#model")
    def _model_enter(self) -> None:
        self.query_one("#task", Select).focus()

    @on(OptionList.OptionSelected, "#models")
    def _model_picked(self, event: OptionList.OptionSelected) -> None:
        box = self.query_one("#model", Input)
        with box.prevent(Input.Changed):
            box.value = event.option.id
        self.query_one("#task", Select).focus()

    def chosen_model(self) -> str | None:
        typed = self.query_one("#model", Input).value.strip()
        if typed in self.app.ctx.catalog or typed in self._cached:
            return typed
        ol = self.query_one("#models", OptionList)
        if ol.option_count and ol.highlighted is not None:
            return ol.get_option_at_index(ol.highlighted).id
        return typed or None

    # ---- dataset scan (debounced, in a worker)
    @on(Input.Changed, "#dataset")
    def _dataset_changed(self, event: Input.Changed) -> None:
        if self._scan_timer is not None:
            self._scan_timer.stop()
        self._scan = None
        path = event.value.strip()
        if not path:
            self.query_one("#scan", Static).update(Text("no dataset: advice from the task alone", style="dim"))
            return
        self._scan_timer = self.set_timer(0.4, lambda: self.scan_dataset(path))

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def scan_dataset(self, path: str) -> None:
        from rankwise.advisor.dataset import SCAN_ROWS, scan
        from rankwise.advisor.errors import RankwiseError

        p = Path(path).expanduser()
        if not p.exists():
            self.post_message(DatasetScanned(path, error=f"not found: {path}"))
            return
        try:
            self.post_message(DatasetScanned(path, result=scan(p, limit=SCAN_ROWS)))
        except RankwiseError as e:
            self.post_message(DatasetScanned(path, error=e.message))
        except OSError as e:
            self.post_message(DatasetScanned(path, error=str(e)))

    def on_dataset_scanned(self, message: DatasetScanned) -> None:
        if message.path != self.query_one("#dataset", Input).value.strip():
            return  # typed on since
        box = self.query_one("#scan", Static)
        if message.error:
            box.update(Text(message.error, style=message_style("error")))
        else:
            self._scan = message.result
            text = scan_text(message.result)
            text.append("\nchecking tokens and masking…", style="dim")
            box.update(text)
            self.check_data(message.path, self.chosen_model())

    @work(thread=True, exclusive=True, group="datacheck", exit_on_error=False)
    def check_data(self, path: str, model: str | None) -> None:
        """`rankwise check --data` in its own process: it tokenizes with the model's tokenizer
        (transformers, so torch), which this torch-free TUI never imports."""
        cmd = [sys.executable, "-m", "rankwise.tui.cli", "check", "--data", path, "--json"]
        if model:
            cmd += ["--model", model]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=DATACHECK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.post_message(DataChecked(path, error=f"the token check took over {DATACHECK_TIMEOUT_S} s: "
                                                      f"run `rankwise check --data {path}` in a shell"))
            return
        if out.returncode in (0, 3):  # 3: an error-level finding, shown as such
            try:
                self.post_message(DataChecked(path, report=json.loads(out.stdout)))
                return
            except json.JSONDecodeError:
                pass
        said = [line for line in out.stderr.splitlines() if line.strip()]
        self.post_message(DataChecked(path, error=(said[0] if said else f"exit {out.returncode}").removeprefix("error: ")))

    def on_data_checked(self, message: DataChecked) -> None:
        if message.path != self.query_one("#dataset", Input).value.strip() or self._scan is None:
            return  # typed on since
        text = scan_text(self._scan)
        text.append("\n")
        if message.error:
            text.append(f"token check: {message.error}", style=message_style("error"))
        else:
            text.append_text(datacheck_text(message.report))
        self.query_one("#scan", Static).update(text)

    # ---- to Advice
    def planned_hardware(self):
        """The probed machine, or the GPU planned in the fields (RankwiseError if they are wrong)."""
        from rankwise.advisor.hardware import Hardware, planned

        hw = self.app.ctx.hardware or Hardware(gpus=(), host=None, source="unknown")
        mem = self.query_one("#gpu-mem", Input).value.strip()
        count = self.query_one("#gpus", Input).value.strip()
        name = self.query_one("#gpu-name", Input).value.strip()
        if not (mem or name):
            if count and hw.gpus:
                return planned(gpu_mem=str(hw.gpu_bytes), gpus=int(count), host=hw.host)
            return hw
        return planned(gpu_mem=mem or None, gpus=int(count) if count else None, gpu=name or None, host=hw.host)

    def setup_errors(self) -> tuple[dict[str, str], object, int | None]:
        """Every problem of the form, keyed by the field whose error line says it, in the TUI's words;
        and the planned hardware and budget when they are right."""
        from rankwise.advisor.errors import RankwiseError
        from rankwise.advisor.units import parse_count

        errors: dict[str, str] = {}

        def said(e: RankwiseError) -> str:
            return in_tui_words(e.message + (f" — {e.hint}" if e.hint else ""))

        model = self.chosen_model()
        if not model:
            errors["model"] = "pick a model: type to filter the catalog, or give a local path"
        elif (model not in self.app.ctx.catalog and model not in self._cached and "/" not in model
              and not Path(model).expanduser().exists()):
            errors["model"] = f"{model!r} is no catalog model, cached model or path: pick one from the list"
        elif model.startswith((".", "/", "~")) and not Path(model).expanduser().exists():
            errors["model"] = f"no folder {model}: give the path of a model folder (with config.json)"
        hw = budget = None
        try:
            hw = self.planned_hardware()
        except RankwiseError as e:
            errors["plan"] = said(e)
        except ValueError as e:
            errors["plan"] = in_tui_words(str(e))
        text = self.query_one("#budget", Input).value.strip()
        try:
            budget = parse_count(text, "budget") if text else None
        except RankwiseError as e:
            errors["budget"] = said(e)
        dataset = self.query_one("#dataset", Input).value.strip()
        if dataset and not Path(dataset).expanduser().exists():
            errors["dataset"] = f"no file {dataset}: give the path of a .jsonl/.json/.csv/.parquet file"
        return errors, hw, budget

    def action_advice(self) -> None:
        errors, hw, budget = self.setup_errors()
        for field, box in (("model", "#model-error"), ("plan", "#plan-error"), ("dataset", "#dataset-error"),
                           ("budget", "#setup-error")):
            line = self.query_one(box, Static)
            line.update(Text(errors[field], style=message_style("error")) if field in errors else "")
            if line.has_class("field-error"):
                line.display = field in errors
        self.query_one("#plan-note").display = "plan" not in errors  # the error says more
        if errors:  # Advice does not open on a broken Setup; the first wrong field gets the focus
            first = next(iter(errors))
            self.query_one({"model": "#model", "plan": "#gpu-mem", "dataset": "#dataset",
                            "budget": "#budget"}[first], Input).focus()
            return
        model = self.chosen_model()
        self.app.ctx.planned = hw if hw is not self.app.ctx.hardware else None
        dataset = self.query_one("#dataset", Input).value.strip() or None
        self.app.open_advice(Request(model=model, task=str(self.query_one("#task", Select).value),
                                     hardware=hw, budget=budget, dataset=dataset))

    def action_blur(self) -> None:
        """Esc leaves the field (the screen's keys then act alone); typing brings the field back."""
        self._left = self.focused
        self.set_focus(None)

    def on_key(self, event) -> None:
        """After Esc nothing is focused: a typed character goes back into the field that was left
        (the model filter if none), instead of nowhere."""
        if self.focused is None and event.is_printable and event.character:
            box = getattr(self, "_left", None)
            box = box if isinstance(box, Input) and box.is_mounted else self.query_one("#model", Input)
            box.select_on_focus = False  # type on at the end, not over the field's selected text
            box.focus()
            box.cursor_position = len(box.value)
            box.insert_text_at_cursor(event.character)
            # focus() is deferred (app.call_later) and posts Focus to the box: restore after it
            self.app.call_later(box.call_later, setattr, box, "select_on_focus", True)
            event.stop()
