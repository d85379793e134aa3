"""Distributed data parallel helpers. Everything here is a no-op in a single process, so the
trainer has one code path; under ``torchrun`` the process group is set up from the
environment (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import os

import torch
import torch.distributed as tdist
from torch import nn


def is_distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    return tdist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return tdist.get_world_size() if is_distributed() else 1


def init_from_env(device: torch.device) -> None:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """The module itself in one process; a DistributedDataParallel wrapper in several."""
    module.to(device)
    if not is_distributed():
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def agree(flag: bool) -> bool:
    """True on every rank when it is true on any rank (checkpoint and stop together)."""
    if not is_distributed():
        return bool(flag)
    t = torch.tensor([int(flag)])
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item())


def max_float(x: float) -> float:
    """The largest value of ``x`` over ranks."""
    if not is_distributed():
        return x
    t = torch.tensor([x], dtype=torch.float64)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return float(t.item())
