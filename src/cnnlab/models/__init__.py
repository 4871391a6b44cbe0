"""Models: the registry and everything registered in it (importing this package registers them)."""

from cnnlab.models import ahe_cnn as _ahe_cnn  # noqa: F401  (registers ahe_cnn)
from cnnlab.models import backbones as _backbones  # noqa: F401  (registers the transfer-learning backbones)
from cnnlab.models import deep_cnn as _deep_cnn  # noqa: F401  (registers plain_cnn and residual_cnn)
from cnnlab.models.registry import ModelInfo, create_model, list_models, model_info, register_model

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]
