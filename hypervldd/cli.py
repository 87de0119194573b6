"""The ``hypervldd`` command line.

Subcommands register themselves in :data:`COMMANDS`; every one parses its own
arguments with argparse, so bad arguments give a usage message and exit code 2,
and expected failures (missing data, bad files) give a one-line error and exit
code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["main", "build_parser", "CliError"]


class CliError(Exception):
    """An expected failure: printed as ``hypervldd: error: <message>``, exit code 1."""


def _cmd_info(args: argparse.Namespace) -> int:
    import platform

    import torch

    import hypervldd

    info = hypervldd.backend_info()
    print(f"hypervldd {hypervldd.__version__}")
    print(f"python {platform.python_version()}, torch {torch.__version__}")
    print(f"backend: {info.backend} (CUDA kernels compiled: {info.cuda_compiled})")
    print(f"reason: {info.reason}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(quick=args.quick)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="versions and the active kernel backend")
    p.set_defaults(func=_cmd_info)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run the package's main job end to end on built-in data and print the result"
    )
    p.add_argument("--quick", action="store_true", help="a smaller, faster run")
    p.set_defaults(func=_cmd_demo)


#: name -> function adding the subcommand to the parser
COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "info": _add_info,
    "demo": _add_demo,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hypervldd",
        description="Hyperbolic geometry for vision-language dataset distillation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as err:
        print(f"hypervldd: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hypervldd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
