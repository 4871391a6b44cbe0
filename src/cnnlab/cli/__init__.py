"""The command line: one module per command group over a library that returns values."""

from cnnlab.cli.main import main

__all__ = ["main"]
