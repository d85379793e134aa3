"""Devices, precision, seeding and process-wide settings: the one low module every layer
that runs a model looks down to.

- :func:`resolve_device` turns ``auto``/``cpu``/``cuda:1`` into a device, with a clear error
  before anything is written when PyTorch cannot use it.
- :func:`use_bf16` and :func:`autocast` are the precision policy: bf16 autocast where the
  device has bf16 kernels (``precision="auto"``), fp32 otherwise or when asked.
- :func:`step_generator` is the one per-step seed formula: the augmentation generator of step
  ``s`` depends on ``(seed, s, rank)`` alone, so a resumed run repeats exactly.
- :func:`tune_process` changes process-wide state (glibc's malloc). Only entry points call it
  (the CLI, ``python -m unlabeled``, benchmark scripts); a library call never does.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys

import torch

from unlabeled._console import UnlabeledError

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: the GPU if PyTorch sees one, else the CPU. A named device that this PyTorch
    cannot use is an error here, before any run folder is written."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise UnlabeledError(f"--device {device}: not a device name ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UnlabeledError(
            f"--device {device}: this PyTorch ({torch.__version__}) sees no CUDA GPU; use --device cpu or auto"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UnlabeledError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return dev


def bf16_available(device: torch.device) -> bool:
    """Whether ``device`` has bf16 matrix kernels (a CPU with AVX-512-bf16 or AMX, a recent GPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def use_bf16(precision: str, device: torch.device) -> bool:
    """The precision policy: ``bf16`` always, ``fp32`` never, ``auto`` where the device has it."""
    if precision not in PRECISIONS:
        raise UnlabeledError(f"precision must be {', '.join(PRECISIONS)}, got {precision!r}")
    return precision == "bf16" or (precision == "auto" and bf16_available(device))


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``bf16``, else a context that changes nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of step ``step``'s random draws (augmentations, masks) on process ``rank``."""
    return int(seed) * 1_000_003 + int(step) * 7919 + int(rank)


def step_generator(seed: int, step: int, device: torch.device, rank: int = 0) -> torch.Generator:
    """A generator on ``device`` seeded by :func:`step_seed`."""
    g = torch.Generator(device=device)
    g.manual_seed(step_seed(seed, step, rank))
    return g


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
