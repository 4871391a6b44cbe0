"""The ``cnnlab`` command line.

Each command group is one module of this package with a ``register(subparsers)`` function (listed in
``COMMAND_GROUPS``); a sub-command sets ``func(args) -> int | None``. A ``UserError`` anywhere becomes
one line on stderr and exit status 2. Only this package prints; the library returns values.
"""

from __future__ import annotations

import argparse
import sys

from cnnlab import __version__
from cnnlab.cli import explain, models, reference, train
from cnnlab.errors import UserError

# Modules whose ``register(subparsers)`` adds sub-commands, in the order `cnnlab --help` lists them.
COMMAND_GROUPS = (train, models, reference, explain)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab", description="Train, evaluate and explain convolutional image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_GROUPS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"cnnlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cnnlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
