"""The project's one training loop.

It feeds an :class:`~unlabeled.objectives.Objective` with batches read straight from a
collection's memory-mapped shards (no DataLoader workers, no per-sample Python), under bf16
autocast where the device supports it, with AdamW, gradient clipping and a cosine schedule
after a linear warm-up. Progress goes to a progress bar and ``metrics.jsonl``; checkpoints
are atomic and a run resumes at exactly the step it reached.

Determinism: the data order of epoch ``e`` is a permutation seeded by ``(seed, e)`` and the
augmentation generator is reseeded from ``(seed, step)`` at every step, so a resumed run sees
the same batches and the same views as one that was never interrupted.

A time budget (``minutes``) is turned into a step count: a first guess from timing a few
steps of a throwaway copy of the model, then fixed from the speed of the real steps once 10%
of the budget has passed. The count is saved, so a resumed run ends at the same step as an
uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import TextColumn

from unlabeled._console import UnlabeledError, info, progress
from unlabeled.data.collection import Collection
from unlabeled.objectives.base import Objective
from unlabeled.train import checkpoint as ckpt
from unlabeled.train import distributed as dist


@dataclass
class TrainConfig:
    """Settings of the training loop (stored in the run's config.json)."""

    batch_size: int = 128
    epochs: float | None = None
    minutes: float | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.05
    grad_clip: float = 3.0
    precision: str = "auto"
    seed: int = 0
    checkpoint_seconds: float = 60.0
    checkpoint_steps: int = 0
    log_every: int = 20
    snapshot_seconds: float = 0.0  # also keep the weights every this many seconds, in snapshots/
    compile: bool = False  # torch.compile the encoder (its compile time is reported)
    total_steps: int | None = None  # resolved from epochs or minutes before training

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise UnlabeledError(f"batch size must be at least 2, got {self.batch_size}")
        if self.epochs is not None and self.epochs <= 0:
            raise UnlabeledError(f"epochs must be positive, got {self.epochs}")
        if self.minutes is not None and self.minutes <= 0:
            raise UnlabeledError(f"minutes must be positive, got {self.minutes}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise UnlabeledError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")


def lr_at(step: int, total: int, base: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` fraction of steps, then cosine decay to 0."""
    w = max(1, round(warmup * total))
    if step < w:
        return base * (step + 1) / w
    t = (step - w) / max(1, total - w)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def bf16_available(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
_malloc_tuned: bool | None = None  # set once per process by keep_freed_memory


def keep_freed_memory(device: torch.device) -> bool:
    """On the CPU, let glibc's malloc keep freed memory for reuse instead of returning it to
    the operating system, so a training step's activations land in pages already mapped.

    By default glibc serves every block of 32 MiB or more (a batch's activations are tens of
    MiB) with a fresh ``mmap`` and unmaps it when freed, so every step page-faults and zeroes
    its activations anew: on the AMX Xeon a ReLU over a 51 MB bf16 tensor took 18 ms, 3.7 ms
    without the faults, and ``unlabeled pretrain`` of cnn-tiny SimCLR took 13% less wall time
    (at 0.2 GiB more peak memory; BENCHMARKS.md). This is what PyTorch's CPU tuning guide gets
    from swapping in jemalloc or tcmalloc, with no extra library: ``mallopt`` turns off mmap
    for large blocks and raises the trim threshold to 1 GiB.

    Process-wide and applied once; ``UNLABELED_MALLOC=system`` leaves malloc alone. Returns
    whether the setting is in effect (False off glibc/Linux or off the CPU)."""
    global _malloc_tuned
    if device.type != "cpu" or os.environ.get("UNLABELED_MALLOC", "").lower() == "system":
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


def compile_encoder(encoder: torch.nn.Module) -> None:
    """``torch.compile`` what the objectives call on ``encoder``, in place: ``forward`` and
    ``embed``, and ``run`` (the transformer's trunk, which MAE and JEPA call on a subset of
    the tokens)."""
    for name in ("forward", "embed", "run"):
        if hasattr(encoder, name):
            setattr(encoder, name, torch.compile(getattr(encoder, name)))


class Trainer:
    """Trains ``objective`` on the samples of ``collection`` at ``positions``, writing
    checkpoints and metrics into ``run_dir``."""

    def __init__(
        self,
        objective: Objective,
        collection: Collection,
        positions: np.ndarray,
        config: TrainConfig,
        run_dir: str | Path,
        device: torch.device | str = "cpu",
    ) -> None:
        self.objective = objective
        self.collection = collection
        self.positions = np.asarray(positions)
        self.cfg = config
        self.dir = Path(run_dir)
        self.device = torch.device(device)
        self.rank, self.world = dist.rank(), dist.world_size()
        self.global_batch = config.batch_size * self.world
        self.steps_per_epoch = len(self.positions) // self.global_batch
        if self.steps_per_epoch == 0:
            raise UnlabeledError(
                f"{len(self.positions)} training samples are fewer than one batch of "
                f"{self.global_batch}; lower --batch-size"
            )
        self.bf16 = config.precision == "bf16" or (config.precision == "auto" and bf16_available(self.device))
        self.model = dist.wrap(objective, self.device)
        params = [p for p in objective.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        self._perm: tuple[int, np.ndarray] | None = None

    # -- data ------------------------------------------------------------------------------
    def batch_positions(self, step: int) -> np.ndarray:
        """This rank's share of the global batch at ``step``: ranks never overlap."""
        epoch, k = divmod(step, self.steps_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.default_rng([self.cfg.seed, epoch])
            self._perm = (epoch, rng.permutation(self.positions))
        start = k * self.global_batch + self.rank * self.cfg.batch_size
        return np.sort(self._perm[1][start : start + self.cfg.batch_size])

    def _generator(self, step: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(self.cfg.seed * 1_000_003 + step * 7919 + self.rank)
        return g

    # -- one step --------------------------------------------------------------------------
    def _step(self, model: Any, opt: torch.optim.Optimizer, step: int, total: int) -> dict[str, Any]:
        pos = self.batch_positions(step)
        x = self.objective.modality.prepare(self.collection.get(pos), self.device)
        extra = ()
        if self.objective.uses_labels:  # supervised and unlearning objectives get the labels too
            extra = (torch.from_numpy(self.collection.labels[pos]).to(self.device),)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, self.cfg.lr, self.cfg.warmup)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss, logs = model(x, self._generator(step), *extra)
        if not torch.isfinite(loss):
            raise UnlabeledError(f"loss became {loss.item()} at step {step}; lower --lr or use --precision fp32")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.objective.before_update()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.objective.parameters(), self.cfg.grad_clip)
        opt.step()
        self.objective.after_step((step + 1) / total)
        return logs

    def _calibrate(self) -> float:
        """Seconds per step, timed on a throwaway copy so the real run is untouched."""
        obj = copy.deepcopy(self.objective)
        opt = torch.optim.AdamW(obj.parameters(), lr=0.0)
        model = dist.wrap(obj, self.device)
        times = []
        for i in range(8):
            t = time.perf_counter()
            self._step(model, opt, i, 1_000_000)
            times.append(time.perf_counter() - t)
        return dist.max_float(float(np.median(times[3:])))

    # -- the loop --------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, Any]:
        keep_freed_memory(self.device)
        t_start = time.perf_counter()
        step, elapsed_before = 0, 0.0
        total = self.cfg.total_steps
        budget = None if self.cfg.minutes is None else self.cfg.minutes * 60
        fixed = budget is None  # whether the step count is final
        state_path = self.dir / ckpt.STATE_FILE
        if resume and state_path.exists():
            state = ckpt.load_state(state_path)
            self.objective.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            step, total, elapsed_before = state["step"], state["total_steps"], state["elapsed"]
            fixed = state.get("budget_fixed", True)
            torch.set_rng_state(state["torch_rng"])
            self._trim_metrics(step)
            info(f"resuming {self.dir} at step {step}/{total}")
        if total is None:
            if budget is not None:
                per_step = self._calibrate()
                total = max(1, int(0.97 * (budget - (time.perf_counter() - t_start)) / per_step))
                info(
                    f"time budget {self.cfg.minutes:g} min, about {per_step * 1000:.0f} ms/step "
                    f"-> {total} steps ({total / self.steps_per_epoch:.1f} epochs); "
                    "the count is fixed after 10% of the budget"
                )
            else:
                total = max(1, round((self.cfg.epochs or 1) * self.steps_per_epoch))
            self._record_total(total)

        if self.cfg.compile:
            compile_encoder(self.objective.encoder)
        self.objective.train()
        stop = _StopOnSignal()
        last_snap = time.perf_counter()
        first_step = step
        last_ckpt = time.perf_counter()
        seen_t, seen_n = time.perf_counter(), 0
        mark: tuple[int, float] | None = None  # (step, time) where timing for the budget starts
        logs: dict[str, Any] = {}
        metrics = (self.dir / "metrics.jsonl").open("a") if self.rank == 0 else None
        loss_col = TextColumn("loss {task.fields[loss]}")
        rate_col = TextColumn("{task.fields[rate]} samples/s")
        try:
            with stop, progress(loss_col, rate_col) as bar:
                task = bar.add_task("pretrain", total=total, completed=step, loss="-", rate="-")
                while step < total:
                    t_step = time.perf_counter()
                    logs = self._step(self.model, self.opt, step, total)
                    step += 1
                    seen_n += self.global_batch
                    now = time.perf_counter()
                    if self.cfg.compile and step == first_step + 1:
                        info(f"torch.compile: the first step took {now - t_step:.1f} s")
                    if self.cfg.snapshot_seconds and now - last_snap >= self.cfg.snapshot_seconds:
                        self.snapshot(step, elapsed_before + now - t_start)
                        last_snap = now
                    if not fixed:
                        # the calibration was a short guess: once 10% of the budget has passed,
                        # fix the step count from the speed of the real steps
                        mark = mark or ((step, now) if step >= 3 else None)
                        elapsed = elapsed_before + now - t_start
                        if mark and step - mark[0] >= 5 and dist.agree(elapsed >= 0.1 * budget):
                            per_step = dist.max_float((now - mark[1]) / (step - mark[0]))
                            total = max(step, step + int(0.98 * (budget - elapsed) / per_step))
                            fixed = True
                            self._record_total(total)
                            bar.update(task, total=total)
                    if step % self.cfg.log_every == 0 or step == total:
                        rate = seen_n / (now - seen_t)
                        seen_t, seen_n = now, 0
                        row = {
                            "step": step,
                            "epoch": round(step / self.steps_per_epoch, 4),
                            "lr": self.opt.param_groups[0]["lr"],
                            **{k: round(v, 5) for k, v in dist.mean_logs(logs).items()},
                            "samples_per_s": round(rate, 1),
                            "elapsed_s": round(elapsed_before + now - t_start, 2),
                        }
                        if self.device.type == "cuda":  # the allocator's own count: no synchronisation
                            row["gpu_peak_gib"] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 3)
                        if metrics:
                            metrics.write(json.dumps(row) + "\n")
                            metrics.flush()
                        bar.update(task, loss=f"{row.get('loss', 0):.4f}", rate=f"{rate:.0f}")
                    bar.update(task, completed=step)
                    due = (self.cfg.checkpoint_steps and step % self.cfg.checkpoint_steps == 0) or (
                        now - last_ckpt >= self.cfg.checkpoint_seconds
                    )
                    if step < total and dist.agree(due or stop.requested):
                        self.save(step, total, elapsed_before + time.perf_counter() - t_start, fixed)
                        last_ckpt = time.perf_counter()
                        if dist.agree(stop.requested):
                            raise KeyboardInterrupt
        except KeyboardInterrupt:
            info(f"[yellow]interrupted at step {step}/{total}; continue with --resume[/]")
            raise
        finally:
            if metrics:
                metrics.close()
        elapsed = elapsed_before + time.perf_counter() - t_start
        self.save(step, total, elapsed, True)
        return {
            "steps": step,
            "total_steps": total,
            "seconds": round(elapsed, 1),
            "final": {k: round(float(v), 5) for k, v in logs.items()},
        }

    def _record_total(self, total: int) -> None:
        """Store the resolved step count in config.json, so the run can be reproduced."""
        self.cfg.total_steps = total
        if self.rank == 0:
            cfg_path = self.dir / "config.json"
            config = json.loads(cfg_path.read_text())
            config["train"] = asdict(self.cfg)
            ckpt.atomic_write_json(cfg_path, config)

    def save(self, step: int, total: int, elapsed: float, budget_fixed: bool = True) -> None:
        """Checkpoint: the resume state first, then the exported weights (rank 0 only)."""
        if self.rank != 0:
            return
        state = {
            "step": step,
            "total_steps": total,
            "elapsed": elapsed,
            "budget_fixed": budget_fixed,
            "model": self.objective.state_dict(),
            "optimizer": self.opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        ckpt.save_state(self.dir / ckpt.STATE_FILE, state)
        meta = {"step": str(step), "total_steps": str(total)}
        ckpt.save_weights(self.dir / ckpt.MODEL_FILE, self.objective.state_dict(), meta)

    def snapshot(self, step: int, elapsed: float) -> None:
        """Keep the current weights as snapshots/step-NNNNNNN.safetensors (rank 0 only)."""
        if self.rank != 0:
            return
        folder = self.dir / "snapshots"
        folder.mkdir(exist_ok=True)
        meta = {"step": str(step), "elapsed_s": f"{elapsed:.2f}"}
        ckpt.save_weights(folder / f"step-{step:07d}.safetensors", self.objective.state_dict(), meta)

    def _trim_metrics(self, step: int) -> None:
        """Drop metric lines written after the checkpoint we resume from."""
        path = self.dir / "metrics.jsonl"
        if self.rank != 0 or not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line)
            except (ValueError, KeyError):
                continue  # a line cut short by the crash
        ckpt.atomic_write_text(path, "".join(f"{line}\n" for line in keep))


class _StopOnSignal:
    """Turns SIGTERM or a first Ctrl-C into a request to checkpoint and stop after the
    current step; a second Ctrl-C stops at once (the last checkpoint is still intact)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
        for sig in self.SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
