"""Choosing the torch device from a ``--device`` value (auto, cpu, cuda, cuda:N)."""

from __future__ import annotations

import torch

from cnnlab.errors import UserError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for, but no CUDA GPU is visible: use --device cpu")
    return torch.device(name)
