"""``selftrain``: a classifier trained on a few labels and every unlabelled sample at once,
with FixMatch's pseudo-labels and consistency (Sohn et al. 2020, "FixMatch: Simplifying
Semi-Supervised Learning with Consistency and Confidence"), from a pretrained run's encoder
or from scratch.

    run = selftrain("runs/a", "data/fmnist", "runs/st", fraction=0.01)

The labelled samples are a stratified ``fraction`` (or ``shots`` per class) of the task's
labelled train samples, drawn with ``seed`` exactly as ``finetune`` and ``bench`` draw them;
the unlabelled pool is every sample outside the test split (the labelled ones included, their
labels hidden, as FixMatch does). The test split never enters. The run records
``training-ids.txt`` (the pool and the labelled samples), ``labelled-ids.txt`` and, where the
pool is not all of them, ``unlabelled-ids.txt``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from torch import nn

from unlabeled._console import UnlabeledError, info
from unlabeled._settings import as_settings, check_count, check_field_kinds, folder
from unlabeled.data.collection import NO_LABEL, Collection, open_collection
from unlabeled.modalities import modality_from_state
from unlabeled.objectives.base import Objective
from unlabeled.runs import Run, encode, read_config, read_ids
from unlabeled.runtime import resolve_device
from unlabeled.train import checkpoint as ckpt
from unlabeled.train import distributed as dist
from unlabeled.train.finetune import (
    FinetuneRecipe,
    classifier_spec,
    few_labels,
    labelled_train,
    note_other_splits,
    note_unlearnable,
    outside_bench_test,
    train_positions,
)
from unlabeled.train.run import (
    Feed,
    claim_run_dir,
    open_start,
    option_pairs,
    refuse_out_at,
    run_lock,
    saved_budget,
    saved_pairs,
    say_resume_ignores,
    train,
    training_positions,
)
from unlabeled.train.sampling import SemiSampler, SemiSource, labels_on
from unlabeled.train.spec import ObjectiveSpec, RunSpec
from unlabeled.train.trainer import OPTIMIZERS, TrainConfig, one_budget

LABELLED_IDS = "labelled-ids.txt"
UNLABELLED_IDS = "unlabelled-ids.txt"  # only where the pool is not every training sample


@dataclass(frozen=True)
class SelftrainRecipe:
    """What the user asked of a self-training run. ``batch_size`` counts labelled samples;
    each step also takes ``ratio`` times as many unlabelled ones (FixMatch's mu)."""

    threshold: float = 0.95
    # 2, not FixMatch's 7: at a fixed budget of compute (minutes, or epochs of the pool, which
    # cost the same at any ratio) on Fashion-MNIST's development split, mu 7 -> 3 -> 2 gained at
    # each step (BENCHMARKS.md, dev runs v, aa-ab, ac-ah: mu 2 over 3 by +0.5 points on two
    # label draws); the paper's larger mu wins at a fixed number of steps, which costs more
    ratio: int = 2
    unlabeled_weight: float = 1.0
    ema: float = 0.0
    ema_teacher: bool = True  # the EMA gives the pseudo-labels (Mean Teacher); False: only exported (FixMatch)
    cutout: float = 0.5
    adaptive: float = 0.0  # FreeMatch's self-adaptive threshold with this momentum (0: the fixed threshold)
    align: float = 0.0  # ReMixMatch's distribution alignment with this momentum (0: none)
    soft: float = 0.0  # soft pseudo-labels sharpened at this temperature (UDA); 0: hard ones (FixMatch)
    epochs: float | None = None
    minutes: float | None = None
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # or "sgd": Nesterov momentum, weight decay on the weights alone (FixMatch's)
    seed: int = 0
    encoder: str | None = None  # from scratch; None: ``default_encoder`` of the data's modality
    size: str | None = None
    precision: str = "auto"
    head: str = "probe"  # a pretrained start's head: a linear probe on the labels (LP-FT), or "random"
    augment: dict[str, Any] | None = None  # changes to the modality's augmentation (the strong view)
    recalibrate: int = 10_000  # batch-norm statistics recomputed on this many pool samples as they are (0: none)

    def __post_init__(self) -> None:
        check_field_kinds(self)
        one_budget(self.epochs, self.minutes)
        check_count(self.recalibrate, "--recalibrate", 0)
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, int) or self.ratio < 1:
            raise UnlabeledError(f"--ratio must be a whole number, at least 1; got {self.ratio!r}")
        if self.weight_decay < 0:
            raise UnlabeledError(f"weight decay must be at least 0, got {self.weight_decay}")
        if self.optimizer not in OPTIMIZERS:
            raise UnlabeledError(f"optimizer must be {' or '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not (math.isfinite(self.unlabeled_weight) and self.unlabeled_weight >= 0):
            raise UnlabeledError(f"--unlabeled-weight must be a finite number, 0 or more; got {self.unlabeled_weight}")
        if not 0 <= self.threshold <= 1:
            raise UnlabeledError(f"--threshold must be in [0, 1], got {self.threshold}")
        if not 0 <= self.ema < 1:
            raise UnlabeledError(f"--ema must be in [0, 1), got {self.ema}")
        if not 0 <= self.adaptive < 1:
            raise UnlabeledError(f"--adaptive must be in [0, 1), got {self.adaptive}")
        if not 0 <= self.align < 1:
            raise UnlabeledError(f"--align must be in [0, 1), got {self.align}")
        if not 0 <= self.soft <= 1:
            raise UnlabeledError(
                f"--soft must be a temperature in (0, 1], or 0 for hard pseudo-labels; got {self.soft}"
            )
        if self.head not in ("probe", "random"):
            raise UnlabeledError(f"--head must be probe or random, got {self.head!r}")
        as_settings(self.augment, "augment")


def selftrain(
    run: Run | str | os.PathLike[str] | None,
    task: Collection | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    labelled: np.ndarray | None = None,
    unlabelled: np.ndarray | None = None,
    fraction: float | None = None,
    shots: int | None = None,
    threshold: float = 0.95,
    ratio: int = SelftrainRecipe.ratio,
    unlabeled_weight: float = 1.0,
    ema: float = 0.0,
    ema_teacher: bool = True,
    adaptive: float = 0.0,
    align: float = 0.0,
    soft: float = 0.0,
    epochs: float | None = None,
    minutes: float | None = None,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    optimizer: str = "adamw",
    seed: int = 0,
    encoder: str | None = None,
    size: str | None = None,
    precision: str = "auto",
    head: str = "probe",
    augment: dict[str, Any] | None = None,
    recalibrate: int = 10_000,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
) -> Run:
    """Self-train a classifier of ``task``'s classes with FixMatch: ``run``'s encoder (a
    pretrained or classifier run) with a new linear head, or ``encoder``/``size`` from
    scratch when ``run`` is None.

    The labelled samples are ``labelled`` (positions), or a ``fraction``/``shots`` draw of the
    task's labelled train samples with ``seed``, or all of them; the unlabelled pool is
    ``unlabelled`` (positions) or every sample outside the test split. Each step takes
    ``batch_size`` labelled and ``ratio`` times as many unlabelled samples; a pseudo-label
    counts where the weak view's confidence reaches ``threshold``, its loss weighted by
    ``unlabeled_weight``; ``adaptive`` > 0 replaces ``threshold`` with FreeMatch's
    self-adaptive one (Wang et al. 2023), moving averages of that momentum; ``align`` > 0
    aligns the pseudo-labels' distribution with the labelled class frequencies (ReMixMatch's
    distribution alignment, Berthelot et al. 2020), its moving average of that momentum; ``soft`` > 0
    trains the strong view toward the weak view's probabilities sharpened at that temperature
    instead of their argmax (UDA's soft targets, Xie et al. 2020); ``ema`` > 0 keeps an EMA of
    the model with that decay and exports it, and with ``ema_teacher`` (the default) takes the
    pseudo-labels from it (Mean Teacher); without, from the trained model (FixMatch).
    From a pretrained ``run``, ``head="probe"`` starts the head as a linear probe of the frozen
    encoder on the labels (LP-FT: Kumar et al. 2022), so the first pseudo-labels are the
    probe's; ``"random"`` starts it from scratch. ``augment`` changes the strong view's settings
    (``{"view_size": 0}``: full size from an encoder pretrained on small views). ``recalibrate``:
    batch-norm statistics from that many unaugmented pool samples at the end. Trains ``epochs``
    passes over the pool (default 5) or ``minutes`` with AdamW at ``lr`` and ``weight_decay``
    (``optimizer="sgd"``: SGD with Nesterov momentum, FixMatch's); ``resume`` continues a run."""
    given = locals()  # the recipe's fields are keyword arguments of the same names
    recipe = SelftrainRecipe(**{f.name: given[f.name] for f in fields(SelftrainRecipe) if f.name in given})
    out, dev = folder(out), dist.local_device(resolve_device(device))
    with run_lock(out), dist.process_group(dev):  # one process writes a run at a time
        col = open_collection(task)
        if resume:
            claim_run_dir(out, True, False)
            spec, lab, pool = _resumed(out, col)
            _say_what_resume_ignores(recipe, spec, (fraction, shots), len(lab))
            src, replace_old = None, False  # the checkpoint holds the weights
        else:
            lab, pool = _pools(col, labelled, unlabelled, fraction, shots, recipe.seed)
            src = open_start(run)
            refuse_out_at(out, src, "the run to start from")
            replace_old = claim_run_dir(out, False, overwrite, remove=False)
            _notes(recipe, src, col, lab, labelled is None)  # after the refusals: a refusal prints one line
            spec = selftrain_spec(recipe, src, col, lab, pool, dev, draw=(fraction, shots))
        warm = _warm_start(spec, col, lab, dev)
        feed = semi_feed(col, spec, lab, pool, warm)
        source, everything = SemiSource(col, labels_on(col, lab)), np.union1d(lab, pool)
        done = train(spec, source, everything, out, dev, resume=resume, replace_old=replace_old, feed=feed)
        return _recalibrated(done, col, pool, spec, dev)


def _recalibrated(done: Run, col: Collection, pool: np.ndarray, spec: RunSpec, dev: torch.device) -> Run:
    """``done`` with its batch-norm statistics recomputed (:func:`recalibrate_batch_norm`), once:
    the config records it, and a finished run resumed is left as it is."""
    samples = int(spec.extra["selftrain"].get("recalibrate", 0))  # runs before it: none
    if samples and dist.rank() == 0 and "recalibrated" not in done.config["selftrain"]:
        used = recalibrate_batch_norm(done, col, pool, samples, spec.train.seed, dev)
        config = done.config | {"selftrain": {**done.config["selftrain"], "recalibrated": used}}
        ckpt.atomic_write_json(done.path / "config.json", config)
    dist.barrier()
    return Run(done.path)


def recalibrate_batch_norm(
    run: Run, col: Collection, pool: np.ndarray, samples: int, seed: int, device: torch.device | str = "cpu"
) -> int:
    """The exported classifier's batch-norm statistics recomputed on ``samples`` of the
    unlabelled pool as they are, without augmentation: training's running averages mix in the
    strong views (colour jitter, Cutout), which test inputs never look like ("precise BN", Wu
    & Johnson 2021, "Rethinking 'Batch' in BatchNorm", section 3). Measured on Fashion-MNIST's
    development split after 6,200 steps: +0.25 points for the trained model, +0.4 for its EMA.
    The statistics depend on the other weights alone (batch norm normalises each batch with
    its own in train mode), so doing it again, after a resume, gives the same values. Returns
    the samples used: at most the pool's, and none for a network without batch norm."""
    clf, mod = run.classifier().to(device), run.modality()  # on the device it trained on
    norms = [m for m in clf.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batches
    pos = np.sort(np.random.default_rng(seed).choice(pool, min(samples, len(pool)), replace=False))
    clf.train()
    with torch.no_grad():
        for start in range(0, len(pos), 256):
            clf(mod.normalize(mod.prepare(col.get(pos[start : start + 256]), device)))
    path = run.path / ckpt.MODEL_FILE
    weights, buffers = ckpt.load_weights(path), dict(clf.named_buffers())
    weights |= {k: buffers[k].cpu() for k in weights if k in buffers}
    ckpt.save_weights(path, weights, ckpt.weights_metadata(path))
    return len(pos)


def _notes(recipe: SelftrainRecipe, src: Run | None, col: Collection, lab: np.ndarray, drawn: bool) -> None:
    """Splits whose labels were left out (where ``drawn`` from the task's own train split),
    classes no label teaches, and settings that change nothing in this run: said rather than
    dropped without a word."""
    if drawn:
        note_other_splits(col)
    note_unlearnable(col, lab)
    if not recipe.ema_teacher and not recipe.ema:
        info("note: --no-ema-teacher has no average to leave out without --ema; ignored")
    if src is None and recipe.head != "probe":
        info(f"note: --head {recipe.head} applies to a pretrained run; from scratch the head is random; ignored")


def semi_feed(
    col: Collection, spec: RunSpec, lab: np.ndarray, pool: np.ndarray, warm: Callable[[Objective], None] | None
) -> Feed:
    """The batches of a self-trained run (this process's share) and the id files it records."""
    cfg, ratio = spec.train, int(spec.extra["selftrain"]["ratio"])
    if len(pool) < cfg.batch_size * ratio * dist.world_size():
        raise UnlabeledError(
            f"{len(pool)} unlabelled samples are fewer than one batch of {cfg.batch_size * ratio}; "
            "lower --batch-size or --ratio"
        )
    sampler = SemiSampler(lab, pool, cfg.batch_size, ratio, cfg.seed, len(col), dist.rank(), dist.world_size())
    everything = np.union1d(lab, pool)
    files = {LABELLED_IDS: lab} | ({} if len(pool) == len(everything) else {UNLABELLED_IDS: pool})
    return Feed(sampler, files, warm)


def _pools(
    col: Collection,
    labelled: np.ndarray | None,
    unlabelled: np.ndarray | None,
    fraction: float | None,
    shots: int | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The labelled positions and the unlabelled pool, checked: labels on every labelled
    sample, every class labelled, nothing from the test split."""
    if col.is_text:  # FixMatch's weak and strong views are the modality's augmentations
        raise UnlabeledError(
            f"{col.path} is text, which has no augmentations to make FixMatch's weak and strong views; "
            "fine-tune on its labels (finetune), or distil a fine-tuned model on its unlabelled text (distil)"
        )
    lab = labelled_train(col) if labelled is None else train_positions(col, labelled, "labelled positions")
    lab = few_labels(col, lab, fraction, shots, seed)
    pool = (  # never what bench tests on (without a split column: its carved-out 20%)
        outside_bench_test(col) if unlabelled is None else train_positions(col, unlabelled, "unlabelled positions")
    )
    if not len(lab):  # was "the labelled samples must all have labels", of none
        raise UnlabeledError(f"{col.path}: no labelled train samples to self-train from")
    if (col.labels[lab] == NO_LABEL).any():
        raise UnlabeledError(f"{col.path}: the labelled samples must all have labels")
    # every class the train split has labels of needs one here (a class absent from the train
    # split altogether cannot be learnt, and finetune does not ask for it either)
    missing = sorted(set(col.labels[labelled_train(col)].tolist()) - set(col.labels[lab].tolist()))
    if missing:
        names = [col.classes[c] if col.classes else str(c) for c in missing]
        raise UnlabeledError(f"no labelled sample of class {', '.join(names)}: give more labels (--fraction/--shots)")
    if len(np.unique(col.labels[lab])) < 2:  # as bench refuses such a task
        raise UnlabeledError(f"{col.path}: the labelled train samples hold one class; a classifier needs two or more")
    return lab, pool


def selftrain_spec(
    recipe: SelftrainRecipe,
    src: Run | None,
    col: Collection,
    labelled: np.ndarray,
    pool: np.ndarray,
    dev: torch.device,
    draw: tuple[float | None, int | None] = (None, None),
) -> RunSpec:
    """A classifier's spec (``finetune``'s: ``src``'s encoder and normalisation, or the
    recipe's architecture fitted to the pool) with the FixMatch objective and loop; ``draw``,
    the fraction or shots the labels were drawn with, is recorded for ``--resume`` to compare."""
    r = recipe
    base = FinetuneRecipe(seed=r.seed, encoder=r.encoder, size=r.size)
    spec = classifier_spec(base, src, col, np.union1d(labelled, pool), dev)
    classes = int(spec.objective.options["classes"])
    options = {"classes": classes, "threshold": r.threshold, "unlabeled_weight": r.unlabeled_weight}
    epochs = r.epochs if r.epochs is not None or r.minutes is not None else 5.0
    cfg = TrainConfig(
        batch_size=r.batch_size,
        epochs=epochs,
        minutes=r.minutes,
        lr=r.lr,
        weight_decay=r.weight_decay,
        seed=r.seed,
        precision=r.precision,
        optimizer=r.optimizer,
    )
    head = r.head if src is not None else "random"
    record = {"ratio": r.ratio, "labelled": len(labelled), "unlabelled": len(pool), "head": head}
    record["draw"] = {"fraction": draw[0], "shots": draw[1]}
    record["recalibrate"] = r.recalibrate
    options |= {
        "ema": r.ema,
        "ema_teacher": r.ema_teacher,
        "cutout": r.cutout,
        "adaptive": r.adaptive,
        "align": r.align,
        "soft": r.soft,
    }
    if r.align:  # the labelled draw's class frequencies, the distribution pseudo-labels align to
        counts = np.bincount(col.labels[labelled], minlength=classes)
        # a class with no label in the draw (one only the test split holds) gets a floor, not
        # the 0 that FixMatch refuses as a prior
        options["prior"] = [max(round(float(c) / counts.sum(), 6), 1e-6) for c in counts]
    modality = spec.modality
    if r.augment:  # validated by the modality: an unknown setting is an error
        mod = modality_from_state(modality)
        mod.aug = mod.augmentation_with(dict(r.augment))
        modality = mod.state()
    return spec.replace(
        modality=modality,
        objective=ObjectiveSpec("fixmatch", options),
        train=cfg,
        extra={"selftrain": record},
    )


def _warm_start(
    spec: RunSpec, col: Collection, lab: np.ndarray, dev: torch.device
) -> Callable[[Objective], None] | None:
    """The probe head a run from a pretrained start begins with (``head="probe"``); ``train``
    applies it where the run starts at step 0 (new, or resumed before its first checkpoint)."""
    if (spec.init is None and spec.source_run is None) or spec.extra.get("selftrain", {}).get("head") != "probe":
        return None
    return probe_head(col, lab, dev, spec.train.precision)


def probe_head(
    col: Collection, labelled: np.ndarray, dev: torch.device, precision: str = "auto"
) -> Callable[[Objective], None]:
    """LP-FT's first step for an objective with a linear ``head`` on ``encoder.embed``: the head
    set to a logistic regression of the frozen encoder's features of the labelled samples
    (:func:`linear_head`)."""

    def warm(objective: Objective) -> None:
        enc, mod = objective.encoder, objective.modality
        feats = encode(enc, mod, col, labelled, device=dev, description="probe head", precision=precision)
        weight, bias = linear_head(feats, col.labels[labelled], objective.head.out_features)
        with torch.no_grad():
            for head in (objective.head, getattr(objective, "teacher_head", None)):
                if head is not None:
                    head.weight.copy_(torch.from_numpy(weight))
                    head.bias.copy_(torch.from_numpy(bias))
        info(f"head: a linear probe on {len(labelled)} labels (LP-FT)")

    return warm


def standardised_probe(feats: np.ndarray, y: np.ndarray, classes: int) -> tuple[np.ndarray, ...]:
    """A multinomial logistic regression of ``y`` on ``feats`` standardised by their mean and
    std (the penalty chosen by 3-fold cross-validation on these labels where every class has
    3, else C = 0.1): (weight (classes, dim), bias (classes,), mean, std), its logits
    ``((feats - mean) / std) @ weight.T + bias``. A class with no label gets bias -30."""
    mean, std = feats.mean(0), feats.std(0) + 1e-6
    z = (feats - mean) / std
    counts = np.bincount(y)
    if counts[counts > 0].min() >= 3:
        with warnings.catch_warnings():  # scikit-learn 1.9 announces its coming defaults
            warnings.simplefilter("ignore", FutureWarning)
            model = LogisticRegressionCV(Cs=[0.01, 0.1, 1.0], cv=3, max_iter=1000).fit(z, y)
    else:
        model = LogisticRegression(C=0.1, max_iter=1000).fit(z, y)
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # two classes: one logit, split evenly between them
        coef, intercept = np.concatenate([-coef, coef]) / 2, np.array([-intercept[0], intercept[0]]) / 2
    weight = np.zeros((classes, feats.shape[1]), dtype=np.float32)
    bias = np.full(classes, -30.0, dtype=np.float32)  # a class with no label: never predicted at first
    weight[model.classes_], bias[model.classes_] = coef, intercept
    return weight, bias, mean.astype(np.float32), std.astype(np.float32)


def linear_head(feats: np.ndarray, y: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`standardised_probe` folded into one linear map of the raw features: weights
    (classes, dim) and bias (classes,) with ``feats @ weight.T + bias`` its logits."""
    weight, bias, mean, std = standardised_probe(feats, y, classes)
    return weight / std, bias - (weight / std) @ mean


def _say_what_resume_ignores(r: SelftrainRecipe, spec: RunSpec, draw: tuple[Any, Any], labelled: int) -> None:
    """The settings asked for now that differ from those the run was saved with, named."""
    saved, options, labels = spec.extra["selftrain"], spec.objective.options, f"{labelled} labelled samples"
    drawn = saved.get("draw", {})  # asked for as saved: not ignored; else the count drawn is named

    def as_drawn(key: str, asked: Any) -> Any:
        return asked if key in drawn and drawn[key] == asked else labels

    say_resume_ignores(
        [
            ("--fraction", draw[0], as_drawn("fraction", draw[0]), None),
            ("--shots", draw[1], as_drawn("shots", draw[1]), None),
            ("--threshold", r.threshold, options.get("threshold"), SelftrainRecipe.threshold),
            ("--ratio", r.ratio, saved.get("ratio"), SelftrainRecipe.ratio),
            ("--lr", r.lr, spec.train.lr, SelftrainRecipe.lr),
            ("--batch-size", r.batch_size, spec.train.batch_size, SelftrainRecipe.batch_size),
            ("--epochs", r.epochs, saved_budget(spec.train, "epochs"), None),
            ("--minutes", r.minutes, saved_budget(spec.train, "minutes"), None),
            *saved_pairs(r, options, ("unlabeled_weight", "ema", "ema_teacher", "cutout", "adaptive", "align", "soft")),
            *saved_pairs(r, spec.train, ("weight_decay", "optimizer", "seed")),
            ("--encoder", r.encoder, spec.encoder.name, None),
            ("--size", r.size, spec.encoder.size, None),
            ("--recalibrate", r.recalibrate, saved.get("recalibrate", 0), SelftrainRecipe.recalibrate),
            *option_pairs("--augment", r.augment, spec.modality.get("augment") or {}),
        ]
    )


def _resumed(out: Path, col: Collection) -> tuple[RunSpec, np.ndarray, np.ndarray]:
    """The spec, labelled positions and unlabelled pool of the self-trained run in ``out``,
    checked: a self-trained run, on this collection."""
    spec = RunSpec.from_config(read_config(out / "config.json"))
    if spec.objective.name != "fixmatch" or "selftrain" not in spec.extra or not (out / LABELLED_IDS).exists():
        raise UnlabeledError(f"{out} is not a self-trained run; resume it with the command that made it")
    if spec.data.fingerprint != col.fingerprint():
        raise UnlabeledError(f"{col.path} is not the collection {out} was trained on")
    lab = col.positions(read_ids(out / LABELLED_IDS))
    pool = out / UNLABELLED_IDS
    return spec, lab, col.positions(read_ids(pool)) if pool.exists() else training_positions(col, spec, out)
