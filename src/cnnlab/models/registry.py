"""Model registry in the style of timm: ``@register_model`` on a builder, ``create_model(name, ...)``.

Each entry carries the facts the rest of cnnlab needs without building the model: the input size it
expects, the smallest it accepts, and the normalisation its weights were trained with (``None`` means
"use the statistics of the training split").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cnnlab.errors import UserError


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Module]
    default_image_size: int = 64
    min_image_size: int = 32
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, **info: Any) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``builder(num_classes, **options) -> nn.Module`` under ``name``."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        doc = (builder.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ModelInfo(name, builder, description=doc[0] if doc else "", **info)
        return builder

    return wrap


def model_info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise UserError(f"unknown model '{name}': choose one of {known} (see `cnnlab models`)")
    return _REGISTRY[name]


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, **options: Any) -> nn.Module:
    """Build a registered model for ``num_classes`` outputs; options go to its builder."""
    info = model_info(name)
    try:
        return info.builder(num_classes=num_classes, **options)
    except TypeError as e:
        raise UserError(f"model '{name}' does not accept options {sorted(options)}: {e}") from None
