"""``finetune``: a classifier (encoder + linear head) trained on a labelled task, through the
one Trainer. From a pretrained run its encoder and normalisation are the starting point
(full fine-tuning); without one, the same architecture is trained from scratch (the
supervised baseline). The run records which sample ids it was trained on
(``training-ids.txt``), which is what ``forget`` removes from.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlabeled._console import UnlabeledError, info
from unlabeled._settings import check_field_kinds, folder
from unlabeled.data.collection import NO_LABEL, Collection, open_collection
from unlabeled.data.splits import carved_test, shots_subset, stratified_subset, tally
from unlabeled.modalities import fit_modality
from unlabeled.models import default_options
from unlabeled.runs import Run, check_same_samples, open_run, read_config, shard_split
from unlabeled.runtime import resolve_device
from unlabeled.train import checkpoint as ckpt
from unlabeled.train import distributed as dist
from unlabeled.train.pretrain import Where, default_encoder, default_size, pretrain, provenance, refuse_text_shards
from unlabeled.train.run import (
    check_shards,
    claim_run_dir,
    claim_sharded,
    open_start,
    put_back,
    refuse_out_at,
    run_lock,
    saved_budget,
    saved_pairs,
    say_resume_ignores,
    start_point,
    train,
    train_positions,
    train_shards,
    training_positions,
)
from unlabeled.train.spec import SPEC_KEYS, DataSpec, EncoderSpec, ObjectiveSpec, RunSpec
from unlabeled.train.trainer import TrainConfig


def _labelled_outside_test(task: Collection) -> tuple[np.ndarray, np.ndarray]:
    """The task's labelled samples outside its test split, and which of them are train's (all
    of them where it has no ``train`` split). Without a split column, the stratified 20% that
    ``bench`` carves out to test on is not train's (:func:`carved_test`): a classifier trained
    on it could not be benched, and its few labels were not the bench's draw."""
    if not task.has_labels():
        raise UnlabeledError(f"{task.path} has no labels; fine-tuning needs a labelled task")
    pos = np.intersect1d(task.indices(exclude="test"), np.flatnonzero(task.labels != NO_LABEL))
    if task.splits is None:
        return pos, ~np.isin(pos, carved_test(task.labels, pos))
    if not (task.splits[pos] == "train").any():
        return pos, np.ones(len(pos), dtype=bool)
    return pos, task.splits[pos] == "train"


def outside_bench_test(task: Collection) -> np.ndarray:
    """Every position outside what ``bench`` tests on: the test split's, or without a split
    column the labelled 20% it carves out (unlabelled samples are never tested on)."""
    rest = task.indices(exclude="test")
    if task.splits is not None or not task.has_labels():
        return rest
    labelled = np.flatnonzero(task.labels != NO_LABEL)
    return np.setdiff1d(rest, carved_test(task.labels, labelled))


def labelled_train(task: Collection) -> np.ndarray:
    """Positions of the task's labelled train samples: those of its ``train`` split where it has
    one, as ``bench`` takes them (a ``validation`` split is left out: :func:`note_other_splits`
    says so), else every labelled sample outside its test split."""
    pos, train = _labelled_outside_test(task)
    return pos[train]


def note_other_splits(task: Collection) -> None:
    """Name the splits, neither train nor test, whose labels :func:`labelled_train` leaves out.
    Said once every refusal has passed: a note before "error: ..." reads as its cause, and a
    refused command prints its one line alone."""
    pos, train = _labelled_outside_test(task)
    if (~train).any() and task.splits is None:
        info(
            f"note: {task.path} has no split column: the stratified 20% of its labelled samples that bench "
            f"tests on ({int((~train).sum())}, seed 0) are left out"
        )
    elif (~train).any():
        held = tally(task.splits[pos[~train]])
        info(f"note: split(s) {held} are neither train nor test: their labels are left out, as bench leaves them")


def note_unlearnable(col: Collection, labelled: np.ndarray) -> None:
    """Say which of the collection's classes have no label among ``labelled`` (one only in the
    test split, say): the classifier has an output for each, and cannot learn those."""
    known = np.unique(col.labels[col.labels != NO_LABEL])
    absent = sorted(set(known.tolist()) - set(col.labels[labelled].tolist()))
    if absent:
        names = [col.classes[c] if col.classes and c < len(col.classes) else str(c) for c in absent]
        info(f"note: no labelled training sample of class {', '.join(names[:5])}: the classifier cannot learn it")


def _labelled_draw(
    col: Collection, positions: Any, fraction: float | None, shots: int | None, seed: int, resume: bool
) -> np.ndarray:
    """The positions a classifier trains on: the labelled train samples (or ``positions``), a
    few of them with ``fraction`` or ``shots``. Unlabelled positions given through the API are
    refused before anything is written (cross-entropy failed on their -1 at the first step,
    leaving a half-made run)."""
    pos = labelled_train(col) if positions is None else train_positions(col, positions)
    pos = few_labels(col, pos, fraction, shots, seed)
    if not len(pos):
        raise UnlabeledError(f"{col.path}: no labelled samples to train on")
    unlabelled = int((col.labels[pos] == NO_LABEL).sum())
    if unlabelled and not resume:
        raise UnlabeledError(
            f"{unlabelled} of the {len(pos)} positions given have no label; a classifier trains on labels"
        )
    return pos


def few_labels(
    col: Collection, positions: np.ndarray, fraction: float | None, shots: int | None, seed: int
) -> np.ndarray:
    """The labelled samples a few-label run trains on: a stratified ``fraction`` of
    ``positions`` or ``shots`` per class, seeded as the benchmark's label settings are (every
    class keeps at least one label); ``positions`` when neither is given."""
    if fraction is not None and shots is not None:
        raise UnlabeledError("give --fraction or --shots, not both")
    for flag, value, kinds in (("--fraction", fraction, int | float | np.number), ("--shots", shots, int | np.integer)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            kind = "a whole number" if flag == "--shots" else "a number"
            raise UnlabeledError(f"{flag} must be {kind}, got {value!r}")
    if fraction is not None and not 0 < fraction <= 1:
        raise UnlabeledError(f"--fraction must be in (0, 1], got {fraction}")
    if shots is not None and shots < 1:
        raise UnlabeledError(f"--shots must be at least 1, got {shots}")
    if fraction is None and shots is None:
        return positions
    if not len(positions):  # nothing to draw from (numpy's "need at least one array to concatenate")
        raise UnlabeledError(f"{col.path}: no labelled train samples to draw --fraction or --shots from")
    y = col.labels[positions]
    pick = stratified_subset(y, fraction, seed) if fraction is not None else shots_subset(y, shots, seed)
    return positions[pick]


@dataclass(frozen=True)
class FinetuneRecipe:
    """What the user asked of a fine-tuning run (the architecture only matters from scratch)."""

    epochs: float = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    encoder: str | None = None  # from scratch; None: ``default_encoder`` of the data's modality
    size: str | None = None
    augment: bool = True
    precision: str = "auto"

    def __post_init__(self) -> None:
        check_field_kinds(self)


def finetune(
    run: Run | str | os.PathLike[str] | None,
    task: Collection | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    positions: np.ndarray | None = None,
    fraction: float | None = None,
    shots: int | None = None,
    epochs: float = 5,
    batch_size: int | None = None,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    encoder: str | None = None,
    size: str | None = None,
    device: str = "auto",
    shards: int = 1,
    augment: bool = True,
    precision: str = "auto",
    extra_config: dict[str, Any] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    objective: str = "classify",
) -> Run:
    """Fine-tune ``run``'s encoder with a linear head on ``task``'s labelled train samples (or
    on ``positions``), or train ``encoder``/``size`` from scratch when ``run`` is None.
    ``objective="clm"`` instead trains a causal language model further on the text of every
    training document of ``task`` (TOFU's fine-tuning on its authors, Maini et al. 2024).

    ``shards`` > 1 trains SISA-style (Bourtoule et al. 2021, "Machine Unlearning"): the
    samples are split at random into that many disjoint shards, one classifier is trained on
    each in ``OUT/shards/NN`` with the same recipe, and the prediction averages their
    probabilities; forgetting then retrains only the shards that held the forgotten samples.
    ``augment=False`` trains on the samples as they are (no light crops/noise); ``precision``
    is the training loop's (``auto``: bf16 where the CPU or GPU has it, ``fp32``, ``bf16``).

    ``fraction`` (a stratified share of the labelled train samples, at least one per class) or
    ``shots`` (that many per class) trains on a few labels, drawn with ``seed`` as ``bench``
    draws its label settings, so a fine-tuned run matches a bench cell's labels. ``resume``
    continues an interrupted run in ``out`` from its last checkpoint (the same arguments that
    made it; the recipe and training ids are read back from the run), ending as the
    uninterrupted run would have, bit for bit (a sharded run: its unfinished shards)."""
    if objective != "classify":
        return _language_model(run, task, out, objective, dict(locals()))
    batch = FinetuneRecipe.batch_size if batch_size is None else batch_size
    recipe = FinetuneRecipe(epochs, batch, lr, weight_decay, seed, encoder, size, augment, precision)
    check_shards(shards)
    col = open_collection(task)
    refuse_text_shards(col, run, shards)
    pos = _labelled_draw(col, positions, fraction, shots, seed, resume)
    out, extra = folder(out), dict(extra_config or {})
    if clash := sorted(set(extra) & SPEC_KEYS):
        raise UnlabeledError(f"extra_config may not set {', '.join(clash)}: the run's config writes them itself")
    src = open_start(run)
    if not resume:
        refuse_out_at(out, src, "the run to start from")
    with run_lock(out):  # one process writes a run at a time
        if shards > 1:
            train = {k: asdict(recipe)[k] for k in ("epochs", "batch_size", "lr", "weight_decay", "seed")}

            def one(folder: Path, part: np.ndarray, again: bool) -> Run:  # extra: the whole run's
                return _finetune_one(recipe, src, col, part, Where(folder, device, again, not again), {}, False)

            # one process group for the whole run: the top folder's removal and the stale shards'
            # are then waited for by every rank (each shard's run joins the same group)
            with dist.process_group(dist.local_device(resolve_device(device))):
                if not resume:
                    shard_split(pos, shards, seed)  # too many shards refused before --overwrite sets anything aside
                old = claim_sharded(out, resume, overwrite)
                try:
                    if positions is None:
                        note_other_splits(col)
                    note_unlearnable(col, pos)
                    return train_shards(col, pos, out, shards, seed, one, resume, top=lambda c: _top(c, train, extra))
                finally:
                    put_back(old, out)  # the replaced run, where no shard of the new one reached a checkpoint
        where = Where(out, device, resume, overwrite)
        return _finetune_one(recipe, src, col, pos, where, extra, other_splits=positions is None and not resume)


def _language_model(
    run: Run | str | os.PathLike[str] | None,
    task: Collection | str | os.PathLike[str],
    out: str | os.PathLike[str],
    objective: str,
    given: dict[str, Any],
) -> Run:
    """``finetune(objective="clm")``: ``run``, a causal language model, trained further on the
    text of ``task``'s training documents, every weight (continued pretraining from it, which
    ``unlabeled pretrain --init RUN --method clm`` also does); labels and their options have
    no part in it."""
    g = given  # finetune's own arguments
    unused = {
        "fraction": g["fraction"],
        "shots": g["shots"],
        "shards": g["shards"] > 1,
        "positions": g["positions"] is not None,
    }
    train = {
        k: g[k]
        for k in ("epochs", "batch_size", "lr", "weight_decay", "seed", "precision", "device", "overwrite", "resume")
    }
    arch = {k: g[k] for k in ("encoder", "size", "augment")}
    if objective != "clm":
        raise UnlabeledError(f"--objective must be classify or clm, got {objective!r}")
    if run is None:
        raise UnlabeledError("--objective clm trains a language model further: give the clm run to start from")
    src = open_run(run)
    if src.kind != "encoder" or src.method != "clm":
        raise UnlabeledError(
            f"--objective clm trains a causal language model further; {src.path} is "
            + (f"a {src.method} run" if src.kind == "encoder" else "a classifier")
            + " (pretrain one with --method clm)"
        )
    asked = [k for k, v in unused.items() if v]
    if asked == ["shards"]:
        raise UnlabeledError("--shards trains one classifier per shard of the labels; --objective clm trains one model")
    if asked:
        raise UnlabeledError(f"--{asked[0]} chooses labelled samples; --objective clm trains on every document's text")
    # the architecture comes with the run, and text has no light views: named, not refused
    ignored = [f"--encoder {arch['encoder']}"] if arch["encoder"] not in (None, "transformer") else []
    ignored += [f"--size {arch['size']}"] if arch["size"] is not None else []
    ignored += ["--no-augment"] if not arch["augment"] else []
    if ignored:
        info(f"note: {', '.join(ignored)} ignored: --objective clm trains {src.path}'s own model further")
    return pretrain(task, out, method="clm", init=src, **train)


def classifier_spec(
    recipe: FinetuneRecipe, src: Run | None, col: Collection, positions: np.ndarray, dev: torch.device
) -> RunSpec:
    """The spec of a classifier of ``col``'s classes trained on ``positions``: ``src``'s
    encoder and normalisation when given, else ``recipe``'s architecture from scratch."""
    if src is not None:
        trained_on = src.config["modality"]
        why = (
            " (bench adapts a run's features to other channels; training its encoder needs the shape it was built for)"
        )
        check_same_samples(trained_on, col, f"run {src.path} was trained on", why)
        modality, enc = trained_on, EncoderSpec.from_json({**src.config["encoder"], "weights": "encoder"})
        # the architecture comes with the run: an asked-for other one is named
        other = [f"--encoder {recipe.encoder}"] if recipe.encoder not in (None, enc.name) else []
        other += [f"--size {recipe.size}"] if recipe.size not in (None, enc.size) else []
        if other:
            info(f"note: {', '.join(other)} ignored: the classifier is {src.path}'s {enc.name}-{enc.size} encoder")
    else:
        fitted = fit_modality(col, positions)
        name = "transformer" if fitted.name == "text" else recipe.encoder or default_encoder(fitted.name)
        options = default_options(name, fitted)
        size = recipe.size or default_size(len(positions))
        modality, enc = fitted.state(), EncoderSpec(name, size, tuple(fitted.input_shape), options)
    classes = len(col.classes or []) or int(col.labels.max()) + 1
    where = {"path": str(col.path.resolve()), "fingerprint": col.fingerprint()}
    r = recipe
    return RunSpec(
        kind="classifier",
        data=DataSpec(where["path"], col.name, where["fingerprint"], len(positions), "test"),
        modality=modality,
        encoder=enc,
        objective=ObjectiveSpec("supervised", {"classes": classes, "augment": r.augment}),
        train=TrainConfig(
            batch_size=min(r.batch_size, len(positions)),
            epochs=r.epochs,
            lr=r.lr,
            weight_decay=r.weight_decay,
            seed=r.seed,
            precision=r.precision,
        ),
        task={**where, "classes": col.classes, "samples": len(positions)},
        source_run=None if src is None else str(src.path.resolve()),
        # the source's weights hash, so that forgetting can tell the source changed since
        init=None if src is None else replace(start_point(src), loaded="the encoder"),
        provenance=provenance(dev),
    )


def _top(first: dict[str, Any], train: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A sharded classifier's top-level config entries: the whole run's training settings."""
    return {"train": {**first["train"], **train}, **extra}


def _say_what_resume_ignores(r: FinetuneRecipe, spec: RunSpec, asked: np.ndarray, saved: np.ndarray) -> None:
    """The settings asked for now that differ from those the run was saved with, named; and
    labels drawn now (``asked``, ids) that are not the ones it trains on (``saved``)."""
    say_resume_ignores(
        [
            ("--epochs", r.epochs, saved_budget(spec.train, "epochs"), FinetuneRecipe.epochs),
            ("--batch-size", r.batch_size, spec.train.batch_size, FinetuneRecipe.batch_size),
            *saved_pairs(r, spec.train, ("lr", "weight_decay", "seed")),
            ("--encoder", r.encoder, spec.encoder.name, None),
            ("--size", r.size, spec.encoder.size, None),
        ]
    )
    if set(asked.tolist()) != set(saved.tolist()):
        info(
            f"--resume trains on the run's own {len(saved)} labelled samples; the {len(asked)} that --fraction, "
            "--shots and --seed draw now are ignored"
        )


def _finetune_one(
    recipe: FinetuneRecipe,
    src: Run | None,
    col: Collection,
    positions: np.ndarray,
    where: Where,
    extra: dict[str, Any],
    note: bool = True,
    other_splits: bool = False,
) -> Run:
    """One classifier in ``where.out``: trained anew, or resumed from its checkpoint (its
    recipe and training ids read back from the run, checked against ``col``). ``note``: say
    which classes it cannot learn, and with ``other_splits`` which splits' labels were left
    out, once every refusal has passed (a note before "error: ..." reads as its cause)."""
    out, dev = where.out, dist.local_device(resolve_device(where.device))
    t0 = time.perf_counter()
    with dist.process_group(dev):
        # the old run goes once the new one is known to start (a refusal below kept nothing)
        replace_old = claim_run_dir(out, where.resume, where.overwrite, remove=False)
        prior = 0.0
        if where.resume:
            before = read_config(out / "config.json")
            spec, prior = RunSpec.from_config(before), float(before.get("seconds", 0.0))
            if spec.kind != "classifier" or spec.objective.name != "supervised":
                raise UnlabeledError(f"{out} is not a fine-tuned classifier; resume it with the command that made it")
            if spec.data.fingerprint != col.fingerprint():
                raise UnlabeledError(f"{col.path} is not the collection {out} was trained on")
            asked, positions = positions, training_positions(col, spec, out)
            _say_what_resume_ignores(recipe, spec, col.ids[asked], col.ids[positions])
        else:
            if len(positions) < 2:  # its batch would be one sample (TrainConfig's "batch size must be at least 2")
                raise UnlabeledError(f"finetune needs at least 2 labelled samples to train on, got {len(positions)}")
            spec = classifier_spec(recipe, src, col, positions, dev).replace(extra=extra)
        if other_splits:
            note_other_splits(col)
        if note:
            note_unlearnable(col, positions)
        result = train(spec, col, positions, out, dev, resume=where.resume, replace_old=replace_old)
    if dist.rank() == 0:  # a resumed run adds this call's time to what the calls before it recorded
        result.config["seconds"] = round(prior + time.perf_counter() - t0, 2)
        ckpt.atomic_write_json(out / "config.json", result.config)
    return result
