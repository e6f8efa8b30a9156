#!/usr/bin/env bash
# Download bench/gpu_wheels.txt for the device machine (CPython 3.12, x86-64 Linux) into .gpu-wheels/
# (git-ignored; the device call carries it: see bench/gpu_device.sh). About 55 MB, mostly bitsandbytes.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-wheels
SOURCE_ONLY="deepspeed"  # no wheel on the index: built here (pure Python)
python3 - "$SOURCE_ONLY" > .gpu-wheels/requirements.txt <<'PY'
import importlib.metadata as md
import sys
for line in open("bench/gpu_wheels.txt"):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    name, _, pinned = line.partition("==")
    try:
        print(f"{name}=={md.version(name)}")  # what this environment runs and tests with
    except md.PackageNotFoundError:
        print(line if pinned else name)
PY
grep -v -E "^(${SOURCE_ONLY// /|})==" .gpu-wheels/requirements.txt > .gpu-wheels/binary.txt
python3 -m pip download --quiet --no-deps --only-binary=:all: --implementation cp --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .gpu-wheels -r .gpu-wheels/binary.txt
for name in $SOURCE_ONLY; do
  python3 -m pip wheel --quiet --no-deps --no-build-isolation -w .gpu-wheels "$(grep -E "^$name==" .gpu-wheels/requirements.txt)"
done
du -sh .gpu-wheels
