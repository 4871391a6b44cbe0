"""Sub-commands ``report`` (RUN/report.html) and ``serve`` (a local web app for predictions)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from cnnlab.cli.help import add_command
from cnnlab.errors import UserError
from cnnlab.runs.tta import TTA_MODES


def cmd_report(args: argparse.Namespace) -> int:
    from cnnlab.device import pick_device
    from cnnlab.report.page import write_run_report

    print(write_run_report(args.run, pick_device(args.device), args.checkpoint, args.data))
    return 0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: only localhost is known to stay on this machine
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    if not is_loopback(args.host):
        if not args.allow_remote:
            raise UserError(f"--host {args.host} would let other machines use the model: add --allow-remote if "
                            "that is what you want, or keep the default --host 127.0.0.1")
        print(f"cnnlab serve: warning: listening on {args.host}: anyone who can reach this machine on port "
              f"{args.port} can send images to the model (there is no authentication)", file=sys.stderr)
    if args.max_body_mb <= 0 or args.max_pixels <= 0:
        raise UserError("--max-body-mb and --max-pixels must be positive")
    import uvicorn

    from cnnlab.serve.app import Limits, create_app
    from cnnlab.serve.predictor import Predictor

    if args.max_batch < 1:
        raise UserError(f"--max-batch must be at least 1, not {args.max_batch}")
    first, *others = args.runs
    with Predictor.from_run(first, args.checkpoint, args.device, args.max_batch, others, args.tta) as predictor:
        app = create_app(predictor, Limits(max_body_bytes=int(args.max_body_mb * 2**20), max_pixels=args.max_pixels))
        what = f"an ensemble of {len(args.runs)} runs" if others else f"{predictor.run.config.model} from {first}"
        tta = "" if args.tta == "none" else f" with --tta {args.tta}"
        print(f"cnnlab serve: {what}{tta} at http://{args.host}:{args.port}/ "
              f"(API at /docs; Ctrl-C stops)", file=sys.stderr, flush=True)
        # The server's own log follows `cnnlab -q` (warnings only) and `cnnlab -v` (debug).
        level = logging.getLevelName(logging.getLogger("cnnlab").getEffectiveLevel()).lower()
        uvicorn.run(app, host=args.host, port=args.port, log_level=level)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "report", "write RUN/report.html: curves, scores, confusion, Grad-CAM gallery, "
                                   "explanations, in one self-contained file",
                    ["cnnlab report runs/my-run", "cnnlab report runs/my-run --data photos/test"])
    p.add_argument("run", metavar="RUN", help="run directory written by `cnnlab train`")
    p.add_argument("--data", help="also score the run on this folder (DIR/test/ if it has one; default: the validation split only)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best",
                   help="the best epoch's weights (by the run's --monitor), or the last epoch's")
    p.add_argument("--device", default="auto", help="auto (first GPU, else CPU), cpu, cuda ...")
    p.set_defaults(func=cmd_report)

    p = add_command(sub, "serve", "a local web page and JSON API: upload an image, get the top classes and "
                                  "a Grad-CAM overlay", ["cnnlab serve runs/my-run", "cnnlab serve runs/my-run --port 8080",
                                                         "cnnlab serve runs/run-a runs/run-b --tta flip"])
    p.add_argument("runs", metavar="RUN", nargs="+", help="run directory written by `cnnlab train`; several: an "
                   "ensemble averaging their probabilities (Grad-CAM explains the first)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--allow-remote", action="store_true", help="allow a --host other machines can reach (default: off)")
    p.add_argument("--max-body-mb", type=float, default=10, help="largest request body accepted, in MiB")
    p.add_argument("--max-pixels", type=int, default=40_000_000,
                   help="largest image accepted, in pixels, judged before decoding")
    p.add_argument("--max-batch", type=int, default=16,
                   help="requests that arrive while the model is busy are explained together, up to this many")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best",
                   help="the best epoch's weights (by the run's --monitor), or the last epoch's")
    p.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation: average the "
                   "probabilities over the image and its mirror (flip), plus a centre zoom of both (flip+scales)")
    p.add_argument("--device", default="auto", help="auto (first GPU, else CPU), cpu, cuda ...")
    p.set_defaults(func=cmd_serve)
