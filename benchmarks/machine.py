"""What machine a benchmark ran on, in one line for its output.

Benchmark times only mean something next to the processor that produced them: cnnlab's test machines
have varied between sessions (an Intel Xeon at 2.0 GHz and AMD EPYCs with and without AVX512), and the
same recipe took 36 minutes on one and 44 on another. ``platform.processor()`` is empty or just the
architecture on Linux, so the model name comes from /proc/cpuinfo where there is one.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def processor_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (e.g. 'AMD EPYC'), else whatever the platform module knows (ARM's cpuinfo
    has no model name)."""
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 convolutions natively (private torch helpers, so guarded)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def describe() -> str:
    """One line: processor, logical CPUs, torch version and threads, native bfloat16."""
    return (f"{processor_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} on "
            f"{torch.get_num_threads()} threads, native bfloat16: {'yes' if native_bf16() else 'no'}")
