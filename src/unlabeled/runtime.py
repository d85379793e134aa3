"""Devices, precision, seeding and process-wide settings: the one low module every layer
that runs a model looks down to.

- :func:`resolve_device` turns ``auto``/``cpu``/``cuda:1`` into a device, with a clear error
  before anything is written when PyTorch cannot use it.
- :func:`use_bf16` and :func:`autocast` are the precision policy: bf16 autocast where the
  device has bf16 kernels (``precision="auto"``), fp32 otherwise or when asked.
- :func:`step_generator` is the one per-step seed formula: the augmentation generator of step
  ``s`` depends on ``(seed, s, rank)`` alone, so a resumed run repeats exactly.
- :func:`tune_process` changes process-wide state (glibc's malloc). Only entry points call it
  (the CLI, ``python -m unlabeled``, benchmark scripts); a library call never does. It lives in
  :mod:`unlabeled._memory`, which imports no PyTorch, so the CLI can call it before it has.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from unlabeled._console import UnlabeledError
from unlabeled._memory import keep_freed_memory as keep_freed_memory  # re-exported, as are the next two
from unlabeled._memory import release_freed_memory as release_freed_memory
from unlabeled._memory import tune_process as tune_process

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


MAX_SEED = 2**63 - 1  # what torch.Generator.manual_seed takes


def check_seed(seed: object, flag: str = "the seed") -> None:
    """A seed every command takes alike: a whole number from 0 to 2**63 - 1 (PyTorch's and
    numpy's generators refuse others, with a traceback, after the run's folder was written)."""
    whole = isinstance(seed, int | np.integer) and not isinstance(seed, bool)
    if not whole or not 0 <= int(seed) <= MAX_SEED:  # type: ignore[call-overload]
        raise UnlabeledError(f"{flag} must be a whole number from 0 to 2**63 - 1, got {seed!r}")


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of step ``step``'s random draws (augmentations, masks) on process ``rank``,
    modulo 2**64 (what a generator takes; the same value for every seed that fit before: seeds
    from about 1.8e13 up, which --seed accepts, failed the first step with an overflow)."""
    return (int(seed) * 1_000_003 + int(step) * 7919 + int(rank)) % 2**64


def step_generator(seed: int, step: int, device: torch.device, rank: int = 0) -> torch.Generator:
    """A generator on ``device`` seeded by :func:`step_seed`."""
    g = torch.Generator(device=device)
    g.manual_seed(step_seed(seed, step, rank))
    return g
