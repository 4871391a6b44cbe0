"""One self-contained HTML page per run (``RUN/report.html``): config, data, curves, scores, confusion
matrices, a Grad-CAM gallery of mistakes and correct examples, and whatever ``cnnlab explain`` and the
evaluations wrote under the run. Images are embedded as data URIs, so the file opens offline and can
be mailed or archived on its own.

- ``content``: what the page shows, as plain data (``collect``).
- ``gallery``: the most confident mistakes and correct examples, with their overlays.
- ``folders``: PNG and JSON files of a run's sub-folder, rendered without knowing who wrote them.
- ``page``: the HTML (a Jinja2 template, every string escaped); ``write_run_report`` for a classification or a face run.
"""
