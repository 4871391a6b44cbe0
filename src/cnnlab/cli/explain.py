"""Sub-command ``explain`` and its own sub-commands, all working on a run directory:

    cnnlab explain layers RUN                      layer names (for --layer), types, output shapes
    cnnlab explain gradcam RUN IMAGE... [--layer NAME] [--class NAME | --filter K] [--method NAME]
    cnnlab explain activations RUN IMAGE --layer NAME
    cnnlab explain filters RUN                     the first conv layer's filters
    cnnlab explain dream RUN [--class NAME ...] [--method NAME] [--steps N] [--size S]
    cnnlab explain units RUN [--data DIR]          class selectivity of every conv unit, by depth

Everything is written by ``cnnlab.explain.artifacts`` under ``RUN/explain/<kind>/`` (never over a
training artefact), atomically, and each written path is printed. The ``--method`` choices are the
registries ``explain.cam.CAM_METHODS`` and ``explain.dream.RECIPES``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cnnlab.cli.help import add_command
from cnnlab.data.folder import DEFAULT_MAX_PIXELS
from cnnlab.cli.types import int_at_least
from cnnlab.errors import UserError
from cnnlab.explain.cam import CAM_METHODS
from cnnlab.explain.dream import RECIPES
from cnnlab.runs.checkpoint import CHECKPOINTS
from cnnlab.runs.run import LoadedRun


def _load(args: argparse.Namespace) -> tuple[LoadedRun, torch.device]:
    from cnnlab.device import pick_device
    from cnnlab.runs.run import load_run

    device = pick_device(args.device)
    return load_run(args.run, args.checkpoint, device), device


def _class_index(run: LoadedRun, name: str) -> int:
    if name not in run.classes:
        raise UserError(f"unknown class '{name}': the run's classes are {', '.join(run.classes)}")
    return run.classes.index(name)


def _wrote(paths: list[Path]) -> None:
    for p in paths:
        print(f"wrote {p}")


# ---------------------------------------------------------------------------------------------- layers
def cmd_layers(args: argparse.Namespace) -> int:
    from cnnlab.explain.layers import conv_units, default_cam_layer, probe_calls

    run, _ = _load(args)
    calls = probe_calls(run.model, run.image_size)
    units = {u.layer: u for u in conv_units(run.model, run.image_size)}
    default = default_cam_layer(run.model, run.image_size) if units else None
    width = max([5, *(len(c.name) for c in calls)])
    print(f"{run.config.model} at {run.image_size}x{run.image_size}; layers in the order they run "
          f"(unit = read by `explain units`; default = default Grad-CAM layer)")
    print(f"{'layer':<{width}}  {'type':<17} {'output':<16} {'params':>9}  note")
    for c in calls:
        note = "unit, default" if c.name == default else "unit" if c.name in units else ""
        shape = "x".join(str(s) for s in c.shape)
        print(f"{c.name:<{width}}  {c.kind:<17} {shape:<16} {c.parameters:>9}  {note}".rstrip())
    return 0


# ---------------------------------------------------------------------------------------------- gradcam
def cmd_gradcam(args: argparse.Namespace) -> int:
    from cnnlab.data.files import load_image_files
    from cnnlab.explain.artifacts import write_gradcam
    from cnnlab.explain.cam import explain_in_batches
    from cnnlab.explain.layers import default_cam_layer
    from cnnlab.explain.targets import ClassTarget, FilterTarget, Target

    run, device = _load(args)
    if args.filter_layer and args.filter is None:
        raise UserError("--filter-layer needs --filter K: name the filter to explain")
    layer = args.layer or default_cam_layer(run.model, run.image_size)
    target: Target | None = None
    if args.class_name is not None:
        target = ClassTarget(_class_index(run, args.class_name))
    elif args.filter is not None:
        target = FilterTarget(args.filter_layer or layer, args.filter)
    images = load_image_files(args.images, run.image_size, args.max_pixels)
    cam = CAM_METHODS[args.method](run.model, layer)
    result = explain_in_batches(cam, images, run.norm, device, target, args.batch_size)
    records, written = write_gradcam(run.run_dir, args.images, images, result, run.classes, args.method, layer,
                                     args.alpha, args.overlay_only)
    for r in records:
        print(f"{r['image']}: target {r['target']} (score {r['score']:.3f}); "
              f"predicted {r['predicted']} {r['probability']:.3f}")
    _wrote(written)
    return 0


# ---------------------------------------------------------------------------------------------- grids
def cmd_activations(args: argparse.Namespace) -> int:
    from cnnlab.data.files import load_image_files
    from cnnlab.explain.artifacts import write_activations
    from cnnlab.explain.grids import layer_activations

    run, device = _load(args)
    image = load_image_files([args.image], run.image_size, args.max_pixels)
    activations = layer_activations(run.model, image, run.norm, device, args.layer)[0]
    _wrote(write_activations(run.run_dir, args.image, args.layer, activations))
    return 0


def cmd_filters(args: argparse.Namespace) -> int:
    from cnnlab.explain.artifacts import write_filters
    from cnnlab.explain.grids import first_conv

    run, _ = _load(args)
    name, conv = first_conv(run.model)
    _wrote(write_filters(run.run_dir, name, conv.weight))
    return 0


# ---------------------------------------------------------------------------------------------- dream
def cmd_dream(args: argparse.Namespace) -> int:
    from cnnlab.data.files import load_image_files
    from cnnlab.explain.artifacts import write_dream
    from cnnlab.explain.dream import dream, recipe
    from cnnlab.explain.targets import ClassTarget, FilterTarget, Target
    from cnnlab.models import model_info

    run, _ = _load(args)
    how = recipe(args.method, args.steps)
    size = args.size or run.image_size
    smallest = model_info(run.config.model).min_image_size
    if size < smallest:
        raise UserError(f"--size {size} is too small for {run.config.model}: use at least {smallest}")
    if args.filter and args.class_names:
        raise UserError("give --class or --filter, not both: one dream run maximises one kind of target")
    if args.filter and not args.layer:
        raise UserError("--filter needs --layer NAME: the layer whose filter to maximise (see `cnnlab explain layers RUN`)")
    targets: list[Target]
    if args.filter:
        targets = [FilterTarget(args.layer, k) for k in args.filter]
    else:
        targets = [ClassTarget(_class_index(run, c)) for c in (args.class_names or run.classes)]
    init = load_image_files([args.init], size, args.max_pixels).float() / 255 if args.init else None
    result = dream(run.model, run.norm, targets, size, how, init=init, seed=args.seed)
    records, written = write_dream(run.run_dir, result, targets, run.classes, how, size, args.seed, args.init)
    _wrote(written)
    for r in records:
        prob = f"probability {r['probability']:.3f}  " if "probability" in r else ""
        print(f"{r['target']}: {prob}score {r['score']:.3f}  high-frequency energy {r['high_frequency_energy']:.3f}")
    print(f"{result.seconds / len(targets):.2f} s per target ({how.steps} steps)")
    return 0


# ---------------------------------------------------------------------------------------------- units
def cmd_units(args: argparse.Namespace) -> int:
    from cnnlab.explain.artifacts import write_units
    from cnnlab.explain.selectivity import measure_selectivity, selectivity_table
    from cnnlab.runs.evaluate import evaluation_images

    run, device = _load(args)
    evaluation = evaluation_images(run, args.data, max_pixels=args.max_pixels)
    data, split = evaluation.images, evaluation.name
    if len(data) == 0:
        raise UserError(f"no images to measure on in the {split} split: pass --data DIR")
    layers = measure_selectivity(run.model, data, run.norm, run.image_size, device)
    summaries, written = write_units(run.run_dir, layers, data, split, run.classes, args.top_units, args.top_images)
    print(f"{split}: {len(data)} images")
    print(selectivity_table(summaries))
    _wrote(written)
    return 0


# ---------------------------------------------------------------------------------------------- parser
def register(sub: argparse._SubParsersAction) -> None:
    explain = add_command(sub, "explain", "explain a trained run: Grad-CAM, activations, filters, class images, unit "
                          "selectivity (written under RUN/explain/)",
                          ["cnnlab explain layers runs/my-run", "cnnlab explain gradcam runs/my-run photo.jpg"])
    commands = explain.add_subparsers(dest="explain_command", metavar="EXPLAIN_COMMAND", required=True)

    def command(name: str, func, help_: str, examples: list[str]) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
        p = add_command(commands, name, help_, [f"cnnlab explain {name} runs/my-run {e}".rstrip() for e in examples])
        p.add_argument("run", metavar="RUN", help="run directory written by `cnnlab train`")
        p.set_defaults(func=func)
        return p

    def common(p: argparse.ArgumentParser, reads_images: bool = True) -> None:
        p.add_argument("--checkpoint", choices=CHECKPOINTS, default="best",
                       help="the best epoch's weights (by the run's --monitor), or the last epoch's")
        p.add_argument("--device", default="auto", help="auto (first GPU, else CPU), cpu, cuda ...")
        if reads_images:
            p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                           help="refuse images with more pixels than this (protects memory against huge files)")

    p = command("layers", cmd_layers, "list the model's layers (names for --layer) with types and output shapes", [""])
    common(p, reads_images=False)

    p = command("gradcam", cmd_gradcam, "Grad-CAM of images for a class (default: the predicted one) or a filter: a "
                "figure per image with the image, the map over it and a colour bar",
                ["photo.jpg other.png", "photo.jpg --class dome --method gradcam++ --overlay-only"])
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--layer", help="layer whose activations are weighted (default: the last conv block's output "
                                   "with maps of at least 4x4)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--class", dest="class_name", metavar="NAME",
                       help="explain this class for every image (default: each image's predicted class)")
    which.add_argument("--filter", type=int_at_least(0), metavar="K",
                       help="explain the mean activation of filter K instead of a class (default: a class)")
    p.add_argument("--filter-layer", metavar="NAME", help="layer of --filter (default: --layer)")
    p.add_argument("--method", choices=list(CAM_METHODS), default="gradcam",
                   help="how the layer's channels are weighted (gradcam: mean gradient; gradcam++: positive "
                        "gradients, weighted)")
    p.add_argument("--alpha", type=float, default=0.5, help="opacity of the heat map over the image (0-1)")
    p.add_argument("--overlay-only", action="store_true",
                   help="write the bare overlay (image and map blended, enlarged) instead of the captioned figure")
    p.add_argument("--batch-size", type=int_at_least(1), default=64, help="images explained per forward/backward pass")
    common(p)

    p = command("activations", cmd_activations, "grid of a layer's activation maps for one image",
                ["photo.jpg --layer features.2.act"])
    p.add_argument("image", metavar="IMAGE", help="an image file")
    p.add_argument("--layer", required=True, help="layer name (see `cnnlab explain layers RUN`; required, no default)")
    common(p)

    p = command("filters", cmd_filters, "grid of the first conv layer's filters", [""])
    common(p, reads_images=False)

    p = command("dream", cmd_dream, "class-model images: gradient ascent on the input for each class (or filter)",
                ["--method regularized", "--class dome --steps 200 --size 96"])
    p.add_argument("--class", dest="class_names", action="append", metavar="NAME",
                   help="class to draw (repeatable; default: every class)")
    p.add_argument("--filter", type=int_at_least(0), action="append", metavar="K",
                   help="draw filter K of --layer instead (repeatable; default: classes)")
    p.add_argument("--layer", help="layer of --filter (default: none; needed with --filter)")
    p.add_argument("--method", choices=list(RECIPES), default="regularized",
                   help="plain gradient ascent on pixels, or regularized: a Fourier parameterisation, random "
                        "jitter, rotation and scale, L2 and total-variation penalties (images people can read)")
    p.add_argument("--steps", type=int, help="optimisation steps (default 1000)")
    p.add_argument("--size", type=int, help="image side in pixels (default: the run's input size)")
    p.add_argument("--init", metavar="IMAGE", help="start from this image instead of noise (default: noise)")
    p.add_argument("--seed", type=int, default=0, help="seeds the starting noise and the jitter")
    common(p)

    p = command("units", cmd_units, "class selectivity of every conv unit, per layer, and the top images of the "
                                    "most selective units", ["", "--data photos/test --top-units 3"])
    p.add_argument("--data", help="folder to measure on (default: the run's validation split)")
    p.add_argument("--top-units", type=int_at_least(1), default=2, help="most selective units shown per layer")
    p.add_argument("--top-images", type=int_at_least(1), default=8, help="top-activating images shown per unit")
    common(p)
