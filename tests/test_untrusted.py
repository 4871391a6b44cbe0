"""Files cnnlab did not write: a pickle that would run code is refused and called unsafe, a damaged one
is called damaged, unverified weights are not offered, archives cannot write outside their folder."""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from cnnlab.cli import main
from cnnlab.errors import UserError
from cnnlab.models import create_model
from cnnlab.models import weights as W


class RunsCode:
    """Unpickling this calls Path.touch on a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(autouse=True)
def hub(offline_hub) -> Path:
    """Every test here: a private, empty hub cache and no network (conftest's offline_hub)."""
    return offline_hub


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_a_checkpoint_that_would_run_code_is_refused_as_unsafe(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"model": {}, "payload": RunsCode(marker)}, run / "checkpoints" / "best.pt")
    assert main(["evaluate", str(run)]) == 2
    assert "is not a safe checkpoint (it would run code when loaded)" in one_line_error(capsys)
    assert main(["train", "--weights", str(run / "checkpoints" / "best.pt"), "--shapes-per-class", "2",
                 "--output", str(tmp_path / "o")]) == 2
    assert "weights file" in one_line_error(capsys)
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_a_truncated_checkpoint_is_called_damaged(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(100)}}, buf)
    (run / "checkpoints" / "best.pt").write_bytes(buf.getvalue()[:200])
    assert main(["predict", str(run), "x.png"]) == 2
    err = one_line_error(capsys)
    assert "cannot be read" in err and "it is damaged; use the other checkpoint or retrain" in err


def test_models_offers_only_weights_whose_hash_is_verified(hub, capsys):
    hub.mkdir(parents=True)
    fake = hub / "resnet18-f37072fd.pth"
    torch.save(create_model("ahe_cnn", 10).state_dict(), fake)  # right name, wrong contents
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["resnet18"]["pretrained"] == []
    with pytest.raises(UserError, match="does not match the sha256 prefix in its name"):
        W.resolve("resnet18")
    named = hub / f"resnet18-{W.sha256_of(fake)[:8]}.pth"  # the same bytes under their own hash verify
    os.replace(fake, named)
    assert W._verified(named, W.sha256_of(named)[:8])


def _tar_with(path: Path, name: str, data: bytes) -> None:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("kind, name, reason", [
    ("tar", "../evil-12345678.pth", "a '..' component"),
    ("tar", "/tmp/cnnlab-evil-12345678.pth", "an absolute path"),
    ("zip", "weights/../../evil-12345678.pth", "a '..' component"),
    ("zip", "/tmp/cnnlab-evil-12345678.pth", "an absolute path"),
])
def test_weights_add_refuses_archives_that_write_outside(tmp_path, capsys, kind, name, reason):
    work = tmp_path / "work"
    work.mkdir()
    archive = work / f"bundle.{'tar.gz' if kind == 'tar' else 'zip'}"
    if kind == "tar":
        _tar_with(archive, name, b"x")
    else:
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr(zipfile.ZipInfo(name), b"x")
    assert main(["weights", "add", str(archive)]) == 2
    err = one_line_error(capsys)
    assert f"has an unsafe entry '{name}' ({reason}" in err and "nothing was extracted" in err
    assert sorted(p.name for p in tmp_path.rglob("evil*")) == []
    assert not Path("/tmp/cnnlab-evil-12345678.pth").exists()


def test_weights_add_installs_the_weights_inside_a_safe_archive(tmp_path, hub, capsys):
    buf = io.BytesIO()
    torch.save(create_model("tiny_test", 3).state_dict(), buf)
    name = f"tiny-{__import__('hashlib').sha256(buf.getvalue()).hexdigest()[:8]}.pth"
    _tar_with(tmp_path / "bundle.tgz", f"release/{name}", buf.getvalue())
    assert main(["weights", "add", str(tmp_path / "bundle.tgz")]) == 0
    assert (hub / name).read_bytes() == buf.getvalue() and str(hub / name) in capsys.readouterr().out
