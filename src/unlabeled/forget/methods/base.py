"""What every forgetting method declares, and the flow the approximate ones share.

A method is a small class: its ``name``, what it applies to (classifier runs, encoder runs,
only runs trained with ``--shards``), whether it is ``exact`` (the result is what retraining
without the forgotten samples gives), its default ``epochs`` and ``lr``, the ``settings`` of
its objective a request may change (``forget(options=...)``), and ``run``, which
makes the new run in ``request.out``. The request's own bookkeeping (forgotten ids, the
finished record, the audit log) is the caller's (``api.py``), the same for every method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from unlabeled._console import UnlabeledError
from unlabeled.forget.recipe import origin_training
from unlabeled.forget.request import ForgetRequest
from unlabeled.forget.unlearner import Stream, Unlearner
from unlabeled.objectives.base import Objective
from unlabeled.runs import Run, resolve_device
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.pretrain import claim_run_dir
from unlabeled.train.trainer import TrainConfig, Trainer


class Method:
    """A way to forget; subclasses fill in the declarations and ``run``."""

    name: ClassVar[str]
    exact: ClassVar[bool] = False
    classifiers: ClassVar[bool] = True  # forgets from classifier runs
    encoders: ClassVar[bool] = False  # forgets from self-supervised encoder runs
    language_models: ClassVar[bool] = False  # forgets from causal language models (methods/lm.py)
    sharded_only: ClassVar[bool] = False  # needs a run trained with --shards (SISA)
    epochs: ClassVar[float | None] = None  # defaults, for the methods that train
    lr: ClassVar[float | None] = None
    # the objective's settings a request may change (``--option NAME=VALUE``), each a keyword
    # of the objective's constructor; every other one is the method's to fill in
    settings: ClassVar[tuple[str, ...]] = ()
    # the fewest samples it forgets (LAF fits a density model to the forget set, WHP trains a
    # language model on it: neither from one sample); refused before the request is logged
    min_forget: ClassVar[int] = 1

    # the values each setting takes: name -> (test, what it must be), checked by check_options
    limits: ClassVar[dict[str, tuple[Callable[[float], bool], str]]] = {}

    def check_options(self, options: dict[str, float]) -> None:
        """Refuse option values the method cannot take (an UnlabeledError), before anything
        is written; ``options`` are known settings with finite values."""
        for name, value in options.items():
            ok, what = self.limits.get(name, (lambda v: True, ""))
            if not ok(value):
                raise UnlabeledError(f"--option {name} must be {what}, got {value:g}")

    def run(self, request: ForgetRequest) -> Run:
        """Make the new run in ``request.out`` without the forgotten samples."""
        raise NotImplementedError


def unlearning_config(request: ForgetRequest, objective: Objective, cfg: TrainConfig) -> dict[str, Any]:
    """The source run's config, with the unlearning objective and its training recorded."""
    src = request.source
    return {
        **src.config,
        "method": {**src.config["method"], "unlearning": request.record["method"], **objective.hparams()},
        "train": vars(cfg).copy(),
    }


def write_untrained(
    request: ForgetRequest, method: dict[str, Any], state: dict[str, torch.Tensor], **extra: Any
) -> Run:
    """The new run of a method that does not train (ECO, SSD): the source's config with
    ``method`` merged into its method entry (and ``extra`` top-level entries), and ``state``
    as its weights, at the source's step."""
    src = request.source
    config = {
        **src.config,
        "method": {**src.config["method"], "unlearning": request.record["method"], **method},
        **extra,
        "source_run": src.config.get("source_run"),
    }
    config.pop("seconds", None)
    run = request.save(config)
    ckpt.save_weights(request.out / ckpt.MODEL_FILE, state, {"step": str(src.step)})
    return run


def unlearn(
    request: ForgetRequest, objective: Objective, stream: np.ndarray, cfg: TrainConfig, config: dict[str, Any]
) -> Run:
    """Record the new run, then train ``objective`` on the samples at ``stream`` from the
    source's weights (the one Trainer: resumable, reproducible for a seed). A stream of one
    sample (forgetting one, the commonest request) is that sample twice: a batch holds two."""
    request.save(config)
    stream = np.repeat(stream, 2) if len(stream) == 1 else stream
    Trainer(objective, request.task, stream, cfg, request.out, resolve_device(request.device)).fit()
    return Run(request.out)


def train_config(request: ForgetRequest, batch_size: int, epochs: float, lr: float) -> TrainConfig:
    """Unlearning trains without weight decay or warmup: a few steps from trained weights. A
    batch holds two samples at least (one forgotten sample is streamed twice, :func:`unlearn`)."""
    return TrainConfig(
        batch_size=max(2, batch_size),
        epochs=epochs,
        lr=request.lr or lr,
        weight_decay=0.0,
        warmup=0.0,
        seed=request.seed,
    )


class Approximate(Method):
    """An approximate unlearner for classifiers: ``objective`` (an :class:`Unlearner`) trained
    from the classifier's weights on ``stream`` (``"forget"`` or ``"retain"``), drawing the
    other set itself when it needs it. Default epochs over the forget set are absolute; over
    the retain set they are a fraction of the original training's epochs, so that a method
    costs about a tenth of retraining or less."""

    objective: ClassVar[type[Unlearner]]
    stream: ClassVar[str]

    def run(self, request: ForgetRequest) -> Run:
        src, task = request.source, request.task
        own, other = (
            (request.forget_pos, request.retain_pos)
            if self.stream == "forget"
            else (request.retain_pos, request.forget_pos)
        )
        batch = int(origin_training(src)["batch_size"])
        objective = self.objective(
            src.encoder().train(),
            src.modality(),
            int(src.config["method"]["classes"]),
            other=Stream(task, other, batch),
            **request.options,
        )
        objective.use_augment = bool(src.config["method"].get("augment", True))
        objective.head.load_state_dict(src.weights("head"))
        if objective.needs_original:
            objective.keep_original()
        objective.prepare(task, request.forget_pos, request.retain_pos, resolve_device(request.device))
        claim_run_dir(request.out, False, request.overwrite, resumable=False)
        cfg = train_config(request, min(batch, len(own)), self.default_epochs(request), self.lr)
        config = {**unlearning_config(request, objective, cfg), "source_run": src.config.get("source_run")}
        config.pop("seconds", None)
        return unlearn(request, objective, own, cfg, config)

    def default_epochs(self, request: ForgetRequest) -> float:
        if request.epochs is not None:
            return request.epochs
        assert self.epochs is not None
        scale = float(origin_training(request.source)["epochs"] or 1) if self.stream == "retain" else 1.0
        return self.epochs * scale
