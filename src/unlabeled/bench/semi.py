"""The ``semi`` probe: the labelled subset and the rest of the train split, unlabelled, used
together (FixMatch: Sohn et al. 2020, "FixMatch: Simplifying Semi-Supervised Learning with
Consistency and Confidence"), with the scikit-learn estimator API.

From a pretrained run it is the self-training step of the few-label pipeline, started from the
run's encoder with a linear probe as its head (LP-FT); with ``trained=False`` (the
``supervised`` baseline's row) it is FixMatch from scratch, so the table answers whether
pretraining still pays once the unlabelled data is used again. The model, head and prediction
are the ``finetune`` probe's (encoder + batch-normalised linear head,
:class:`~unlabeled.bench.tuning.FinetuneProbe`); the loss is
:class:`~unlabeled.objectives.fixmatch.FixMatch`, trained by the one Trainer on the arrays in
memory. The test split never reaches it: the protocol gives it the train split alone.

    steps = tune_semi(X_fit, y_fit, X_val, y_val, X_pool_without_val, run="runs/a")
    probe = SemiProbe("runs/a", **steps).fit(X, y, X_unlabelled=X_train)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from unlabeled._console import UnlabeledError
from unlabeled.bench.metrics import nan_worst
from unlabeled.bench.tuning import _RECIPE, FinetuneProbe, _snapshot
from unlabeled.objectives.fixmatch import FixMatch
from unlabeled.runs import open_run
from unlabeled.runtime import resolve_device
from unlabeled.train.sampling import ArraySource, SemiSampler
from unlabeled.train.selftrain import standardised_probe
from unlabeled.train.trainer import Trainer

# Steps of one semi-supervised fit (each: 32 labelled and 224 unlabelled samples, the latter
# seen twice): about 0.6 s each for a tiny CNN on 28x28 images on 2 CPU cores in fp32.
MAX_STEPS = 400


class SemiProbe(FinetuneProbe):
    """Encoder (pretrained, or freshly initialised with ``trained=False``) + linear head,
    trained with FixMatch on the labelled samples and ``X_unlabelled``.

    ``fit(X, y, X_val, y_val, X_unlabelled)``: each step takes ``batch_size`` labelled and
    ``ratio`` times as many unlabelled samples (fewer where the pool is small); ``max_steps``
    steps in all (default ``MAX_STEPS``). With a validation
    split it is scored every ``eval_every`` steps and the best weights are kept
    (``best_steps_``, ``val_score_``). Classification only."""

    def __init__(
        self,
        run: str,
        trained: bool = True,
        task: str = "classification",
        lr: float = 1e-3,
        batch_size: int = 32,
        ratio: int = 7,
        threshold: float = 0.95,
        max_steps: int | None = None,
        eval_every: int = 50,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        super().__init__(run, "full", trained, task, lr, 1, batch_size, 8, max_steps, 1, seed, device)
        self.ratio = ratio
        self.threshold = threshold
        self.eval_every = eval_every

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        X_unlabelled: np.ndarray | None = None,
    ) -> SemiProbe:
        if self.task != "classification":
            raise UnlabeledError("the semi probe is for classification: pseudo-labels need classes")
        self._validate()
        for stale in ("best_steps_", "val_score_", "classes_"):
            self.__dict__.pop(stale, None)
        self.modality_ = open_run(self.run).modality()
        X, y = self._check_samples(X), np.asarray(y)
        pool = X if X_unlabelled is None else self._check_samples(X_unlabelled)
        n, m, b = len(X), len(pool), min(int(self.batch_size), len(X))
        ratio = max(1, min(int(self.ratio), m // b))  # a small pool: fewer unlabelled per labelled
        if m < b:
            raise UnlabeledError(f"{m} unlabelled samples are fewer than the {b} labelled ones of a batch")
        codes = self._fit_targets(y)
        self.device_ = resolve_device(self.device)
        self.model_ = model = self._build_model()
        objective = FixMatch(model.encoder, self.modality_, len(self.classes_), float(self.threshold))
        objective.head = model.head  # the probe's batch-normalised head: the model predicts with it
        if self.trained:  # LP-FT: the head starts as a linear probe of the pretrained features
            self._probe_head(model, X, codes)
        best: list[tuple[float, int, dict[str, torch.Tensor]]] = []
        steps = self._steps()
        every = min(int(self.eval_every), steps)

        def keep_best(done: int) -> None:
            score = nan_worst(self.validation_score(X_val, y_val))
            if not best or score > best[0][0]:
                best[:] = [(score, done, _snapshot(model))]

        labels = np.concatenate([codes, np.full(m, -1, dtype=np.int64)])
        sampler = SemiSampler(np.arange(n), np.arange(n, n + m), b, ratio, int(self.seed), 0, every=every)
        trainer = Trainer(
            objective.to(self.device_),
            ArraySource(np.concatenate([X, pool]), labels),
            np.arange(n + m),
            replace(_RECIPE, lr=self.lr, seed=int(self.seed), total_steps=steps, batch_size=b),
            device=self.device_,
            sampler=sampler,
            on_epoch=None if X_val is None else lambda chunk: keep_best(chunk * every),
            show_progress=False,
        )
        trainer.fit()
        if X_val is not None and steps % every:  # the steps after the last scored chunk
            keep_best(steps)
        model.eval()
        self.trainable_params_ = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if best:
            self.val_score_, self.best_steps_, state = best[0]
            model.load_state_dict(state, strict=False)
        return self

    @torch.no_grad()
    def _probe_head(self, model: nn.Module, X: np.ndarray, codes: np.ndarray) -> None:
        """The head (batch norm without affine parameters, then linear) set to the logistic
        regression of the frozen encoder's standardised features of ``X`` (LP-FT: Kumar et al.
        2022, "Fine-Tuning can Distort Pretrained Features and Underperform
        Out-of-Distribution"), the batch norm's running statistics to the features' own."""
        mod, enc = self.modality_, model.encoder.eval()
        feats = [
            enc.embed(mod.normalize(mod.prepare(X[i : i + 256], self.device_))).float().cpu().numpy()
            for i in range(0, len(X), 256)
        ]
        weight, bias, mean, std = standardised_probe(np.concatenate(feats), codes, len(self.classes_))
        norm, linear = model.head
        norm.running_mean.copy_(torch.from_numpy(mean))
        norm.running_var.copy_(torch.from_numpy(std**2))
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))

    def _validate(self) -> None:
        for name in ("batch_size", "ratio", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise UnlabeledError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UnlabeledError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.threshold <= 1:
            raise UnlabeledError(f"threshold must be in [0, 1], got {self.threshold}")

    def _steps(self) -> int:
        steps = MAX_STEPS if self.max_steps is None else int(self.max_steps)
        if steps < 1:
            raise UnlabeledError(f"max_steps must be at least 1, got {steps}")
        return steps


def tune_semi(
    X_fit: np.ndarray,
    y_fit: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    X_unlabelled: np.ndarray,
    **params: Any,
) -> dict[str, Any]:
    """Choose the number of steps on the validation split: one fit, scored every
    ``eval_every`` steps (the validation samples are neither labelled nor in ``X_unlabelled``).
    Returns ``{"max_steps": ..}`` for the refit on every labelled sample."""
    params.pop("mode", None)
    probe = SemiProbe(**{"device": "cpu", **params}).fit(X_fit, y_fit, X_val, y_val, X_unlabelled)
    return {"max_steps": int(probe.best_steps_)}
