"""Sections made from whatever files a folder of the run holds: PNG images are embedded, JSON files
are shown as tables. The report does not need to know the code that wrote them (``cnnlab explain``,
``cnnlab evaluate``, the face evaluation), only these two formats."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.explain.overlay import data_uri

MAX_ROWS = 60  # rows per table: a long list is summarised, not printed
MAX_INLINE = 12  # lists of at most this many scalars are shown in one cell


@dataclass
class Picture:
    caption: str
    uri: str


@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""  # e.g. "first 60 of 400 rows"


@dataclass
class FileSection:
    title: str
    folder: str  # relative to the run directory
    pictures: list[Picture] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def folder_section(run_dir: Path, folder: Path, title: str) -> FileSection | None:
    """Every PNG (embedded) and JSON (as tables) file directly in ``folder``; None if it has neither."""
    if not folder.is_dir():
        return None
    section = FileSection(title, folder.relative_to(run_dir).as_posix())
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() == ".png" and path.is_file():
            section.pictures.append(Picture(path.name, data_uri(path.read_bytes())))
        elif path.suffix.lower() == ".json" and path.is_file():
            section.tables += json_tables(path)
    return section if section.pictures or section.tables else None


def json_tables(path: Path) -> list[Table]:
    """A JSON file as tables: its scalars (nested mappings flattened to dotted keys) as one key/value
    table, each list of records as a table of its own. Long lists of numbers (curves, matrices) are
    summarised by their length; their pictures show them better."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return [Table(path.name, ["problem"], [[f"cannot be read: {type(e).__name__}"]])]
    scalars: list[list[str]] = []
    tables: list[Table] = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables.append(records_table(f"{path.name}: {key or 'records'}", value))
        else:
            scalars.append([key, cell(value)])

    walk(data, "")
    head = [Table(path.name, ["key", "value"], scalars[:MAX_ROWS], truncation(len(scalars)))] if scalars else []
    return head + tables


def records_table(caption: str, records: list[dict]) -> Table:
    columns = list(dict.fromkeys(k for r in records for k in r))
    rows = [[cell(r.get(c, "")) for c in columns] for r in records[:MAX_ROWS]]
    return Table(caption, [str(c) for c in columns], rows, truncation(len(records)))


def truncation(count: int) -> str:
    return f"first {MAX_ROWS} of {count} rows" if count > MAX_ROWS else ""


def cell(value: Any) -> str:
    """A table cell: a short list of scalars inline, a longer one by its length, anything else as text."""
    if not isinstance(value, list):
        return format_value(value)
    if len(value) <= MAX_INLINE and all(not isinstance(v, (list, dict)) for v in value):
        return ", ".join(format_value(v) for v in value)
    return f"({len(value)} values)"


def format_value(value: Any) -> str:
    """Numbers to 4 significant digits (a learning rate of 3e-05 stays 3e-05), everything else as text
    (escaped when the page is rendered)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
