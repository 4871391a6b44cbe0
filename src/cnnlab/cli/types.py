"""Argparse ``type=`` converters for counts, so a bad number is an argparse error (one line, exit 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An integer of at least ``minimum`` (e.g. --top-k 1, --classes 2)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer of at least {minimum}, not '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer of at least {minimum}, not {value}")
        return value

    convert.__name__ = f"integer >= {minimum}"
    return convert
