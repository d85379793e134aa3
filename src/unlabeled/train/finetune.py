"""``finetune``: a classifier (encoder + linear head) trained on a labelled task, through the
one Trainer. From a pretrained run its encoder and normalisation are the starting point
(full fine-tuning); without one, the same architecture is trained from scratch (the
supervised baseline). The run records which sample ids it was trained on
(``training-ids.txt``), which is what ``forget`` removes from.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError, info
from unlabeled._version import __version__
from unlabeled.data.collection import NO_LABEL, Collection, open_collection
from unlabeled.modalities import fit_modality, modality_from_state
from unlabeled.models import build_encoder, default_options
from unlabeled.objectives.supervised import Supervised
from unlabeled.runs import SHARDS, TRAINING_IDS, Run, open_run, resolve_device, shard_split, write_ids
from unlabeled.train import checkpoint as ckpt
from unlabeled.train import distributed as dist
from unlabeled.train.pretrain import claim_run_dir, default_size, environment
from unlabeled.train.trainer import TrainConfig, Trainer


def labelled_train(task: Collection) -> np.ndarray:
    """Positions of the task's labelled samples outside its test split."""
    if not task.has_labels():
        raise UnlabeledError(f"{task.path} has no labels; fine-tuning needs a labelled task")
    return np.intersect1d(task.indices(exclude="test"), np.flatnonzero(task.labels != NO_LABEL))


def finetune(
    run: Run | str | os.PathLike[str] | None,
    task: Collection | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    positions: np.ndarray | None = None,
    epochs: float = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    encoder: str = "cnn",
    size: str | None = None,
    device: str = "auto",
    shards: int = 1,
    augment: bool = True,
    extra_config: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Run:
    """Fine-tune ``run``'s encoder with a linear head on ``task``'s labelled train samples (or
    on ``positions``), or train ``encoder``/``size`` from scratch when ``run`` is None.

    ``shards`` > 1 trains SISA-style (Bourtoule et al. 2021, "Machine Unlearning"): the
    samples are split at random into that many disjoint shards, one classifier is trained on
    each in ``OUT/shards/NN`` with the same recipe, and the prediction averages their
    probabilities; forgetting then retrains only the shards that held the forgotten samples.
    ``augment=False`` trains on the samples as they are (no light crops/noise)."""
    if shards > 1:
        return _finetune_sharded(
            run,
            task,
            out,
            positions=positions,
            shards=shards,
            extra_config=extra_config,
            overwrite=overwrite,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            seed=seed,
            encoder=encoder,
            size=size,
            augment=augment,
            device=device,
        )
    out = Path(out)
    dev = dist.local_device(resolve_device(device))
    t0 = time.perf_counter()
    with dist.process_group(dev):
        col = open_collection(task)
        pos = labelled_train(col) if positions is None else np.sort(np.asarray(positions, dtype=np.int64))
        if not len(pos):
            raise UnlabeledError(f"{col.path}: no labelled samples to train on")
        claim_run_dir(out, False, overwrite)
        if run is not None:
            src = open_run(run)
            trained_on = src.config["modality"]
            if trained_on["name"] != col.modality or tuple(trained_on["sample_shape"]) != col.sample_shape:
                raise UnlabeledError(f"run {src.path} was trained on other samples than {col.path}'s")
            modality = modality_from_state(trained_on)
            enc_cfg = dict(src.config["encoder"], weights="encoder")
            enc = src.encoder().train()
        else:
            src = None
            modality = fit_modality(col, pos)
            options = default_options(encoder, modality.patch)
            enc_cfg = {
                "name": encoder,
                "size": size or default_size(len(pos)),
                "weights": "encoder",
                "sample_shape": list(modality.input_shape),
                "options": options,
            }
            enc = build_encoder(enc_cfg["name"], enc_cfg["size"], tuple(enc_cfg["sample_shape"]), **options)
        classes = len(col.classes or []) or int(col.labels.max()) + 1
        objective = Supervised(enc, modality, classes, augment=augment)
        cfg = TrainConfig(
            batch_size=min(batch_size, len(pos)), epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed
        )
        config = {
            "unlabeled": __version__,
            "kind": "classifier",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv),
            "source_run": None if src is None else str(src.path.resolve()),
            "task": {
                "path": str(col.path.resolve()),
                "fingerprint": col.fingerprint(),
                "classes": col.classes,
                "samples": len(pos),
            },
            "data": {
                "path": str(col.path.resolve()),
                "name": col.name,
                "fingerprint": col.fingerprint(),
                "samples": len(pos),
                "exclude_split": "test",
            },
            "modality": modality.state(),
            "encoder": enc_cfg,
            "method": {"name": objective.name, **objective.hparams()},
            "train": asdict(cfg),
            "environment": environment(dev),
            **(extra_config or {}),
        }
        dist.barrier()
        if dist.rank() == 0:
            out.mkdir(parents=True, exist_ok=True)
            write_ids(out / TRAINING_IDS, col.ids[pos])
            ckpt.atomic_write_json(out / "config.json", config)
        start = "from scratch" if src is None else f"from {src.path}"
        info(
            f"finetune {enc_cfg['name']}-{enc_cfg['size']} {start} on {col.name}: {len(pos)} labelled samples, "
            f"{classes} classes, device {dev}"
        )
        trainer = Trainer(objective, col, pos, cfg, out, dev)
        summary = trainer.fit()
        del trainer
    result = Run(out)
    if dist.rank() == 0:
        result.config["seconds"] = round(time.perf_counter() - t0, 2)
        ckpt.atomic_write_json(out / "config.json", result.config)
    info(f"done: {summary['steps']} steps in {summary['seconds']:.0f} s -> {out}")
    return result


def _finetune_sharded(
    run: Run | str | os.PathLike[str] | None,
    task: Collection | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    positions: np.ndarray | None,
    shards: int,
    extra_config: dict[str, Any] | None,
    overwrite: bool,
    **recipe: Any,
) -> Run:
    out = Path(out)
    t0 = time.perf_counter()
    col = open_collection(task)
    pos = labelled_train(col) if positions is None else np.sort(np.asarray(positions, dtype=np.int64))
    parts = shard_split(pos, shards, recipe["seed"])
    claim_run_dir(out, False, overwrite)
    for s, part in enumerate(parts):
        info(f"shard {s + 1}/{shards}: {len(part)} samples")
        finetune(run, col, out / SHARDS / f"{s:02d}", positions=part, overwrite=True, **recipe)
    first = Run(out / SHARDS / "00")
    train = {k: recipe[k] for k in ("epochs", "batch_size", "lr", "weight_decay", "seed")}
    config = {
        **first.config,
        "sisa": {"shards": shards},
        "train": {**first.config["train"], **train},
        "seconds": round(time.perf_counter() - t0, 2),
        **(extra_config or {}),
    }
    config["task"] = {**config["task"], "samples": len(pos)}
    write_ids(out / TRAINING_IDS, col.ids[pos])
    ckpt.atomic_write_json(out / "config.json", config)
    return Run(out)
