"""The worker's hooks into HF `Trainer`: progress events, checkpoint markers, stop on a
signal, and the test seams (a fake CUDA OOM on CPU, a step delay).

Progress leaves the loop only through `EventSink` (trainer/events.py). The per-step cost
is a few attribute reads; the work (memory probe, JSON) happens once per logging step.
"""
from __future__ import annotations

import os
import resource
import shutil
import sys
import time
from pathlib import Path

from transformers import TrainerCallback

from . import rundir
from .events import EventSink

OOM_ENV = "RANKWISE_TEST_OOM_AT_STEPS"
OOM_EVAL_ENV = "RANKWISE_TEST_OOM_AT_EVAL"
DELAY_ENV = "RANKWISE_TEST_STEP_DELAY"
EVAL_DELAY_ENV = "RANKWISE_TEST_EVAL_DELAY"
SAVE_DELAY_ENV = "RANKWISE_TEST_SAVE_DELAY"
LAYERS_ENV = "RANKWISE_TEST_LAYERS_TO"
HOLD_ENV = "RANKWISE_TEST_HOLD_IN"
HOLD_MAX_S = 300  # a held worker whose test died goes on by itself


class TokenCounter:
    """Wraps the collator: counts the real (unpadded) tokens handed to the model."""

    def __init__(self, collate):
        self.collate = collate
        self.tokens = 0

    def __call__(self, batch):
        self.tokens += sum(len(ex["input_ids"]) for ex in batch)
        return self.collate(batch)


def memory(device: str) -> tuple[int | None, int | None]:
    """(now, peak) bytes: CUDA reserved on GPU; process RSS on CPU."""
    if device == "cuda":
        import torch

        return torch.cuda.memory_reserved(), torch.cuda.max_memory_reserved()
    import psutil

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak *= 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
    rss = psutil.Process().memory_info().rss
    return rss, max(peak, rss)  # ru_maxrss trails the live RSS by a few pages


class Events(TrainerCallback):
    """step / eval / checkpoint events; remembers what summary.json needs.

    Evaluation is not training: the Trainer's eval dataloader runs the same collator (TokenCounter), so the tokens
    collated between a step's end and the evaluation after it are the evaluation's and are taken back out, and its
    seconds (HF's eval_runtime) are kept out of the next step event's tokens/s and of the run's (the ETA keeps
    them: the evaluations still to come take time too). No batch is collated for training in that window: the
    Trainer fetches an update's micro-batches before it runs them (and accelerate one batch ahead)."""

    def __init__(self, sink: EventSink, device: str, tokens: TokenCounter):
        self.sink, self.device, self.tokens = sink, device, tokens
        self.final_loss = self.best_loss = self.best_eval = None
        self.peak_mem = None
        self.step = 0
        self.max_steps = None
        self._t0 = self._tok0 = self._step0 = None  # rate since this process's first step
        self._last_t = self._last_tok = None
        self.train_seconds = 0.0
        self.train_tokens = 0
        self.eval_seconds = 0.0  # evaluations since this process's first step
        self._tok_at_step = None  # the counter at the last step's end

    def on_train_begin(self, args, state, control, **kw):
        self.max_steps = state.max_steps
        self._t0 = self._last_t = time.perf_counter()
        self._tok0 = self._last_tok = self.tokens.tokens
        self._step0 = state.global_step

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        now = time.perf_counter()
        if "loss" in logs:
            self._step_event(state, logs, now)
        if "eval_loss" in logs:
            loss = float(logs["eval_loss"])
            self.best_eval = loss if self.best_eval is None else min(self.best_eval, loss)
            runtime = _float(logs.get("eval_runtime"))  # HF's seconds of this evaluation
            if runtime is not None and self._last_t is not None:
                self._last_t += runtime  # not in the next step event's tokens/s
                self.eval_seconds += runtime
            self.sink.emit("eval", step=state.global_step, eval_loss=loss,
                           **({"runtime_s": round(runtime, 3)} if runtime is not None else {}))

    def _step_event(self, state, logs, now):
        loss = float(logs["loss"])
        self.final_loss = loss
        self.best_loss = loss if self.best_loss is None else min(self.best_loss, loss)
        self.step = state.global_step
        toks = self.tokens.tokens
        dt = now - self._last_t
        rate = (toks - self._last_tok) / dt if dt > 0 else None
        self._last_t, self._last_tok = now, toks
        self.train_seconds, self.train_tokens = now - self._t0, toks - self._tok0
        done = state.global_step - self._step0
        eta = (state.max_steps - state.global_step) * (now - self._t0) / done if done > 0 else None
        mem, peak = memory(self.device)
        self.peak_mem = peak
        self.sink.emit("step", step=state.global_step, max_steps=state.max_steps, epoch=round(state.epoch or 0, 4),
                       loss=loss, lr=logs.get("learning_rate"), grad_norm=_float(logs.get("grad_norm")),
                       tokens_per_s=round(rate, 1) if rate else None, mem_bytes=mem, peak_mem_bytes=peak,
                       eta_s=round(eta, 1) if eta is not None else None)

    def on_step_end(self, args, state, control, **kw):
        self._tok_at_step = self.tokens.tokens

    def on_evaluate(self, args, state, control, **kw):
        if self._tok_at_step is not None:  # what the evaluation collated: not trained on
            self.tokens.tokens = self._tok_at_step

    def on_train_end(self, args, state, control, **kw):
        self.step = state.global_step
        now = time.perf_counter()
        if self._t0 is not None:
            self.train_seconds, self.train_tokens = now - self._t0, self.tokens.tokens - self._tok0
        self.peak_mem = memory(self.device)[1]

    def exclude(self, seconds: float) -> None:
        """Time spent outside training (samples) does not count in tokens/s or the ETA."""
        if self._t0 is not None:
            self._t0 += seconds
            self._last_t += seconds

    @property
    def tokens_per_s(self) -> float | None:
        seconds = self.train_seconds - self.eval_seconds
        return self.train_tokens / seconds if seconds > 0 else None


def _float(v):
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


class Checkpoints(TrainerCallback):
    """After HF saved checkpoint-N: write its completion marker, then the event.

    Before a save, the disk must have room for it (the newest checkpoint's size, or the
    trainable weights and two Adam moments for the first): a full disk then ends the run with
    a clear error while the error event, summary.json and `end` can still be written, and the
    last complete checkpoint stays the one `--resume` continues from."""

    def __init__(self, sink: EventSink):
        self.sink = sink
        self.keep = None  # save_total_limit 1: we prune, after the new checkpoint is marked

    def on_train_begin(self, args, state, control, **kw):
        # HF deletes checkpoints past the limit BEFORE on_save (our marker): with a limit of 1 a
        # crash in between would leave no complete checkpoint. HF keeps 2; we keep the user's 1.
        if args.save_total_limit == 1:
            self.keep, args.save_total_limit = 1, 2

    def on_step_end(self, args, state, control, model=None, **kw):
        if control.should_save:
            check_space(Path(args.output_dir), state.global_step, model)

    def on_save(self, args, state, control, **kw):
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if path.is_dir():
            _test_delay(SAVE_DELAY_ENV)  # test seam: widen the saved-but-unmarked window
            if _hold_wanted("saving", args):
                _hold(f"saving checkpoint-{state.global_step} (saved, not marked)")
            rundir.mark_complete(path)
            self.sink.emit("checkpoint", step=state.global_step, path=str(path))
            if self.keep:
                best = Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None
                for _, old in rundir.complete_checkpoints(path.parent.parent)[:-self.keep]:
                    if old.name == best:
                        continue  # the best by eval loss stays, as HF's rotation keeps it (train.stop_on)
                    (old / rundir.MARKER).unlink(missing_ok=True)  # unmarked first: never half-deleted but marked
                    shutil.rmtree(old, ignore_errors=True)


class StopFlag(TrainerCallback):
    """Reads the flag the SIGINT/SIGTERM handler sets (`stop.requested`): the current step
    finishes, a checkpoint is saved, training stops."""

    def __init__(self, stop):
        self.stop = stop

    def on_step_end(self, args, state, control, **kw):
        if self.stop.requested:
            control.should_save = True
            control.should_training_stop = True


class TestSeams(TrainerCallback):
    """What a test cannot get on CPU, faked at the narrowest point; unset in real runs.

    RANKWISE_TEST_OOM_AT_STEPS=5,9 raises torch.OutOfMemoryError as optimizer step 5 (then 9)
    begins, each once per process: everything after the raise is the real retry path.
    RANKWISE_TEST_STEP_DELAY=0.3 sleeps after each step, so a test can signal or kill a run
    mid-way (the tiny model trains 12 steps in under a second).
    RANKWISE_TEST_OOM_AT_EVAL=8 raises it in the evaluation run at global step 8 (once per
    process); RANKWISE_TEST_EVAL_DELAY=0.5 sleeps per evaluation batch and
    RANKWISE_TEST_SAVE_DELAY=0.5 between HF's checkpoint save and its completion marker, so a
    test can signal or kill a run during evaluation or saving.
    RANKWISE_TEST_HOLD_IN=training:5 | evaluation | saving | imports holds the run once in that phase
    (data-finaliser | data-library: `hold_in_data`)
    (`training:5@-r4-`: only a run whose output folder's path contains "-r4-", one trial of a sweep)
    (after step 5's event; at the first evaluation batch; between HF's first checkpoint save and
    its marker; while the worker loads its libraries) until a SIGINT/SIGTERM arrives, having said
    "test seam: holding in ..." in train.log: a test waits for that line and signals a run that is
    certainly in the phase, whatever the machine's load.
    RANKWISE_TEST_LAYERS_TO=FILE writes, as training begins, what each adapted layer's base
    really is (class, weight type, 4-bit quant type, dtype) as JSON, so a test can see the
    trained model's base is 4-bit rather than infer it from a log line."""

    def __init__(self):
        spec = os.environ.get(OOM_ENV, "")
        self.pending = {int(s) for s in spec.replace(" ", "").split(",") if s}
        self.pending_eval = {int(s) for s in os.environ.get(OOM_EVAL_ENV, "").replace(" ", "").split(",") if s}
        self.delay = float(os.environ.get(DELAY_ENV) or 0)

    def on_train_begin(self, args, state, control, model=None, **kw):
        path = os.environ.get(LAYERS_ENV)
        if path and model is not None:
            import json

            layers = {name: {"class": type(m.base_layer).__name__, "weight": type(m.base_layer.weight).__name__,
                             "quant_type": getattr(m.base_layer.weight, "quant_type", None),
                             "dtype": str(m.base_layer.weight.dtype)}
                      for name, m in model.named_modules() if hasattr(m, "base_layer")}  # peft's LoRA wrappers
            Path(path).write_text(json.dumps(layers), encoding="utf-8")

    def on_log(self, args, state, control, logs=None, **kw):
        if "loss" in (logs or {}) and _hold_wanted(f"training:{state.global_step}", args):
            _hold(f"training after step {state.global_step}")  # after Events wrote the step event

    def on_prediction_step(self, args, state, control, **kw):
        if _hold_wanted("evaluation", args):
            _hold(f"evaluation at step {state.global_step}")
        if state.global_step in self.pending_eval:
            import torch

            self.pending_eval.discard(state.global_step)
            raise torch.OutOfMemoryError(f"CUDA out of memory (faked by {OOM_EVAL_ENV} in the evaluation "
                                         f"at step {state.global_step})")
        _test_delay(EVAL_DELAY_ENV)

    def on_step_begin(self, args, state, control, **kw):
        step = state.global_step + 1
        if step in self.pending:
            import torch

            self.pending.discard(step)
            raise torch.OutOfMemoryError(f"CUDA out of memory (faked by {OOM_ENV} at step {step})")

    def on_step_end(self, args, state, control, **kw):
        if self.delay:
            time.sleep(self.delay)


class Samples(TrainerCallback):
    """The model in training answers a few held-out prompts every `every` steps (None: at each
    evaluation), greedy, as `sample` events. `rows`: trainer/prompts.py's Rows (prompt text, the
    prompt's token ids as training renders them, the reference answer or None)."""

    MAX_NEW_TOKENS = 48

    def __init__(self, sink: EventSink, tokenizer, rows: list, every: int | None, clock: Events | None = None):
        self.sink, self.tokenizer, self.rows, self.every, self.clock = sink, tokenizer, rows, every, clock
        self._done: set[int] = set()

    def on_step_end(self, args, state, control, model=None, **kw):
        if self.every and state.global_step % self.every == 0:
            self._sample(model, state.global_step)

    def on_evaluate(self, args, state, control, model=None, **kw):
        if not self.every:
            self._sample(model, state.global_step)

    def _sample(self, model, step: int) -> None:
        if model is None or not self.rows or step in self._done:
            return
        self._done.add(step)
        from .generation import Settings, generate_ids

        settings = Settings(max_new_tokens=self.MAX_NEW_TOKENS, temperature=0.0)
        was_training = model.training
        t0 = time.perf_counter()
        model.eval()
        try:
            for row in self.rows:
                text = generate_ids(model, self.tokenizer, row.prompt_ids, settings).strip()
                self.sink.emit("sample", step=step, prompt=row.prompt, text=text, reference=row.reference)
        finally:
            if was_training:
                model.train()
            if self.clock is not None:
                self.clock.exclude(time.perf_counter() - t0)


class SaveAtEvaluation(TrainerCallback):
    """A checkpoint at each evaluation (train.evals_per_epoch), whatever the save interval: the best checkpoint by
    eval loss (checkup.best_checkpoint) is chosen among checkpoints with an evaluation at their step. The Trainer
    saves after it evaluates when the callbacks leave `should_save` set (Trainer._maybe_log_save_evaluate)."""

    def on_evaluate(self, args, state, control, **kw):
        control.should_save = True


class CheckpointVariant(TrainerCallback):
    """Logs once which torch.utils.checkpoint variant the model's layers run, read from the model after the
    Trainer turned checkpointing on (transformers binds `use_reentrant` into each layer's checkpoint function)."""

    def __init__(self, sink):
        self.sink, self.done = sink, False

    def on_train_begin(self, args, state, control, model=None, **kw):
        if self.done or model is None:
            return
        self.done = True
        flags = {getattr(m._gradient_checkpointing_func, "keywords", {}).get("use_reentrant")
                 for m in model.modules() if getattr(m, "gradient_checkpointing", False)
                 and hasattr(m, "_gradient_checkpointing_func")}
        if flags:
            names = ", ".join(sorted("reentrant" if f else "non-reentrant" for f in flags))
            self.sink.emit("log", level="info", message=f"gradient checkpointing: {names} "
                           f"(use_reentrant={'/'.join(str(f) for f in sorted(flags, key=str))})")


ADAPTER_WATCH_STEPS = 3  # optimizer steps. An adapter whose module the forward calls has a lora_B gradient from the
# first step (zero for lora_A while B is still zero, but never None); three allow for an MoE whose experts are
# separate linears, one of which a batch may not route to.


class AdapterUse(TrainerCallback):
    """LoRA adapters the model's forward never calls: a module whose weight the forward reads bare (a fused kernel
    handed `module.weight`, a `module.weight @ x`) bypasses peft's wrapper, and its adapter trains nothing. Seen as a
    lora_B with no gradient (None) at each of the first ADAPTER_WATCH_STEPS optimizer steps; written once as an
    `adapters` event for the run doctor (adapter-unused). Off where gradients live outside the parameters
    (FSDP's flat parameters, DeepSpeed's partitions)."""

    def __init__(self, sink, enabled: bool):
        self.sink, self.enabled = sink, enabled
        self.unseen: dict[str, object] | None = None  # lora_B name -> parameter, not yet seen with a gradient
        self.total: dict[str, int] = {}
        self.steps = 0

    def on_train_begin(self, args, state, control, **kw):
        self.unseen, self.total, self.steps = None, {}, 0  # an OOM retry's rebuilt model: watched afresh

    def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
        if not self.enabled or model is None:
            return
        if self.unseen is None:
            self.unseen = {n: p for n, p in model.named_parameters() if ".lora_B." in n and p.requires_grad}
            for n in self.unseen:
                self.total[_adapted(n)] = self.total.get(_adapted(n), 0) + 1
        self.unseen = {n: p for n, p in self.unseen.items() if p.grad is None}
        self.steps += 1
        if self.steps >= ADAPTER_WATCH_STEPS or state.global_step + 1 >= (state.max_steps or 0):
            self.enabled = False
            unused: dict[str, list[int]] = {}
            for n in self.unseen:
                unused.setdefault(_adapted(n), [0, self.total[_adapted(n)]])[0] += 1
            self.sink.emit("adapters", step=state.global_step + 1, adapters=sum(self.total.values()), unused=unused)
            self.unseen = {}


def _adapted(name: str) -> str:
    """The adapted module's name (target_modules' spelling) from its lora_B parameter's."""
    return name.split(".lora_B.")[0].rsplit(".", 1)[-1]


class StartOnce(TrainerCallback):
    """Emits `start` once per process, when HF knows max_steps (an OOM retry rebuilds the
    Trainer; its `retry` event already says what changed)."""

    def __init__(self, emit):
        self.emit, self.done = emit, False

    def on_train_begin(self, args, state, control, **kw):
        if not self.done:
            self.done = True
            self.emit(state.max_steps)


SPACE_MARGIN = 64 << 10  # room left for the error event, train.log and summary.json after a save


def check_space(folder: Path, step: int, model=None) -> None:
    import errno

    found = rundir.complete_checkpoints(folder.parent)
    if found:
        need = sum(f.stat().st_size for f in found[-1][1].iterdir() if f.is_file())
    elif model is not None:  # adapter + Adam's two moments, fp32
        need = 3 * 4 * sum(p.numel() for p in model.parameters() if p.requires_grad)
    else:
        return
    probe = folder if folder.exists() else folder.parent
    free = shutil.disk_usage(probe).free
    if free < need + SPACE_MARGIN:
        mib = 2 ** 20
        last = f"checkpoint {found[-1][0]}" if found else "the start (no checkpoint yet)"
        raise OSError(errno.ENOSPC, f"disk full: checkpoint-{step} needs about {need / mib:.1f} MiB and "
                                    f"{probe} has {free / mib:.1f} MiB free; free some space (or lower "
                                    f"train.save_total_limit), then `rankwise train --resume "
                                    f"{folder.parent.name}` continues from {last}")


_held: set[str] = set()


def _hold_wanted(phase: str, args) -> bool:
    """RANKWISE_TEST_HOLD_IN asks for `phase` here, in this run (its `@part` names the run's folder)."""
    return _hold_asked(phase, str(args.output_dir))


def _hold_asked(phase: str, place: str) -> bool:
    wanted, _, only = (os.environ.get(HOLD_ENV) or "").partition("@")
    return wanted == phase and only in place


def hold_in_imports(run_dir: Path) -> None:
    """Test seam: RANKWISE_TEST_HOLD_IN=imports holds the worker while it loads its libraries (the signal
    it waits for must be deferred to their end: trainer/process.py `Stop.deferring`)."""
    if _hold_asked("imports", str(run_dir)):
        _hold("imports, the libraries loading")


def hold_in_data(run_dir: Path) -> None:
    """Test seam: RANKWISE_TEST_HOLD_IN=data-finaliser | data-library holds the worker as its data
    preparation begins, where a Ctrl-C raises KeyboardInterrupt at once, in one of the two landings that
    lose it (trainer/process.py `Stop.raised`): inside a finaliser (a real weakref.finalize callback:
    Python reports the exception and goes on), or inside library code that re-raises it as its own
    exception (as transformers' lazy imports re-raise a failed import as ModuleNotFoundError)."""
    if _hold_asked("data-finaliser", str(run_dir)):
        import weakref

        class Held:
            pass

        held = Held()
        weakref.finalize(held, _hold, "data-finaliser, data preparation (inside a finaliser)")
        del held  # the finaliser runs here, and holds
    elif _hold_asked("data-library", str(run_dir)):
        try:
            _hold("data-library, data preparation (inside library code)")
        except KeyboardInterrupt as e:
            raise ModuleNotFoundError("Could not import module 'X' (a library's own error for the interrupt)") from e


def _hold(where: str) -> None:
    """Test seam (RANKWISE_TEST_HOLD_IN): once per process and phase, wait here for SIGINT or
    SIGTERM. The worker's own handler still runs on it (it asks for the stop being tested)."""
    import logging
    import signal

    phase = where.split()[0]
    if phase in _held:
        return
    _held.add(phase)
    got: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        got.append(signum)
        if callable(previous[signum]):
            previous[signum](signum, frame)

    for s in previous:
        signal.signal(s, handler)
    try:
        logging.getLogger("rankwise.worker").warning("test seam: holding in %s until a signal", where)
        end = time.monotonic() + HOLD_MAX_S
        while not got and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _test_delay(env: str) -> None:
    delay = float(os.environ.get(env) or 0)
    if delay:
        time.sleep(delay)
