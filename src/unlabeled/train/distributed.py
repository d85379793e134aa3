"""Distributed data parallel helpers. Everything here is a no-op in a single process, so the
trainer has one code path; under ``torchrun`` the process group is set up from the
environment (gloo on CPU, nccl on GPU).

    torchrun --nproc_per_node=2 -m unlabeled pretrain data/fmnist --out runs/ddp

Each process takes its own slice of every global batch (``Trainer.batch_positions``), batch
norm statistics are computed over the global batch (:class:`GlobalBatchNorm`), contrastive
negatives are gathered from every rank (:func:`gather`), gradients are averaged by DDP, and
only rank 0 writes files. The result matches one process running the global batch.
"""

from __future__ import annotations

import contextlib
import gc
import os
import warnings
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as tdist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F
from torch import nn

# torch marks its autograd-aware collectives deprecated in favour of the private
# torch.distributed._functional_collectives; the public ones are kept until that is public
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional", category=FutureWarning)


def is_distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    return tdist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return tdist.get_world_size() if is_distributed() else 1


def launched() -> bool:
    """True in a process started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Join the process group that ``torchrun`` describes in the environment, if any and
    not joined already, and leave it on exit."""
    if is_distributed() or not launched():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
        gc.collect()  # DDP wrappers hold the group: free them first
        tdist.barrier()  # leave together, so no rank waits on one that is gone
    finally:
        tdist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """On GPU under torchrun, each process takes the GPU of its local rank."""
    if device.type == "cuda" and launched() and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if tdist.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        tdist.barrier()


class _GlobalNorm(torch.autograd.Function):
    """Batch norm with given global statistics, differentiated as if they were the batch's own.

    Forward is the native (fused) kernel in evaluation mode with the global mean and variance;
    backward takes the native kernel's evaluation-mode gradients (``g * w * invstd``, and the
    local sums ``sum g`` and ``sum g * xhat``), sums the two over ranks in one all-reduce and
    subtracts what the statistics' own gradient adds:

        dx = w * invstd * (g - (sum_all g + xhat * sum_all g * xhat) / N)

    three native passes over the activation backward and two forward (the statistics, then
    the normalisation), where the same formula in autograd-tracked elementwise operations took
    five to eight times the native batch norm's time on a CPU (BENCHMARKS.md, scale-out)."""

    @staticmethod
    def forward(ctx: Any, x, weight, bias, mean, var, n: float, eps: float):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x, weight, mean, var)
        ctx.n, ctx.eps = n, eps
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)

    @staticmethod
    def backward(ctx: Any, g):  # noqa: ANN001, ANN205
        x, weight, mean, var = ctx.saved_tensors
        w = weight if weight is not None else torch.ones_like(mean)
        dx, dw, db = torch.ops.aten.native_batch_norm_backward(
            g, x, w, mean, var, None, None, False, ctx.eps, [True, True, True]
        )
        sums = torch.cat([db, dw]).to(_comm_device())
        tdist.all_reduce(sums)
        sum_g, sum_gx = sums.to(x.device).chunk(2)
        invstd = torch.rsqrt(var + ctx.eps)
        slope = w * invstd * invstd * sum_gx / ctx.n
        offset = w * invstd * sum_g / ctx.n - mean * slope
        # x * slope + offset per channel, as one native kernel pass: batch norm with mean 0,
        # variance 1 and no eps is exactly that affine map
        dx -= F.batch_norm(x, torch.zeros_like(mean), torch.ones_like(var), slope, offset, False, 0.0, 0.0)
        keep = weight is not None
        return dx, dw if keep else None, db if keep else None, None, None, None, None


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover the global batch of all ranks, on any
    device (``torch.nn.SyncBatchNorm`` runs on GPUs only): each rank's statistics are
    gathered and merged, the normalisation runs in the native kernel, and gradients flow
    through the statistics as in one large batch (:class:`_GlobalNorm`)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:  # any (N, C, ...) input, as the batch norm it replaced
        if input.dim() < 2:
            raise ValueError(f"expected an input of 2 or more dimensions, got {input.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        xf = x.float()
        c = x.shape[1]
        # each rank's count, mean and centred variance, merged exactly (Chan et al. 1979):
        # summing x and x² instead loses the variance of near-constant channels to cancellation
        with torch.no_grad():
            # the native kernel's one pass (Welford), several times faster than var_mean on a CPU;
            # it updates the running buffers it is given, here scratch ones
            mean_r, var_r = torch.batch_norm_update_stats(xf, xf.new_zeros(c), xf.new_ones(c), 0.0)
            count = torch.full((1,), xf.numel() / c, device=x.device)
            parts = [torch.empty(2 * c + 1, device=_comm_device()) for _ in range(world_size())]
            tdist.all_gather(parts, torch.cat([mean_r, var_r, count]).to(_comm_device()))
            parts = torch.stack(parts).to(x.device)  # (world, 2c + 1)
            means, variances, counts = parts[:, :c], parts[:, c : 2 * c], parts[:, 2 * c :]
            n = counts.sum()
            mean = (counts * means).sum(0) / n
            var = (counts * (variances + (means - mean) ** 2)).sum(0) / n
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * n / max(float(n) - 1, 1))
                self.num_batches_tracked.add_(1)
        weight, bias = (self.weight, self.bias) if self.affine else (None, None)
        y = _GlobalNorm.apply(xf, weight, bias, mean, var, float(n), self.eps)
        return y.to(x.dtype)


def use_global_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every batch norm in ``module`` by :class:`GlobalBatchNorm` (weights kept)."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            new.load_state_dict(child.state_dict())
            new.to(device=child.weight.device if child.affine else None)
            setattr(module, name, new)
        else:
            use_global_batch_norm(child)
    return module


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """The module itself in one process; in several, a DistributedDataParallel wrapper
    around it, with its batch norms switched to global-batch statistics (in place)."""
    module.to(device)
    if not is_distributed():
        return module
    if device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(module)
    else:
        use_global_batch_norm(module)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def gather(x: torch.Tensor) -> torch.Tensor:
    """``x`` from every rank concatenated along dim 0, in rank order, with gradients flowing
    back to each rank's own part."""
    if not is_distributed():
        return x
    return torch.cat(dist_fn.all_gather(x.contiguous()))


def summed(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over every process (``x`` itself with one): the global batch's statistics,
    for an objective's moving averages (FreeMatch's thresholds, LLKD's), which each process
    moved by its own share and DDP then overwrote with rank 0's."""
    if not is_distributed():
        return x
    x = x.detach().clone()
    tdist.all_reduce(x)
    return x


def agree(flag: bool) -> bool:
    """True on every rank when it is true on any rank (checkpoint and stop together)."""
    if not is_distributed():
        return bool(flag)
    t = torch.tensor([int(flag)], device=_comm_device())
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item())


def max_float(x: float) -> float:
    """The largest value of ``x`` over ranks."""
    if not is_distributed():
        return x
    t = torch.tensor([x], dtype=torch.float64, device=_comm_device())
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return float(t.item())


def weights_digest(module: nn.Module) -> int:
    """A 63-bit digest (SHA-256) of ``module``'s parameters and buffers, bytes and order."""
    import hashlib

    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return int.from_bytes(h.digest()[:8], "big") >> 1


def same_weights(module: nn.Module) -> bool:
    """Whether every rank holds bit-identical weights (True in a single process): the check
    that data-parallel training kept its replicas in step."""
    if not is_distributed():
        return True
    d = torch.tensor([weights_digest(module)], dtype=torch.int64, device=_comm_device())
    low, high = d.clone(), d.clone()
    tdist.all_reduce(low, op=tdist.ReduceOp.MIN)
    tdist.all_reduce(high, op=tdist.ReduceOp.MAX)
    return bool(low.item() == high.item())


def mean_logs(logs: dict[str, torch.Tensor | float]) -> dict[str, float]:
    """Logged values averaged over ranks (called only at logging steps)."""
    values = torch.tensor([float(v) for v in logs.values()], dtype=torch.float64)
    if is_distributed():
        values = values.to(_comm_device())
        tdist.all_reduce(values)
        values /= world_size()
    return dict(zip(logs, values.tolist(), strict=True))
