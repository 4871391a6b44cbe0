"""The model behind the web app: loaded once, asked from the server's worker threads."""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from cnnlab.data.files import decode_upload
from cnnlab.device import pick_device
from cnnlab.errors import UserError
from cnnlab.explain.layers import default_cam_layer
from cnnlab.explain.overlay import data_uri, png_bytes
from cnnlab.explain.run_cams import class_overlays
from cnnlab.runs.run import LoadedRun, load_run


class UnknownClass(UserError):
    """A class name the model does not have."""


class Predictor:
    """Top classes and a Grad-CAM overlay for uploaded image files.

    Decoding runs in the caller's thread, in parallel; the model runs one request at a time, because
    Grad-CAM captures the layer with hooks on the shared model, which would see the activations of
    every concurrent forward pass."""

    def __init__(self, run: LoadedRun, device: torch.device, checkpoint: str = "best") -> None:
        self.run = run
        self.device = device
        self.checkpoint = checkpoint
        self.layer = default_cam_layer(run.model, run.image_size)
        self._model_lock = threading.Lock()

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = "best", device: str = "auto") -> Predictor:
        torch_device = pick_device(device)
        return cls(load_run(run_dir, checkpoint, torch_device), torch_device, checkpoint)

    def class_index(self, name: str) -> int:
        if name not in self.run.classes:
            raise UnknownClass(f"unknown class '{name}': the model's classes are {', '.join(self.run.classes)}")
        return self.run.classes.index(name)

    def predict(self, data: bytes, max_pixels: int, top_k: int = 5, cam_class: str | None = None) -> dict:
        """The ``top_k`` classes of the image in ``data`` (file bytes) with their probabilities, and the
        Grad-CAM overlay for ``cam_class`` (default: the top class), as JSON-ready data."""
        explain = None if cam_class is None else [self.class_index(cam_class)]
        image = decode_upload(data, self.run.image_size, max_pixels)[None]
        with self._model_lock:
            result = class_overlays(self.run, image, explain, self.device, self.layer)
        probabilities = result.probabilities[0]
        top = probabilities.topk(min(top_k, len(probabilities)))
        return {
            "top": [{"class": self.run.classes[int(k)], "probability": float(p)} for p, k in zip(top.values, top.indices)],
            "gradcam": {"class": self.run.classes[result.classes[0]], "layer": result.layer,
                        "overlay": data_uri(png_bytes(result.overlays[0]))},
            "image": data_uri(png_bytes(image[0].permute(1, 2, 0).numpy())),
        }

    def describe(self) -> dict:
        run = self.run
        return {"model": run.config.model, "classes": run.classes, "image_size": run.image_size,
                "epoch": run.epoch, "checkpoint": self.checkpoint, "gradcam_layer": self.layer,
                "run": run.run_dir.resolve().name, "config": run.config.to_dict()}
