"""How long `rankwise advise` takes end to end, beside a bare Python start-up.

Times, in fresh subprocesses (what a user waits for at the prompt):
- advise: `rankwise advise --model llama-3.1-8b --task chat --gpu-mem 24GiB --json`
- check:  `rankwise check tests/fixtures/check/axolotl-qlora.yaml --gpu-mem 24GiB --json`
- reference: `python -c pass` (the interpreter's own start-up, which no command can beat)
Prints the median of N repeats for each and the ratio to the reference. The advice path
must answer in well under a second; the ratio shows how much of that is rankwise.

    python3 bench/advise_speed.py [REPEATS]
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "rankwise.tui.cli"]
COMMANDS = {
    "reference (python -c pass)": [sys.executable, "-c", "pass"],
    "advise --json": CLI + ["advise", "--model", "llama-3.1-8b", "--task", "chat", "--gpu-mem", "24GiB", "--json"],
    "advise (rich text)": CLI + ["advise", "--model", "llama-3.1-8b", "--task", "chat", "--gpu-mem", "24GiB"],
    "check --json": CLI + ["check", str(ROOT / "tests/fixtures/check/axolotl-qlora.yaml"), "--gpu-mem", "24GiB",
                           "--json"],
}


def median_seconds(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
        if out.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.decode()[-400:]}")
    return statistics.median(times)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    subprocess.run(COMMANDS["advise --json"], capture_output=True, cwd=ROOT)  # warm the file cache
    results = {name: median_seconds(cmd, repeats) for name, cmd in COMMANDS.items()}
    ref = results["reference (python -c pass)"]
    print(f"median of {repeats} runs each (fresh subprocess)")
    for name, sec in results.items():
        print(f"  {name:28} {sec * 1000:7.0f} ms   {sec / ref:5.1f}× reference")


if __name__ == "__main__":
    main()
