"""The web app's JSON API through FastAPI's test client: good uploads, and every kind of bad one
answered with a 4xx and a message, after which the server keeps serving."""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from cnnlab.cli import main
from cnnlab.cli.report import is_loopback
from cnnlab.data.normalize import Normalization
from cnnlab.errors import UserError
from cnnlab.explain.layers import default_cam_layer
from cnnlab.models import create_model, list_models, model_info
from cnnlab.runs.config import TrainConfig
from cnnlab.runs.evaluate import predict
from cnnlab.runs.run import LoadedRun, load_run
from cnnlab.serve.app import Limits, create_app
from cnnlab.serve.predictor import Predictor
from web_fixtures import web_folder, web_run  # noqa: F401 - fixtures

CPU = torch.device("cpu")


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def decoded(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


@pytest.fixture(scope="module")
def client(web_run: Path) -> Iterator[TestClient]:
    with Predictor.from_run(web_run, device="cpu") as predictor:
        yield TestClient(create_app(predictor, Limits(max_body_bytes=2**20)))


@pytest.fixture(scope="module")
def sample(web_folder: Path) -> Path:
    return sorted((web_folder / "square").glob("*.png"))[0]


def post(client: TestClient, data: bytes, content_type: str = "image/png", **fields: str):
    return client.post("/predict", files={"file": ("upload", data, content_type)}, data=fields)


def test_good_image_gives_the_same_top_classes_as_predict(client, sample, web_run):
    r = post(client, sample.read_bytes())
    assert r.status_code == 200
    body = r.json()
    run = load_run(web_run)
    expected = next(predict([run], [str(sample)], CPU, top_k=3)).to_dict()["top"]  # predict yields per image
    assert [t["class"] for t in body["top"]] == [t["class"] for t in expected]  # 3 classes: top-5 is all 3
    assert [t["probability"] for t in body["top"]] == pytest.approx([t["probability"] for t in expected], abs=1e-5)
    assert body["gradcam"]["class"] == expected[0]["class"] and body["gradcam"]["layer"] == default_cam_layer(run.model, 16)
    assert decoded(body["gradcam"]["overlay"]).size == (16, 16) and decoded(body["image"]).size == (16, 16)


def test_grad_cam_for_a_chosen_class_and_fewer_classes(client, sample):
    r = post(client, sample.read_bytes(), cam_class='circle & "ring"', top_k="1")
    assert r.status_code == 200
    assert r.json()["gradcam"]["class"] == 'circle & "ring"' and len(r.json()["top"]) == 1
    r = post(client, sample.read_bytes(), cam_class="dog")
    assert r.status_code == 422 and r.json()["detail"].startswith("unknown class 'dog': the model's classes are")


def test_greyscale_and_jpeg_uploads_are_converted(client, sample):
    grey = Image.open(sample).convert("L").resize((200, 150))
    assert post(client, png(grey)).status_code == 200
    buf = io.BytesIO()
    Image.open(sample).convert("RGB").save(buf, format="JPEG")
    assert post(client, buf.getvalue(), "application/octet-stream").status_code == 200


@pytest.mark.parametrize("data, content_type, status, message", [
    (b"hello, not an image", "image/png", 422, "not an image file (no known image format)"),
    (png(Image.effect_noise((64, 64), 60))[:300], "image/png", 422, "not a readable image (OSError"),  # truncated
    (b"hello", "text/plain", 415, "content type 'text/plain' is not an image"),
])
def test_bad_uploads_are_refused_with_a_reason(client, sample, data, content_type, status, message):
    r = post(client, data, content_type)
    assert r.status_code == status and message in r.json()["detail"]
    assert post(client, sample.read_bytes()).status_code == 200  # and the server keeps serving


def test_oversized_bodies_are_refused_declared_or_streamed(client, sample):
    r = post(client, b"\0" * (2**20 + 1))
    assert r.status_code == 413 and r.json()["detail"] == "request body larger than 1,048,576 bytes: send a smaller image"
    streamed = client.post("/predict", content=iter([b"-" * 65536] * 40),
                           headers={"content-type": "multipart/form-data; boundary=x"})
    assert streamed.status_code == 413
    assert post(client, sample.read_bytes()).status_code == 200


def test_a_decompression_bomb_is_refused_before_decoding(client):
    bomb = png(Image.new("1", (8_000, 8_000)))  # 64 megapixels in a file of a few kB
    assert len(bomb) < 100_000
    start = time.perf_counter()
    r = post(client, bomb)
    assert r.status_code == 413 and "8000x8000 pixels, more than the 40,000,000 allowed" in r.json()["detail"]
    assert time.perf_counter() - start < 2  # decoding 100 MP and resizing would take far longer


def test_missing_field_and_wrong_method(client):
    r = client.post("/predict", data={"top_k": "3"})
    assert r.status_code == 422 and r.json()["detail"].startswith("file: Field required")
    r = client.post("/predict", files={"file": ("a.png", b"x", "image/png")}, data={"top_k": "0"})
    assert r.status_code == 422 and "top_k" in r.json()["detail"]
    assert client.get("/predict").status_code == 405
    assert client.delete("/model").status_code == 405


def test_health_model_schema_and_a_self_contained_page(client):
    assert client.get("/health").json() == {"status": "ok"}
    m = client.get("/model").json()
    assert m["classes"] == ["<img src=x onerror=alert(1)>", 'circle & "ring"', "square"]
    assert m["model"] == "ahe_cnn" and m["image_size"] == 16 and m["limits"]["max_pixels"] == 40_000_000
    assert set(client.get("/openapi.json").json()["paths"]) == {"/health", "/model", "/predict"}
    page = client.get("/").text
    assert 'type="file"' in page and 'name="viewport"' in page
    assert not re.findall(r'(?:src|href)\s*=\s*"(?!#)', page)  # no external script, style, font or image
    assert "innerHTML" not in page  # class names are set as text


def test_non_loopback_hosts_need_a_flag(web_run, capsys):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    assert main(["serve", str(web_run), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "add --allow-remote" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", list_models())
def test_every_registry_model_predicts_with_grad_cam(name):
    """Untrained, at its smallest input size: the layer choice, Grad-CAM and the overlay work for
    every architecture (plain logits, inception's, squeeze-excitation blocks ...)."""
    size = model_info(name).min_image_size
    run = LoadedRun(Path("."), create_model(name, 3).eval(), TrainConfig(model=name), ["a", "b", "c"],
                    Normalization((0.5,) * 3, (0.25,) * 3), size, 0)
    with Predictor(run, CPU) as predictor:
        body = predictor.predict(png(Image.new("RGB", (50, 40), (30, 160, 90))), 10**6)
    assert sorted(t["class"] for t in body["top"]) == ["a", "b", "c"]
    assert decoded(body["gradcam"]["overlay"]).size == (size, size)


def test_concurrent_requests_batched_give_the_answers_of_one_at_a_time(web_run, web_folder):
    files = sorted(web_folder.rglob("*.png"))[:12]
    uploads = [(f.read_bytes(), None if i % 3 else 'circle & "ring"') for i, f in enumerate(files)]
    results = {}
    for max_batch in (1, 16):
        with Predictor.from_run(web_run, device="cpu", max_batch=max_batch) as predictor:
            with ThreadPoolExecutor(12) as pool:
                results[max_batch] = list(pool.map(lambda u: predictor.predict(u[0], 10**6, 3, u[1]), uploads))
    for one, batched in zip(results[1], results[16]):
        assert [t["class"] for t in one["top"]] == [t["class"] for t in batched["top"]]
        assert [t["probability"] for t in one["top"]] == pytest.approx([t["probability"] for t in batched["top"]], abs=1e-5)
        assert one["gradcam"]["class"] == batched["gradcam"]["class"]
        a, b = (np.asarray(decoded(r["gradcam"]["overlay"]), dtype=int) for r in (one, batched))
        # Batched convolutions round differently; a map value that crosses one of the colour map's 256
        # steps moves a channel by up to 4 levels, half of which shows through the 0.5 blend.
        assert np.abs(a - b).max() <= 3 and np.abs(a - b).mean() < 0.1
    assert all(r["gradcam"]["class"] == 'circle & "ring"' for r in results[16][::3])


def test_tta_and_an_ensemble_give_the_probabilities_of_predict_and_explain_their_top_class(web_run, sample):
    """A second run at another input size with other weights, averaged with the first under --tta
    flip+scales: the page's probabilities are `cnnlab predict`'s, Grad-CAM explains their top class."""
    first = load_run(web_run)
    torch.manual_seed(3)
    second = LoadedRun(Path("other-run"), create_model("ahe_cnn", 3).eval(), first.config, first.classes, first.norm, 24, 1)
    expected = next(predict([first, second], [str(sample)], CPU, top_k=3, tta="flip+scales")).top
    plain = next(predict([first], [str(sample)], CPU, top_k=3)).top
    assert [p for _, p in expected] != pytest.approx([p for _, p in plain], abs=1e-3)  # the average changes them
    with Predictor(first, CPU, others=[second], tta="flip+scales") as predictor:
        body = predictor.predict(sample.read_bytes(), 10**6, top_k=3)
        described = predictor.describe()
    assert [(t["class"], t["probability"]) for t in body["top"]] == [(c, pytest.approx(p, abs=1e-5)) for c, p in expected]
    assert body["gradcam"]["class"] == expected[0][0]
    assert decoded(body["image"]).size == (16, 16)  # the explained (first) run's input
    assert described["tta"] == "flip+scales" and described["ensemble"] == [web_run.resolve().name, "other-run"]


def test_an_ensemble_of_runs_with_other_classes_is_refused(web_run):
    first = load_run(web_run)
    other = LoadedRun(Path("other-run"), first.model, first.config, ["x", "y", "z"], first.norm, 16, 1)
    with pytest.raises(UserError, match="trained on other classes"):
        Predictor(first, CPU, others=[other])


def test_serve_command_passes_the_runs_and_tta_to_the_app(web_run, monkeypatch, capsys):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(model=TestClient(app).get("/model").json()))
    assert main(["serve", str(web_run), str(web_run), "--tta", "flip", "--device", "cpu"]) == 0
    assert seen["model"]["tta"] == "flip" and seen["model"]["ensemble"] == [web_run.resolve().name] * 2
    assert "an ensemble of 2 runs with --tta flip" in capsys.readouterr().err
