"""``pretrain``: collection -> modality -> encoder + objective -> Trainer -> Run."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlabeled._console import UnlabeledError, info
from unlabeled._version import __version__
from unlabeled.data.collection import Collection, open_collection
from unlabeled.modalities import fit_modality, modality_from_state
from unlabeled.modalities.base import Modality
from unlabeled.models import build_encoder, default_options, saved_options
from unlabeled.objectives import build_objective
from unlabeled.objectives.base import Objective
from unlabeled.runs import (
    SHARDS,
    TRAINING_IDS,
    Run,
    encoder_weights,
    open_run,
    read_ids,
    resolve_device,
    shard_split,
    write_ids,
)
from unlabeled.train import checkpoint as ckpt
from unlabeled.train import distributed as dist
from unlabeled.train.trainer import TrainConfig, Trainer

DEFAULT_MINUTES = 10.0
DEFAULT_BATCH = 128
TRANSFORMER_LR = 1e-3
TRANSFORMER_WEIGHT_DECAY = 0.05
TCN_LR = 1e-3  # TS2Vec's rate for its dilated convolutions


def default_batch(samples: int, world: int = 1) -> int:
    """Samples per step per process when none is given: 128, or for a training set too small to
    give every process a batch of 128, the largest power of two that does (a UCR set such as
    GunPoint has 50 training series). Below 2 samples per process there is no batch to make:
    128 is returned and the trainer reports the set as too small."""
    per = samples // max(world, 1)
    return DEFAULT_BATCH if per >= DEFAULT_BATCH or per < 2 else 1 << (per.bit_length() - 1)


def claim_run_dir(out: Path, resume: bool, overwrite: bool, remove: bool = True) -> bool:
    """Check that ``out`` can take a new run (or holds one to resume); with ``overwrite``
    remove the run there (rank 0, after every rank has looked), or with ``remove=False`` leave
    that to :func:`remove_run_dir` once the caller knows the new run can start. Returns whether
    an old run is to be replaced."""
    has_run = (out / "config.json").exists()
    if resume and not has_run:
        raise UnlabeledError(f"nothing to resume: {out} holds no run")
    if has_run and not resume:
        if not overwrite:
            raise UnlabeledError(f"{out} already holds a run; pass --resume to continue it or --overwrite")
        if remove:
            remove_run_dir(out)
        return True
    return False


def remove_run_dir(out: Path) -> None:
    """Remove the run in ``out`` (rank 0, after every rank has looked)."""
    dist.barrier()
    if dist.rank() == 0:
        shutil.rmtree(out)


def environment(dev: torch.device) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(dev),
        "world_size": dist.world_size(),
    }


def default_encoder(modality: str, method: str) -> str:
    """The CNN for images; for series, the dilated convolutions (``tcn``) under the contrastive
    objectives (on the UCR sets they beat the transformer by 5-20 points of linear-probe
    accuracy, BENCHMARKS.md); the patch-token transformer for everything else and for the
    masked objectives, which need patch tokens. ``ts2vec`` always takes the ``tcn``."""
    if method == "ts2vec" or (modality == "series" and method == "simclr"):
        return "tcn"
    return "cnn" if modality == "image" else "transformer"


def default_size(n: int) -> str:
    """Encoder size from the amount of data: small data overfits large encoders."""
    return "tiny" if n < 200_000 else "small" if n < 2_000_000 else "base"


def init_encoder(
    src: Run, modality: Modality, encoder: str | None, size: str | None, options: dict[str, Any] | None
) -> tuple[str, str, dict[str, Any]]:
    """Encoder name, size and options of a run that continues pretraining from ``src``: its
    own, with ``options`` over them (those that leave the weights' shapes alone, such as
    ``pool``, may change; the rest must fit the weights)."""
    if "sisa" in src.config or src.kind != "encoder":
        raise UnlabeledError(f"--init takes a single pretraining run; {src.path} is a sharded run or a classifier")
    if src.config["modality"]["name"] != modality.name:
        raise UnlabeledError(
            f"--init {src.path} was pretrained on {src.config['modality']['name']} data, not {modality.name}"
        )
    cfg = src.config["encoder"]
    for given, have, what in ((encoder, cfg["name"], "encoder"), (size, cfg["size"], "size")):
        if given is not None and given != have:
            raise UnlabeledError(f"--init {src.path} holds a {have} encoder; drop --{what} {given}")
    return cfg["name"], cfg["size"], {**saved_options(cfg), **(options or {})}


def start_from(objective: Objective, src: Run) -> str:
    """Load ``src``'s weights into ``objective``: every weight when the saved state fits it
    (same method and settings: the heads go on too), else the encoder alone. Returns which."""
    weights = src.weights()
    own = objective.state_dict()
    try:
        if weights.keys() == own.keys() and all(weights[k].shape == own[k].shape for k in own):
            objective.load_state_dict(weights)
            return "every weight"
        objective.load_encoder(encoder_weights(weights, src.config["encoder"].get("weights", "encoder")))
    except RuntimeError as e:
        reason = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e))
        raise UnlabeledError(
            f"--init {src.path}: its encoder (inputs {tuple(src.config['encoder']['sample_shape'])}) does not fit "
            f"inputs {tuple(objective.modality.input_shape)}: {reason}"
        ) from None
    return "the encoder"


def pretrain(
    data: Collection | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    method: str = "simclr",
    encoder: str | None = None,
    size: str | None = None,
    minutes: float | None = None,
    epochs: float | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    seed: int = 0,
    precision: str = "auto",
    device: str = "auto",
    exclude_split: str | None = "test",
    method_options: dict[str, Any] | None = None,
    encoder_options: dict[str, Any] | None = None,
    augment: dict[str, Any] | None = None,
    checkpoint_steps: int = 0,
    snapshot_seconds: float = 0.0,
    compile: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    positions: np.ndarray | None = None,
    shards: int = 1,
    init: Run | str | os.PathLike[str] | None = None,
) -> Run:
    """Pretrain an encoder on ``data`` without labels; returns the :class:`Run` in ``out``.

    Trains for ``minutes`` of wall time or ``epochs`` passes (default: 10 minutes). Samples
    in split ``exclude_split`` (the test split) are never trained on. With ``resume`` the run
    in ``out`` continues from its last checkpoint with its saved settings.
    ``encoder`` is ``cnn``, ``transformer`` or ``tcn`` (dilated convolutions over time, for
    series; default: :func:`default_encoder`); ``encoder_options`` go to it (e.g.
    ``{"patch": [7, 7]}``).
    ``method_options`` go to the objective (e.g. ``{"temperature": 0.2}``); ``augment``
    changes the modality's augmentation (e.g. ``{"blur_p": 0.5}``).
    ``positions`` trains on those samples of ``data`` only (recorded as the run's training
    ids). ``shards`` > 1 pretrains SISA-style (Bourtoule et al. 2021): one encoder per
    disjoint random shard in ``OUT/shards/NN``, each with the same recipe (a time budget is
    split between them), whose embeddings are concatenated; ``forget --method sisa`` then
    retrains only the shards that held the forgotten samples.
    ``init`` continues pretraining from another run's weights on this data (domain-adaptive
    pretraining: a general encoder, say one pretrained on many sets, adapted to one of them;
    Gururangan et al. 2020, "Don't Stop Pretraining"): the new run takes that run's encoder,
    size and options, every weight when the method and its settings are the same, else the
    encoder alone; the data may differ in length but not in channels.
    ``batch_size`` is per process; by default 128, fewer for a small training set
    (:func:`default_batch`)."""
    if shards > 1:
        return _pretrain_sharded(**{k: v for k, v in locals().items() if k != "shards"}, shards=shards)
    out = Path(out)
    dev = dist.local_device(resolve_device(device))
    with dist.process_group(dev):
        col = open_collection(data)
        if init is not None and resume:
            info("--init is ignored with --resume: the run continues from its own checkpoint")
        src = None if init is None or resume else open_run(init)
        if src is not None and src.path.resolve() == out.resolve():
            raise UnlabeledError(f"--init and --out are both {out}; continue a run in place with --resume")
        # with --overwrite the old run goes only once the new one is known to start
        replace = claim_run_dir(out, resume, overwrite, remove=False)

        if resume:
            config = json.loads((out / "config.json").read_text())
            cfg = TrainConfig(**config["train"])
            modality = modality_from_state(config["modality"])
            exclude = config["data"]["exclude_split"]
            if config["data"]["fingerprint"] != col.fingerprint():
                raise UnlabeledError(f"{col.path} is not the collection {out} was trained on")
        else:
            if minutes is None and epochs is None:
                minutes = DEFAULT_MINUTES
            cfg = TrainConfig(
                batch_size=DEFAULT_BATCH if batch_size is None else batch_size,
                epochs=epochs,
                minutes=minutes,
                seed=seed,
                precision=precision,
                checkpoint_steps=checkpoint_steps,
                snapshot_seconds=snapshot_seconds,
                compile=compile,
            )
            if lr is not None:
                cfg.lr = lr
            if weight_decay is not None:
                cfg.weight_decay = weight_decay
            exclude = exclude_split
        ids_file = out / TRAINING_IDS
        if resume and ids_file.exists():
            positions = col.positions(read_ids(ids_file))
        elif positions is not None:
            positions = np.sort(np.asarray(positions, dtype=np.int64))
        else:
            positions = col.indices(exclude=exclude)
        if not resume:
            if batch_size is None and (fit := default_batch(len(positions), dist.world_size())) != DEFAULT_BATCH:
                cfg.batch_size = fit
                info(
                    f"batch {fit}: {len(positions)} training samples are fewer than the default batch of "
                    f"{DEFAULT_BATCH} per process"
                )
            modality = fit_modality(col, positions, augment)
            if src is not None:
                encoder, size, encoder_options = init_encoder(src, modality, encoder, size, encoder_options)
            size = size or default_size(len(positions))
            encoder = encoder or default_encoder(modality.name, method)
            enc_options = default_options(encoder, modality.patch, encoder_options, method)
            if encoder == "transformer":
                # transformer recipes (ViT, MAE, I-JEPA) train with a lower peak rate and
                # stronger weight decay than the CNN's defaults
                cfg.lr = lr if lr is not None else TRANSFORMER_LR
                cfg.weight_decay = weight_decay if weight_decay is not None else TRANSFORMER_WEIGHT_DECAY
            elif encoder == "tcn":
                cfg.lr = lr if lr is not None else TCN_LR
            config = {
                "unlabeled": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": " ".join(sys.argv),
                "data": {
                    "path": str(col.path.resolve()),
                    "name": col.name,
                    "fingerprint": col.fingerprint(),
                    "samples": len(positions),
                    "exclude_split": exclude,
                },
                "modality": modality.state(),
                "encoder": {
                    "name": encoder,
                    "size": size,
                    "sample_shape": list(modality.input_shape),
                    "options": enc_options,
                },
                "method": {"name": method, **(method_options or {})},
                "train": asdict(cfg),
                "environment": environment(dev),
            }
            if src is not None:
                config["init"] = {"run": str(src.path.resolve()), "step": src.step}

        torch.manual_seed(cfg.seed)
        enc_cfg = config["encoder"]
        enc = build_encoder(enc_cfg["name"], enc_cfg["size"], tuple(enc_cfg["sample_shape"]), **saved_options(enc_cfg))
        hparams = {k: v for k, v in config["method"].items() if k != "name"}
        objective = build_objective(config["method"]["name"], enc, modality, **hparams)
        config["method"] = {"name": objective.name, **objective.hparams()}
        config["encoder"]["weights"] = objective.export  # the submodule downstream stages load
        if src is not None:
            config["init"]["loaded"] = start_from(objective, src)
            info(f"starting from {src.path} (step {src.step}): {config['init']['loaded']}")
        # built before anything is written, so that a run it refuses (a batch larger than the
        # training set, say) leaves no folder behind to --overwrite
        trainer = Trainer(objective, col, positions, cfg, out, dev)
        if replace:
            remove_run_dir(out)
        dist.barrier()  # every rank has checked `out` before rank 0 writes into it
        if not resume and dist.rank() == 0:
            out.mkdir(parents=True, exist_ok=True)
            if len(positions) != len(col.indices(exclude=exclude)):  # a subset: say which samples
                write_ids(ids_file, col.ids[positions])
            ckpt.atomic_write_json(out / "config.json", config)
        info(
            f"pretrain {objective.name} on {col.name}: {len(positions)} samples, "
            f"{enc_cfg['name']}-{enc_cfg['size']} encoder "
            f"({sum(p.numel() for p in enc.parameters()) / 1e6:.2f}M parameters), device {dev}"
        )
        summary = trainer.fit(resume=resume)
        del trainer  # its DDP wrapper must go before the process group does
        info(f"done: {summary['steps']} steps in {summary['seconds']:.0f} s -> {out}")
        return Run(out)


def _pretrain_sharded(
    data: Collection | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    shards: int,
    positions: np.ndarray | None,
    exclude_split: str | None,
    minutes: float | None,
    resume: bool,
    overwrite: bool,
    seed: int,
    **recipe: Any,
) -> Run:
    """One pretraining run per SISA shard in ``OUT/shards/NN``; a resumed run finishes the
    shards that did not."""
    out = Path(out)
    t0 = time.perf_counter()
    col = open_collection(data)
    pos = col.indices(exclude=exclude_split) if positions is None else np.sort(np.asarray(positions))
    parts = shard_split(pos, shards, seed)
    if recipe.get("batch_size") is None:  # one batch for every shard, fitted to the smallest
        recipe["batch_size"] = default_batch(min(len(p) for p in parts), dist.world_size())
    # the top-level config is written last, so an interrupted run has only shard folders:
    # claim the folder as new then, and still resume the shards below
    claim_run_dir(out, resume and (out / "config.json").exists(), overwrite)
    if minutes is None and recipe.get("epochs") is None:
        minutes = DEFAULT_MINUTES
    for s, part in enumerate(parts):
        shard = out / SHARDS / f"{s:02d}"
        if resume and (shard / "config.json").exists() and Run(shard).finished:
            continue
        info(f"shard {s + 1}/{shards}: {len(part)} samples")
        again = resume and (shard / ckpt.STATE_FILE).exists()
        pretrain(
            col,
            shard,
            positions=part,
            exclude_split=exclude_split,
            seed=seed,
            resume=again,
            overwrite=not again,
            minutes=None if minutes is None else minutes / shards,
            **recipe,
        )
    first = Run(out / SHARDS / "00")
    config = {**first.config, "sisa": {"shards": shards}, "seconds": round(time.perf_counter() - t0, 2)}
    config["data"] = {**config["data"], "samples": len(pos)}
    write_ids(out / TRAINING_IDS, col.ids[pos])
    ckpt.atomic_write_json(out / "config.json", config)
    return Run(out)
