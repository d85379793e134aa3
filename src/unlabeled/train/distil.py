"""``distil``: a student classifier trained on unlabeled data against a teacher classifier's
soft labels (SimCLRv2's third step: Chen et al. 2020, "Big Self-Supervised Models are Strong
Semi-Supervised Learners"). The teacher is any classifier run (``finetune``, ``forget``, a
student before it); the student is a classifier run like any other, of any encoder and size,
from scratch or from a pretrained run's encoder (``init``), so ``bench``, ``embed`` and
``finetune`` take it (``forget`` refuses it for now: forget from the teacher and distil again).

    student = distil("runs/ft", "data/fmnist", "runs/student", size="tiny")

The teacher's class distributions over the unlabeled samples are computed once, before
training (the one embedding routine, in bf16 where the device has it), and ride along as the
batch's targets; the test split never enters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unlabeled._console import UnlabeledError, samples_of
from unlabeled._settings import check_field_kinds, folder
from unlabeled.data.collection import Collection, open_collection
from unlabeled.modalities import modality_from_state
from unlabeled.models import default_options
from unlabeled.objectives.distil import SELECTIONS, teacher_probs
from unlabeled.runs import Run, check_same_samples, encode, open_run, read_config
from unlabeled.runtime import resolve_device
from unlabeled.train import checkpoint as ckpt
from unlabeled.train import distributed as dist
from unlabeled.train.finetune import outside_bench_test
from unlabeled.train.pretrain import provenance
from unlabeled.train.run import (
    claim_run_dir,
    note_forgotten,
    open_start,
    refuse_out_at,
    run_lock,
    saved_budget,
    saved_pairs,
    say_resume_ignores,
    start_point,
    train,
    training_positions,
)
from unlabeled.train.sampling import Retargeted, SemiSource, labels_on
from unlabeled.train.spec import DataSpec, EncoderSpec, ObjectiveSpec, RunSpec, file_hash, index_hash
from unlabeled.train.trainer import TrainConfig, one_budget

TEMPERATURES = (0.01, 100.0)  # the temperatures distil takes, lowest and highest


@dataclass(frozen=True)
class DistilRecipe:
    """What the user asked of a distillation run; ``None`` is the teacher's (architecture)."""

    encoder: str | None = None
    size: str | None = None
    temperature: float = 1.0
    label_weight: float = 0.0
    epochs: float | None = None
    minutes: float | None = None
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    precision: str = "auto"
    select: str = "all"

    def __post_init__(self) -> None:
        check_field_kinds(self)


def distil(
    teacher: Run | str | os.PathLike[str],
    unlabeled: Collection | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    encoder: str | None = None,
    size: str | None = None,
    init: Run | str | os.PathLike[str] | None = None,
    temperature: float = 1.0,
    label_weight: float = 0.0,
    epochs: float | None = None,
    minutes: float | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    precision: str = "auto",
    select: str = "all",
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
) -> Run:
    """Train a student classifier on ``unlabeled``'s samples (every split but test) to match
    ``teacher``'s class distributions at ``temperature`` (SimCLRv2's distillation loss).

    The student is ``encoder``/``size`` (default: the teacher's), from scratch, or from the
    pretrained run ``init``'s encoder. ``label_weight`` > 0 mixes the one-hot label into the
    target of the samples whose labels the teacher learnt (:meth:`Run.labelled_ids`; SimCLRv2's
    optional label loss, as a weighted sum). ``select="llkd"`` learns only from the samples of
    each batch where the teacher is confident and the student uncertain, weighted by both (after LLKD:
    :class:`~unlabeled.objectives.distil.LLKDSelection`). Trains ``epochs`` passes (default 5) or
    ``minutes``; ``resume`` continues an interrupted run."""
    one_budget(epochs, minutes)
    recipe = DistilRecipe(
        encoder, size, temperature, label_weight, epochs, minutes, batch_size, lr, weight_decay, seed, precision, select
    )
    if recipe.select not in SELECTIONS:
        raise UnlabeledError(f"--select must be {' or '.join(SELECTIONS)}, got {recipe.select!r}")
    if not TEMPERATURES[0] <= recipe.temperature <= TEMPERATURES[1]:  # outside: the logits over the
        # temperature overflow float32 or flatten to a uniform target, and the run learns nothing
        raise UnlabeledError(
            f"--temperature must be between {TEMPERATURES[0]:g} and {TEMPERATURES[1]:g} (SimCLRv2 distils at 1), "
            f"got {recipe.temperature}"
        )
    if not 0.0 <= recipe.label_weight <= 1.0:
        raise UnlabeledError(f"--label-weight must be between 0 and 1, got {recipe.label_weight}")
    out = folder(out)
    dev = dist.local_device(resolve_device(device))
    with run_lock(out), dist.process_group(dev):  # one process writes a run at a time
        col = open_collection(unlabeled)
        if resume:
            claim_run_dir(out, True, False)
            spec, teacher_run, positions = _resumed(out, col)
            _say_what_resume_ignores(recipe, spec, teacher, init)
            recipe, src, replace_old = _saved_recipe(spec), None, False  # the checkpoint holds the weights
        else:
            teacher_run, src = _teacher(teacher, col), open_start(init)
            for other, what in ((teacher_run, "the teacher"), (src, "--init")):
                refuse_out_at(out, other, what, "write the student elsewhere")
            _check_label_weight(teacher_run, col, recipe.label_weight)
            positions = outside_bench_test(col)  # without a split column, bench's carved-out 20% too
            if len(positions) < 2:  # was "batch size must be at least 2", after the teacher's pass
                raise UnlabeledError(
                    f"{col.path} has {len(positions)} sample(s) outside its test split; distil needs 2 or more"
                )
            replace_old = claim_run_dir(out, False, overwrite, remove=False)
            note_forgotten(teacher_run, col, positions)  # with --label-weight its labels are learnt
        targets = soft_targets(teacher_run, col, positions, recipe, dev)
        if not resume:
            spec = student_spec(recipe, teacher_run, src, col, len(positions), dev)
        source = Retargeted(col, targets)
        return train(spec, source, positions, out, dev, resume=resume, replace_old=replace_old)


def _resumed(out: Path, col: Collection) -> tuple[RunSpec, Run, np.ndarray]:
    """The spec, teacher and training positions of the student in ``out``, checked: a student,
    on this collection, whose teacher's weights are the ones it started with."""
    spec = RunSpec.from_config(read_config(out / "config.json"))
    record = spec.extra.get("teacher")
    if spec.objective.name != "distil" or record is None:
        raise UnlabeledError(f"{out} is not a distilled student; resume it with the command that made it")
    if spec.data.fingerprint != col.fingerprint():
        raise UnlabeledError(f"{col.path} is not the collection {out} was trained on")
    teacher = _teacher(record["run"], col)
    weights = teacher.path / ckpt.MODEL_FILE
    if record.get("weights") and (not weights.exists() or file_hash(weights) != record["weights"]):
        raise UnlabeledError(f"the teacher {teacher.path} changed since {out} started; distil again with --overwrite")
    return spec, teacher, training_positions(col, spec, out)


def _check_label_weight(teacher: Run, col: Collection, weight: float) -> None:
    """Labels are mixed in only where the teacher saw them: a teacher fine-tuned or self-trained
    on this very collection (a student's training ids are the whole pool, not labels it saw)."""
    if weight == 0:
        return
    task, method = teacher.config.get("task") or {}, teacher.config["method"]["name"]
    if method not in ("supervised", "fixmatch") or task.get("fingerprint") != col.fingerprint():
        raise UnlabeledError(
            f"--label-weight needs a teacher fine-tuned or self-trained on {col.path} itself (`unlabeled finetune`, "
            "`unlabeled selftrain`): the labels mixed in are those of the samples it learnt with their labels"
        )
    index = (teacher.config.get("data") or {}).get("index")  # ids, labels and splits (runs since its hash)
    # a self-trained teacher read the collection with only its labelled samples' labels
    seen = col if method == "supervised" else SemiSource(col, labels_on(col, col.positions(teacher.labelled_ids())))
    if index is not None and index != index_hash(seen):
        raise UnlabeledError(
            f"--label-weight: {col.path}'s labels or splits changed since the teacher {teacher.path} was trained on "
            "them (its samples did not); the labels mixed in would not be those it saw"
        )


def _say_what_resume_ignores(r: DistilRecipe, spec: RunSpec, teacher: Any, init: Any) -> None:
    """The settings asked for now that differ from those the student was saved with, named
    (another teacher among them: the saved one's targets are the ones it learns)."""
    saved_teacher = Path(spec.extra["teacher"]["run"])
    asked_teacher = Path(teacher.path if isinstance(teacher, Run) else teacher).resolve()
    say_resume_ignores(
        [
            ("the teacher", asked_teacher, saved_teacher, saved_teacher),
            ("--init", None if init is None else str(getattr(init, "path", init)), "its checkpoint", None),
            ("--temperature", r.temperature, spec.objective.options.get("temperature"), DistilRecipe.temperature),
            ("--label-weight", r.label_weight, spec.extra["teacher"].get("label_weight"), DistilRecipe.label_weight),
            ("--select", r.select, spec.objective.options.get("select", "all"), DistilRecipe.select),
            ("--epochs", r.epochs, saved_budget(spec.train, "epochs"), None),
            ("--minutes", r.minutes, saved_budget(spec.train, "minutes"), None),
            *saved_pairs(r, spec.train, ("batch_size", "lr", "weight_decay", "seed")),
            ("--encoder", r.encoder, spec.encoder.name, None),
            ("--size", r.size, spec.encoder.size, None),
        ]
    )


def _saved_recipe(spec: RunSpec) -> DistilRecipe:
    """The recipe of a saved student: what its soft targets are recomputed with on resume."""
    t = spec.extra["teacher"]
    return DistilRecipe(
        temperature=float(spec.objective.options["temperature"]),
        label_weight=float(t["label_weight"]),
        precision=spec.train.precision,  # the teacher's outputs in the precision they were first made in
    )


def _teacher(teacher: Run | str | os.PathLike[str], col: Collection) -> Run:
    """The teacher run, checked: a classifier, of ``col``'s kind of samples and classes."""
    run = open_run(teacher)
    if run.kind != "classifier":
        raise UnlabeledError(
            f"the teacher {run.path} is a pretraining run; make a classifier to distil from with `unlabeled finetune`"
        )
    trained_on = run.config["modality"]
    check_same_samples(trained_on, col, f"the teacher {run.path} reads")
    classes = (run.config.get("task") or {}).get("classes")
    if col.classes and classes and list(col.classes) != list(classes):
        raise UnlabeledError(
            f"the teacher {run.path} knows the classes {', '.join(classes)}; {col.path} has {', '.join(col.classes)}"
        )
    return run


class _Logits(nn.Module):
    """A classifier seen by the one embedding routine: its "embedding" is its logits."""

    def __init__(self, classifier: nn.Module, classes: int) -> None:
        super().__init__()
        self.classifier, self.dim = classifier, classes

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)


def soft_targets(
    teacher: Run, col: Collection, positions: np.ndarray, recipe: DistilRecipe, dev: torch.device
) -> np.ndarray:
    """One target distribution per sample of ``col`` (rows outside ``positions`` stay zero):
    the teacher's at the recipe's temperature, mixed with the one-hot label by
    ``label_weight`` on the samples whose labels the teacher learnt."""
    classes = int(teacher.config["method"]["classes"])
    logits = encode(  # in the student's precision: an fp32 run computes nothing in bf16
        _Logits(teacher.classifier(), classes),
        teacher.modality(),
        col,
        positions,
        device=dev,
        description="teacher",
        precision=recipe.precision,
    )
    targets = np.zeros((len(col), classes), dtype=np.float32)
    targets[positions] = teacher_probs(torch.from_numpy(logits), recipe.temperature).numpy()
    if recipe.label_weight > 0 and col.labels is not None:
        known = np.intersect1d(col.positions(teacher.labelled_ids()), positions)
        known = known[(col.labels[known] >= 0) & (col.labels[known] < classes)]
        onehot = np.eye(classes, dtype=np.float32)[col.labels[known]]
        targets[known] = recipe.label_weight * onehot + (1 - recipe.label_weight) * targets[known]
    return targets


def student_spec(
    recipe: DistilRecipe, teacher: Run, src: Run | None, col: Collection, samples: int, dev: torch.device
) -> RunSpec:
    """The student's spec: the teacher's normalisation and classes; the encoder of ``src``
    (a pretrained run) or the recipe's architecture (default: the teacher's), from scratch."""
    t = teacher.config
    if src is not None:
        # the modality too: an audio run's (1, N) waveforms are a univariate series' shape
        mine, theirs = src.config["modality"], t["modality"]
        if (mine["name"], mine["sample_shape"]) != (theirs["name"], theirs["sample_shape"]):
            raise UnlabeledError(
                f"--init {src.path} was pretrained on other samples than the teacher's: "
                f"{samples_of(mine['name'], mine['sample_shape'])}, against "
                f"{samples_of(theirs['name'], theirs['sample_shape'])}"
            )
        modality, enc = src.config["modality"], EncoderSpec.from_json({**src.config["encoder"], "weights": "encoder"})
    else:
        name, size = recipe.encoder or t["encoder"]["name"], recipe.size or t["encoder"]["size"]
        modality = t["modality"]
        if name == t["encoder"]["name"]:
            options = dict(t["encoder"].get("options", {}))
        else:
            options = default_options(name, modality_from_state(modality))
        enc = EncoderSpec(name, size, tuple(t["encoder"]["sample_shape"]), options)
    epochs = recipe.epochs if recipe.epochs is not None or recipe.minutes is not None else 5.0
    cfg = TrainConfig(
        batch_size=min(recipe.batch_size, samples),
        epochs=epochs,
        minutes=recipe.minutes,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        seed=recipe.seed,
        precision=recipe.precision,
    )
    where = {"path": str(col.path.resolve()), "fingerprint": col.fingerprint()}
    classes = int(t["method"]["classes"])
    teacher_record = {
        "run": str(teacher.path.resolve()),
        "step": teacher.step,
        "weights": file_hash(teacher.path / ckpt.MODEL_FILE) if (teacher.path / ckpt.MODEL_FILE).exists() else None,
        "label_weight": recipe.label_weight,
    }
    return RunSpec(
        kind="classifier",
        data=DataSpec(where["path"], col.name, where["fingerprint"], samples, "test"),
        modality=modality,
        encoder=enc,
        objective=ObjectiveSpec(
            "distil",
            {"classes": classes, "temperature": recipe.temperature}
            | ({"select": recipe.select} if recipe.select != "all" else {}),
        ),
        train=cfg,
        task={**where, "classes": (t.get("task") or {}).get("classes"), "samples": samples},
        source_run=None if src is None else str(src.path.resolve()),
        # the --init weights' hash, as finetune records it: a student killed before its first
        # checkpoint checks on restart that they are still the ones it started from
        init=None if src is None else replace(start_point(src), loaded="the encoder"),
        provenance=provenance(dev),
        extra={"teacher": teacher_record},
    )
