#!/usr/bin/env bash
# Download bench/gpu_wheels.txt for the device machine (CPython 3.12, x86-64 Linux) into .gpu-wheels/
# (git-ignored; the device call carries it: see bench/gpu_device.sh). About 50 MB, mostly bitsandbytes.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-wheels
python3 - > .gpu-wheels/requirements.txt <<'PY'
import importlib.metadata as md
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
python3 -m pip download --quiet --no-deps --only-binary=:all: --implementation cp --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .gpu-wheels -r .gpu-wheels/requirements.txt
du -sh .gpu-wheels
