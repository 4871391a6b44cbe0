"""Help texts that answer "what happens if I leave this out?": every option shows its default, every
command ends with examples.

argparse's ``ArgumentDefaultsHelpFormatter`` would print "(default: None)" for the training flags,
which default to None so that only the flags given override a ``--config`` YAML; those get the real
``TrainConfig`` default from ``show_config_defaults`` instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


def describe_default(value: Any) -> str:
    """A default as a person would write it on the command line."""
    if value is True:
        return "on"
    if value is False:
        return "off"
    if value in ({}, []):
        return "none"
    return str(value)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends "(default: X)" to every option's help that does not already say its default; keeps the
    line breaks of descriptions and example epilogs."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not text or "default" in text or not action.option_strings:
            return text
        if action.default is None or action.default is argparse.SUPPRESS:
            return text
        return f"{text} (default: {describe_default(action.default).replace('%', '%%')})"


def add_command(sub: argparse._SubParsersAction, name: str, help_: str, examples: Sequence[str], more: str = "",
                **kwargs: Any) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` starts with ``help_`` and ends with ``examples`` (command lines),
    then ``more`` (kept as written)."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) + (f"\n\n{more}" if more else "")
    kwargs.setdefault("description", help_)
    return sub.add_parser(name, help=help_, epilog=epilog, formatter_class=HelpFormatter, **kwargs)


def show_config_defaults(parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    """Append "(default: X)" from ``defaults`` (field name -> value) to the help of every option that
    fills that field and defaults to None on the command line."""
    for action in parser._actions:
        if action.dest in defaults and action.help and "default" not in action.help:
            action.help += f" (default: {describe_default(defaults[action.dest]).replace('%', '%%')})"
