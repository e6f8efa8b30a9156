#!/usr/bin/env bash
# The whole GPU check, as one command on the device machine (its image's python3 holds torch; nothing can be
# fetched there). From this machine, after bench/gpu_bundle.sh:
#   run(command="bash bench/gpu_device.sh", carry=[".gpu-wheels"], timeout_s=600)
# It installs the carried wheels and rankwise itself (no network, no dependency resolution), then runs
# bench/zero3_load_probe.py (ZeRO-3's load on a 1B, ~30 s), bench/gpu_full_probe.py (a 1B's full fine-tune
# beside check's estimate of it, ~40 s), then bench/gpu_suite.py (which ends with
# bench/gpu_fsdp_probe.py) with its CSVs and log written to $OUT.
# The suite's cases spend its budget, so its closing FSDP probe seldom runs within it: a second call on the warm
# machine, where device time is left (about 3 minutes), runs the probe alone (its offload variant asks issue 11's
# worst row):
#   run(command="GPU_PART=fsdp bash bench/gpu_device.sh", carry=[".gpu-wheels"], timeout_s=300)
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)"
  python3 -m pip install --quiet --no-index --no-deps --find-links .gpu-wheels -r .gpu-wheels/requirements.txt &&
  python3 -m pip install --quiet --no-index --no-deps --no-build-isolation -e . &&
  python3 -c "import rankwise.advisor, bitsandbytes, pydantic; print('rankwise ready; bitsandbytes', bitsandbytes.__version__)" &&
  if [ "${GPU_PART:-main}" = fsdp ]; then
    timeout 270 python3 bench/gpu_fsdp_probe.py --out "$OUT/gpu_fsdp_results.csv"
  else
  { timeout 90 python3 bench/zero3_load_probe.py "$OUT/zero3_load.json" --model llama-3.2-1b || echo "zero3 probe failed"; } &&
  { timeout 75 python3 bench/gpu_full_probe.py "$OUT/gpu_full_results.csv" || echo "full fine-tune probe failed"; } &&
  timeout 390 python3 bench/gpu_suite.py --out "$OUT/gpu_results.csv" --budget-s "${GPU_BUDGET_S:-250}"
  fi
} 2>&1 | tee "$OUT/gpu_device${GPU_PART:+-$GPU_PART}.log"
