"""The report as one HTML file: a Jinja2 template with autoescaping, so every string that comes from
the data (class and file names, config values, JSON contents) is escaped; images are data URIs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import jinja2
import torch

from cnnlab import __version__, atomic
from cnnlab.embed.run import is_embedding_run, load_embedder
from cnnlab.errors import UserError
from cnnlab.report.content import Report, collect, collect_embedding
from cnnlab.runs.run import LoadedRun, load_run

REPORT_NAME = "report.html"

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("cnnlab.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(report: Report) -> str:
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _ENV.get_template("report.html.j2").render(r=report, version=__version__, generated=generated)


def write_report(run: LoadedRun, device: torch.device, checkpoint: str = "best", data: str | None = None) -> Path:
    """Collect, render and write ``RUN/report.html`` (atomically: an old report stays whole until the
    new one is complete)."""
    return atomic.write_text(run.run_dir / REPORT_NAME, render(collect(run, device, checkpoint, data)))


def write_run_report(run_dir: str | Path, device: torch.device, checkpoint: str = "best", data: str | None = None) -> Path:
    """The report of a classification run or of a face (embedding) run, whichever ``run_dir`` is."""
    if is_embedding_run(run_dir, checkpoint):
        if data is not None:
            raise UserError("--data scores a classifier on another folder; a face run's report shows what "
                            f"`cnnlab embed evaluate {run_dir}` wrote: run that instead")
        run = load_embedder(run_dir, checkpoint, device)
        return atomic.write_text(run.run_dir / REPORT_NAME, render(collect_embedding(run, checkpoint)))
    return write_report(load_run(run_dir, checkpoint, device), device, checkpoint, data)
