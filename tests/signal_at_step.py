"""Run ``cnnlab train`` (argv after the first two) and send this process SIGNAL right after optimiser
step STEP: ``python tests/signal_at_step.py SIGKILL 7 --output RUN ...`` (``none 0``: no signal). A test
helper, not part of cnnlab: it registers the tests' ``tiny_test`` model, adds one callback to the
trainer's defaults, then calls the real command line."""

from __future__ import annotations

import os
import signal
import sys

import conftest  # noqa: F401  (registers tiny_test)

from cnnlab.cli import main
from cnnlab.train.callbacks import Callback
from cnnlab.train.trainer import Trainer

SIGNAL, STEP = getattr(signal, sys.argv[1], None), int(sys.argv[2])


class SignalAtStep(Callback):
    def on_step_end(self, trainer, step):  # noqa: ANN001
        if SIGNAL is not None and step.step == STEP:
            os.kill(os.getpid(), SIGNAL)


defaults = Trainer.default_callbacks
Trainer.default_callbacks = lambda self: [*defaults(self), SignalAtStep()]
sys.exit(main(["train", *sys.argv[3:]]))
