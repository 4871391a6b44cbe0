"""Reading files cnnlab did not write: pickles that must not run code, archives that must not write
outside their folder.

``load_tensors`` is ``torch.load(weights_only=True)`` with the two failures told apart: a file that
would import or call something when unpickled is *unsafe* (refused, and said so), a file that cannot
be parsed at all is *damaged*. ``extract_archive`` unpacks a .zip or .tar(.gz/.bz2/.xz) after
checking every entry: no absolute paths, no ``..``, no links or devices (tarfile's ``data`` filter,
PEP 706, and the same rules checked by hand for zip files, whose module has no filter).
"""

from __future__ import annotations

import pickle
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from cnnlab.errors import UserError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def load_tensors(path: Path, what: str, fix: str) -> Any:
    """``torch.load`` without running pickled code; ``what`` names the file in messages
    ("checkpoint", "weights file") and ``fix`` says what to do instead."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # the weights-only unpickler met an import: code would run
            raise UserError(f"{what} '{path}' is not a safe checkpoint (it would run code when loaded), "
                            f"so it was not loaded: {fix}") from None
        raise UserError(f"{what} '{path}' cannot be read (UnpicklingError): it is damaged; {fix}") from None
    except Exception as e:  # noqa: BLE001 - truncated zip, bad magic...: say which file, not a traceback
        raise UserError(f"{what} '{path}' cannot be read ({type(e).__name__}): it is damaged; {fix}") from None


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def unsafe_entry(name: str) -> str | None:
    """Why an archive member name may not be extracted, or None."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (posix.parts and posix.parts[0].endswith(":")):
        return "an absolute path"
    if ".." in posix.parts:
        return "a '..' component (it would write outside the folder)"
    return None


def extract_archive(archive: Path, dest: Path) -> list[Path]:
    """Every regular file of ``archive`` under ``dest``; refuses the whole archive, before writing
    anything, if one entry is unsafe. Returns the extracted files."""
    if archive.name.lower().endswith(".zip"):
        return _extract_zip(archive, dest)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                _refuse_if_unsafe(archive, m.name, "a link" if (m.issym() or m.islnk()) else None)
                if not (m.isfile() or m.isdir()):
                    _refuse_if_unsafe(archive, m.name, "not a regular file or folder")
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise UserError(f"archive '{archive}' cannot be read ({type(e).__name__}: {e}): download it again") from None
    return sorted(dest / m.name for m in members if m.isfile())


def _extract_zip(archive: Path, dest: Path) -> list[Path]:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _refuse_if_unsafe(archive, info.filename, None)
            zf.extractall(dest)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"archive '{archive}' cannot be read ({type(e).__name__}: {e}): download it again") from None
    return sorted(dest / i.filename for i in infos if not i.is_dir())


def _refuse_if_unsafe(archive: Path, name: str, other_reason: str | None) -> None:
    reason = unsafe_entry(name) or other_reason
    if reason:
        raise UserError(f"archive '{archive}' has an unsafe entry '{name}' ({reason}): nothing was extracted; "
                        "use an archive from the publisher")
