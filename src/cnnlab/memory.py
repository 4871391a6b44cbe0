"""Keeping freed memory in the process, so that training steps stop paying the kernel for fresh pages.

PyTorch's CPU tensors come straight from ``malloc``. glibc serves every block above its mmap threshold
(128 KB, rising with use to at most 32 MB) with its own ``mmap`` and hands it back with ``munmap`` when
it is freed, and it returns the top of its heap to the kernel whenever more than a threshold is free. A
training step allocates and frees the same large activations every time (MobileNetV2 at 128 px, batch
64: up to 100 MB each), so the kernel maps and zeroes them afresh on every step: about 50,000 page
faults a second, and a sixth of the CPU time spent in the kernel. Telling glibc never to ``mmap`` a
block and never to trim its heap lets it reuse those pages. Measured on 2 cores
(``benchmarks/allocator.py``): the MobileNetV2 full fine-tune at 128 px went from 545,000 page faults
per 512-image epoch to 1, and from 54 to 67 images/s. tcmalloc does about as well, but must be loaded
with ``LD_PRELOAD`` before Python starts.

The price: the process keeps its peak memory until it exits. The command line turns this on for its own
short-lived processes; the library never does, so a notebook that imports cnnlab keeps glibc's defaults.
``CNNLAB_KEEP_FREED_MEMORY=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_ONLY_ABOVE = 2**31 - 1  # bytes free at the heap's top; the largest int mallopt takes (2 GiB)


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse (no ``mmap`` per large block, no heap trimming).
    Returns whether it was done: False off glibc (macOS, Windows, musl) or when the user opted out."""
    if os.environ.get("CNNLAB_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_ONLY_ABOVE))
