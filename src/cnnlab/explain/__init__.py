"""Explaining a trained CNN: what it looks at, what its units have learned.

- ``hooks.capture``: activations and gradients of named layers (hooks always removed, mode restored).
- ``cam``: ``GradCAM`` and ``GradCAMPlusPlus`` for ``ClassTarget(k)`` or ``FilterTarget(layer, k)``.
- ``grids``: a layer's activation maps for one image; the first layer's filters.
- ``dream``: class-model images by gradient ascent on the input, ``plain`` or ``regularized``.
- ``selectivity``: class selectivity index of every conv unit, layer by layer.

The command line (``cnnlab explain ...``, see ``cnnlab.cli.explain``) writes under ``RUN/explain/``.
"""

from cnnlab.explain.cam import CAM_METHODS, BaseCAM, CamResult, GradCAM, GradCAMPlusPlus, pointing_game
from cnnlab.explain.dream import RECIPES, DreamRecipe, DreamResult, dream, high_frequency_energy, recipe
from cnnlab.explain.hooks import Captured, capture
from cnnlab.explain.layers import conv_units, default_cam_layer, probe_calls
from cnnlab.explain.selectivity import LayerSelectivity, measure_selectivity, selectivity_index
from cnnlab.explain.targets import ClassTarget, FilterTarget, Target

__all__ = [
    "CAM_METHODS", "RECIPES", "BaseCAM", "CamResult", "Captured", "ClassTarget", "DreamRecipe", "DreamResult",
    "FilterTarget", "GradCAM", "GradCAMPlusPlus", "LayerSelectivity", "Target", "capture", "conv_units",
    "default_cam_layer", "dream", "high_frequency_energy", "measure_selectivity", "pointing_game", "probe_calls",
    "recipe", "selectivity_index",
]
