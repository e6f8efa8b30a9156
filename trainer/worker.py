"""The training process: `python -m rankwise.trainer.worker RUN_DIR [--resume] [--force]`.

`rankwise train` creates the run directory (with its resolved config.yaml) and starts this
module in its own process session with stdout/stderr on train.log. It reads top to bottom:
config → advisor check and estimate → tokenizer → data → model (LoRA or QLoRA) → HF
Trainer → train (with the OOM retry) → adapter → summary.json → `end` event.

Exit codes: 0 finished, 1 failed, 2 bad input (an error event says what), 130 interrupted.
SIGINT and SIGTERM (`rankwise stop`) finish the current step, save a checkpoint and end
with status interrupted; during loading they end the process at once (exit 130). The
process plumbing (output to train.log, signals, rank 0's event log, the ranks agreeing, a
full disk) is in process.py.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import time
import traceback
from pathlib import Path

from rankwise.advisor import chat_templates
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.methods import METHODS, PreQuantized, unquantized_twin

from . import adapter_init, cce_loss, moe_quant, rundir
from . import tokens as added_tokens
from .events import EVENTS_FILE, EventSink, read_events
from .launch import is_main_process, launched_with, world_size
from .loading import (experts_in, keep_4bit_trainable_on_cpu, kernel_options, liger_config, prequantized,
                      quantized_device_map, weights_dir)
from .oom import MAX_OOM_RETRIES, OOMGiveUp, halve, oom_message
from .process import (RankSink, disk_full, disk_full_message, end_torn_line, exit_process, gloo_for_deepspeed_on_cpu,
                      install_signal_handlers, leave_process_group, output_to_log, rank_callbacks)
from .prompts import samples_callback

log = logging.getLogger("rankwise.worker")
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rankwise.trainer.worker")
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    p.add_argument("--force", action="store_true", help="train despite error-level red flags")
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    output_to_log(run_dir / rundir.LOG)  # first: whatever follows may print
    stop = install_signal_handlers()
    if is_main_process():  # several processes (accelerate launch): rank 0 alone writes the event log
        end_torn_line(run_dir / EVENTS_FILE)
    sink = RankSink(run_dir / EVENTS_FILE)
    state: dict = {"step": None}
    try:
        return train(run_dir, sink, stop, state, resume=args.resume, force=args.force)
    except KeyboardInterrupt:  # a signal before the Trainer was running: nothing to checkpoint yet
        log.info("interrupted before training started")
        return _ended(run_dir, sink, "interrupted", 130, state)
    except RankwiseError as e:
        log.error("%s%s", e.message, f" ({e.hint})" if e.hint else "")
        return _ended(run_dir, sink, "failed", 2, state, e.message, e.hint)
    except OOMGiveUp as e:
        log.error("%s", e)
        head, _, rest = str(e).partition("\n")
        return _ended(run_dir, sink, "failed", 1, state, head, rest or None)
    except Exception as e:  # a bug or a library failure: the traceback goes to train.log
        if stop.raised:  # a Ctrl-C that a library turned into this exception (Stop.raised)
            log.info("interrupted before training started (the signal surfaced as %s: %s)", type(e).__name__,
                     str(e).splitlines()[0] if str(e) else "")
            return _ended(run_dir, sink, "interrupted", 130, state)
        traceback.print_exc()
        if disk_full(e):
            return _ended(run_dir, sink, "failed", 1, state, *disk_full_message(run_dir, e))
        return _ended(run_dir, sink, "failed", 1, state, f"{type(e).__name__}: {e}", f"see {run_dir / rundir.LOG}")
    finally:
        sink.close()
        leave_process_group()


def _ended(run_dir: Path, sink: EventSink, status: str, code: int, state: dict, error: str | None = None,
           hint: str | None = None) -> int:
    """A run that ended before its normal end: the error event, a short summary.json, the end event."""
    try:
        if error:
            sink.emit("error", message=error, hint=hint)
        if is_main_process():  # the other ranks of a multi-process run leave the summary to rank 0
            rundir.write_json(run_dir / rundir.SUMMARY, {
                "status": status, "step": state["step"], "error": error, "hint": hint, "exit_code": code,
                "last_checkpoint": str(c[1]) if (c := rundir.latest_checkpoint(run_dir)) else None})
        sink.emit("end", status=status, step=state["step"], exit_code=code)
    except OSError as e:  # a full disk can refuse even these few bytes: keep the exit code meaningful
        log.error("could not record the end of the run (%s): %s%s", e, error or status, f" ({hint})" if hint else "")
    return code


def train(run_dir: Path, sink: EventSink, stop, state: dict, resume: bool, force: bool) -> int:
    cfg = rundir.load_config(run_dir)
    log.info("run %s: loading libraries", run_dir.name)
    with stop.deferring():  # a stop asked for now interrupts once they are loaded (Stop.deferred says why)
        import torch  # deferred: heavy, and only the worker trains
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainingArguments

        from rankwise.advisor import cadence, hardware, redflags
        from rankwise.advisor.model import load_model

        from .callbacks import (AdapterUse, CheckpointVariant, Events, SaveAtEvaluation, StartOnce, TestSeams,
                                TokenCounter, hold_in_data, hold_in_imports)
        from .checkup import Checkup, Watched, best_checkpoint
        from .data import make_collator
        from .data_cache import cache_root, data_progress, data_ready, prepare_data

        hold_in_imports(run_dir)

    SyncedStop, RankZeroCheckpoints = rank_callbacks()

    # --- what to train, and does the advisor object? ------------------------------------------
    spec = load_model(cfg.model.name)
    model_dir = weights_dir(spec, cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gloo_for_deepspeed_on_cpu(device)  # before anything starts DeepSpeed's process group
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))  # set by accelerate launch; 0 for one process
    sharded = launched_with("FSDP", "DEEPSPEED")
    hw = hardware.probe(str(run_dir))
    if hw.gpus and device == "cuda":  # plan for the GPUs this run uses: one per process, over every machine
        from dataclasses import replace

        hw = replace(hw, gpus=tuple(replace(hw.gpus[0], index=i) for i in range(world_size())))
    from rankwise.advisor.forecast import data_lengths

    lengths = data_lengths(cfg, spec)  # the fit at the data's longest row, as `train` judged it before the start
    ctx = redflags.context(cfg, spec, hw, lengths=lengths)
    method = ctx.method
    findings = redflags.check(cfg, spec, hw, method, lengths)
    for f in findings:
        log.log(logging.ERROR if f.severity == "error" else logging.WARNING if f.severity == "warning" else logging.INFO,
                "red flag %s [%s]: %s — %s", f.code, f.severity, f.message, f.fix)
        if f.severity != "info":
            sink.emit("log", level=f.severity, message=f"{f.code}: {f.message}")
    errors = [f for f in findings if f.severity == "error"]
    if errors and not force:
        raise RankwiseError(f"red flag {errors[0].code}: {errors[0].message}",
                            f"{errors[0].fix} (or start it with --force)")
    est = ctx.estimate
    gpu_bytes = torch.cuda.get_device_properties(local_rank).total_memory if device == "cuda" else None
    if est is not None:
        where = f"the {gpu_bytes / 2**30:.1f} GiB GPU" if gpu_bytes else "CPU (the estimate is for a GPU)"
        at = f", at the data's longest row ~{lengths.longest:,} tokens" if ctx.judged.at_data else ""
        note = f"estimated peak {est.peak_gib:.2f} GiB ({method}{at}) on {where}"
        log.info("%s", note)
        sink.emit("log", level="info", message=note)
    ahead = _forecast(spec, cfg, ctx, hw, run_dir)
    device_name = (torch.cuda.get_device_name(local_rank) if device == "cuda" else "cpu")

    # --- precision ---------------------------------------------------------------------------
    bf16_ok = device == "cuda" and torch.cuda.is_bf16_supported()
    precision = cfg.train.precision
    if precision == "auto":
        precision = ("bf16" if bf16_ok else "fp16") if device == "cuda" else "fp32"
    if device == "cpu" and precision == "fp16":
        raise RankwiseError("train.precision fp16 needs a GPU", "set train.precision: auto (fp32 on CPU) or bf16")
    pure = precision == "pure_bf16"  # no autocast: weights, adapters and optimizer states all bf16
    if precision == "fp32_master" and not (sharded and device == "cuda"):
        raise RankwiseError("train.precision fp32_master is FSDP mixed precision on GPUs (fp32 shards, bf16 compute)",
                            "train on --gpus 2+ with distributed.strategy: fsdp, or set train.precision: bf16")
    # fp32_master: fp32 weights, which FSDP shards in fp32 and gathers in bf16 (launch.mixed_precision: bf16)
    weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32,
                    "pure_bf16": torch.bfloat16, "fp32_master": torch.float32}[precision]
    compute = cfg.quant.compute_dtype
    compute_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(
        compute, torch.bfloat16 if pure else torch.float32 if device == "cpu" else (torch.bfloat16 if bf16_ok else torch.float16))
    attn, liger = kernel_options(cfg, device, spec.config.get("model_type"))
    # torch.utils.checkpoint's variant, for the Trainer and peft (advisor/assumptions.py REENTRANT_TEXT: what each keeps)
    checkpointing = {"use_reentrant": cfg.train.checkpointing_reentrant}
    adapter_init.check_options(cfg, device, sharded, method)  # lora.init / LoRA+ this machine or launch cannot run
    prequantized(spec)  # a GPTQ/AWQ base without the package that loads it: exit 2 here
    optim = cfg.resolved_optimizer(method)
    if sharded and cfg.train.optimizer == "auto":
        optim = "adamw_torch"  # peft docs (accelerate/fsdp.md, caveats): paged_adamw_8bit fails saving FSDP+QLoRA checkpoints
    optim = {"adamw_torch": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit",
             "paged_adamw_8bit": "paged_adamw_8bit" if device == "cuda" else "adamw_bnb_8bit"}[optim]

    # --- tokenizer and data ------------------------------------------------------------------
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=cfg.model.trust_remote_code)
    chat_templates.apply(tokenizer, cfg.model.chat_template)  # before the data: the cache key holds the template
    added_ids = added_tokens.add_to(tokenizer, cfg.model.added_tokens) if cfg.model.added_tokens else []
    hold_in_data(run_dir)
    train_rows, val_rows, report, cached = prepare_data(cfg, tokenizer, log, progress=data_progress(sink, log),
                                                          root=cache_root(run_dir.parent))
    data_ready(sink, log, report, cached)
    stop.check()  # a Ctrl-C lost in the data preparation stops here, before the model loads
    est = tokenized_fit(spec, cfg, hw, ctx, report, sink, force) or est
    tokens = TokenCounter(make_collator(tokenizer))

    def build_model():
        kwargs = dict(trust_remote_code=cfg.model.trust_remote_code,  # None: safetensors first, then .bin
                      use_safetensors=None if cfg.model.allow_unsafe_weights else True)
        how = METHODS[method]  # how the base is stored (methods.py)
        if prequantized(spec):  # GPTQ/AWQ weights load as shipped; bitsandbytes does not quantize them again
            how = METHODS[unquantized_twin(method)]
        if attn:
            kwargs["attn_implementation"] = attn
        if how.quantized:
            # sharded (FSDP/ZeRO-3): the quantized weights are stored in the compute dtype and the model
            # loads in it (peft docs, "Use PEFT QLoRA and FSDP"; see FourBit.load_kwargs)
            # (a linear the forward reads bare stays in the compute dtype: ModelSpec.bare_names)
            bnb = how.quant.load_kwargs(cfg.quant, compute_dtype, sharded, keep=spec.bare_names)
            kwargs["quantization_config"] = BitsAndBytesConfig(**bnb)
            where = quantized_device_map(device, local_rank)
            if where is not None:
                kwargs["device_map"] = where
            kwargs["dtype"] = compute_dtype
        else:
            kwargs["dtype"] = weight_dtype
        fused = moe_quant.fused_to_quantize(cfg, spec, how, sharded)  # an MoE's fused experts in NF4 (int8) too
        try:
            model, on_load, late = moe_quant.load(lambda: AutoModelForCausalLM.from_pretrained(model_dir, **kwargs),
                                                  fused, cfg.quant, how.quant.bits if how.quantized else 4)
        except OSError as e:
            raise RankwiseError(f"cannot load the weights in {model_dir}: {str(e).splitlines()[0]}",
                                "the folder needs *.safetensors weights (or set model.allow_unsafe_weights "
                                "for pickled .bin files you trust)") from None
        if fused:
            log.info(moe_quant.said(on_load, late, cfg.quant.quant_type, how.quant.bits))
        if added_ids:
            added_tokens.fit_model(model, tokenizer)
        if how.quantized and device == "cpu":
            keep_4bit_trainable_on_cpu(model)
        if how.quantized and sharded:
            # prepare_model_for_kbit_training would cast norms/embeddings to fp32: FSDP cannot flatten
            # mixed dtypes into one unit, so sharded QLoRA keeps them in the storage dtype (as TRL does);
            # get_peft_model freezes the base and the Trainer turns on checkpointing
            model.enable_input_require_grads()
        elif how.quantized:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.train.grad_checkpointing,
                                                    gradient_checkpointing_kwargs=checkpointing)
            kept = experts_in(model, compute_dtype)
            if kept:
                log.info("MoE experts: %d fused tensors kept in %s after peft's fp32 upcast (never quantized)", kept,
                         compute_dtype)
            if not cfg.quant.kbit_upcast:  # undo peft's fp32 upcast of the non-quantized weights (as axolotl does)
                cast = [p for p in model.parameters() if p.dtype == torch.float32 and p.dtype != compute_dtype]
                for p in cast:
                    p.data = p.data.to(compute_dtype)
                log.info("quant.kbit_upcast false: %d non-quantized tensors kept in %s", len(cast), compute_dtype)
        targets = spec.peft_targets(cfg.lora.target_modules)
        torch.manual_seed(cfg.train.seed)  # the same LoRA init on every (re)build
        lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha_value, lora_dropout=cfg.lora.dropout,
                          bias=cfg.lora.bias, target_modules=targets, use_rslora=cfg.lora.use_rslora,
                          target_parameters=list(cfg.lora.target_parameters) or None,
                          modules_to_save=list(cfg.lora.modules_to_save) or None,
                          trainable_token_indices=added_tokens.trainable_indices(model, added_ids,
                                                                                 cfg.lora.modules_to_save),
                          task_type="CAUSAL_LM", **how.peft, **adapter_init.peft_init(cfg, how.quantized),
                          # a quantized fused expert tensor is held by a module named like it (…experts.
                          # parametrizations.down_proj), which peft's suffix match would take for a shared MLP's
                          # down_proj target and fail on: it is no linear
                          **({"exclude_modules": moe_quant.PARAMETRIZED} if fused else {}))
        model = get_peft_model(model, lora, autocast_adapter_dtype=not pure)  # pure bf16: adapters stay bf16
        if cfg.lora.init_from and not resume:  # a resumed run's checkpoint holds the weights it has trained since
            log.info(adapter_init.start_from(model, cfg.lora.init_from))
        if cfg.train.loss == "cce":  # the loss from the hidden states and the head, no logits held
            cce_loss.use_cce(model.get_base_model())
        if cfg.train.activation_offload:  # the decoder's saved inputs wait in host RAM
            from .activation_offload import offload_decoder_activations

            offload_decoder_activations(model)
        adapter_init.after_wrap(model, cfg, run_dir, model_dir, eva_batches, how.quantized)
        return model

    def eva_batches():  # EVA's forwards: the training rows as the Trainer batches them (peft moves them to the model)
        from torch.utils.data import DataLoader

        return DataLoader(train_rows, batch_size=cfg.train.micro_batch, collate_fn=make_collator(tokenizer))

    def training_args(micro: int, accum: int):
        t = cfg.train
        fields = TrainingArguments.__dataclass_fields__  # transformers 5 renamed gradient_ → activation_checkpointing
        ckpt = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
        if t.report_to == "tensorboard":
            os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tensorboard")
        # train.saves_per_epoch / evals_per_epoch resolved against this micro-batch's epoch (advisor/cadence.py)
        when = cadence.resolve(t, cadence.steps_per_epoch(len(train_rows), micro * world_size(), accum))
        args = TrainingArguments(
            output_dir=str(run_dir / rundir.CHECKPOINTS),
            per_device_train_batch_size=micro, per_device_eval_batch_size=micro, gradient_accumulation_steps=accum,
            learning_rate=t.lr, lr_scheduler_type=SCHEDULERS[t.scheduler],
            warmup_steps=t.warmup_steps if t.warmup_steps is not None else t.warmup_ratio,  # < 1: a ratio
            num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
            **{ckpt: t.grad_checkpointing, f"{ckpt}_kwargs": checkpointing},
            optim=optim, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, seed=t.seed,
            adam_beta1=t.adam_beta1, adam_beta2=t.adam_beta2, adam_epsilon=t.adam_epsilon,
            logging_steps=t.logging_steps, save_strategy="steps", save_steps=when.save_steps,
            save_total_limit=t.save_total_limit,
            eval_strategy="steps" if val_rows else "no", eval_steps=when.eval_steps,
            bf16=precision in ("bf16", "fp32_master") and device == "cuda", fp16=precision == "fp16",
            use_cpu=device == "cpu", report_to=["tensorboard"] if t.report_to == "tensorboard" else "none",
            disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0,
            use_liger_kernel=liger,  # HF Trainer's Liger integration (kernel_options checked it can run)
            liger_kernel_config=liger_config(cfg),
            # HF then keeps the best checkpoint out of save_total_limit's rotation: a run the doctor
            # stops (train.stop_on) keeps it as the adapter
            metric_for_best_model="eval_loss" if val_rows else None, greater_is_better=False if val_rows else None,
        )
        return args

    def build_trainer(model, args):
        loss = {}
        if cfg.train.loss == "chunked":  # transformers' causal-LM loss, one chunk of logits at a time in fp32
            from .chunked_loss import chunked_causal_lm_loss

            loss = {"compute_loss_func": chunked_causal_lm_loss}
        return adapter_init.trainer_class(cfg)(model=model, args=args, train_dataset=train_rows, eval_dataset=val_rows,
                       data_collator=tokens, callbacks=[events, checkup, checkpoints, SyncedStop(stop), seams, started,
                                                        variant, adapter_use]
                       + ([samples] if samples else [])
                       + ([SaveAtEvaluation()] if cfg.train.evals_per_epoch and val_rows else []), **loss)

    # --- callbacks ---------------------------------------------------------------------------
    # the run doctor reads what was emitted (checkup.py); a resumed run's earlier log too
    sink = Watched(sink, read_events(run_dir / EVENTS_FILE) if resume else ())
    checkup = Checkup(sink, cfg)  # after Events: it reads the step and eval events Events just wrote
    events, checkpoints, seams = Events(sink, device, tokens), RankZeroCheckpoints(sink), TestSeams()
    samples = samples_callback(cfg, tokenizer, val_rows, sink, sharded, is_main_process(), events, log)
    latest = rundir.latest_checkpoint(run_dir) if resume else None
    if resume:
        log.info("resuming from %s", latest[1] if latest else "the beginning (no complete checkpoint)")
    micro, accum = cfg.train.micro_batch, cfg.train.grad_accum
    variant = CheckpointVariant(sink)  # the run's log says which checkpoint variant the model runs
    adapter_use = AdapterUse(sink, enabled=not sharded)  # adapters the forward never calls (doctor: adapter-unused)
    started = StartOnce(lambda max_steps: sink.emit(
        "start", run_id=run_dir.name, pid=os.getpid(), model=cfg.model.name, method=method, device=device,
        device_total_bytes=gpu_bytes, max_steps=max_steps, epochs=cfg.train.epochs, micro_batch=micro,
        grad_accum=accum, estimate_peak_gib=round(est.peak_gib, 3) if est else None,
        resumed_from_step=latest[0] if latest else None, train_rows=report.train_rows, val_rows=report.val_rows,
        processes=world_size(), sharded=sharded,
        truncated_rows=report.truncated_rows, skipped_rows=report.skipped_rows, train_tokens=report.train_tokens,
        supervised_tokens=report.supervised_tokens, device_name=device_name,
        planned_s=ahead.time.seconds_for(max_steps) if ahead is not None and max_steps else None))

    # --- train, halving the micro-batch on CUDA OOM ------------------------------------------
    t0 = time.time()
    retries = 0
    while True:
        # the arguments before the model: under ZeRO-3 they create the HfDeepSpeedConfig that tells transformers to
        # build a 16-bit model under deepspeed.zero.Init (partitioned as it loads); built after it, the model loads
        # whole and DeepSpeed's engine moves it whole onto each GPU before partitioning (engine.py
        # _configure_distributed_model: module.to(device) unless it has ds_id). They also set each rank's device.
        args = training_args(micro, accum)
        model = build_model()
        model.print_trainable_parameters()
        trainer = build_trainer(model, args)
        say_engine(trainer, sharded)
        oom = None
        stop.arm()
        try:
            trainer.train(resume_from_checkpoint=str(latest[1]) if latest else None)
        except torch.OutOfMemoryError as e:
            oom = str(e).splitlines()[0]
        state["step"] = trainer.state.global_step
        if oom is None:
            break
        del trainer, model
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
        retries += 1
        if retries > MAX_OOM_RETRIES or micro == 1 or world_size() > 1:  # ranks cannot retry apart
            raise OOMGiveUp(oom_message(est, gpu_bytes, micro, accum, retries - 1, cfg,
                                        prequantized=PreQuantized.of(spec.config) is not None))
        micro, accum = halve(micro, accum)
        latest = rundir.latest_checkpoint(run_dir)
        log.warning("out of memory (%s): retry %d with micro_batch %d, grad_accum %d from %s", oom, retries,
                    micro, accum, f"step {latest[0]}" if latest else "the start")
        sink.emit("retry", attempt=retries, reason=oom, micro_batch=micro, grad_accum=accum,
                  from_step=latest[0] if latest else 0)
        _record_batch(run_dir, cfg, micro, accum)  # a later --resume starts with what fitted

    # --- save and report ---------------------------------------------------------------------
    ended_early = trainer.state.global_step < trainer.state.max_steps
    status = "interrupted" if stop.requested and ended_early else "finished"
    adapter = kept = None
    stopped = checkup.stopped  # the run doctor stopped it (train.stop_on / stop_on_nan)
    if stopped is not None and not (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        kept = best_checkpoint(run_dir, checkup.eval_losses(), stopped.step if stopped.code == "loss-nan" else None)
    if status == "finished":
        adapter = run_dir / rundir.ADAPTER
        if kept is not None:
            if is_main_process():
                adapter_init.keep_checkpoint(model, kept[1], adapter, cfg, run_dir)  # PiSSA/OLoRA: converted
        elif stopped is not None and stopped.code == "loss-nan":
            adapter = None  # nothing from before the NaN to keep
        elif trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:  # a collective: every rank takes part
            if trainer.is_fsdp_enabled:
                trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")  # peft docs
            trainer.save_model(str(adapter))
        elif is_main_process():
            adapter_init.save_adapter(model, adapter, cfg, run_dir)  # PiSSA/OLoRA converted for the original base
    nan = stopped is not None and stopped.code == "loss-nan"
    if nan:
        status = "failed"  # with the adapter from before the NaN, when a checkpoint was there
    summary = {
        "status": status, "step": events.step, "max_steps": events.max_steps, "method": method, "device": device,
        "final_loss": events.final_loss, "best_train_loss": events.best_loss, "best_eval_loss": events.best_eval,
        "runtime_s": round(time.time() - t0, 2),
        "tokens_per_s": round(events.tokens_per_s, 1) if events.tokens_per_s else None,
        "trained_tokens": events.train_tokens,  # real tokens of the training batches this process ran (no evaluation)
        "peak_mem_bytes": events.peak_mem, "peak_mem_kind": "cuda reserved" if device == "cuda" else "process RSS",
        "estimate_peak_gib": round(est.peak_gib, 3) if est else None,
        "estimate": est.to_dict() if est else None, "micro_batch": micro, "grad_accum": accum,
        "oom_retries": retries, "data": report.to_dict(), "adapter_path": str(adapter) if adapter else None,
        "last_checkpoint": str(c[1]) if (c := rundir.latest_checkpoint(run_dir)) else None,
        "diagnoses": sorted(checkup.fired),
    }
    if stopped is not None:
        summary["stopped_by"] = {"code": stopped.code, "step": stopped.step, "message": stopped.message}
        summary["adapter_from"] = ({"checkpoint": str(kept[1]), "step": kept[0], "eval_loss": kept[2],
                                    "why": "the best eval loss among the kept checkpoints" if kept[2] is not None
                                    else "the newest checkpoint (no eval loss to choose by)"}
                                   if kept else {"checkpoint": None, "why": "the model at the stop" if adapter
                                                 else "no checkpoint from before the NaN: no adapter"})
    if is_main_process():
        rundir.write_json(run_dir / rundir.SUMMARY, summary)
    code = {"interrupted": 130, "failed": 1}.get(status, 0)
    log.info("run %s %s at step %s", run_dir.name, status, events.step)
    if nan:
        sink.emit("error", message=f"stopped at step {events.step}: {stopped.message}",
                  hint=f"{stopped.fix} (train.stop_on_nan: false trains on instead)")
    sink.emit("end", status=status, step=events.step, final_loss=events.final_loss, best_eval_loss=events.best_eval,
              peak_mem_bytes=events.peak_mem, adapter_path=summary["adapter_path"], exit_code=code)
    return code


# ------------------------------------------------------------------------------- helpers


def say_engine(trainer, sharded: bool) -> None:
    """Log the distribution engine the Trainer runs (accelerate's distributed type: FSDP, DEEPSPEED, MULTI_GPU,
    MULTI_CPU, NO). Launched for FSDP/ZeRO-3 (`sharded`) but not running it is said as a warning: accelerate
    applies ACCELERATE_USE_FSDP only to GPU-like devices (accelerate state.py), so CPU ranks run as DDP while the
    worker's sharded loading (4-bit storage in the compute dtype, no k-bit upcast) still applies."""
    kind = str(trainer.accelerator.state.distributed_type).rsplit(".", 1)[-1]
    log.info("distributed: %s, %d rank%s", kind, world_size(), "s" if world_size() > 1 else "")
    if sharded and kind not in ("FSDP", "DEEPSPEED"):
        log.warning("distributed: launched for FSDP/ZeRO-3 but the Trainer runs %s (accelerate runs neither on the "
                    "CPU); the sharded loading still applies", kind)


def tokenized_fit(spec, cfg, hw, ctx, report, sink, force: bool):
    """The fit again at the tokenized data's longest training sequence, once it is known: the estimate before the
    start counted the rows' text and a template allowance (advisor/lengths.py), the chat template may add more.
    Returns the estimate at it where that length differs (the start event and the summary carry it), else None.
    A run the exact length no longer fits stops here, before the model loads (exit 2; --force runs it anyway)."""
    if ctx.judged is None or not report.longest:  # a cache built before DataReport.longest: nothing to judge with
        return None
    from rankwise.advisor import fit
    from rankwise.advisor.lengths import DataLengths

    exact = DataLengths(report.longest, cfg.train.max_seq_len,
                        f"the tokenized training data's longest sequence, {report.longest:,} tokens")
    judged = fit.assess(spec, cfg, hw, method=ctx.method, lengths=exact)
    planned = ctx.estimate.plan.seq_len
    if judged.estimate.plan.seq_len == planned:
        return None
    note = (f"tokenized: the longest training sequence is {report.longest:,} tokens (planned at {planned:,}): "
            f"estimated peak {judged.peak_gib:.2f} GiB")
    log.info("%s", note)
    sink.emit("log", level="info", message=note)
    if judged.verdict == "wont-fit" and ctx.fit != "wont-fit" and not force:
        raise RankwiseError(f"will not fit: ~{judged.peak_gib:.1f} GiB at the tokenized data's longest sequence "
                            f"({report.longest:,} tokens), {judged.gpu_bytes / 2 ** 30:.1f} GiB per GPU",
                            "set a shorter train.max_seq_len or a smaller train.micro_batch (`rankwise estimate "
                            "--preset ... --seq N` shows the effect), or start it with --force")
    return judged.estimate


def _forecast(spec, cfg, ctx, hw, run_dir: Path):
    """The time planner's view of this run (calibrated from the runs beside it), logged once; None
    when it cannot plan. A planner failure must never stop a training run, so it is only logged."""
    if ctx.judged is None:
        return None
    from rankwise.advisor.forecast import forecast

    try:
        ahead = forecast(spec, cfg, ctx.judged, hw, runs_dir=run_dir.parent)
    except Exception as e:  # noqa: BLE001 — see the docstring
        log.warning("time planner: %s: %s", type(e).__name__, e)
        return None
    log.info("plan: %s", ahead.line())
    return ahead


def _record_batch(run_dir: Path, cfg, micro: int, accum: int) -> None:
    cfg.train.micro_batch, cfg.train.grad_accum = micro, accum
    rundir.write_atomic(run_dir / rundir.CONFIG, cfg.to_yaml())


if __name__ == "__main__":
    exit_process(main())
