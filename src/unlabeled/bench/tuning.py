"""Fine-tuning probes: a run's encoder plus a linear head, trained on the labelled samples
themselves, with the scikit-learn estimator API (the frozen-feature probes are in
``probes.py``).

- ``full``: every encoder weight and the head train. With ``trained=False`` (the same
  architecture freshly initialised) this is the supervised-from-scratch baseline.
- ``lora``: low-rank adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language
  Models") through ``peft``; only the adapters and the head train.
- ``svfit``: only the top-r singular values of each adapted weight train (Sun et al. 2024,
  "SVFit: Parameter-Efficient Fine-Tuning of Large Pre-Trained Models Using Singular
  Values"), plus the head.

The head is linear on batch-normalised features without affine parameters, as in MAE's
linear probe (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners"): features
of different encoders differ in scale (tiny CNN: std 0.17, tiny transformer: 0.95 on
Fashion-MNIST), which a head trained from zero in a few hundred steps at one learning rate
cannot follow. Measured on 300 Fashion-MNIST images, 60 steps: test accuracy 0.22 -> 0.46
(LoRA, lr 1e-3), 0.18 -> 0.42 (SVFit), 0.62 -> 0.67 (full) on the CNN; 0.40 -> 0.46 (full)
on the transformer. At prediction it is a fixed affine map, so the head stays linear.

Which layers the adapters go into is ``models.adapters.adaptable_layers``. In the adapter
modes the encoder stays in eval mode, so batch-norm statistics are frozen with the rest of
the pretrained weights.

    params = tune(X_fit, y_fit, X_val, y_val, run="runs/a", mode="lora", trained=True,
                  task="classification", seed=0)                  # {"lr": .., "epochs": ..}
    probe = FinetuneProbe("runs/a", mode="lora", **params).fit(X, y)
    probe.predict(X_test)

Every fit runs through the one training loop (``train.trainer.Trainer``) on the arrays in
memory (``ArraySource``), leaving nothing on disk: its AdamW, warm-up + cosine schedule,
weight decay, gradient clipping, bf16 autocast policy and per-step augmentation seeds. The
probe gives it its order (``SplitSampler``: every labelled sample once an epoch, batches
never of one) and scores its validation split after each epoch to keep the best. The model
is ``objectives.supervised.Classifier``, the encoder + linear head that ``finetune`` trains
(with the normaliser in front of the head).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from sklearn.utils import ClassifierTags, RegressorTags
from sklearn.utils.validation import check_is_fitted
from torch import nn

from unlabeled._console import UnlabeledError
from unlabeled.bench.metrics import nan_worst
from unlabeled.models.adapters import ADAPTERS
from unlabeled.objectives.base import Objective
from unlabeled.objectives.supervised import Classifier
from unlabeled.runs import open_run
from unlabeled.runtime import autocast, bf16_available, resolve_device
from unlabeled.train.sampling import ArraySource, SplitSampler
from unlabeled.train.trainer import TrainConfig, Trainer

MODES = ("full", "lora", "svfit")
TASKS = ("classification", "regression")

# The learning rates ``tune`` chooses from. full: 1e-4 is the usual AdamW rate for fine-tuning
# a pretrained backbone (MAE's fine-tuning recipe, base lr 5e-4 x batch/256, gives 1.25e-4 at
# batch 64), 1e-3 is ``finetune``'s default and suits training from scratch. The adapters
# start at the pretrained function (LoRA's B = 0, SVFit's delta = 0) and move few
# parameters, which take rates an order of magnitude higher: Hu et al. 2021 (Table 9) tune
# RoBERTa's LoRA at 4e-4..5e-4 where its full fine-tuning used 1e-5..3e-5, and a
# singular-value delta of 1e-2 per step is small against singular values of order 1-10.
# Measured (300 Fashion-MNIST labels, 60 steps, tiny CNN; test accuracy at 1e-3 / 1e-2):
# lora 0.46 / 0.57, svfit 0.42 / 0.58, full 0.67 / 0.62.
LR_GRID: dict[str, tuple[float, ...]] = {"full": (1e-4, 1e-3), "lora": (1e-3, 1e-2), "svfit": (1e-3, 1e-2)}

_RECIPE = TrainConfig()  # warm-up, weight decay and gradient clipping of the one training loop
_PREDICT_BATCH = 256


class FinetuneProbe(BaseEstimator):
    """Encoder (from a run, pretrained or freshly initialised) + linear head, trained on raw
    samples.

    ``fit(X, y, X_val, y_val)``: ``X`` holds raw samples as a Collection stores them; the run's
    modality prepares and normalises them (plus light augmentation while training). Trains
    ``epochs``, raised to reach ``min_steps`` and cut to stay within ``max_steps``. With a
    validation split it scores every epoch (:meth:`validation_score`: minus the loss) and keeps
    the best epoch's weights
    (``best_epoch_``, 1-based, and ``val_score_``). Parameters are checked in ``fit`` (the
    scikit-learn convention: ``set_params`` and ``clone`` bypass the constructor).

    Fitted attributes: ``model_`` (encoder + head, in eval mode), ``modality_``,
    ``classes_`` (classification), ``epochs_run_``, ``trainable_params_`` (how many weights
    trained: encoder or adapters, plus the head), and with a validation split
    ``best_epoch_`` and ``val_score_``."""

    def __init__(
        self,
        run: str,
        mode: str = "full",
        trained: bool = True,
        task: str = "classification",
        lr: float = 1e-3,
        epochs: int = 30,
        batch_size: int = 64,
        rank: int = 8,
        max_steps: int = 600,
        min_steps: int = 100,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.run = run
        self.mode = mode
        self.trained = trained
        self.task = task
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.rank = rank
        self.max_steps = max_steps
        self.min_steps = min_steps
        self.seed = seed
        self.device = device

    # -- what kind of estimator this is --------------------------------------------------------
    @property
    def _estimator_type(self) -> str:
        return "classifier" if self.task == "classification" else "regressor"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.estimator_type = self._estimator_type
        tags.target_tags.required = True
        if self.task == "classification":
            tags.classifier_tags = ClassifierTags()
        else:
            tags.regressor_tags = RegressorTags()
        return tags

    # -- fit -----------------------------------------------------------------------------------
    def _validate(self) -> None:
        check_mode(self.mode)
        if self.task not in TASKS:
            raise UnlabeledError(f"unknown task {self.task!r}; choose from {', '.join(TASKS)}")
        for name in ("epochs", "batch_size", "max_steps", "rank"):
            if int(getattr(self, name)) < 1:
                raise UnlabeledError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UnlabeledError(f"lr must be positive, got {self.lr}")

    def fit(
        self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None
    ) -> FinetuneProbe:
        self._validate()
        for stale in ("best_epoch_", "val_score_", "classes_", "y_mean_", "y_std_"):  # from an earlier fit
            self.__dict__.pop(stale, None)
        run = open_run(self.run)
        self.modality_ = run.modality()
        X, y = self._check_samples(X), np.asarray(y)
        if len(y) != len(X):
            raise UnlabeledError(f"{len(X)} samples but {len(y)} targets")
        if (X_val is None) != (y_val is None):
            raise UnlabeledError("give both X_val and y_val, or neither")
        if X_val is not None and len(self._check_samples(X_val)) != len(y_val):
            raise UnlabeledError(f"{len(X_val)} validation samples but {len(y_val)} targets")
        targets = self._fit_targets(y)
        dev = resolve_device(self.device)
        self.device_ = dev
        model = self._build_model()
        objective = _ProbeObjective(model, self.modality_, self.task, self.mode != "full").to(dev)
        self.trainable_params_ = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.model_ = model

        n = len(X)
        batches = math.ceil(n / min(int(self.batch_size), n))
        # at least min_steps (a few dozen labels are one batch an epoch), at most max_steps
        wanted = max(int(self.epochs), math.ceil(int(self.min_steps) / batches))
        self.epochs_run_ = max(1, min(wanted, math.ceil(int(self.max_steps) / batches)))
        cfg = replace(_RECIPE, lr=self.lr, seed=int(self.seed), total_steps=self.epochs_run_ * batches)
        best: list[tuple[float, int, dict[str, torch.Tensor]]] = []

        def keep_best(epoch: int) -> None:
            score = nan_worst(self.validation_score(X_val, y_val))
            if not best or score > best[0][0]:
                best[:] = [(score, epoch, _snapshot(model))]

        # the one training loop, on the arrays in memory; nothing is written to disk
        trainer = Trainer(
            objective,
            ArraySource(X, targets),
            np.arange(n),
            cfg,
            device=dev,
            sampler=SplitSampler(n, batches, int(self.seed)),
            on_epoch=None if X_val is None else keep_best,
            show_progress=False,
        )
        trainer.fit()
        model.eval()
        if best:
            self.val_score_, self.best_epoch_, state = best[0]
            model.load_state_dict(state, strict=False)
        return self

    def _build_model(self) -> Classifier:
        """The run's encoder (trained or freshly initialised) with adapters per ``mode`` and a
        linear head on batch-normalised features; the caller's random state stays as it was."""
        run = open_run(self.run)
        with torch.random.fork_rng(devices=[]):
            encoder = run.encoder(self.trained)
            torch.manual_seed(self.seed)
            if self.mode == "full":
                encoder.requires_grad_(True)
            else:
                ADAPTERS[self.mode](encoder, int(self.rank))
            model = Classifier(encoder, len(self.classes_) if self.task == "classification" else 1)
            model.head = nn.Sequential(nn.BatchNorm1d(encoder.dim, affine=False), model.head)
        return model

    def _check_samples(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        shape = tuple(self.modality_.sample_shape)
        if X.ndim < 1 or tuple(X.shape[1:]) != shape:
            raise UnlabeledError(f"samples of shape {tuple(X.shape[1:])} given; run {self.run} takes {shape}")
        if not len(X):
            raise UnlabeledError("no samples given")
        return X

    def _fit_targets(self, y: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            self.classes_, codes = np.unique(y, return_inverse=True)
            if len(self.classes_) < 2:
                raise UnlabeledError(f"classification needs at least 2 classes, got {self.classes_.tolist()}")
            return codes.astype(np.int64)
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise UnlabeledError("regression targets must be finite")
        if len(y) < 2:
            raise UnlabeledError("regression needs at least 2 samples")
        # one value throughout (a few labels of a rating scale, drawn alike): trained toward it,
        # the constant it predicts; refused, it ended the whole bench, and every rerun with it
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
        return ((y - self.y_mean_) / self.y_std_).astype(np.float32)

    def validation_score(self, X_val: np.ndarray, y_val: np.ndarray) -> float:
        """Minus the validation loss: mean cross-entropy of the true classes (a class the
        probe never saw counts as probability 1e-6), or the mean squared error in units of
        the training targets' standard deviation. A loss, not accuracy: with a validation
        split of a few labels, accuracy ties across many epochs and picks the first."""
        X_val, y_val = self._check_samples(X_val), np.asarray(y_val)
        if self.task == "classification":
            proba = self.predict_proba(X_val)
            col = np.searchsorted(self.classes_, y_val).clip(0, len(self.classes_) - 1)
            p = np.where(self.classes_[col] == y_val, proba[np.arange(len(y_val)), col], 1e-6)
            return -float(np.mean(-np.log(np.clip(p, 1e-6, 1.0))))
        err = (self.predict(X_val) - y_val.astype(np.float64)) / self.y_std_
        return -float(np.mean(err**2))

    # -- predict -------------------------------------------------------------------------------
    @torch.no_grad()
    def _outputs(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = self._check_samples(X)
        model, dev = self.model_.eval(), self.device_
        out = []
        for start in range(0, len(X), _PREDICT_BATCH):
            x = self.modality_.normalize(self.modality_.prepare(X[start : start + _PREDICT_BATCH], dev))
            with autocast(dev, bf16_available(dev)):
                out.append(model(x).float().cpu())
        return torch.cat(out).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = self._outputs(X)
        if self.task == "classification":
            return self.classes_[out.argmax(1)]
        return out[:, 0].astype(np.float64) * self.y_std_ + self.y_mean_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.task != "classification":
            raise UnlabeledError("predict_proba is for classification; this probe does regression")
        return torch.from_numpy(self._outputs(X)).softmax(1).numpy().astype(np.float64)

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy for classification, R² for regression (scikit-learn's conventions)."""
        y, pred = np.asarray(y), self.predict(X)
        if self.task == "classification":
            return float((pred == y).mean())
        y = y.astype(np.float64)
        return float(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())


class _ProbeObjective(Objective):
    """The probe's loss for the Trainer: cross-entropy on the classes, or mean squared error on
    standardised targets, of the classifier on lightly augmented views (the modality's light,
    geometric augmentation, in fp32 as ``Supervised.views``). With ``frozen_encoder`` (the
    adapter modes) the encoder stays in eval mode while training, so batch-norm running
    statistics stay frozen with the rest of the pretrained weights."""

    name = "probe"
    uses_labels = True

    def __init__(self, model: Classifier, modality: Any, task: str, frozen_encoder: bool) -> None:
        super().__init__(model.encoder, modality)
        self.model, self.task, self.frozen_encoder = model, task, frozen_encoder

    def train(self, mode: bool = True) -> _ProbeObjective:
        super().train(mode)
        if mode and self.frozen_encoder:
            self.encoder.eval()
        return self

    def loss(self, x: torch.Tensor, generator: torch.Generator, y: torch.Tensor):
        with torch.autocast(x.device.type, enabled=False):
            x = self.modality.normalize(self.modality.augment(x, generator, light=True))
        out = self.model(x).float()
        with torch.autocast(x.device.type, enabled=False):  # on standardised targets for regression
            loss = F.cross_entropy(out, y) if self.task == "classification" else F.mse_loss(out[:, 0], y)
        return loss, {"loss": loss.detach()}


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise UnlabeledError(f"unknown fine-tuning mode {mode!r}; choose from {', '.join(MODES)}")


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of what training changes: the trainable parameters and the buffers (batch-norm
    statistics)."""
    keep = {name for name, p in model.named_parameters() if p.requires_grad}
    keep |= {name for name, _ in model.named_buffers()}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in keep}


def tune(
    X_fit: np.ndarray,
    y_fit: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    lrs: tuple[float, ...] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Choose the learning rate (from ``lrs``, default ``LR_GRID[mode]``) and the epoch count
    on the validation split: one fit per rate, each early-stopped at its best validation
    epoch. Returns ``{"lr": .., "epochs": .., "min_steps": 0}`` to pass to
    ``FinetuneProbe(**params)`` for the refit on all labelled samples, which then trains the
    chosen epochs (``min_steps`` had raised a refit of a few labels to the floor's epochs,
    whatever the validation split chose); ties go to the first rate of the grid. ``params``: the
    ``FinetuneProbe``'s (``run``, ``mode``, ``trained``, ``task``, ``seed``, ``device``,
    ``batch_size``, ``rank``, ``max_steps``, ``epochs`` as the most to try)."""
    mode = params.get("mode", "full")
    check_mode(mode)
    grid = LR_GRID[mode] if lrs is None else tuple(lrs)
    if not grid:
        raise UnlabeledError("no learning rates to choose from")
    best: tuple[float, float, int] | None = None
    for lr in grid:
        probe = FinetuneProbe(**{"device": "cpu", **params, "lr": lr})
        probe.fit(X_fit, y_fit, X_val, y_val)
        if best is None or nan_worst(probe.val_score_) > best[0]:
            best = (nan_worst(probe.val_score_), float(lr), int(probe.best_epoch_))
    return {"lr": best[1], "epochs": best[2], "min_steps": 0}
