"""Sub-command ``cnnlab experiment gradient-flow``."""

from __future__ import annotations

import argparse
import time
from dataclasses import fields

from cnnlab.cli.help import add_command
from cnnlab.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    from cnnlab.experiment.gradient_flow import VARIANTS, Budget

    experiment = add_command(subparsers, "experiment", "rerunnable experiments that train several runs and compare them",
                             ["cnnlab experiment gradient-flow"])
    which = experiment.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    flow = add_command(
        which, "gradient-flow", "vanishing gradients: a deep plain CNN with sigmoid, ReLU, ReLU+BatchNorm, and residual",
        ["cnnlab experiment gradient-flow", "cnnlab experiment gradient-flow --depth 30 --variants plain_relu residual_relu_bn"],
        description="Train the same stack of --depth conv layers four ways on the built-in shapes dataset for a fixed "
                    "budget, logging every layer's gradient norm at every step; write one figure of gradient norm "
                    "by depth (OUT/gradient_flow.png), the table (OUT/gradient_flow.csv, also printed) and each "
                    "variant's run directory (OUT/<variant>/).")
    defaults = Budget()
    for f in fields(Budget):
        if f.name in ("variants", "log_every"):
            continue
        flow.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)),
                          default=getattr(defaults, f.name), metavar="N", help=f"default {getattr(defaults, f.name)}")
    flow.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), help="default: all four")
    flow.add_argument("--output", help="folder to create (default: runs/<time>-gradient-flow)")
    flow.set_defaults(func=_gradient_flow)


def _gradient_flow(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnlab.experiment.gradient_flow import Budget, format_table, run_gradient_flow, write_gradient_flow

    budget = Budget(**{f.name: getattr(args, f.name) for f in fields(Budget) if f.name != "log_every"}
                    | {"variants": tuple(args.variants)})
    out = Path(args.output or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-gradient-flow")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"output folder '{out}' is not empty: choose a new --output")
    results = run_gradient_flow(out, budget)
    print(format_table(results))
    for path in write_gradient_flow(out, results, budget):
        print(f"wrote {path}")
    return 0
