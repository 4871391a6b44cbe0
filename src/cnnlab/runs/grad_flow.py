"""A run's per-layer gradient norms (``RUN/grad_norms.csv``, written by ``--log-grad-norms``) read back,
summarised by depth, and drawn as ``RUN/grad_flow.png``.

One CSV row per logged optimiser step and parameterised layer: ``step, epoch, layer, kind, depth,
weight_layer, grad_norm, weight_norm, update_ratio``. ``depth`` counts the weight layers (conv, linear)
from the input up to this one; a BatchNorm shares the depth of the conv before it and has
``weight_layer`` 0. Figures and summaries use the weight layers: one per depth.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from matplotlib.figure import Figure

GRAD_NORMS_FILE = "grad_norms.csv"
GRAD_FLOW_FIGURE = "grad_flow.png"
_INTS = ("step", "epoch", "depth", "weight_layer")
_FLOATS = ("grad_norm", "weight_norm", "update_ratio")


def read_grad_norms(path: str | Path) -> list[dict]:
    """The rows of a ``grad_norms.csv`` (a run directory or the file), numbers as numbers; [] if absent."""
    path = Path(path)
    if path.is_dir():
        path = path / GRAD_NORMS_FILE
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.update({k: int(r[k]) for k in _INTS})
        r.update({k: float(r[k]) for k in _FLOATS})
    return rows


def weight_layer_norms(rows: list[dict]) -> dict[int, dict[int, float]]:
    """``{step: {depth: grad_norm}}`` of the weight layers."""
    out: dict[int, dict[int, float]] = {}
    for r in rows:
        if r["weight_layer"]:
            out.setdefault(r["step"], {})[r["depth"]] = r["grad_norm"]
    return out


def depth_profile(rows: list[dict]) -> dict[int, float]:
    """``{depth: geometric mean over the logged steps of the weight layer's gradient norm}``: one curve
    per run that does not depend on which step one picks (norms span orders of magnitude, hence geometric)."""
    by_depth: dict[int, list[float]] = {}
    for norms in weight_layer_norms(rows).values():
        for depth, g in norms.items():
            by_depth.setdefault(depth, []).append(g)
    return {d: math.exp(sum(math.log(max(g, 1e-45)) for g in gs) / len(gs)) for d, gs in sorted(by_depth.items())}


def grad_flow_figure(rows: list[dict], title: str = "") -> Figure:
    """Left: gradient norm by depth (log scale) at up to five logged steps from first to last.
    Right: gradient norm over steps of the first, middle and last weight layer."""
    steps = weight_layer_norms(rows)
    fig = Figure(figsize=(11, 4))
    by_depth, over_steps = fig.subplots(1, 2)
    logged = sorted(steps)
    picks = sorted({logged[round(i * (len(logged) - 1) / 4)] for i in range(5)}) if logged else []
    for step in picks:
        depths = sorted(steps[step])
        by_depth.plot(depths, [steps[step][d] for d in depths], "-o", markersize=3, label=f"step {step}")
    by_depth.set(yscale="log", xlabel="depth (weight layer, input -> output)", ylabel="gradient L2 norm",
                 title="gradient norm by depth")
    depths = sorted({d for norms in steps.values() for d in norms})
    if depths:
        for name, depth in (("first", depths[0]), ("middle", depths[len(depths) // 2]), ("last", depths[-1])):
            xs = [s for s in logged if depth in steps[s]]
            over_steps.plot(xs, [steps[s][depth] for s in xs], "-", label=f"{name} layer (depth {depth})")
    over_steps.set(yscale="log", xlabel="optimiser step", ylabel="gradient L2 norm", title="gradient norm over training")
    for ax in (by_depth, over_steps):
        ax.grid(alpha=0.3, which="both")
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
