"""`cnnlab explain ...` end to end on a trained run: files under RUN/explain/, nothing else touched,
one-line errors with exit status 2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from explain_fixtures import shapes_run, shapes_run_dir, shapes_val, single_thread  # noqa: F401
from PIL import Image

from cnnlab.cli import main


def training_files(run: Path) -> dict[str, str]:
    """Digest of every file of the run outside explain/."""
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and "explain" not in p.relative_to(run).parts}


@pytest.fixture(scope="module")
def pictures(shapes_val, tmp_path_factory) -> list[str]:  # noqa: F811
    """Three validation images saved as PNG files, as a user would pass them."""
    folder = tmp_path_factory.mktemp("pictures")
    paths = []
    for i in range(3):
        path = folder / f"{shapes_val.classes[int(shapes_val.labels[i])]}_{i}.png"
        Image.fromarray(shapes_val.images[i].permute(1, 2, 0).numpy()).save(path)
        paths.append(str(path))
    return paths


def test_every_command_writes_under_explain_and_leaves_training_artefacts_alone(
    shapes_run_dir, pictures, capsys  # noqa: F811
):
    run = str(shapes_run_dir)
    before = training_files(shapes_run_dir)
    assert main(["explain", "layers", run, "--device", "cpu"]) == 0
    listing = capsys.readouterr().out
    assert "features.3.act" in listing and "unit, default" in listing and "features.0.conv" in listing

    assert main(["explain", "gradcam", run, *pictures, "--batch-size", "2", "--device", "cpu"]) == 0
    stems = [Path(p).stem for p in pictures]

    def gradcam_maps() -> np.ndarray:
        records = [json.loads(p.read_text()) for p in sorted((shapes_run_dir / "explain" / "gradcam").glob("*.json"))]
        names = {r["image"]: f"{Path(r['image']).stem}-{r['target']}-gradcam-features.3.act" for r in records
                 if r["method"] == "gradcam" and r["layer"] == "features.3.act"}
        return np.stack([np.load(shapes_run_dir / "explain" / "gradcam" / f"{names[p]}.npz")["map"] for p in pictures])

    in_twos = gradcam_maps()
    assert main(["explain", "gradcam", run, *pictures, "--device", "cpu"]) == 0
    assert main(["explain", "gradcam", run, pictures[0], "--class", "ring", "--method", "gradcam++", "--device", "cpu"]) == 0
    assert main(["explain", "gradcam", run, pictures[0], "--layer", "features.1.act", "--filter", "5",
                 "--filter-layer", "features.3.act", "--device", "cpu"]) == 0
    assert main(["explain", "activations", run, pictures[1], "--layer", "features.2.act", "--device", "cpu"]) == 0
    assert main(["explain", "filters", run, "--device", "cpu"]) == 0
    assert main(["explain", "dream", run, "--class", "circle", "--class", "dots", "--steps", "5", "--device", "cpu"]) == 0
    assert main(["explain", "dream", run, "--method", "plain", "--steps", "5", "--init", pictures[2],
                 "--device", "cpu"]) == 0
    assert main(["explain", "dream", run, "--layer", "features.2.act", "--filter", "0", "--filter", "3",
                 "--steps", "5", "--size", "24", "--device", "cpu"]) == 0
    assert main(["explain", "units", run, "--device", "cpu"]) == 0
    out = capsys.readouterr().out

    explain = shapes_run_dir / "explain"
    written = [Path(line.removeprefix("wrote ")) for line in out.splitlines() if line.startswith("wrote ")]
    assert written and all(p.is_file() and explain in p.parents for p in written)
    assert training_files(shapes_run_dir) == before

    maps = gradcam_maps()
    assert maps.shape == (3, 48, 48) and maps.max() <= 1
    assert np.allclose(maps, in_twos, atol=1e-5)
    ring = json.loads((explain / "gradcam" / f"{stems[0]}-ring-gradcam++-features.3.act.json").read_text())
    assert ring["image"] == pictures[0] and ring["target"] == "ring" and Path(ring["picture"]).is_file()
    with Image.open(ring["picture"]) as im:
        assert im.size[0] >= 600  # the figure: image, overlay and colour bar side by side
    assert (explain / "gradcam" / f"{Path(pictures[0]).stem}-features.3.act-filter5-gradcam-features.1.act.png").is_file()

    dreamed = json.loads((explain / "dream" / "regularized.json").read_text())
    assert dreamed["size"] == 24
    assert [t["target"] for t in dreamed["targets"]] == ["features.2.act-filter0", "features.2.act-filter3"]
    plain = json.loads((explain / "dream" / "plain.json").read_text())
    assert len(plain["targets"]) == 10 and all(0 <= t["probability"] <= 1 for t in plain["targets"])

    units = json.loads((explain / "units" / "units.json").read_text())
    assert [layer["layer"] for layer in units["layers"]] == [f"features.{i}.act" for i in range(4)]
    assert units["split"] == "val" and len(units["units"]["features.3.act"]["selectivity"]) == 64
    for name in ("selectivity_by_depth.png", "top_units.png", "units.npz"):
        assert (explain / "units" / name).is_file()
    for layer in units["layers"]:  # each summary is its units' indices, and the printed table shows it
        index = sorted(units["units"][layer["layer"]]["selectivity"])
        assert layer["units"] == len(index) and layer["max"] == pytest.approx(index[-1])
        assert layer["median"] == pytest.approx(index[(len(index) - 1) // 2])  # torch.median: the lower middle
        assert layer["mean"] == pytest.approx(sum(index) / len(index), rel=1e-5)
        row = next(line.split() for line in out.splitlines() if line.split()[1:2] == [layer["layer"]])
        assert row[2:5] == [str(len(index)), f"{layer['median']:.3f}", f"{layer['mean']:.3f}"]


@pytest.mark.parametrize("argv, message", [
    (["gradcam", "{run}", "{image}", "--class", "bell_tower"], "unknown class 'bell_tower'"),
    (["gradcam", "{run}", "{image}", "--layer", "features.9"], "no layer 'features.9'"),
    (["gradcam", "{run}", "{image}", "--filter", "99"], "has 64 filters"),
    (["gradcam", "{run}", "{image}", "--filter-layer", "features.1.act"], "--filter-layer needs --filter"),
    (["gradcam", "{run}", "missing.png"], "image 'missing.png' does not exist"),
    (["activations", "{run}", "{image}", "--layer", "nope"], "no layer 'nope'"),
    (["dream", "{run}", "--steps", "0"], "--steps must be at least 1"),
    (["dream", "{run}", "--filter", "1"], "--filter needs --layer"),
    (["dream", "{run}", "--size", "8"], "--size 8 is too small"),
    (["units", "/no/such/run"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_status_2(shapes_run_dir, pictures, capsys, argv, message):  # noqa: F811
    argv = [a.format(run=shapes_run_dir, image=pictures[0]) for a in argv]
    assert main(["explain", *argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("cnnlab explain: error:")
