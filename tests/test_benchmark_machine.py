"""benchmarks/machine.py names the processor a benchmark's times came from, in its output."""

from __future__ import annotations

import os
import platform
import runpy
from pathlib import Path

import torch

MACHINE = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "machine.py"))

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU @ 2.00GHz
flags\t\t: fpu avx512_bf16 amx_bf16

processor\t: 1
model name\t: Intel(R) Xeon(R) CPU @ 2.00GHz
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd
CPU implementer\t: 0x41
"""


def test_processor_name_is_cpuinfos_model_name(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(XEON)
    assert MACHINE["processor_name"](cpuinfo) == "Intel(R) Xeon(R) CPU @ 2.00GHz"


def test_processor_name_falls_back_where_cpuinfo_has_no_model_name(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(ARM)
    fallback = platform.processor() or platform.machine()
    assert MACHINE["processor_name"](cpuinfo) == fallback
    assert MACHINE["processor_name"](tmp_path / "absent") == fallback


def test_describe_names_processor_cpus_threads_and_bf16():
    line = MACHINE["describe"]()
    assert line.startswith(MACHINE["processor_name"]() + ", ")
    assert f"{os.cpu_count()} logical CPUs" in line
    assert f"torch {torch.__version__} on {torch.get_num_threads()} threads" in line
    assert line.endswith("native bfloat16: " + ("yes" if MACHINE["native_bf16"]() else "no"))
