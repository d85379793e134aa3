"""The project's one training loop.

It feeds an :class:`~unlabeled.objectives.Objective` with batches read straight from a
collection's memory-mapped shards (no DataLoader workers, no per-sample Python), under bf16
autocast where the device supports it, with AdamW (or SGD), gradient clipping and a cosine schedule
after a linear warm-up. The batches come from a Collection or from arrays in memory
(``sampling.py``), and the run folder is optional: pretraining, fine-tuning, forgetting, the
fine-tuning probes and LAF's density models all train here. Progress goes to a progress bar
and ``metrics.jsonl``; checkpoints are atomic and a run resumes at exactly the step it reached.

Determinism: the data order of epoch ``e`` is a permutation seeded by ``(seed, e)`` and the
augmentation generator is reseeded from ``(seed, step)`` at every step, so a resumed run sees
the same batches and the same views as one that was never interrupted.

A time budget (``minutes``) is turned into a step count: a first guess from timing a few
steps of a throwaway copy of the model, refitted from the speed of the real steps once 10% and
50% of the budget have passed and fixed at 90%. The count is saved, so a run resumed after that
ends at the same step as an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import TextColumn

from unlabeled._console import UnlabeledError, info, progress, short_reason
from unlabeled.objectives.base import Objective
from unlabeled.runtime import PRECISIONS, autocast, check_seed, step_generator, use_bf16
from unlabeled.runtime import bf16_available as bf16_available  # re-exported: older import path
from unlabeled.train import checkpoint as ckpt
from unlabeled.train import distributed as dist
from unlabeled.train.sampling import BatchSource, EpochSampler, Sampler

OPTIMIZERS = ("adamw", "sgd")
# what the user of an interrupted command does next: a command without --resume (forget) says
_RESUME_HINT: ContextVar[str] = ContextVar("resume_hint", default="continue with --resume")


@contextlib.contextmanager
def resume_hint(text: str) -> Iterator[None]:
    """Within this block an interrupted run tells its user ``text`` instead of --resume."""
    token = _RESUME_HINT.set(text)
    try:
        yield
    finally:
        _RESUME_HINT.reset(token)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the training loop (stored in the run's config.json)."""

    batch_size: int = 128
    epochs: float | None = None
    minutes: float | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.05
    schedule: str = "cosine"  # or "constant": the rate ``lr`` throughout (a small density model's fit)
    grad_clip: float = 3.0
    precision: str = "auto"
    seed: int = 0
    checkpoint_seconds: float = 60.0
    checkpoint_steps: int = 0
    log_every: int = 20
    snapshot_seconds: float = 0.0  # also keep the weights every this many seconds, in snapshots/
    compile: bool = False  # torch.compile the encoder (its compile time is reported)
    optimizer: str = "adamw"  # or "sgd": Nesterov momentum 0.9, weight decay on the weights alone (FixMatch's)
    total_steps: int | None = None  # resolved from epochs or minutes before training

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self)):  # numpy's numbers as Python's (config.json takes them)
            value = getattr(self, name)
            if isinstance(value, np.integer | np.floating):
                object.__setattr__(self, name, value.item())
        for name in ("batch_size", "seed", "checkpoint_steps", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise UnlabeledError(f"{name.replace('_', ' ')} must be a whole number, got {value!r}")
        for name in (
            "epochs",
            "minutes",
            "lr",
            "weight_decay",
            "warmup",
            "grad_clip",
            "checkpoint_seconds",
            "snapshot_seconds",
        ):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise UnlabeledError(f"{name.replace('_', ' ')} must be a number, got {value!r}")
            if value is not None and not math.isfinite(value):
                raise UnlabeledError(f"{name.replace('_', ' ')} must be a finite number, got {value}")
        if self.batch_size < 2:
            raise UnlabeledError(f"batch size must be at least 2, got {self.batch_size}")
        if self.epochs is not None and not 0 < self.epochs <= MAX_EPOCHS:  # 1e308 passes: no step count
            raise UnlabeledError(f"epochs must be positive and at most {MAX_EPOCHS:g}, got {self.epochs}")
        if self.minutes is not None and not 0 < self.minutes <= MAX_MINUTES:  # 1e307: an OverflowError later
            raise UnlabeledError(
                f"minutes must be positive and at most {MAX_MINUTES:g} (a century), got {self.minutes}"
            )
        check_seed(self.seed)
        for name in ("lr", "weight_decay", "grad_clip", "checkpoint_steps", "snapshot_seconds"):
            value, what = getattr(self, name), "the learning rate" if name == "lr" else name.replace("_", " ")
            if value < 0:
                raise UnlabeledError(f"{what} must be 0 or more, got {value}")
            if name in ("lr", "weight_decay") and value > MAX_RATE:  # 1e300 overflowed in the optimizer
                raise UnlabeledError(f"{what} must be at most {MAX_RATE:g}, got {value}")
        if not 0 <= self.warmup < 1:
            raise UnlabeledError(f"warmup is a share of the steps, in [0, 1); got {self.warmup}")
        if self.checkpoint_seconds <= 0:
            raise UnlabeledError(f"checkpoint seconds must be positive, got {self.checkpoint_seconds}")
        if self.schedule not in ("cosine", "constant"):
            raise UnlabeledError(f"schedule must be cosine or constant, got {self.schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise UnlabeledError(f"optimizer must be {' or '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise UnlabeledError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")


MAX_EPOCHS = 1e9
MAX_RATE = 100.0  # the largest learning rate or weight decay taken: beyond it a step only diverges
MAX_MINUTES = 60 * 24 * 365 * 100  # a century: a budget beyond it is a typing error


def one_budget(epochs: float | None, minutes: float | None) -> None:
    """A run trains for ``epochs`` or for ``minutes``: asked for both, one would silently win."""
    if epochs is not None and minutes is not None:
        raise UnlabeledError("give --epochs or --minutes, not both")


def make_optimizer(module: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The run's optimizer over ``module``'s trainable parameters: AdamW (decoupled weight
    decay on every parameter), or with ``optimizer="sgd"`` SGD with Nesterov momentum 0.9 and
    L2 weight decay on the parameters of more than one dimension alone (the kernels of
    convolutions and linear layers, embeddings), not on biases or normalisation scales, as
    FixMatch's code trains (Sohn et al. 2020, section 4: their ablation found Adam worse than
    SGD for it)."""
    params = [p for p in module.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    groups = [
        {"params": [p for p in params if p.dim() > 1], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
    ]
    return torch.optim.SGD([g for g in groups if g["params"]], lr=config.lr, momentum=0.9, nesterov=True)


def lr_at(step: int, total: int, base: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` fraction of steps, then cosine decay to 0."""
    w = max(1, round(warmup * total))
    if step < w:
        return base * (step + 1) / w
    t = (step - w) / max(1, total - w)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def compile_encoder(encoder: torch.nn.Module) -> None:
    """``torch.compile`` what the objectives call on ``encoder``, in place: ``forward`` and
    ``embed``, and ``run`` (the transformer's trunk, which MAE and JEPA call on a subset of
    the tokens)."""
    for name in ("forward", "embed", "run"):
        if hasattr(encoder, name):
            setattr(encoder, name, torch.compile(getattr(encoder, name)))


CALIBRATION_SHARE = 0.1  # the most of a time budget that timing the step may take (beyond one step)
OVERRUN = 0.04  # the most of a time budget that rounding a step count up may risk overrunning it by


def steps_within(seconds_left: float, per_step: float, budget: float) -> int:
    """The steps of ``per_step`` s to plan in ``seconds_left`` s of a ``budget`` s budget: the
    nearest count (flooring ended runs of long steps half a step early on average), or the
    one below where rounding up could overrun the budget by more than ``OVERRUN``."""
    n = seconds_left / per_step
    up = round(n)
    return up if (up - n) * per_step <= OVERRUN * budget else math.floor(n)


@dataclass
class _Budget:
    """Turns a time budget into a step count: a first guess from a calibration, then refitted
    from the speed of the real steps once 10% of the budget has passed, again at 50%, and
    fixed at 90% (the first steps are often slower or faster than the rest: one refit early
    left runs 20% short of their budget; a count fixed at 50% missed by whatever the speed did
    in the second half, 12% with a dozen TS2Vec steps whose crops vary in length).

    Each refit times the steps since the previous one (the recent speed): at least 5 of them,
    or 2 that took 5% of the budget (long steps: a dozen in the budget would otherwise leave
    no time for a refit). Timing starts after the first 3 steps, which warm caches up, or after
    the first alone when it has already taken 5% of the budget. Whatever the count, a run is
    cut short before its next step could overrun the budget by more than ``OVERRUN``
    (:meth:`cut`)."""

    seconds: float | None
    fixed: bool
    mark: tuple[int, float] | None = None  # (step, time) where timing for the next refit starts
    refits: int = 0
    # the seconds of this process's last RECENT steps, whose longest predicts the next one's
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=_Budget.RECENT))
    steps_seen: int = 0
    POINTS = (0.1, 0.5, 0.9)  # shares of the budget at which the count is refitted; fixed at the last
    LONG = 0.05  # a span of steps that took this share of the budget is timed well enough
    RECENT = 10  # the steps whose longest predicts the next one's time, for the cut

    def refit(self, step: int, now: float, elapsed: float, total: int) -> int | None:
        """The new step count when one is due (the last is final), else None: at the budget's
        next point, or as the count ``total`` runs out before the count is fixed. Every rank
        calls it at every step (its decisions are agreed, so the counts match)."""
        if self.fixed or self.seconds is None:
            return None
        long = self.LONG * self.seconds
        if self.mark is None:
            if dist.agree(step >= 3 or (step >= 1 and elapsed >= long)):
                self.mark = (step, now)
            return None
        span, took = step - self.mark[0], now - self.mark[1]
        due = step >= total or elapsed >= self.POINTS[min(self.refits, len(self.POINTS) - 1)] * self.seconds
        if not dist.agree(due and (span >= 5 or (span >= 2 and took >= long))):
            return None
        per_step = dist.max_float(took / span)
        # every rank plans from the same elapsed time: each process's own clock gave the ranks
        # other counts (other learning rates, then a rank one step short of the collectives)
        elapsed = dist.max_float(elapsed)
        self.refits += 1
        self.fixed = self.refits >= len(self.POINTS)
        self.mark = (step, now)  # the next refit times the steps since this one: the recent speed
        return max(step, step + steps_within(0.99 * (self.seconds - elapsed), per_step, self.seconds))

    def cut(self, step: int, elapsed: float, took: float, total: int) -> int | None:
        """``step`` as the new (final) step count when the next step could overrun the budget by
        more than ``OVERRUN``: ``elapsed`` plus the longest of the last ``RECENT`` steps of this
        process would pass it (``took``: the seconds since the previous step ended, checkpoint
        writes and validation included; a process's first step is a warm-up and is not
        counted; a run already past the mark stops at once). A count fixed in advance cannot
        hold a budget of a dozen steps whose cost varies threefold (TS2Vec on whole 1,460-step
        series overran 3 minutes by 17%); ending a step or two early costs the schedule's tail,
        not the budget. Every rank calls it at every step of a time budget (the decision is
        agreed, so the counts match)."""
        if self.seconds is None:
            return None
        if self.steps_seen > 0:
            self.recent.append(took)
        self.steps_seen += 1
        late = step < total and elapsed + self.longest > (1 + OVERRUN) * self.seconds
        if not dist.agree(late):
            return None
        self.fixed = True
        return step

    @property
    def longest(self) -> float:
        """The longest of the recent steps (0 before one is timed)."""
        return max(self.recent, default=0.0)

    def state(self, t0: float) -> dict[str, Any]:
        """What a checkpoint keeps of the budget: whether the count is final, the refits made
        and the timing mark as (step, seconds into the run), so that a run resumed before its
        count is fixed refits where the uninterrupted run would have."""
        mark = None if self.mark is None else [self.mark[0], self.mark[1] - t0]
        # the recent steps too: a resumed run's first step is a warm-up, and without them the
        # cut could not stop its second (a run of 5 s steps resumed at 55 s of 60 ended at 65)
        return {"fixed": self.fixed, "refits": self.refits, "mark": mark, "recent": list(self.recent)}

    def restore(self, state: dict[str, Any], t0: float) -> None:
        """The budget of a resumed run from :meth:`state` (``t0``: when the run would have
        started had it never been interrupted)."""
        self.fixed, self.refits = bool(state.get("fixed", True)), int(state.get("refits", 0))
        mark = state.get("mark")
        self.mark = None if mark is None else (int(mark[0]), t0 + float(mark[1]))
        self.recent.extend(float(t) for t in state.get("recent", ()))


class Trainer:
    """Trains ``objective`` on the samples of ``source`` (a Collection, or an
    :class:`~unlabeled.train.sampling.ArraySource` in memory) at ``positions``.

    With ``run_dir`` it writes checkpoints, ``metrics.jsonl`` and the resolved step count into
    that run folder, stops cleanly on SIGTERM/Ctrl-C and resumes; without one (a probe's fit on
    a few labelled samples) it leaves nothing on disk. ``sampler`` overrides pretraining's
    epoch order (:class:`~unlabeled.train.sampling.EpochSampler`); ``on_epoch(epoch)`` is
    called after each full epoch (a probe scores its validation split there)."""

    def __init__(
        self,
        objective: Objective,
        source: BatchSource,
        positions: np.ndarray,
        config: TrainConfig,
        run_dir: str | Path | None = None,
        device: torch.device | str = "cpu",
        *,
        sampler: Sampler | None = None,
        on_epoch: Callable[[int], None] | None = None,
        show_progress: bool = True,
    ) -> None:
        self.objective = objective
        self.source = source
        self.positions = np.asarray(positions)
        self.cfg = config
        self.dir = None if run_dir is None else Path(run_dir)
        self.device = torch.device(device)
        self.rank, self.world = dist.rank(), dist.world_size()
        self.global_batch = config.batch_size * self.world
        self.sampler = sampler or EpochSampler(self.positions, config.batch_size, config.seed, self.rank, self.world)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        # samples a step, all processes: a semi-supervised batch's unlabelled ones too (samples/s
        # counted its labelled batch alone, a third of what FixMatch at ratio 2 reads)
        self.step_samples = getattr(self.sampler, "samples_per_step", config.batch_size) * self.world
        if self.steps_per_epoch == 0:
            # a batch holds 2 samples a process at least (batch norm, contrastive pairs)
            fix = "lower --batch-size" if len(self.positions) >= 2 * self.world else "train on more samples"
            raise UnlabeledError(
                f"{len(self.positions)} training samples are fewer than one batch of {self.global_batch}; {fix}"
            )
        self.on_epoch, self.show_progress = on_epoch, show_progress
        self.bf16 = use_bf16(config.precision, self.device)
        self.model = dist.wrap(objective, self.device)
        self.opt = make_optimizer(objective, config)

    def batch_positions(self, step: int, total: int | None = None) -> np.ndarray:
        """This rank's share of the global batch at ``step`` of ``total``: ranks never overlap."""
        return self.sampler.positions(step, total)

    # -- one step --------------------------------------------------------------------------
    def _step(
        self, model: Any, opt: torch.optim.Optimizer, step: int, total: int, objective: Objective | None = None
    ) -> dict[str, Any]:
        """One update of ``model`` (the wrapped ``objective``: this trainer's, or the throwaway
        copy the calibration times, whose hooks then run on the copy alone)."""
        obj = self.objective if objective is None else objective
        pos = self.batch_positions(step, total)
        x = obj.inputs(self.source.get(pos), self.device)
        extra = ()
        if obj.uses_labels:  # supervised and unlearning objectives get the labels too
            extra = (torch.from_numpy(self.source.labels[pos]).to(self.device),)
        lr = lr_at(step, total, self.cfg.lr, self.cfg.warmup) if self.cfg.schedule == "cosine" else self.cfg.lr
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast(self.device, self.bf16):
            loss, logs = model(x, step_generator(self.cfg.seed, step, self.device, self.rank), *extra)
        # every process stops where one's loss is not finite: one leaving alone left the others
        # waiting in the gradients' all-reduce
        if dist.agree(not bool(torch.isfinite(loss))):
            hint = "lower --lr or use --precision fp32" if self.bf16 else "lower --lr, or check the settings"
            value = loss.item() if not torch.isfinite(loss) else "not finite on another process"
            raise UnlabeledError(f"loss became {value} at step {step}; {hint}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        obj.before_update()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(obj.parameters(), self.cfg.grad_clip)
        opt.step()
        obj.after_step((step + 1) / total)
        return logs

    def _calibrate(self, seconds: float) -> float:
        """Seconds per step, timed on a throwaway copy so the real run is untouched: its
        weights, buffers and hooks (an EMA target, a moving threshold), and the random state,
        which the copy's steps use and which is restored after them. Up to 8 steps, fewer when
        they would take more than ``CALIBRATION_SHARE`` of the budget ``seconds`` (long inputs,
        a slow machine: the calibration must not spend the budget); the first step, which
        warms caches and kernels up, counts only when it is the only one. A first step longer
        than the whole budget is an error that says so."""
        obj = copy.deepcopy(self.objective)
        opt = make_optimizer(obj, replace(self.cfg, lr=0.0))
        model = dist.wrap(obj, self.device)
        times: list[float] = []
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            for i in range(8):
                t = time.perf_counter()
                self._step(model, opt, i, 1_000_000, obj)
                times.append(dist.max_float(time.perf_counter() - t))
                if sum(times) + times[-1] > CALIBRATION_SHARE * seconds:
                    break
        if times[0] > seconds:
            raise UnlabeledError(
                f"a time budget of {seconds / 60:g} min is shorter than one training step here "
                f"({times[0]:.3g} s): give more minutes, or a smaller --batch-size or shorter inputs"
            )
        return float(np.median(times[3:] or times[1:] or times))

    # -- the loop --------------------------------------------------------------------------
    def _restore(self) -> tuple[int, int | None, float, dict[str, Any]]:
        """(step, total, elapsed, the time budget's state) from the run's last checkpoint."""
        path = self.dir / ckpt.STATE_FILE
        state = ckpt.load_state(path)
        missing = [k for k in ("total_steps", "elapsed", "model", "optimizer", "torch_rng") if k not in state]
        if missing:
            raise UnlabeledError(f"{path} is not a resume state of a run: it has no {', '.join(missing)}")
        saved = state.get("optimizer_name", "adamw")  # runs from before the choice: AdamW
        if saved != self.cfg.optimizer:
            raise UnlabeledError(f"{path} was trained with {saved}, but config.json asks for {self.cfg.optimizer}")
        try:
            self.objective.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            if "cuda_rng" in state and self.device.type == "cuda":  # dropout's masks on a GPU draw from it
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        except (RuntimeError, ValueError, TypeError) as e:
            raise UnlabeledError(f"{path} does not fit the run config.json describes: {short_reason(e)}") from None
        self._trim_metrics(state["step"])
        info(f"resuming {self.dir} at step {state['step']}/{state['total_steps']}")
        budget = state.get("budget") or {"fixed": state.get("budget_fixed", True)}  # older runs: the flag alone
        return state["step"], state["total_steps"], state["elapsed"], budget

    def _plan(self, t_start: float) -> int:
        """The step count of a new run: from epochs, or a first guess from the time budget."""
        if self.cfg.minutes is None:
            return max(1, round((self.cfg.epochs or 1) * self.steps_per_epoch))
        seconds = self.cfg.minutes * 60
        per_step = self._calibrate(seconds)
        spent = dist.max_float(time.perf_counter() - t_start)  # agreed: the ranks plan one count
        total = steps_within(0.97 * (seconds - spent), per_step, seconds)
        if total < 1:
            raise UnlabeledError(
                f"a time budget of {self.cfg.minutes:g} min leaves no time to train after timing the step "
                f"({per_step:.0f} s a step here): give more minutes, or a smaller --batch-size or shorter inputs"
            )
        info(
            f"time budget {self.cfg.minutes:g} min, about {per_step * 1000:.0f} ms/step "
            f"-> {total} steps ({total / self.steps_per_epoch:.1f} epochs); "
            "the count is refitted from the real steps at 10%, 50% and 90% of the budget"
        )
        if total < 10:
            info(
                f"[yellow]{self.cfg.minutes:g} min buys about {total} steps of {per_step:.0f} s here: the run "
                f"may end up to a step ({per_step / seconds:.0%} of the budget) early[/]"
            )
        return total

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to the planned step count (resuming from the run's checkpoint with ``resume``);
        returns the steps, the seconds and the last step's logs."""
        t_start = time.perf_counter()
        step, total, elapsed_before = 0, self.cfg.total_steps, 0.0
        budget = _Budget(None if self.cfg.minutes is None else self.cfg.minutes * 60, fixed=self.cfg.minutes is None)
        if resume and self.dir is not None and (self.dir / ckpt.STATE_FILE).exists():
            step, total, elapsed_before, saved = self._restore()
            budget.restore(saved, t_start - elapsed_before)
            if total is not None and step >= total:  # its files are left as they are
                # a classifier (its objective learns labels): pretrain --init refuses it
                again = (
                    "finetune, selftrain or distil RUN"
                    if getattr(self.objective, "uses_labels", False)
                    else "pretrain --init"
                )
                info(
                    f"{self.dir} had finished ({step} steps): nothing left to train; --resume finishes an "
                    f"interrupted run, and a longer one starts from this as a new run ({again})"
                )
                return {"steps": step, "total_steps": total, "seconds": round(elapsed_before, 1), "final": {}}
        if total is None:
            total = self._plan(t_start)
            self._record_total(total)
        if self.cfg.lr == 0 and self.dir is not None:  # allowed (a check that a start loads), rarely meant
            info("note: the learning rate is 0: the weights stay as they start (batch-norm statistics still move)")
        if self.cfg.compile:
            compile_encoder(self.objective.encoder)
        self.objective.train()
        loop = _Loop(self, step, total, budget, t_start - elapsed_before)  # calibration counts against the budget
        try:
            with _StopOnSignal(self.dir is not None) as stop, self._progress() as bar:
                loop.run(stop, bar)
        except KeyboardInterrupt as e:
            if self.dir is not None:  # a fit that saves nothing (a bench probe's) has no run to resume
                info(f"[yellow]interrupted at step {loop.step}/{loop.total}; {_RESUME_HINT.get()}[/]")
                e.reported = True  # type: ignore[attr-defined]  # the command's exit says no more
            raise
        finally:
            loop.close()
        elapsed = time.perf_counter() - loop.t0
        self.save(loop.step, loop.total, elapsed, {**budget.state(loop.t0), "fixed": True})
        final = {k: round(float(v), 5) for k, v in loop.logs.items()}
        done = {"steps": loop.step, "total_steps": loop.total, "seconds": round(elapsed, 1), "final": final}
        if self.world > 1:  # the replicas must end identical; a run that drifted says so
            done["ranks"], done["ranks_identical"] = self.world, dist.same_weights(self.objective)
            if not done["ranks_identical"]:
                info(f"[red]the {self.world} processes ended with different weights[/]")
        return done

    def _progress(self) -> Any:
        if not self.show_progress:
            return contextlib.nullcontext(None)
        return progress(TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} samples/s"))

    def _record_total(self, total: int) -> None:
        """Store the resolved step count in config.json, so the run can be reproduced."""
        self.cfg = replace(self.cfg, total_steps=total)
        if self.rank == 0 and self.dir is not None:
            cfg_path = self.dir / "config.json"
            config = json.loads(cfg_path.read_text())
            config["train"] = asdict(self.cfg)
            ckpt.atomic_write_json(cfg_path, config)

    def save(self, step: int, total: int, elapsed: float, budget: dict[str, Any] | None = None) -> None:
        """Checkpoint: the resume state and the exported weights, replaced as a pair (rank 0 of a
        run only); a failed write (a full disk) leaves the previous checkpoint as it was.
        ``budget`` is the time budget's state (:meth:`_Budget.state`; None: a fixed count)."""
        budget = budget or {"fixed": True, "refits": 0, "mark": None}
        if self.rank != 0 or self.dir is None:
            return
        state = {
            "step": step,
            "total_steps": total,
            "elapsed": elapsed,
            "budget_fixed": budget["fixed"],  # also in "budget"; kept for older readers
            "budget": budget,
            "model": self.objective.state_dict(),
            "optimizer": self.opt.state_dict(),
            "optimizer_name": self.cfg.optimizer,
            "torch_rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}),
        }
        meta = {"step": str(step), "total_steps": str(total)}
        ckpt.save_checkpoint(self.dir, state, self.objective.exported_state(), meta)

    def snapshot(self, step: int, elapsed: float) -> None:
        """Keep the current weights as snapshots/step-NNNNNNN.safetensors (rank 0 of a run only)."""
        if self.rank != 0 or self.dir is None:
            return
        folder = self.dir / "snapshots"
        folder.mkdir(exist_ok=True)
        meta = {"step": str(step), "elapsed_s": f"{elapsed:.2f}"}
        ckpt.save_weights(folder / f"step-{step:07d}.safetensors", self.objective.exported_state(), meta)

    def _trim_metrics(self, step: int) -> None:
        """Drop metric lines written after the checkpoint we resume from."""
        path = self.dir / "metrics.jsonl"
        if self.rank != 0 or not path.exists():
            return
        keep = []
        text = path.read_text()
        for line in text.splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line)
            except (ValueError, KeyError):
                continue  # a line cut short by the crash
        trimmed = "".join(f"{line}\n" for line in keep)
        if trimmed != text:  # a finished run's file stays untouched
            ckpt.atomic_write_text(path, trimmed)


class _Loop:
    """The state of one ``Trainer.fit`` between steps: the step, the planned total, the
    clocks for logging, checkpoints and snapshots, and the metrics file."""

    def __init__(self, trainer: Trainer, step: int, total: int, budget: _Budget, t0: float) -> None:
        self.tr, self.step, self.total, self.budget = trainer, step, total, budget
        self.t0 = t0  # when the run would have started had it never been interrupted
        self.first_step = step
        self.last_end: float | None = None  # when the previous iteration ended
        self.last_snap = self.last_ckpt = self.seen_t = time.perf_counter()
        self.seen_n = 0
        self.logs: dict[str, Any] = {}
        write = trainer.rank == 0 and trainer.dir is not None
        self.metrics = (trainer.dir / "metrics.jsonl").open("a") if write else None

    def run(self, stop: _StopOnSignal, bar: Any) -> None:
        tr = self.tr
        task = None if bar is None else bar.add_task("train", total=self.total, completed=self.step, loss="-", rate="-")
        while self.step < self.total:
            t_step = time.perf_counter()
            since = t_step if self.last_end is None else self.last_end  # the iteration, writes included
            self.logs = tr._step(tr.model, tr.opt, self.step, self.total)
            self.step += 1
            self.seen_n += tr.step_samples
            now = time.perf_counter()
            if tr.cfg.compile and self.step == self.first_step + 1:
                info(f"torch.compile: the first step took {now - t_step:.1f} s")
            if tr.cfg.snapshot_seconds and now - self.last_snap >= tr.cfg.snapshot_seconds:
                tr.snapshot(self.step, now - self.t0)
                self.last_snap = now
            if (total := self.budget.refit(self.step, now, now - self.t0, self.total)) is not None:
                self._retotal(total, bar, task)
            if (total := self.budget.cut(self.step, now - self.t0, now - since, self.total)) is not None:
                info(
                    f"[yellow]the time budget ends the run at step {total} of {self.total}: the next step "
                    f"(up to {self.budget.longest:.1f} s) could overrun it by more than {OVERRUN:.0%}[/]"
                )
                self._retotal(total, bar, task)
            if self.step % tr.cfg.log_every == 0 or self.step == self.total:
                self._log(now, bar, task)
            if bar is not None:
                bar.update(task, completed=self.step)
            self._checkpoint(now, stop)
            if tr.on_epoch is not None and self.step % tr.steps_per_epoch == 0:
                tr.on_epoch(self.step // tr.steps_per_epoch)
                tr.objective.train()
            self.last_end = time.perf_counter()

    def _retotal(self, total: int, bar: Any, task: Any) -> None:
        """A new step count from the time budget: recorded in config.json and on the bar."""
        self.total = total
        self.tr._record_total(total)
        if bar is not None:
            bar.update(task, total=total)

    def _log(self, now: float, bar: Any, task: Any) -> None:
        tr = self.tr
        if self.metrics is None and bar is None:
            return
        rate = self.seen_n / (now - self.seen_t)
        self.seen_t, self.seen_n = now, 0
        row = {
            "step": self.step,
            "epoch": round(self.step / tr.steps_per_epoch, 4),
            "lr": tr.opt.param_groups[0]["lr"],
            **{k: round(v, 5) for k, v in dist.mean_logs(self.logs).items()},
            "samples_per_s": round(rate, 1),
            "elapsed_s": round(now - self.t0, 2),
        }
        if tr.device.type == "cuda":  # the allocator's own count: no synchronisation
            row["gpu_peak_gib"] = round(torch.cuda.max_memory_allocated(tr.device) / 2**30, 3)
        if self.metrics:
            self.metrics.write(json.dumps(row) + "\n")
            self.metrics.flush()
        if bar is not None:
            bar.update(task, loss=f"{row.get('loss', 0):.4f}", rate=f"{rate:.0f}")

    def _checkpoint(self, now: float, stop: _StopOnSignal) -> None:
        tr = self.tr
        if tr.dir is None or self.step >= self.total:
            return
        due = (tr.cfg.checkpoint_steps and self.step % tr.cfg.checkpoint_steps == 0) or (
            now - self.last_ckpt >= tr.cfg.checkpoint_seconds
        )
        if dist.agree(due or stop.requested):
            tr.save(self.step, self.total, time.perf_counter() - self.t0, self.budget.state(self.t0))
            self.last_ckpt = time.perf_counter()
            if dist.agree(stop.requested):
                raise KeyboardInterrupt

    def close(self) -> None:
        if self.metrics:
            self.metrics.close()


class _StopOnSignal:
    """Turns SIGTERM or a first Ctrl-C into a request to checkpoint and stop after the
    current step; a second Ctrl-C stops at once (the last checkpoint is still intact)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, active: bool = True) -> None:
        self.requested = False
        self.active = active  # only a run with a folder to checkpoint into catches signals
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
        for sig in self.SIGNALS if self.active else ():
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
