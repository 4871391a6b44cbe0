"""``cnnlab report``: one self-contained, valid, escaped HTML page per run, with numbers that match an
independent computation."""

from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import html5lib
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import precision_recall_fscore_support

from cnnlab.cli import main
from cnnlab.report.folders import format_value, json_tables
from cnnlab.report.gallery import most_confident_correct, most_confident_mistakes
from cnnlab.runs.evaluate import evaluation_images
from cnnlab.runs.inference import predict_logits
from cnnlab.runs.run import load_run
from web_fixtures import MARKUP_CLASS, web_folder, web_run  # noqa: F401 - fixtures

DATA_URI = "data:image/png;base64,"


class Page(HTMLParser):
    """Everything the tests look at: ids, element names, attributes, text, table cells by row."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []  # (tag, name, value)
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            self.attrs.append((tag, name, value or ""))
            if name == "id":
                self.ids.add(value or "")
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def row(self, first_cell: str) -> list[str]:
        return next(r for r in self.rows if r and r[0] == first_cell)


def report(run: Path, *args: str) -> tuple[str, Page]:
    assert main(["report", str(run), "--device", "cpu", *args]) == 0
    text = (run / "report.html").read_text(encoding="utf-8")
    html5lib.HTMLParser(strict=True).parse(text)  # raises on any parse error: the page is valid HTML
    return text, Page(text)


def assert_self_contained_and_inert(page: Page) -> None:
    """Every image is an embedded PNG that decodes; no link leaves the page; nothing can run."""
    sources = [v for tag, name, v in page.attrs if name == "src"]
    assert sources and all(s.startswith(DATA_URI) for s in sources)
    for s in sources:
        with Image.open(io.BytesIO(base64.b64decode(s[len(DATA_URI):]))) as im:
            im.load()
            assert im.width > 0
    assert all(v.startswith("#") for tag, name, v in page.attrs if name == "href")
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert not [name for _, name, _ in page.attrs if name.startswith("on")]


@pytest.fixture(scope="module")
def full_run(web_run: Path, web_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the run with what `cnnlab explain` and `cnnlab evaluate` write, and a face-style
    evaluation folder of files the report has never seen."""
    run = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(web_run, run)
    common = ["--device", "cpu"]
    assert main(["explain", "dream", str(run), "--steps", "3", *common]) == 0
    assert main(["explain", "units", str(run), "--top-images", "2", *common]) == 0
    assert main(["evaluate", str(run), "--data", str(web_folder), *common]) == 0
    faces = run / "evaluation" / "faces"
    faces.mkdir(parents=True)
    Image.new("RGB", (40, 30), (0, 90, 200)).save(faces / "roc.png")
    (faces / "verification.json").write_text(json.dumps({
        "threshold": 0.8125, "roc_auc": 0.97, "fpr": list(np.linspace(0, 1, 50)),
        "rank": {"1": 0.9, "5": 0.99}, "pairs": [{"person": "<b>s1</b>", "distance": 0.5}],
    }))
    return run


def test_report_has_every_section_and_is_self_contained(full_run: Path, web_folder: Path, capsys):
    text, page = report(full_run, "--data", str(web_folder))
    assert capsys.readouterr().out.strip() == str(full_run / "report.html")
    for section in ("config", "data", "skipped", "curves", "val", "val-topk", "val-per-class", "val-confusion",
                    "val-mistakes", "val-correct", "other-split", "other-split-per-class", "explain", "evaluations"):
        assert section in page.ids, section
    assert_self_contained_and_inert(page)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    words = " ".join(page.text)
    for heading in ("Class-model images", "Unit selectivity by layer", "Evaluation: evaluation/faces",
                    "Most confident mistakes", "Correct examples", "Training curves", "Confusion matrices"):
        assert heading in words, heading
    # The face evaluation, rendered without knowing its code: scalars, nested keys, records, summaries.
    assert page.row("threshold") == ["threshold", "0.8125"]
    assert page.row("rank.5") == ["rank.5", "0.99"]
    assert page.row("fpr") == ["fpr", "(50 values)"]
    assert page.row("<b>s1</b>") == ["<b>s1</b>", "0.5"] and "&lt;b&gt;s1&lt;/b&gt;" in text
    # The skipped file and its reason, and the class counts of the saved split lists.
    assert page.row("square/broken.jpg")[1].startswith("UnidentifiedImageError")
    train = (full_run / "split" / "train.txt").read_text().count("\tsquare\n")
    val = (full_run / "split" / "val.txt").read_text().count("\tsquare\n")
    assert page.row("square")[:3] == ["square", str(train), str(val)]


def test_class_names_from_folders_are_escaped(full_run: Path):
    text, page = report(full_run)
    assert MARKUP_CLASS in page.text  # shown as text ...
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text  # ... never as markup
    assert 'circle &amp; &#34;ring&#34;' in text
    assert not [v for tag, name, v in page.attrs if tag == "img" and name == "src" and not v.startswith(DATA_URI)]


def test_a_script_class_name_is_text_and_nothing_runs(web_run: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(web_run, run)
    ckpt = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    ckpt["classes"][2] = "<script>alert(1)</script>"
    torch.save(ckpt, run / "checkpoints" / "best.pt")
    text, page = report(run)
    assert "<script>alert(1)</script>" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert_self_contained_and_inert(page)


def test_scores_match_an_independent_computation(full_run: Path):
    _, page = report(full_run)
    run = load_run(full_run)
    images = evaluation_images(run, None).images
    logits = predict_logits(run.model, images.images, run.norm, torch.device("cpu")).numpy()
    y = images.labels.numpy()
    p, r, f, support = precision_recall_fscore_support(y, logits.argmax(1), labels=range(3), zero_division=0)
    # The first per-class table is the validation split's (evaluation/'s metrics.json comes later).
    rows = [r_ for r_ in page.rows if r_ and r_[0] in run.classes and len(r_) == 5][:3]
    for k, row in enumerate(rows):
        assert row == [run.classes[k], f"{p[k]:.4f}", f"{r[k]:.4f}", f"{f[k]:.4f}", str(support[k])]
    ranks = (-logits).argsort(1)
    header = next(i for i, row_ in enumerate(page.rows) if row_ == ["top-1", "top-3"])
    assert page.rows[header + 1] == [f"{(ranks[:, :k] == y[:, None]).any(1).mean():.4f}" for k in (1, 3)]


def test_report_of_a_shapes_run_and_an_unreadable_run(tmp_path: Path, capsys):
    run = tmp_path / "shapes"
    assert main(["train", "--model", "tiny_test", "--shapes-per-class", "6", "--epochs", "1", "--image-size", "16",
                 "--output", str(run)]) == 0
    _, page = report(run)
    assert_self_contained_and_inert(page)
    assert {"val-mistakes", "val-correct"} <= page.ids and "explain" not in page.ids
    capsys.readouterr()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "run directory" in capsys.readouterr().err and not (tmp_path / "missing").exists()


def test_gallery_picks_the_most_confident_mistakes_and_one_correct_image_per_class():
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1],
                          [0.95, 0.05, 0.0]])
    labels = torch.tensor([1, 1, 0, 0, 2, 0])  # wrong: 0 (0.9), 3 (0.8), 4 (0.6); right: 1, 2, 5
    assert most_confident_mistakes(probs, labels, 2) == [0, 3]
    assert most_confident_correct(probs, labels, 10) == [5, 1]  # class 0: 0.95 beats 0.6; class 2: none


def test_json_files_become_tables(tmp_path: Path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"split": "val", "metrics": {"accuracy": 0.5}, "confusion": [[1, 2], [3, 4]],
                                "per_class": [{"class": "a", "f1": 0.25}, {"class": "b", "f1": 1.0}]}))
    scalars, records = json_tables(path)
    assert scalars.rows == [["split", "val"], ["metrics.accuracy", "0.5"], ["confusion", "(2 values)"]]
    assert records.columns == ["class", "f1"] and records.rows == [["a", "0.25"], ["b", "1"]]
    path.write_text("{not json")
    assert json_tables(path)[0].rows == [["cannot be read: JSONDecodeError"]]


def test_report_of_a_face_run_shows_people_curves_and_its_evaluation(tmp_path: Path):
    """A run of `cnnlab embed train` gets its own report: people per split, its curves, and the ROC, CMC
    and distance histograms (with the threshold) that `cnnlab embed evaluate` wrote."""
    run = tmp_path / "faces"
    common = ["--device", "cpu"]
    assert main(["embed", "train", "--identities", "24", "--per-identity", "4", "--image-size", "24", "--epochs", "1",
                 "--ids-per-batch", "6", "--images-per-id", "2", "--output", str(run), *common]) == 0
    assert main(["embed", "evaluate", str(run), "--enrolled", "1", *common]) == 0
    text, page = report(run)
    assert_self_contained_and_inert(page)
    assert [row[0] for row in page.rows if row and row[0] in ("train", "dev", "test")] == ["train", "dev", "test"]
    assert sum(int(page.row(name)[1]) for name in ("train", "dev", "test")) == 24
    pictures = {v for tag, name, v in page.attrs if name == "alt"}
    assert {"roc.png", "cmc.png", "distances.png", "training loss and dev EER per epoch"} <= pictures
    threshold = json.loads((run / "threshold.json").read_text())["threshold"]
    assert "Evaluation: evaluation/test" in text and format_value(threshold) in page.text
    assert main(["report", str(run), "--data", str(tmp_path), *common]) == 2  # a face run has no classes to score
