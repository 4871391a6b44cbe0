"""The model behind the web app: loaded once, run by one thread, asked from the server's worker threads.

With test-time augmentation or an ensemble (``cnnlab serve RUN1 RUN2 --tta flip``) the probabilities are
those of ``cnnlab predict`` with the same runs and ``--tta``; Grad-CAM explains the first run on the
plain image, for the ensemble's top class (or the class asked for)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.files import decode_upload
from cnnlab.device import pick_device
from cnnlab.errors import UserError
from cnnlab.explain.layers import default_cam_layer
from cnnlab.explain.overlay import data_uri, png_bytes
from cnnlab.explain.run_cams import class_overlays
from cnnlab.runs.ensemble import check_same_classes, ensemble_probs
from cnnlab.runs.run import LoadedRun, load_run
from cnnlab.runs.tta import views


class UnknownClass(UserError):
    """A class name the model does not have."""


@dataclass
class _Job:
    images: dict[int, torch.Tensor]  # input size -> uint8 3 x size x size, one per size the runs need
    cam_class: int | None  # None: the predicted class
    done: Future = field(default_factory=Future)  # -> (probabilities, explained class, overlay)


class Predictor:
    """Top classes and a Grad-CAM overlay for uploaded image files.

    Callers decode their uploads in their own threads, in parallel; one model thread then explains
    them. One thread, because Grad-CAM captures its layer with hooks on the shared model, which
    would see the activations of every concurrent forward pass, and because each extra thread that
    enters PyTorch starts a pool of intra-op threads of its own that compete for the same cores.
    Requests that arrive while the model is busy wait in a queue and are explained together, up to
    ``max_batch`` images per forward/backward pass.

    ``others`` (runs trained on the same classes) and ``tta`` make the probabilities an average, as
    ``runs.ensemble`` computes it; ``run`` is the one Grad-CAM explains."""

    def __init__(self, run: LoadedRun, device: torch.device, checkpoint: str = "best", max_batch: int = 16,
                 others: Sequence[LoadedRun] = (), tta: str = "none") -> None:
        views(tta)  # an unknown mode is refused here, before the model thread starts
        self.run = run
        self.others = list(others)
        self.runs = [run, *self.others]  # all averaged, the explained one first
        check_same_classes(self.runs)
        self.tta = tta
        self.device = device
        self.checkpoint = checkpoint
        self.max_batch = max_batch
        self.layer = default_cam_layer(run.model, run.image_size)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()  # None: stop
        self._thread = threading.Thread(target=self._work, name="cnnlab-model", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the model thread once the queued requests are answered."""
        self._jobs.put(None)
        self._thread.join()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = "best", device: str = "auto", max_batch: int = 16,
                 others: Sequence[str | Path] = (), tta: str = "none") -> Predictor:
        """``run_dir`` (explained by Grad-CAM) and the runs in ``others``, averaged with it."""
        torch_device = pick_device(device)
        runs = [load_run(r, checkpoint, torch_device) for r in [run_dir, *others]]
        return cls(runs[0], torch_device, checkpoint, max_batch, runs[1:], tta)

    @property
    def averaging(self) -> bool:
        """Whether the probabilities average several views or runs (not one plain forward pass)."""
        return bool(self.others) or self.tta != "none"

    def class_index(self, name: str) -> int:
        if name not in self.run.classes:
            raise UnknownClass(f"unknown class '{name}': the model's classes are {', '.join(self.run.classes)}")
        return self.run.classes.index(name)

    def predict(self, data: bytes, max_pixels: int, top_k: int = 5, cam_class: str | None = None) -> dict:
        """The ``top_k`` classes of the image in ``data`` (file bytes) with their probabilities, and the
        Grad-CAM overlay for ``cam_class`` (default: the top class), as JSON-ready data."""
        explain = None if cam_class is None else self.class_index(cam_class)
        sizes = dict.fromkeys(r.image_size for r in self.runs)
        job = _Job({size: decode_upload(data, size, max_pixels) for size in sizes}, explain)
        self._jobs.put(job)
        probabilities, explained, overlay = job.done.result()
        top = probabilities.topk(min(top_k, len(probabilities)))
        return {
            "top": [{"class": self.run.classes[int(k)], "probability": float(p)} for p, k in zip(top.values, top.indices)],
            "gradcam": {"class": self.run.classes[explained], "layer": self.layer,
                        "overlay": data_uri(png_bytes(overlay))},
            "image": data_uri(png_bytes(job.images[self.run.image_size].permute(1, 2, 0).numpy())),
        }

    def _work(self) -> None:
        stopping = False
        while not stopping:
            jobs: list[_Job] = []
            job = self._jobs.get()
            while job is not None:
                jobs.append(job)
                if len(jobs) == self.max_batch:
                    break
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
            stopping = job is None
            # Jobs for a named class and jobs for the predicted class are explained in separate passes.
            for group in ([j for j in jobs if j.cam_class is None], [j for j in jobs if j.cam_class is not None]):
                if group:
                    self._explain(group)

    def _explain(self, jobs: list[_Job]) -> None:
        try:
            classes = None if jobs[0].cam_class is None else [int(j.cam_class) for j in jobs]  # type: ignore[arg-type]
            averaged = None
            if self.averaging:
                batches = [torch.stack([j.images[r.image_size] for j in jobs]) for r in self.runs]
                averaged = ensemble_probs(self.runs, batches, self.device, self.tta)
                classes = classes or averaged.argmax(1).tolist()
            images = torch.stack([j.images[self.run.image_size] for j in jobs])
            result = class_overlays(self.run, images, classes, self.device, self.layer)
        except Exception as e:  # noqa: BLE001 - every waiting request learns of the failure
            for j in jobs:
                j.done.set_exception(e)
            return
        probabilities = result.probabilities if averaged is None else averaged
        for j, probs, explained, overlay in zip(jobs, probabilities, result.classes, result.overlays):
            j.done.set_result((probs, explained, np.ascontiguousarray(overlay)))

    def describe(self) -> dict:
        run = self.run
        return {"model": run.config.model, "classes": run.classes, "image_size": run.image_size,
                "epoch": run.epoch, "checkpoint": self.checkpoint, "gradcam_layer": self.layer,
                "max_batch": self.max_batch, "run": run.run_dir.resolve().name, "config": run.config.to_dict(),
                "tta": self.tta, "ensemble": [r.run_dir.resolve().name for r in self.runs]}
