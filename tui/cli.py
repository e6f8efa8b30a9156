"""The `rankwise` command: the headless twin of every TUI action.

Each subcommand lives in `tui/commands/<noun>.py` with a `register(subparsers)` that adds
its parser and sets `func`. This module only routes, and maps errors to exit codes:
0 ok, 1 run failed, 2 bad input, 3 `check` found errors, 130 interrupted.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import sys

from rankwise.advisor.errors import RankwiseError, UserInterrupt

# modules under rankwise.tui.commands, in the order `--help` lists them
COMMAND_MODULES = ("hw", "estimate", "advise", "check", "importer", "presets", "train", "runs", "doctor", "sweep", "svd", "merge", "cache", "schema", "chat", "compare", "export", "evidence")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rankwise",
        description="Plan, check and run LoRA/QLoRA fine-tunes. With no command, opens the TUI; "
                    "`rankwise --preset NAME` is the same headless run as `rankwise train --preset NAME`.",
    )
    parser.add_argument("--preset", dest="root_preset",
                        help="headless run of this preset (same as `rankwise train --preset`); before a command, "
                             "that command's preset")
    parser.add_argument("--set", dest="root_set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset key, e.g. --set lora.r=32 (repeatable); before a command, applied "
                             "to the preset it reads")
    parser.add_argument("--runs-dir", help="where runs are kept (default ./runs)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"rankwise.tui.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"rankwise.tui.commands.{name}":
                raise
            continue  # a command not built yet
        module.register(sub)
    parser.set_defaults(commands=sub.choices)
    return parser


def route_root_options(args) -> None:
    """`rankwise [--preset P] [--set K=V] COMMAND ...`: the root's preset and overrides go to the command.

    Without a command they are the headless run's (or the TUI's). A command says where it reads
    them with `set_defaults(preset_key=..., set_key=...)`; its own `--set` comes after the root's, so
    it wins. A command that reads no preset refuses them (exit 2) rather than dropping them.
    """
    if args.command is None:
        args.preset, args.overrides = args.root_preset, args.root_set
        return
    for option, value, key in (("--set", args.root_set, "set_key"), ("--preset", args.root_preset, "preset_key")):
        if not value:
            continue
        dest = getattr(args, key, None)
        if dest is None:
            readers = ", ".join(name for name, p in args.commands.items() if p.get_default(key))
            raise RankwiseError(f"{option} before `{args.command}`: `rankwise {args.command}` reads no preset, "
                                f"so it would be dropped", f"{option} goes with a command that reads one: {readers}")
        own = getattr(args, dest, None)
        if option == "--set":
            setattr(args, dest, list(value) + list(own or []))
        elif own and own != value:
            raise RankwiseError(f"two presets: --preset {value} before `{args.command}` and --preset {own} after it",
                                "give one")
        else:
            setattr(args, dest, value)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: usage errors exit 2 after printing usage
        return int(e.code or 0)
    from rankwise.advisor import config_cache

    config_cache.configure(getattr(args, "fetch_config", False), getattr(args, "runs_dir", None))
    try:
        route_root_options(args)
        if args.command is None:
            if args.preset:
                from rankwise.tui.commands import train

                return train.run_from_root(args)
            return _open_tui(args)
        return int(args.func(args) or 0)
    except RankwiseError as e:
        print(e.render(), file=sys.stderr)
        return e.exit_code
    except (KeyboardInterrupt, UserInterrupt):
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rankwise runs | head`
        return 0
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
        # a path or name given on the command line or in a config that the file system cannot hold (Path.is_file
        # and friends raise for it): bad input wherever it is looked up
        name = str(e.filename or "")
        print(RankwiseError(f"a name too long for the file system: {name[:80]}{'…' if len(name) > 80 else ''}",
                            "check the path or model name you gave (a file name holds at most 255 bytes)").render(),
              file=sys.stderr)
        return 2


def _open_tui(args) -> int:
    try:
        from rankwise.tui.app import run_app
    except ModuleNotFoundError:
        build_parser().print_help()
        return 0
    return run_app(args)


def entry() -> None:
    code = main()
    if "torch" in sys.modules:  # a command that loaded the model (merge, export, a chat): skip the ~2 s teardown
        from rankwise.trainer.process import end_without_teardown

        end_without_teardown(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
