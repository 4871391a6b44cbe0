"""Vanishing gradients and what fixes them: the same deep conv stack trained four ways on ``shapes``.

(a) plain with sigmoid, (b) plain with ReLU, (c) plain with ReLU and BatchNorm, (d) residual (ReLU and
BatchNorm): ``depth`` identical conv layers (``plain_cnn`` / ``residual_cnn``), the same data, seed,
optimiser and budget, per-layer gradient norms logged at every step. SGD rather than Adam, because
Adam divides each update by the gradient's own scale and so hides in the weights what this shows in
the gradients. Each variant is an ordinary run directory (``OUT/<variant>/``, with its own
``grad_flow.png``); the comparison is one figure and one table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from cnnlab import atomic
from cnnlab.data.dataset import load_data
from cnnlab.runs.config import TrainConfig
from cnnlab.runs.grad_flow import depth_profile, read_grad_norms
from cnnlab.runs.plots import save_figure
from cnnlab.train.trainer import Trainer

logger = logging.getLogger("cnnlab")

# name: (registry model, its options besides depth and width)
VARIANTS: dict[str, tuple[str, dict]] = {
    "plain_sigmoid": ("plain_cnn", {"activation": "sigmoid", "batchnorm": False}),
    "plain_relu": ("plain_cnn", {"activation": "relu", "batchnorm": False}),
    "plain_relu_bn": ("plain_cnn", {"activation": "relu", "batchnorm": True}),
    "residual_relu_bn": ("residual_cnn", {"activation": "relu", "batchnorm": True}),
}


@dataclass(frozen=True)
class Budget:
    """What every variant gets: by default about 20 s of one free CPU core each."""

    depth: int = 20
    width: int = 16
    image_size: int = 32
    shapes_per_class: int = 100
    epochs: int = 5
    batch_size: int = 32
    lr: float = 0.1
    seed: int = 0
    log_every: int = 1
    variants: tuple[str, ...] = field(default=tuple(VARIANTS))


@dataclass(frozen=True)
class VariantResult:
    name: str
    run_dir: Path
    profile: dict[int, float]  # depth -> geometric mean of the weight layer's gradient norm over logged steps
    val_accuracy: float  # after the budget

    @property
    def first(self) -> float:
        return self.profile[min(self.profile)]

    @property
    def last(self) -> float:
        return self.profile[max(self.profile)]

    @property
    def ratio(self) -> float:
        """First layer's gradient norm over the last (the linear classifier's): 1 = no vanishing."""
        return self.first / self.last


def run_gradient_flow(out_dir: str | Path, budget: Budget = Budget()) -> list[VariantResult]:
    """Train each variant into ``out_dir/<variant>`` and summarise its gradient norms by depth."""
    out = Path(out_dir)
    data = load_data(None, budget.image_size, 0.2, budget.seed, None, budget.shapes_per_class)
    results = []
    for name in budget.variants:
        model, options = VARIANTS[name]
        logger.info(f"gradient flow: {name} ({model}, depth {budget.depth})")
        cfg = TrainConfig(
            model=model, model_options={**options, "depth": budget.depth, "width": budget.width},
            image_size=budget.image_size, shapes_per_class=budget.shapes_per_class, augment="none",
            epochs=budget.epochs, batch_size=budget.batch_size, optimizer="sgd", lr=budget.lr, schedule="cosine",
            seed=budget.seed, log_grad_norms=budget.log_every, output=str(out / name))
        trainer = Trainer.from_config(cfg, data=data)
        trainer.fit()
        results.append(VariantResult(name, trainer.run_dir, depth_profile(read_grad_norms(trainer.run_dir)),
                                     trainer.history[-1]["val_accuracy"]))
    return results


def comparison_figure(results: list[VariantResult], budget: Budget) -> Figure:
    """The four gradient-by-depth curves on one log axis."""
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    for r in results:
        depths = sorted(r.profile)
        ax.plot(depths, [r.profile[d] for d in depths], "-o", markersize=3, label=f"{r.name} (val acc {r.val_accuracy:.2f})")
    ax.set(yscale="log", xlabel="depth (weight layer, input -> output; the last is the linear classifier)",
           ylabel="gradient L2 norm (geometric mean over steps)",
           title=f"gradient flow through {budget.depth} conv layers, {budget.epochs} epochs of shapes")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def table_rows(results: list[VariantResult]) -> list[dict]:
    return [{"variant": r.name, "first_layer_grad_norm": r.first, "last_layer_grad_norm": r.last,
             "ratio_first_last": r.ratio, "val_accuracy": r.val_accuracy} for r in results]


def format_table(results: list[VariantResult]) -> str:
    lines = [f"{'variant':<18} {'first-layer grad':>16} {'last-layer grad':>15} {'first/last':>10} {'val acc':>7}"]
    lines += [f"{r.name:<18} {r.first:>16.2e} {r.last:>15.2e} {r.ratio:>10.2e} {r.val_accuracy:>7.3f}" for r in results]
    return "\n".join(lines)


def write_gradient_flow(out_dir: str | Path, results: list[VariantResult], budget: Budget) -> list[Path]:
    """``OUT/gradient_flow.png`` (the comparison) and ``OUT/gradient_flow.csv`` (the table)."""
    out = Path(out_dir)
    return [save_figure(comparison_figure(results, budget), out / "gradient_flow.png"),
            atomic.write_csv(out / "gradient_flow.csv", table_rows(results))]
