"""Per-epoch history of a run: ``history.json`` and ``history.csv``, rewritten after every epoch."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cnnlab import atomic


def history_csv(history: list[dict[str, float]]) -> str:
    if not history:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()


def write_history(run_dir: Path, history: list[dict[str, float]]) -> None:
    atomic.write_json(run_dir / "history.json", history)
    atomic.write_text(run_dir / "history.csv", history_csv(history))
