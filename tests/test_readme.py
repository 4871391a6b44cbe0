"""README.md as a contract: every shell command in its ```bash blocks runs and exits 0.

The commands run in a scratch folder holding small stand-ins under the README's own names (``DIR``,
``photo.jpg``, ``album/``, ``more/*.png``, the ``mobilenet_v2-b0353104.pth`` weights file where the
pip package that ships it is installed) with ``TORCH_HOME`` pointed there too. Only sizes are rewritten
here, never in the library: training gets one epoch (one more than ``--freeze-epochs``; two when
resuming), 4 shapes per class and 32-pixel images, ``explain dream`` 2 steps, ``experiment
gradient-flow`` 3 layers of 4 channels for one epoch, ``embed experiment`` one epoch, and an ``--output``
that already exists gets a fresh name. ``make`` targets are not re-run (they install and run all this).
``cnnlab serve`` and the ``curl`` call to it are skipped (it serves until stopped). Commands run in-process (no interpreter start-up each, scripts with ``runpy``); ``> FILE`` and
``| head -N`` are applied to the captured output. A leading ``NAME=value`` sets that environment variable
for the command, a trailing ``&`` (run in the background) runs it here in turn, and ``wait`` (for those)
has nothing left to wait for.
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import shlex
import shutil
import sys
from pathlib import Path
from unittest import mock

import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.data.shapes import make_shapes

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            words = shlex.split(command, comments=True)
            if words and words[0] != "make" and words != ["wait"]:
                commands.append(" ".join(shlex.quote(w) if w != "|" and w != ">" else w for w in words))
    return commands


COMMANDS = readme_commands()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-ins for the README's files and folders, and runs/my-run already trained (tiny)."""
    ws = tmp_path_factory.mktemp("readme")
    shapes = make_shapes(3, 32, seed=5)
    for i, (image, label) in enumerate(zip(shapes.images, shapes.labels)):
        folder = ws / "DIR" / shapes.classes[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    shutil.copytree(ws / "DIR", ws / "album")
    shutil.copytree(ws / "DIR" / "circle", ws / "more")
    Image.open(next((ws / "DIR" / "circle").iterdir())).convert("RGB").save(ws / "photo.jpg")
    from cnnlab.models.weights import packaged_weights

    for path in packaged_weights():
        shutil.copy(path, ws / path.name)
    if (REPO / "recipes").is_dir():  # README commands run from the repository root
        (ws / "recipes").symlink_to(REPO / "recipes")
    if (REPO.parent / "shared").is_dir():  # ../shared in a command means the same folder from here
        (ws.parent / "shared").symlink_to(REPO.parent / "shared")
    with contextlib.chdir(ws), contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--shapes-per-class", "4", "--epochs", "1", "--output", "runs/my-run"]) == 0
    (ws / "my.yaml").write_text("epochs: 1\n")  # `train --print-config > my.yaml` rewrites it in README order
    return ws


def option(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words else None


def without(words: list[str], name: str) -> list[str]:
    if name not in words:
        return words
    i = words.index(name)
    return words[:i] + words[i + 2:]


def smaller(words: list[str], ws: Path) -> list[str]:
    """The same command on tiny settings (see the module docstring)."""
    if "train" in words[:4] and "--config" in words and "--data" not in words:
        # a recipe's data set and sizes are for real runs: 3 sizes here too (progressive resizing), an epoch each
        words += ["--data", "DIR", "--image-size", "32:40:48", "--size-epochs", "1:2"]
    if "train" in words[:4]:
        epochs = 2 if "--resume" in words else int(option(words, "--freeze-epochs") or 0) + 1
        epochs = 3 if "--size-epochs" in words else epochs
        words = without(words, "--epochs") + ["--epochs", str(epochs)]
        if "--resume" not in words and "--print-config" not in words:
            words += [] if "--data" in words else ["--shapes-per-class", "4"]
            if "--image-size" in words and ":" not in option(words, "--image-size"):
                words = without(words, "--image-size") + ["--image-size", "32"]
            output = option(words, "--output")
            if output and (ws / output).exists():
                words = without(words, "--output") + ["--output", f"{output}-again"]
    if words[:2] == ["explain", "dream"]:
        words += ["--steps", "2"]
    if words[:2] == ["embed", "experiment"]:
        words += ["--epochs", "1"]
    if words[:2] == ["experiment", "gradient-flow"]:
        words += ["--depth", "3", "--width", "4", "--shapes-per-class", "2", "--epochs", "1"]
    return words


def run_in_process(words: list[str], ws: Path) -> tuple[int, str]:
    """Exit status and stdout of a ``.venv/bin/cnnlab`` or ``.venv/bin/python SCRIPT`` command line."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if words[0] == ".venv/bin/cnnlab":
            status = main(smaller(words[1:], ws))
        else:
            assert words[0] == ".venv/bin/python" and words[1].startswith("benchmarks/"), words
            script = REPO / words[1]
            extra = (["--data", "DIR", "--", "--epochs", "1", "--image-size", "32", "--size-epochs", "", "--no-compile"]
                     if words[1] == "benchmarks/ahe.py" else [])
            # as `python SCRIPT` does: the script's folder first on the path (it may import its neighbours)
            with mock.patch.object(sys, "argv", [str(script), *words[2:], *extra]), \
                    mock.patch.object(sys, "path", [str(script.parent), *sys.path]):
                try:
                    runpy.run_path(str(script), run_name="__main__")
                    status = 0
                except SystemExit as e:
                    status = e.code if isinstance(e.code, int) else 1
    return status, out.getvalue()


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_works_as_written(command: str, workspace: Path, monkeypatch: pytest.MonkeyPatch):
    if "../shared" in command and not (REPO.parent / "shared").is_dir():
        pytest.skip("needs ../shared (the AHE images), absent in this clone")
    if command.startswith(".venv/bin/python benchmarks/") and command != ".venv/bin/python benchmarks/ahe.py":
        pytest.skip("a benchmark that trains several runs by design; benchmarks/ahe.py stands for them here")
    if command.startswith((".venv/bin/cnnlab serve ", "curl ")):
        pytest.skip("serves until stopped, or talks to that server: the web app is tested in test_serve_*.py")
    if "mobilenet_v2-b0353104.pth" in command and not (workspace / "mobilenet_v2-b0353104.pth").is_file():
        pytest.skip("the MobileNetV2 weights package (make setup) is not installed")
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("TORCH_HOME", str(workspace / "torch-home"))
    words = shlex.split(command)
    while re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        monkeypatch.setenv(*words.pop(0).split("=", 1))
    words = words[:-1] if words[-1] == "&" else words
    redirect = words[-2:] if len(words) > 2 and words[-2] == ">" else None
    head = words[-3:] if len(words) > 3 and words[-3:-1] == ["|", "head"] else None
    words = words[:-2] if redirect else words[:-3] if head else words
    assert not {"|", ">", "<", "&&", ";"} & set(words), f"shell syntax the README test does not handle: {command}"
    status, printed = run_in_process(words, workspace)
    assert status == 0, command
    if redirect:
        (workspace / redirect[1]).write_text(printed)
    if head:  # the pipe itself (a reader that leaves early) is tested in test_predict_evaluate.py
        assert printed.splitlines()[: int(head[2].lstrip("-"))], command
