"""Interrupting a command-line training run, as a user pressing Ctrl-C would (for resume tests)."""

from __future__ import annotations

import pytest


def ctrl_c_cli_run(monkeypatch: pytest.MonkeyPatch, argv: list[str], epoch: int) -> int:
    """Run ``cnnlab ARGV`` as if the user pressed Ctrl-C when epoch ``epoch`` (0-based) starts; returns the
    exit status. (A command-line run takes no callbacks, so the public ``train_epoch`` is wrapped.)"""
    from cnnlab.cli import main
    from cnnlab.train.trainer import Trainer

    original = Trainer.train_epoch

    def interrupted(self: Trainer):  # type: ignore[no-untyped-def]
        if self.epoch == epoch:
            raise KeyboardInterrupt  # the user presses Ctrl-C
        return original(self)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_epoch", interrupted)
        return main(argv)
