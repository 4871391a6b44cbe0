"""docs/backprop.md ties each formula to lines of code; check the quoted lines are still there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "backprop.md"
# A link to a line range, then (after optional blank lines) a fenced code block quoting those lines.
QUOTE = re.compile(r"\]\(\.\./(src/[\w/]+\.py)#L(\d+)(?:-L(\d+))?\)\s*\n\s*```python\n(.*?)```", re.S)


def test_every_quoted_snippet_matches_the_linked_lines() -> None:
    quotes = QUOTE.findall(DOC.read_text())
    assert len(quotes) >= 20
    for path, first, last, snippet in quotes:
        lines = (ROOT / path).read_text().splitlines()[int(first) - 1 : int(last or first)]
        assert snippet.rstrip("\n").splitlines() == lines, f"{path}#L{first}-L{last or first} changed"
