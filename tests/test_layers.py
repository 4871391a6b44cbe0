"""The layering of docs/architecture.md, checked by import-linter with the contracts in pyproject.toml.

import-linter builds the import graph of the package as it finds it on the path (imports inside
functions included), so each check runs ``lint-imports`` in a subprocess whose path starts at the
tree under test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``root/src`` with ``root/pyproject.toml``'s contracts."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def broken_contracts(output: str) -> str:
    """The report's part that names each broken contract and the import chains that break it."""
    return output[output.find("Broken contracts"):] if "Broken contracts" in output else output


def test_every_import_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, broken_contracts(result.stdout + result.stderr)
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_explain_importing_the_trainer_breaks_a_contract_and_says_which(tmp_path):
    """The check can fail: a copy of the package where explain/cam.py imports the trainer."""
    shutil.copytree(ROOT / "src" / "cnnlab", tmp_path / "src" / "cnnlab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    cam = tmp_path / "src" / "cnnlab" / "explain" / "cam.py"
    cam.write_text(cam.read_text() + "\nfrom cnnlab.train.accumulate import plan_epoch  # noqa: E402\n")
    result = lint_imports(tmp_path)
    report = broken_contracts(result.stdout)
    assert result.returncode == 1
    assert "Front ends never import the trainer" in report
    assert "cnnlab.explain.cam -> cnnlab.train.accumulate" in report


def test_importing_the_library_leaves_the_plotting_backend_alone():
    """Plots are built on matplotlib.figure.Figure: importing cnnlab never switches a notebook's backend."""
    code = ("import cnnlab.cli.main, cnnlab.train.trainer, cnnlab.explain.artifacts, matplotlib; "
            "print(matplotlib.get_backend())")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MPLBACKEND": "svg"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "svg", result.stderr
