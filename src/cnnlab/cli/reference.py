"""Sub-commands ``cnnlab gradcheck`` and ``cnnlab train-numpy``."""

from __future__ import annotations

import argparse

from cnnlab.cli.help import add_command
from cnnlab.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    check = add_command(
        subparsers, "gradcheck",
        "check the NumPy reference layers' gradients against finite differences and PyTorch",
        ["cnnlab gradcheck --summary-only", "cnnlab gradcheck --configs 200 --seed 7"],
        description=(
            "Build random layer configurations (shapes, stride, padding, dilation, pooling windows), "
            "back-propagate a random upstream gradient through the NumPy reference layers, and print the "
            "max absolute and relative error of the output and of every gradient against PyTorch float64 "
            "autograd and against central finite differences. Exit status 1 if any error exceeds tolerance."
        ),
    )
    check.add_argument("--configs", type=int, default=32, help="number of random configurations")
    check.add_argument("--seed", type=int, default=0, help="random seed; configuration i is reproducible from (seed, i)")
    check.add_argument(
        "--fd-coords", type=int, default=64,
        help="entries per tensor checked by finite differences (0 skips finite differences)",
    )
    check.add_argument("--summary-only", action="store_true", help="print only the worst errors per layer and tensor")
    check.set_defaults(func=_gradcheck)

    train = add_command(
        subparsers, "train-numpy",
        "train the NumPy reference CNN on the shapes dataset (32x32) and print per-epoch loss/accuracy",
        ["cnnlab train-numpy", "cnnlab train-numpy --epochs 3 --n-per-class 100"],
        description=(
            "Train a small CNN (conv-BN-ReLU-maxpool x2, conv-BN-ReLU, global average pool, linear) built only "
            "from NumPy reference layers, with SGD+momentum on the built-in shapes dataset at 32x32; the last "
            "20% of the images are held out for validation. The defaults reach about 98% held-out accuracy."
        ),
    )
    train.add_argument("--epochs", type=int, default=15, help="epochs (the cosine decay spans all of them)")
    train.add_argument("--n-per-class", type=int, default=500, help="images per class before the 80/20 split")
    train.add_argument("--batch-size", type=int, default=32, help="images per SGD step")
    train.add_argument("--lr", type=float, default=0.05, help="peak learning rate of the cosine decay")
    train.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    train.add_argument("--seed", type=int, default=0, help="seeds the data, initialisation and batch order")
    train.set_defaults(func=_train_numpy)


def _require_positive(name: str, value: float, minimum: float = 1) -> None:
    if value < minimum:
        raise UserError(f"{name} must be at least {minimum:g}, got {value:g}; pass a larger value")


def _gradcheck(args: argparse.Namespace) -> int:
    from cnnlab.reference.gradcheck import format_summary, format_table, run_gradcheck

    _require_positive("--configs", args.configs)
    _require_positive("--fd-coords", args.fd_coords, minimum=0)
    results = run_gradcheck(args.configs, args.seed, args.fd_coords)
    if not args.summary_only:
        print(format_table(results))
        print()
    print(format_summary(results))
    failed = [r.index for r in results if not r.passed()]
    if failed:
        print(f"\nFAILED configurations (seed {args.seed}): {', '.join(map(str, failed))}")
        return 1
    print(f"\nall {len(results)} configurations within tolerance")
    return 0


def _train_numpy(args: argparse.Namespace) -> int:
    from cnnlab.data.shapes import make_shapes
    from cnnlab.reference.numpy_cnn import IMAGE_SIZE, EpochStats, split_images, train_numpy_cnn

    for name in ("epochs", "n_per_class", "batch_size"):
        _require_positive(f"--{name.replace('_', '-')}", getattr(args, name))
    if args.lr <= 0 or not 0 <= args.momentum < 1:
        raise UserError(f"need --lr > 0 and 0 <= --momentum < 1, got --lr {args.lr} --momentum {args.momentum}")

    def report(stats: EpochStats) -> None:
        print(
            f"epoch {stats.epoch:3d}  train loss {stats.train_loss:.4f}  val loss {stats.val_loss:.4f}  "
            f"val acc {stats.val_accuracy:.3f}  ({stats.seconds:.1f} s)",
            flush=True,
        )

    shapes = make_shapes(n_per_class=args.n_per_class, image_size=IMAGE_SIZE, seed=args.seed)
    split = split_images(shapes.images.numpy(), shapes.labels.numpy())
    print(f"shapes 32x32: {len(split.y_train)} training and {len(split.y_val)} held-out images")
    train_numpy_cnn(
        split, args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum, seed=args.seed, on_epoch=report
    )
    return 0
