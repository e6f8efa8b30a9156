"""`rankwise --preset P --set K=V COMMAND`: the root's preset and overrides reach the command, or are refused.

Before, `rankwise --set lora.r=64 estimate --preset demo-cpu` estimated r=16 without a word, and
`rankwise --set a=1 train --set b=2` trained without a=1: the subcommand's --set replaced the root's.
"""
from __future__ import annotations

import json

import pytest

from rankwise.tui.cli import build_parser, main, route_root_options


def routed(*argv):
    args = build_parser().parse_args(list(argv))
    route_root_options(args)
    return args


def estimated_rank(capsys, *argv) -> int:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["plan"]["r"]


def test_root_set_reaches_estimate_and_the_commands_own_set_wins(capsys):
    assert estimated_rank(capsys, "estimate", "--preset", "demo-cpu") == 16  # the preset's own rank
    assert estimated_rank(capsys, "--set", "lora.r=64", "estimate", "--preset", "demo-cpu") == 64
    assert estimated_rank(capsys, "--preset", "demo-cpu", "--set", "lora.r=8", "estimate", "--set", "lora.r=32") == 32
    assert estimated_rank(capsys, "--set", "lora.r=64", "estimate") == 64  # over the default config, no preset
    assert estimated_rank(capsys, "--set", "lora.r=64", "estimate", "--rank", "4") == 4  # a flag wins over --set


def test_root_set_is_kept_beside_the_subcommands_set():
    assert routed("--set", "a=1", "train", "--set", "b=2").overrides == ["a=1", "b=2"]
    assert routed("--set", "a=1", "sweep", "--preset", "demo-cpu").overrides == ["a=1"]
    assert routed("--set", "a=1", "check", "f.yaml", "--set", "b=2").check_set == ["a=1", "b=2"]
    assert routed("--set", "a=1", "import", "f.yaml").import_set == ["a=1"]
    assert routed("--preset", "demo-cpu", "check").file == "demo-cpu"
    assert routed("--preset", "demo-cpu", "sweep").preset == "demo-cpu"
    root = routed("--preset", "demo-cpu", "--set", "a=1")  # no command: the headless run's (or the TUI's)
    assert (root.preset, root.overrides) == ("demo-cpu", ["a=1"])


@pytest.mark.parametrize("argv, said", [
    (["--set", "lora.r=64", "hw"], "--set before `hw`: `rankwise hw` reads no preset"),
    (["--preset", "demo-cpu", "runs"], "--preset before `runs`"),
    (["--preset", "demo-cpu", "estimate", "--preset", "demo-cpu-qlora"], "two presets"),
    (["--set", "lora.bogus=1", "estimate"], "lora.bogus"),
    (["sweep"], "sweep needs a preset"),
])
def test_root_options_a_command_cannot_use_are_refused(capsys, argv, said):
    assert main(argv) == 2
    assert said in capsys.readouterr().err


def test_root_set_applies_to_every_listed_preset(capsys):
    assert main(["--set", "lora.r=48", "presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {row["rank"] for row in rows} == {48}
    assert main(["presets", "--set", "lora.zz=1"]) == 2  # a wrong key once, not an error on every row
    assert "lora.zz" in capsys.readouterr().err
