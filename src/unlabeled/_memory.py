"""Process-wide memory settings: glibc's malloc policy for training steps. No PyTorch here: the
``unlabeled`` command applies it before anything heavy is imported (see :mod:`unlabeled.runtime`,
which re-exports these)."""

from __future__ import annotations

import ctypes
import gc
import os
import sys

__all__ = ["keep_freed_memory", "release_freed_memory", "tune_process"]

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
_malloc_tuned: bool | None = None  # set once per process by keep_freed_memory


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of returning it to the operating
    system, so a training step's activations land in pages already mapped.

    By default glibc serves every block of 32 MiB or more (a batch's activations are tens of
    MiB) with a fresh ``mmap`` and unmaps it when freed, so every step page-faults and zeroes
    its activations anew: on the AMX Xeon a ReLU over a 51 MB bf16 tensor took 18 ms, 3.7 ms
    without the faults, and ``unlabeled pretrain`` of cnn-tiny SimCLR took 13% less wall time
    (at 0.2 GiB more peak memory; BENCHMARKS.md). This is what PyTorch's CPU tuning guide gets
    from swapping in jemalloc or tcmalloc, with no extra library: ``mallopt`` turns off mmap
    for large blocks and raises the trim threshold to 1 GiB.

    Process-wide and applied once; ``UNLABELED_MALLOC=system`` leaves malloc alone. Returns
    whether the setting is in effect (False off glibc/Linux)."""
    global _malloc_tuned
    if os.environ.get("UNLABELED_MALLOC", "").lower() == "system":
        return False
    if _malloc_tuned is None:
        _malloc_tuned = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                _malloc_tuned = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
            except (OSError, AttributeError):  # musl or another libc: keep its defaults
                pass
    return _malloc_tuned


def release_freed_memory() -> None:
    """Hand the freed memory :func:`keep_freed_memory` keeps back to the operating system
    (glibc's ``malloc_trim``), after a garbage collection: for a process that ends one phase
    and starts another with other shapes (``unlabeled demo``: pretraining, then the bench), whose
    allocations would not fit the holes the first phase left and would grow the heap past them.
    Nothing happens where the malloc policy is not in effect."""
    if _malloc_tuned:
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def tune_process() -> None:
    """The process-wide settings of an entry point (the CLI, a benchmark script): today the
    malloc policy of :func:`keep_freed_memory`. Never called by library code."""
    keep_freed_memory()
