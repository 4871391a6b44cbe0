"""Reading model outputs: plain logits, ``(logits, aux)`` tuples, or objects with ``.logits``."""

from __future__ import annotations

import torch


def logits_of(output: object) -> torch.Tensor:
    """The main logits of a model output (some models return (logits, aux) tuples in training)."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, (tuple, list)):
        return output[0]
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


def aux_logits_of(output: object) -> torch.Tensor | None:
    """Auxiliary logits of a training-mode output (inception's ``aux_logits``), or None."""
    aux = getattr(output, "aux_logits", None)
    if isinstance(aux, torch.Tensor):
        return aux
    if isinstance(output, (tuple, list)) and len(output) > 1 and isinstance(output[1], torch.Tensor):
        return output[1]
    return None
