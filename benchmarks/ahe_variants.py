"""Shared by benchmarks/ahe.py and benchmarks/ahe_best.py: train named variants on the AHE training
pool, evaluate each best checkpoint on cnnlab's stratified, seeded 20% validation split without and
with test-time augmentation (and ensembles of variants), and print one table row per result.

The official AHE test set is never used: recipes are chosen on the validation split only.

Training runs as `cnnlab train` runs, with OpenMP's default wait policy. Until 2026-12-02 this script
set OMP_WAIT_POLICY=PASSIVE, which made the recipe's MobileNetV2 epochs 20-30% slower on 2 cores
(96 px: 162-218 img/s against 236-270 unset), so the wall minutes measured before then are too high.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch._inductor.utils import fresh_cache

from cnnlab.cli import main as cnnlab
from cnnlab.memory import keep_freed_memory
from cnnlab.runs.evaluate import evaluation_images, score
from cnnlab.runs.run import load_run
from machine import describe

AHE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ahe" / "64x64" / "train"
TTA = ("none", "flip", "flip+scales")


@dataclass
class Row:
    variant: str
    tta: str
    accuracy: float
    f1_macro: float
    minutes: float  # training wall time (data loading included) plus this evaluation
    note: str = ""


def slug(name: str) -> str:
    """A variant name as a folder name."""
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def train(name: str, flags: list[str], run: Path) -> tuple[Path, float]:
    """Run `cnnlab train` with ``flags`` into ``run``; returns the run and its wall minutes."""
    argv = ["train", *flags, "--output", str(run)]
    print(f"\n== {name}\ncnnlab {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    torch._dynamo.reset()
    with fresh_cache():  # --compile compiles from nothing in every run, as on a fresh machine
        if cnnlab(argv) != 0:
            raise SystemExit(f"training variant {name} failed")
    return run, (time.perf_counter() - t0) / 60


def train_together(jobs: dict[str, tuple[list[str], Path]]) -> tuple[dict[str, float], float]:
    """Run one `cnnlab train` process per job (name -> flags, run) at the same time, each with an equal
    share of the cores as its intra-op threads (OMP_NUM_THREADS), its output in ``<run>.log``. Why: on 2
    cores a model on one thread runs at 0.55-0.65x its two-thread speed, so two runs side by side finish
    sooner than one after the other. Returns each run's own wall minutes and the minutes until the last
    finished."""
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // len(jobs)))}
    t0 = time.perf_counter()
    procs, minutes = {}, {}
    for name, (flags, run) in jobs.items():
        argv = ["train", *flags, "--output", str(run)]
        print(f"\n== {name} (OMP_NUM_THREADS={env['OMP_NUM_THREADS']}, alongside {len(jobs) - 1} more; "
              f"log {run}.log)\ncnnlab {' '.join(argv)}", flush=True)
        run.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{run}.log", "w") as log:
            procs[name] = subprocess.Popen([sys.executable, "-m", "cnnlab", *argv], stdout=log, stderr=subprocess.STDOUT,
                                           env=env)
    while len(minutes) < len(procs):
        for name, proc in procs.items():
            if name not in minutes and proc.poll() is not None:
                if proc.returncode != 0:
                    raise SystemExit(f"training variant {name} failed: see {jobs[name][1]}.log")
                minutes[name] = (time.perf_counter() - t0) / 60
        time.sleep(1)
    return minutes, (time.perf_counter() - t0) / 60


def evaluate_rows(name: str, runs: list[Path], train_minutes: float, modes: tuple[str, ...] = TTA) -> list[Row]:
    """Validation accuracy and macro F1 of the runs' best checkpoints (an ensemble if several), per TTA mode."""
    device = torch.device("cpu")
    loaded = [load_run(r, "best", device) for r in runs]
    sets = [evaluation_images(run, None).images for run in loaded]
    note = ", ".join(f"epoch {r.epoch}{' EMA' if r.weights == 'ema' else ''}" for r in loaded)
    rows = []
    for tta in modes:
        t0 = time.perf_counter()
        m = score(loaded[0], sets[0], device, tta=tta, others=list(zip(loaded[1:], sets[1:]))).metrics
        minutes = train_minutes + (time.perf_counter() - t0) / 60
        rows.append(Row(name, tta, m["accuracy"], m["f1_macro"], minutes, note))
        print(f"-> {name}, TTA {tta}: val accuracy {m['accuracy']:.4f}, macro F1 {m['f1_macro']:.4f}, "
              f"{minutes:.1f} min ({note})", flush=True)
    return rows


def print_table(rows: list[Row]) -> None:
    print("\n| variant | TTA | val accuracy | val F1 (macro) | wall minutes | best checkpoint |\n|---|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r.variant} | {r.tta} | {r.accuracy:.4f} | {r.f1_macro:.4f} | {r.minutes:.1f} | {r.note} |")
    print(f"\nwall minutes: training (data loading included) plus that evaluation, on this machine as it was "
          f"(shared machines give noisy times): {describe()}")


def print_spread(name: str, rows: list[Row], tta: str) -> None:
    """Mean and range over seeds of variant ``name``'s rows with ``tta``."""
    picked = [r for r in rows if r.tta == tta]
    if len(picked) < 2:
        return
    for label, values in (("val accuracy", [r.accuracy for r in picked]), ("macro F1", [r.f1_macro for r in picked])):
        print(f"{name}: seed spread ({len(picked)} seeds, TTA {tta}): {label} mean {statistics.mean(values):.4f}, "
              f"range {min(values):.4f}-{max(values):.4f}")


def run(doc: str, out_name: str, base: list[str], variants: dict[str, list[str]],
        ensembles: dict[str, list[str]] | None = None, default: list[str] | None = None,
        together: frozenset[str] = frozenset()) -> None:
    """The command line both AHE benchmarks share: train the chosen ``variants`` (``base`` flags, then the
    variant's, then extra flags after --) once per seed, evaluate each (and each ensemble of variants
    trained in the same call) with every TTA mode, print the table and, with several seeds, the spread
    of each. Ensembles named in ``together`` train their members themselves, side by side
    (``train_together``; their wall minutes: until the last finished). ``default``: the names run
    without --variants (the recommendation; default the first)."""
    ensembles = ensembles or {}
    default = default or [next(iter(variants))]
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(AHE))
    p.add_argument("--variants", default=",".join(default), help="comma-separated variant names (none has a comma), "
                   "or 'all' (default: the recommendation)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds: each variant once per seed (0)")
    p.add_argument("--out", default=f"runs/{out_name}-{time.strftime('%Y%m%d-%H%M%S')}")
    p.add_argument("extra", nargs="*", help="cnnlab train flags after --, applied to every variant")
    a = p.parse_args()
    if not Path(a.data).is_dir():
        sys.exit(f"AHE images not found at {a.data}: pass --data DIR")
    names = [*variants, *ensembles] if a.variants == "all" else a.variants.split(",")
    unknown = [n for n in names if n not in variants and n not in ensembles]
    if unknown:
        sys.exit(f"unknown variant '{unknown[0]}': choose from {', '.join([*variants, *ensembles])} or all")
    seeds = [int(s) for s in a.seeds.split(",")]
    # glibc keeps freed memory, as `cnnlab evaluate` has it: after side-by-side training no cnnlab command
    # runs in this process to set it, and its flip evaluation of the ensemble took about 2 minutes on 2026-12-04
    keep_freed_memory()
    print(describe(), flush=True)

    def label(name: str, seed: int) -> str:
        return name if len(seeds) == 1 else f"{name}, seed {seed}"

    def job(name: str, seed: int) -> tuple[list[str], Path]:
        """The variant's `cnnlab train` flags for ``seed``, and its run folder."""
        flags = [*base, "--data", a.data, *variants[name], "--seed", str(seed), *a.extra]
        return flags, Path(a.out) / f"{slug(name)}-seed{seed}"

    rows: list[Row] = []
    for seed in seeds:
        trained: dict[str, tuple[Path, float]] = {}
        for name in names:
            if name in together:
                members = ensembles[name]
                jobs = {m: job(m, seed) for m in members}
                own, wall = train_together(jobs)
                for m in members:
                    trained[m] = (jobs[m][1], own[m])
                    rows += evaluate_rows(label(f"{m} (trained alongside)", seed), [jobs[m][1]], own[m])
                rows += evaluate_rows(label(name, seed), [jobs[m][1] for m in members], wall)
                continue
            if name in ensembles:
                members = ensembles[name]
                if any(m not in trained for m in members):
                    print(f"skip {name}: train {' and '.join(members)} in the same call", flush=True)
                    continue
                rows += evaluate_rows(label(name, seed), [trained[m][0] for m in members],
                                      sum(trained[m][1] for m in members))
                continue
            trained[name] = train(name, *job(name, seed))
            rows += evaluate_rows(label(name, seed), [trained[name][0]], trained[name][1])
    print_table(rows)
    if len(seeds) > 1:
        alongside = [f"{m} (trained alongside)" for n in names if n in together for m in ensembles[n]]
        for name in [*names, *alongside]:
            for tta in TTA:
                print_spread(name, [r for r in rows if r.variant.startswith(name + ", seed ")], tta)
