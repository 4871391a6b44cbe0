"""Pictures that explain themselves: titles, labels and definitions read from the Figure objects."""

from __future__ import annotations

import torch
from matplotlib.ticker import MaxNLocator

from cnnlab.explain.figures import dream_grid, gradcam_figure, selectivity_by_depth, top_images
from cnnlab.explain.layers import ConvUnits
from cnnlab.explain.selectivity import LayerSelectivity, class_means, selectivity_index
from cnnlab.data.imageset import ImageSet
from cnnlab.runs.plots import curves_figure, freeze_switches


def history(n: int) -> list[dict]:
    accuracy = [0.3, 0.6, 0.8, 0.7, 0.75][:n]
    return [{"epoch": e + 1, "train_loss": 1 / (e + 1), "val_loss": 1.2 / (e + 1), "train_accuracy": a,
             "val_accuracy": a} for e, a in enumerate(accuracy)]


def test_curves_have_integer_epoch_ticks_the_best_epoch_and_the_unfreeze_switch():
    switches = freeze_switches({"freeze_epochs": 2, "unfreeze": "gradual"})
    fig = curves_figure(history(5), "val_accuracy", switches)
    fig.canvas.draw()
    loss_axes = fig.axes[0]
    assert isinstance(loss_axes.xaxis.get_major_locator(), MaxNLocator)
    assert all(float(t).is_integer() for t in loss_axes.get_xticks())
    assert fig.get_suptitle() == "best epoch 3 by val_accuracy (the best checkpoint)"
    vertical = {line.get_label(): line.get_xdata()[0] for line in loss_axes.get_lines() if len(set(line.get_xdata())) == 1}
    assert vertical == {"best epoch (3)": 3, "unfreeze gradually, a stage per epoch": 2.5}
    assert freeze_switches({"freeze_epochs": 0}) == []
    assert curves_figure(history(5), "val_loss").get_suptitle().startswith("best epoch 5 by val_loss")


def test_gradcam_figure_shows_image_overlay_colour_bar_and_the_title():
    image = torch.randint(0, 255, (3, 16, 16), dtype=torch.uint8)
    fig = gradcam_figure(image, torch.rand(16, 16), "cat.jpg: gradcam for class 'dome'\npredicted apse (probability 0.710)")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["image", "class activation map over the image"]
    assert len(fig.axes) == 3 and "relative importance" in fig.axes[2].get_ylabel()  # the colour bar
    assert "class 'dome'" in fig.get_suptitle() and "predicted apse (probability 0.710)" in fig.get_suptitle()


def selectivities() -> tuple[list[LayerSelectivity], ImageSet]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(6) % 3
    data = ImageSet(torch.randint(0, 255, (6, 3, 8, 8), dtype=torch.uint8, generator=g), labels,
                    [f"i{k}" for k in range(6)], ["a", "b", "c"])
    layers = []
    for depth, width in enumerate((4, 6), start=1):
        acts = torch.rand(6, width, generator=g)
        means = class_means(acts, labels, 3)
        layers.append(LayerSelectivity(ConvUnits(f"block{depth}.conv", f"block{depth}", width, depth, (4, 4)), acts, means,
                                       selectivity_index(means)))
    return layers, data


def test_selectivity_figures_have_titles_axis_labels_and_define_the_index():
    layers, data = selectivities()
    fig = selectivity_by_depth(layers, "class selectivity by depth (val, 6 images)")
    ax = fig.axes[0]
    assert ax.get_title() == "class selectivity by depth (val, 6 images)"
    assert ax.get_ylabel() == "class selectivity index (SI)" and ax.get_xlabel().startswith("conv layer, by depth")
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "SI = (mu_max - mu_rest) / (mu_max + mu_rest)" in " ".join(texts.split())
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sum("median" in t for t in legend) == 1  # one median marker: the box plot's own line
    fig = top_images([(layers[0], 0), (layers[1], 2)], data, 3, "the 1 most class-selective units")
    assert fig.get_suptitle().startswith("the 1 most class-selective units\nunit (layer, channel, SI")
    assert "SI = (mu_max" in " ".join(t.get_text() for t in fig.texts)


def test_dream_grid_says_what_hf_measures():
    fig = dream_grid(torch.rand(3, 3, 8, 8), ["a\np=0.900 hf=0.120", "b\np=0.800 hf=0.300", "c\np=0.700 hf=0.500"],
                     "regularized: 5 steps, 8x8")
    lines = fig.get_suptitle().splitlines()
    assert lines[0] == "regularized: 5 steps, 8x8"
    assert " ".join(lines[1:]).startswith("hf: share of the image's spectral energy above 0.25 cycles/pixel")
    assert [ax.get_title() for ax in fig.axes[:3]][0] == "a\np=0.900 hf=0.120"
