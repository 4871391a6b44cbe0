"""Run the NumPy reference's sub-commands in-process, letting UserError propagate (so tests can
match its message) instead of going through ``cnnlab.cli.main``'s exit-status handling."""

from __future__ import annotations

import argparse

from cnnlab.cli import reference as commands


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)
