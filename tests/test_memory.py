"""keep_freed_memory: a freed large tensor's pages are reused, not mapped and zeroed afresh.

Each case runs in its own process: the malloc settings are process-wide and cannot be undone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from histories import history_without_timing

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="keep_freed_memory acts on glibc only")

# As a training step does: allocate and fill a 64 MiB and a 12 MiB tensor, free both, again and again.
# Prints the page faults of the last 6 of 12 such steps, when the heap has reached its size.
PROBE = """
import resource, torch
from cnnlab.memory import keep_freed_memory
kept = keep_freed_memory()
for step in range(12):
    if step == 6:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    big, small = torch.ones(16 * 2**20), torch.ones(3 * 2**20)
    del big, small
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES_OF_64_MIB = 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")


def probe(setting: str) -> tuple[bool, int]:
    env = {**os.environ, "CNNLAB_KEEP_FREED_MEMORY": setting}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True).stdout
    kept, faults = out.split()
    return kept == "True", int(faults)


def test_freed_blocks_are_reused_without_page_faults():
    kept, faults = probe("1")
    assert kept
    assert faults < PAGES_OF_64_MIB // 20  # the freed pages came back: almost no faults in 6 steps


def test_the_opt_out_leaves_glibc_mapping_every_block_afresh():
    kept, faults = probe("0")
    assert not kept
    assert faults > 6 * PAGES_OF_64_MIB  # each of the 6 steps faulted in at least the 64 MiB block


def test_the_command_line_turns_it_on():
    """`cnnlab` calls keep_freed_memory before any command runs."""
    code = ("import importlib, unittest.mock as m\nc = importlib.import_module('cnnlab.cli.main')\n"
            "with m.patch.object(c, 'keep_freed_memory') as k: c.main(['models'])\n"
            "print(k.call_count)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-1] == "1"


def test_training_numbers_do_not_depend_on_it(tmp_path):
    """The setting moves no arithmetic: a short MobileNetV2 run gives the same history, bit for bit,
    with it and without it (only the timing columns differ)."""
    histories = []
    for setting in ("1", "0"):
        run = tmp_path / f"run-{setting}"
        subprocess.run([sys.executable, "-m", "cnnlab", "-q", "train", "--model", "mobilenet_v2", "--shapes-per-class",
                        "8", "--image-size", "32", "--batch-size", "16", "--epochs", "2", "--augment", "light",
                        "--seed", "3", "--output", str(run)],
                       env={**os.environ, "CNNLAB_KEEP_FREED_MEMORY": setting}, check=True, capture_output=True)
        histories.append(history_without_timing(run))
    assert len(histories[0]) == 2 and "val_loss" in histories[0][0]
    assert histories[0] == histories[1]
