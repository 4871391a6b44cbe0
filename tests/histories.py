"""A run's history as learning numbers only, for tests that compare runs: the timing columns measure the
machine, not the training, and differ between two runs of the same arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

TIMING = ("images_per_s", "epoch_time_s")


def history_without_timing(run: Path) -> list[dict]:
    rows = json.loads((run / "history.json").read_text())
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]
