"""The ``cnnlab`` command line.

Each command group is one module of this package with a ``register(subparsers)`` function (listed in
``COMMAND_GROUPS``); a sub-command sets ``func(args) -> int | None``. A ``UserError`` anywhere becomes
one line on stderr and exit status 2. Only this package prints; the library returns values.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import NoReturn

from cnnlab import __version__
from cnnlab.cli import embed, experiment, explain, models, reference, report, train
from cnnlab.cli.help import HelpFormatter
from cnnlab.errors import UserError
from cnnlab.memory import keep_freed_memory

# Modules whose ``register(subparsers)`` adds sub-commands, in the order `cnnlab --help` lists them.
COMMAND_GROUPS = (train, models, reference, explain, experiment, embed, report)


class UsageError(UserError):
    """A command line argparse rejected, with the program (``cnnlab train``) it was meant for."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class OneLineParser(argparse.ArgumentParser):
    """Argparse errors as one line and a pointer to ``--help``, not the whole usage text (sub-command
    parsers are of the same class: argparse builds them with ``type(parent)``)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cnnlab", description="Train, evaluate and explain convolutional image classifiers.",
        formatter_class=HelpFormatter, epilog="examples:\n  cnnlab train\n  cnnlab train --help",
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_const", const=logging.WARNING, dest="log_level",
                      help="only warnings and errors on stderr (default: per-epoch lines and progress too)")
    talk.add_argument("-v", "--verbose", action="store_const", const=logging.DEBUG, dest="log_level",
                      help="also debugging messages (default: off)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_GROUPS:
        module.register(sub)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (pytest and notebooks replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def configure_logging(level: int) -> None:
    """The library's ``cnnlab`` logger to stderr, message only, at ``level`` (set once per process)."""
    logger = logging.getLogger("cnnlab")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"{e.prog}: error: {e}", file=sys.stderr)
        return 2
    configure_logging(args.log_level or logging.INFO)
    keep_freed_memory()  # training steps reuse their activations' pages (see cnnlab.memory)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"cnnlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or training's clean stop on SIGINT/SIGTERM (says what it kept)
        print(f"cnnlab {args.command}: {e or 'interrupted'}", file=sys.stderr)
        return getattr(e, "exit_status", 130)
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """The reader of our output went away (``cnnlab predict ... | head -1``): stop quietly, with the
    status of a process ended by SIGPIPE, as other command-line tools do. stdout is pointed at
    /dev/null so that flushing it at exit raises no second error."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
