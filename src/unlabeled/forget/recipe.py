"""Retraining a run exactly: its recipe read back from its config, run again on what is kept.
The one place that calls ``finetune`` and ``pretrain`` for forgetting."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError
from unlabeled.data.collection import Collection
from unlabeled.models import saved_options
from unlabeled.runs import Run, shard_split
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.finetune import finetune
from unlabeled.train.pretrain import default_batch, pretrain


def trained_origin(run: Run) -> Run:
    """The run whose recipe retrains ``run``: ``run`` itself, or for the output of an
    approximate forget request (its config's method and training are the unlearning's), the
    run it was unlearned from, followed back to one that was trained."""
    while isinstance(run.config.get("method", {}).get("unlearning"), str):
        source = run.config.get("forget", {}).get("source")
        if not source or not (Path(source) / "config.json").exists():
            raise UnlabeledError(
                f"{run.path} was unlearned from {source}, which is gone: its training recipe cannot be read"
            )
        run = Run(source)
    return run


def origin_training(run: Run) -> dict[str, Any]:
    """The training settings (``config["train"]``) of the run that trained ``run``
    (:func:`trained_origin`): an approximate request's own are the unlearning's (a batch of at
    most the forget set, a few epochs), which a further request read as the model's, its batches
    and retain epochs shrinking with each request chained. Where that run is gone, ``run``'s own."""
    try:
        return dict(trained_origin(run).config["train"])
    except UnlabeledError:
        return dict(run.config["train"])


def recipe(run: Run, kept: int, smallest: int | None = None) -> dict[str, Any]:
    """The keyword arguments that train ``run`` again on ``kept`` samples: ``finetune``'s for
    a classifier, ``pretrain``'s for an encoder (for a sharded encoder, its first shard's
    recipe, for as many steps as the original took, the samples split between the shards);
    an unlearned run's are those of the run it was unlearned from (:func:`trained_origin`).
    ``smallest``: the smallest shard the kept samples make, which a saved batch must fit."""
    run = trained_origin(run)
    if run.kind == "classifier":
        train, enc = run.config["train"], run.config["encoder"]
        return {
            "epochs": train["epochs"],
            "batch_size": train["batch_size"],
            "lr": train["lr"],
            "weight_decay": train["weight_decay"],
            "seed": train["seed"],
            "precision": train.get("precision", "auto"),
            "encoder": enc["name"],
            "size": enc["size"],
            "augment": bool(run.config["method"].get("augment", True)),
        }
    one = run.shards()[0] if "sisa" in run.config else run
    train = one.config["train"]
    state = one.path / ckpt.STATE_FILE
    steps = int(ckpt.load_state(state)["step"]) if state.exists() else int(train["total_steps"])
    shards = int(run.config.get("sisa", {}).get("shards", 1))
    # the saved batch, unless what is kept is too small for it (a small set whose batch was
    # fitted to it, like pretrain's default): then the batch pretrain would fit to the rest
    batch = min(int(train["batch_size"]), default_batch(smallest or kept // shards))
    per_epoch = max(1, kept // (batch * shards))
    return {
        "method": one.config["method"]["name"],
        "encoder": one.config["encoder"]["name"],
        "size": one.config["encoder"]["size"],
        "epochs": steps / per_epoch,
        "batch_size": batch,
        "lr": train["lr"],
        "weight_decay": train["weight_decay"],
        "seed": int(train["seed"]),
        "precision": train.get("precision", "auto"),
        "method_options": {k: v for k, v in one.config["method"].items() if k != "name"},
        "encoder_options": saved_options(one.config["encoder"]),
        "augment": one.config["modality"]["augment"],
    }


def retrain(
    run: Run,
    task: Collection,
    kept: np.ndarray,
    out: str | os.PathLike[str],
    *,
    device: str,
    overwrite: bool,
    extra_config: dict[str, Any] | None = None,
    start: Run | None = None,
) -> Run:
    """``run``'s recipe on the samples at ``kept``, from the same starting point (sharded
    again if the run was) into ``out``, or from ``start`` (an ancestor retrained in its
    place: :mod:`unlabeled.forget.lineage`). ``extra_config`` goes into a classifier's config
    as ``finetune`` writes it (pretrain takes none: the caller records it afterwards)."""
    run = trained_origin(run)
    shards = int(run.config.get("sisa", {}).get("shards", 1))
    smallest = min(len(p) for p in shard_split(kept, shards, int(run.config["train"]["seed"]))) if shards > 1 else None
    options = recipe(run, len(kept), smallest)
    common = {"positions": kept, "shards": shards, "device": device, "overwrite": overwrite}
    if run.kind == "classifier":
        source = run.config.get("source_run") if start is None else start
        return finetune(source, task, out, extra_config=extra_config, **common, **options)
    # an encoder that continued pretraining from another run (--init) starts from it again
    init = (run.config.get("init") or {}).get("run") if start is None else start
    return pretrain(task, out, exclude_split=None, init=init, **common, **options)
