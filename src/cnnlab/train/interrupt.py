"""SIGINT (Ctrl-C) and SIGTERM (a scheduler's kill) during training: finish the current accumulation
window, write a checkpoint, and exit cleanly with a message instead of dying mid-write.

``StopRequests`` turns the first signal into a flag the trainer reads after each optimiser step; a second
Ctrl-C interrupts at once (the default handler is back). Only the main thread of a single process
installs handlers: under torchrun the launcher owns the workers' signals.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after writing a checkpoint; ``exit_status`` is 128 + the signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_status = 128 + signum


class StopRequests:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        for s, previous in self._previous.items():  # a second signal acts at once
            signal.signal(s, previous)

    def __enter__(self) -> StopRequests:
        if self.enabled:
            for s in SIGNALS:
                self._previous[s] = signal.getsignal(s)
                signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous.clear()
