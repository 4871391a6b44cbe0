"""Checkpoints as plain data: loadable with ``torch.load(path, weights_only=True)``.

A checkpoint holds tensors, numbers, strings, lists and dicts only -- the config as a dict, the class
names as a list of strings -- so loading one never runs pickled code. Written with temp file + rename,
so a crash during saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


from cnnlab import atomic
from cnnlab.errors import UserError
from cnnlab.untrusted import load_tensors

CHECKPOINT_DIR = "checkpoints"
CHECKPOINTS = ("best", "last")  # what a run keeps: the best epoch by the monitored metric, and the latest


def checkpoint_path(run_dir: str | Path, which: str) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"{which}.pt"


def save_checkpoint(run_dir: str | Path, which: str, state: dict[str, Any]) -> Path:
    return atomic.save_torch(checkpoint_path(run_dir, which), state)


def load_checkpoint(run_dir: str | Path, which: str = "best") -> dict[str, Any]:
    path = checkpoint_path(run_dir, which)
    if not path.is_file():
        if Path(run_dir).is_file():
            raise UserError(f"'{run_dir}' is a file, not a run directory: pass the folder `cnnlab train` wrote")
        if not Path(run_dir).is_dir():
            raise UserError(f"run directory '{run_dir}' does not exist: pass the folder `cnnlab train` wrote")
        raise UserError(f"'{run_dir}' has no {which} checkpoint ({path}): is it a cnnlab run directory that finished an epoch?")
    return load_tensors(path, "checkpoint", "use the other checkpoint or retrain")


def save_epoch_checkpoints(run_dir: str | Path, state: dict[str, Any], improved: bool) -> None:
    """After an epoch: ``last`` always (for resume), ``best`` when the monitored value improved."""
    save_checkpoint(run_dir, "last", state)
    if improved:
        save_checkpoint(run_dir, "best", state)
