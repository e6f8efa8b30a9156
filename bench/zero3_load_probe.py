"""How transformers loads a model under rankwise's DeepSpeed ZeRO-3 launch, measured on the CPU: the claims behind
advisor/memory.py `_zero3_load` and trainer/worker.py `quantized_device_map`.

    python3 bench/zero3_load_probe.py OUT.json [--model llama-3.2-1b]   # needs deepspeed (the deepspeed extra)

One process, as a rank of `rankwise train --gpus N` with `distributed.strategy: deepspeed` sees it:
- the environment `accelerate launch` gives the worker for rankwise's accelerate config (trainer/launch.py
  `accelerate_config`; accelerate utils/launch.py `prepare_deepspeed_cmd_env` turns its deepspeed_config into
  ACCELERATE_USE_DEEPSPEED, ACCELERATE_DEEPSPEED_ZERO_STAGE, ACCELERATE_DEEPSPEED_ZERO3_INIT, ...);
- TrainingArguments built first, as the worker builds them (their DeepSpeedPlugin sets transformers' ZeRO-3 flag);
- then a random-weight 2-layer Llama saved as safetensors and loaded (a) in 16 bits, (b) in 4 bits with the
  worker's quantization config and `quantized_device_map`, and (c) in 4 bits with a device_map, as the worker
  passed before.
It writes, per load: whether the weights carry DeepSpeed's partition attributes (`ds_id`), the local and the full
shape of the embedding and of one attention projection, and the error if the load was refused. On the CPU
DeepSpeed runs on its CPU accelerator with gloo; its shared-memory op is built on first use (a C++ compiler, ~20 s
once). On a GPU (bench/gpu_device.sh), with --model a catalog config at full size, each load also records the
memory it allocated on the GPU, the 4-bit one beside what memory._zero3_load counts for that model (every stored
tensor; the adapters left out, as none is attached here): about half a minute for a 1B.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = dict(model_type="llama", hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=96, max_position_embeddings=128, tie_word_embeddings=False)
# accelerate utils/launch.py prepare_deepspeed_cmd_env: the deepspeed_config key each variable carries
ENV = {"zero_stage": "ACCELERATE_DEEPSPEED_ZERO_STAGE", "zero3_init_flag": "ACCELERATE_DEEPSPEED_ZERO3_INIT",
       "zero3_save_16bit_model": "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL",
       "offload_optimizer_device": "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE",
       "offload_param_device": "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE"}


def launch_env(port: int) -> dict[str, str]:
    """What `accelerate launch` sets for rankwise's ZeRO-3 config, for rank 0 of one process."""
    from rankwise.trainer.launch import Launch, accelerate_config

    ds = accelerate_config(Launch("deepspeed", processes=2, mixed_precision="no"))["deepspeed_config"]
    env = {var: str(ds[key]).lower() for key, var in ENV.items() if key in ds}
    env.update(ACCELERATE_USE_DEEPSPEED="true", ACCELERATE_MIXED_PRECISION="no", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
    return env


def describe(model) -> dict:
    emb = model.get_input_embeddings().weight
    proj = model.model.layers[0].self_attn.q_proj
    w = proj.weight

    def full(p):
        return list(getattr(p, "ds_shape", p.shape))

    return {"partitioned": hasattr(emb, "ds_id") or hasattr(w, "ds_id"), "embed_shape": list(emb.shape),
            "embed_full": full(emb), "proj": type(proj).__name__, "proj_shape": list(w.shape), "proj_full": full(w),
            "proj_dtype": str(w.dtype).removeprefix("torch.")}


def expected_4bit_start(config: dict) -> int:
    """memory._zero3_load's start for `config` without adapters: the stored units (NF4 weights with their constants,
    16-bit embeddings, head and norms), the one-tensor adapter units left out."""
    from rankwise.advisor import memory
    from rankwise.advisor.model import spec_from_config

    spec = spec_from_config("probe", "local", config)
    plan = memory.Plan("qlora", targets="all-linear", gpus=2, strategy="deepspeed")
    return sum(u.stored for u in memory.wrap_units(spec, plan, memory._check(spec, plan)) if len(u.tensors) > 1)


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--model", help="a catalog model's config at full size (random weights) instead of the toy")
    args = ap.parse_args(argv)
    out = Path(args.out)
    config = CONFIG
    if args.model:
        from rankwise.advisor.catalog import lookup

        found = lookup(args.model)
        if found is None:
            raise SystemExit(f"{args.model}: not a catalog entry")
        config = {k: v for k, v in found[1].items() if k != "architectures"}
    from rankwise.trainer.launch import free_port

    os.environ.update(launch_env(free_port()))
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig, TrainingArguments
    from transformers.integrations import is_deepspeed_zero3_enabled

    from rankwise.advisor.methods import METHODS
    from rankwise.advisor.config import RunConfig
    from rankwise.trainer.loading import quantized_device_map

    import gc

    cuda = torch.cuda.is_available()
    if not cuda:  # gloo's all-reduce, as the worker uses on the CPU, not DeepSpeed's op compiled first (~90 s)
        from rankwise.trainer.process import gloo_for_deepspeed_on_cpu

        gloo_for_deepspeed_on_cpu("cpu")

    def loaded(load) -> dict:
        """Load, describe, and on a GPU the bytes the load left allocated there."""
        if cuda:
            gc.collect()
            torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated()
        model = load()
        got = describe(model)
        if cuda:
            torch.cuda.synchronize()
            got["allocated_bytes"] = torch.cuda.memory_allocated() - before
        del model
        return got

    got: dict = {"model": args.model or "toy", "device": torch.cuda.get_device_name() if cuda else "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=torch.bfloat16).save_pretrained(folder)
        targs = TrainingArguments(output_dir=str(Path(tmp) / "out"), report_to="none", disable_tqdm=True)
        got["zero3_enabled"] = is_deepspeed_zero3_enabled()
        got["distributed_type"] = str(targs.distributed_state.distributed_type)
        got["16bit"] = loaded(lambda: AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16))
        quant = METHODS["qlora"].quant.load_kwargs(RunConfig().quant, torch.bfloat16, True)
        where = quantized_device_map("cuda" if cuda else "cpu", 0)
        got["device_map"] = where
        kwargs = dict(quantization_config=BitsAndBytesConfig(**quant), dtype=torch.bfloat16)
        got["4bit"] = loaded(lambda: AutoModelForCausalLM.from_pretrained(folder, **kwargs,
                                                                          **({"device_map": where} if where else {})))
        got["4bit_start_est_bytes"] = expected_4bit_start(config)
        try:
            AutoModelForCausalLM.from_pretrained(folder, **kwargs, device_map={"": 0 if cuda else "cpu"})
            got["4bit_device_map_error"] = None
        except ValueError as e:
            got["4bit_device_map_error"] = str(e)
    out.write_text(json.dumps(got, indent=1))
    print(json.dumps(got))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT.parent))
    sys.exit(main(sys.argv[1:]))
