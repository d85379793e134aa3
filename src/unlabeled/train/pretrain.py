"""``pretrain``: collection -> modality -> encoder + objective -> Trainer -> Run."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlabeled._console import UnlabeledError, info
from unlabeled._settings import as_settings, folder
from unlabeled._version import __version__
from unlabeled.data.collection import Collection, check_split_name, open_collection
from unlabeled.data.mixture import Mix, Mixture, plan_mix
from unlabeled.modalities import fit_modality
from unlabeled.modalities.base import Modality
from unlabeled.models import check_encoder_options, default_options, saved_options
from unlabeled.objectives import (
    LABELLED,
    PRETRAINING,
    TEXT_OBJECTIVES,
    check_method_options,
    check_pretraining_method,
    self_distil,
)
from unlabeled.runs import Run, open_run, read_config, shard_split
from unlabeled.runtime import resolve_device
from unlabeled.train import distributed as dist
from unlabeled.train.run import (
    check_shards,
    claim_run_dir,
    claim_sharded,
    environment,
    option_pairs,
    put_back,
    run_lock,
    saved_budget,
    say_resume_ignores,
    start_point,
    train,
    train_positions,
    train_shards,
    training_positions,
)
from unlabeled.train.spec import DataSpec, EncoderSpec, ObjectiveSpec, RunSpec
from unlabeled.train.trainer import TrainConfig, one_budget

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


def default_method(data: Collection | str | os.PathLike[str]) -> str:
    """SimCLR, which measured best for images and series; masked language modelling for text."""
    return "mlm" if open_collection(data).modality == "text" else "simclr"


TOKEN_METHODS = ("mae", "jepa")  # the masked objectives: they hide and predict patch tokens


def default_encoder(modality: str, method: str = "supervised") -> str:
    """The CNN for images; for series, the dilated convolutions (``tcn``) under the contrastive
    objectives and for classifiers (on the UCR sets they beat the transformer by 5-20 points of
    linear-probe accuracy, BENCHMARKS.md); the patch-token transformer for everything else and
    for the masked objectives, which need patch tokens. ``ts2vec`` always takes the ``tcn``."""
    if method in TOKEN_METHODS:
        return "transformer"
    if method == "ts2vec" or (modality == "series" and method in ("simclr", "supervised", "fixmatch")):
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


def pretrain(
    data: Collection | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    method: str | None = None,
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
    mix: Mapping[str | os.PathLike[str], float] | str | None = None,
    upsample_last: tuple[float, Mapping[str | os.PathLike[str], float]] | str | None = None,
) -> Run:
    """Pretrain an encoder on ``data`` without labels; returns the :class:`Run` in ``out``.

    ``method``: the objective (default :func:`default_method`: ``simclr``, or ``mlm`` for text).
    Trains for ``minutes`` of wall time or ``epochs`` passes (default: 10 minutes). Samples
    in split ``exclude_split`` (the test split) are never trained on. With ``resume`` the run
    in ``out`` continues from its last checkpoint with its saved settings.
    ``encoder`` is ``cnn``, ``transformer`` or ``tcn`` (dilated convolutions over time, for
    series; default: :func:`default_encoder`); ``encoder_options`` go to it (e.g.
    ``{"patch": [7, 7]}``).
    ``method_options`` go to the objective (``{"temperature": 0.2}``), ``augment`` to the augmentation.
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
    ``batch_size`` is per process; by default 128, fewer for a small training set.
    ``mix`` pretrains on several collections at their shares of each batch (``"data/a=0.9,data/b=0.1"``
    or a dict; ``data`` is one of them), ``upsample_last`` gives other shares over the last fraction
    of the steps (``"0.2:data/b=0.5"`` or ``(0.2, {"data/b": 0.5})``): :mod:`unlabeled.data.mixture`."""
    plan = _mix_plan(data, mix, upsample_last, _sharded(shards) or positions is not None)
    recipe = PretrainRecipe(
        method=_checked_method(method, data, shards, (epochs, minutes), init),
        encoder=encoder,
        size=size,
        minutes=minutes,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        precision=precision,
        exclude_split=exclude_split,
        method_options=as_settings(method_options, "method_options"),
        encoder_options=as_settings(encoder_options, "encoder_options"),
        augment=as_settings(augment, "augment"),
        checkpoint_steps=checkpoint_steps,
        snapshot_seconds=snapshot_seconds,
        compile=compile,
        mix=plan,
    )
    where = Where(folder(out), device, resume, overwrite)
    with run_lock(where.out):  # one process writes a run at a time
        if shards > 1:
            return _pretrain_sharded(recipe, data, where, positions, shards, init)
        return _pretrain_one(recipe, data, where, positions, init)


def refuse_text_shards(col: Collection, start: Any, shards: int = 2) -> None:
    """SISA on text from scratch is refused: each shard would fit its own tokenizer on its own
    documents, and the ensemble reads a document once, with one tokenizer. From a pretrained
    text run every shard reads with that run's tokenizer, and may."""
    if shards > 1 and col.is_text and start is None:
        raise UnlabeledError(
            "--shards on text needs a pretrained text run to start from (--init, or finetune's RUN): "
            "from scratch each shard would fit its own tokenizer, and the ensemble reads with one"
        )


def _sharded(shards: Any) -> bool:
    """Whether ``shards`` asks for SISA, checked first ("2" compared with 1 was a TypeError)."""
    check_shards(shards)
    return shards > 1


def _checked_method(
    method: str | None, data: Collection | str | os.PathLike[str], shards: Any, budget: tuple[Any, Any], init: Any
) -> str:
    """The method a pretraining request runs (when None: the ``init`` run's own, continued, or
    else the data's default), checked with its shard count and its budget (epochs, minutes)
    before anything is read or written."""
    check_shards(shards)
    one_budget(*budget)
    if method is None and init is not None:
        src = open_run(init)  # continued pretraining goes on with its objective (a grown clm: clm, not mlm)
        if src.kind == "encoder" and src.config.get("method", {}).get("name") in PRETRAINING:
            method = src.config["method"]["name"]
            info(f"pretrain: --method {method}, the --init run's")
    method = method or default_method(data)
    check_pretraining_method(method)
    return method


def _mix_plan(data: Collection | str | os.PathLike[str], mix: Any, upsample_last: Any, subset: bool) -> Mix | None:
    """The mixture ``pretrain`` is asked for, if any (refused with shards or a subset)."""
    plan = plan_mix(data.path if isinstance(data, Collection) else data, mix, upsample_last)
    if plan is not None and subset:
        raise UnlabeledError("--mix pretrains one run on whole collections; it does not combine with --shards")
    return plan


@dataclass(frozen=True)
class PretrainRecipe:
    """What the user asked of a pretraining run; ``None`` is "the default for this data",
    resolved into a :class:`~unlabeled.train.spec.RunSpec` once the data is known."""

    method: str = "simclr"
    encoder: str | None = None
    size: str | None = None
    minutes: float | None = None
    epochs: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    seed: int = 0
    precision: str = "auto"
    exclude_split: str | None = "test"
    method_options: dict[str, Any] | None = None
    encoder_options: dict[str, Any] | None = None
    augment: dict[str, Any] | None = None
    checkpoint_steps: int = 0
    snapshot_seconds: float = 0.0
    compile: bool = False
    mix: Mix | None = None  # several collections at their shares (--mix, --upsample-last)


@dataclass(frozen=True)
class Where:
    """Where a run goes and how: its folder, the device, resume or start anew (replacing an
    old run with ``overwrite``)."""

    out: Path
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False


def provenance(dev: torch.device) -> dict[str, Any]:
    """The config.json keys that say when, by which command and where a run was made."""
    return {
        "unlabeled": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        "environment": environment(dev),
    }


def schedule(recipe: PretrainRecipe, encoder: str, samples: int) -> TrainConfig:
    """The training loop's settings: the recipe's, with the defaults that depend on the data
    (the batch for a small set) and on the encoder (transformer recipes, as ViT, MAE and
    I-JEPA, train with a lower peak rate and stronger weight decay than the CNN)."""
    # a small set's smaller batch is said in the run's first line, with the batch (run.py):
    # a note here came before any error in the settings checked after it
    batch = recipe.batch_size if recipe.batch_size is not None else default_batch(samples, dist.world_size())
    lr = {"transformer": TRANSFORMER_LR, "tcn": TCN_LR}.get(encoder, TrainConfig.lr)
    wd = TRANSFORMER_WEIGHT_DECAY if encoder == "transformer" else TrainConfig.weight_decay
    budget = recipe.minutes if recipe.minutes is not None or recipe.epochs is not None else DEFAULT_MINUTES
    return TrainConfig(
        batch_size=batch,
        epochs=recipe.epochs,
        minutes=budget,
        lr=lr if recipe.lr is None else recipe.lr,
        weight_decay=wd if recipe.weight_decay is None else recipe.weight_decay,
        seed=recipe.seed,
        precision=recipe.precision,
        checkpoint_steps=recipe.checkpoint_steps,
        snapshot_seconds=recipe.snapshot_seconds,
        compile=recipe.compile,
    )


def _without_patch(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """A text encoder's options without ``patch``, named in a note where given: a text
    transformer reads one token a position, so a patch size has no part in it."""
    if not options or "patch" not in options:
        return options
    info(
        f"note: --encoder-option patch={options['patch']} has no part in a text encoder (one token a position): ignored"
    )
    return {k: v for k, v in options.items() if k != "patch"}


def run_modality(col: Collection, positions: np.ndarray, recipe: PretrainRecipe, src: Run | None) -> Modality:
    """The modality a new run reads ``col`` with: fitted on ``positions``, except for text
    continued from ``src`` (``--init``), which keeps ``src``'s tokenizer and length (its token
    embedding and positions are indexed by them); asking it for another vocabulary is refused."""
    vocab = (recipe.encoder_options or {}).get("vocab")
    if vocab is not None and (isinstance(vocab, bool) or not isinstance(vocab, int | float) or vocab != int(vocab)):
        raise UnlabeledError(f"--encoder-option vocab takes a whole number of tokenizer entries, got {vocab!r}")
    if col.is_text and src is not None and src.config["modality"]["name"] == "text":
        mod = src.modality()
        if vocab is not None and int(vocab) != mod.vocab:
            raise UnlabeledError(
                f"--init {src.path} reads text with its {mod.vocab}-entry vocabulary (its token embedding has "
                f"{mod.vocab} rows); it cannot continue with vocab={vocab}: drop the option or start anew"
            )
        if recipe.augment:
            mod.aug = mod.augmentation_with(recipe.augment)
        return mod
    mod = fit_modality(
        col, positions, recipe.augment, {"vocab": int(vocab)} if col.is_text and vocab is not None else None
    )
    view = getattr(mod.aug, "view_size", 0)
    if mod.name == "image" and view > max(mod.sample_shape[1:]):  # allowed, but rarely what was meant
        side = "x".join(map(str, mod.sample_shape[1:]))
        info(f"note: --augment view_size={view} is larger than the images ({side}): every view is upsampled")
    return mod


def check_text_recipe(method: str, encoder: str | None) -> None:
    """Text trains the transformer under a text objective; anything else is one line."""
    if method not in TEXT_OBJECTIVES:
        raise UnlabeledError(f"{method} does not train on text; for text choose {', '.join(TEXT_OBJECTIVES[:3])}")
    if encoder not in (None, "transformer"):
        raise UnlabeledError(f"the {encoder} encoder does not read text; text trains the transformer")


def pretrain_spec(
    recipe: PretrainRecipe, col: Collection, positions: np.ndarray, src: Run | None, dev: torch.device
) -> RunSpec:
    """The spec of a new pretraining run of ``recipe`` on ``col``'s samples at ``positions``,
    continuing from ``src``'s weights when given."""
    if not len(positions):
        held = f"outside its {recipe.exclude_split} split" if recipe.exclude_split else "to train on"
        raise UnlabeledError(f"{col.path} has no sample {held}: nothing to pretrain on")
    modality = run_modality(col, positions, recipe, src)
    encoder, size, enc_options = recipe.encoder, recipe.size, recipe.encoder_options
    if src is not None:
        encoder, size, enc_options = init_encoder(src, modality, encoder, size, enc_options)
    if modality.name == "text":  # refused here, before an encoder is built with the text's vocabulary
        check_text_recipe(recipe.method, encoder)
        enc_options = _without_patch(enc_options)
    encoder = encoder or default_encoder(modality.name, recipe.method)
    check_encoder_options(encoder, dict(recipe.encoder_options or {}))
    options = default_options(encoder, modality, enc_options, recipe.method)
    check_method_options(recipe.method, self_distil.split_options(dict(recipe.method_options or {}))[0])
    data = DataSpec(str(col.path.resolve()), col.name, col.fingerprint(), len(positions), recipe.exclude_split)
    if isinstance(col, Mixture):
        data = replace(data, mix=col.to_json())
    return RunSpec(
        kind="encoder",
        data=data,
        modality=modality.state(),
        encoder=EncoderSpec(encoder, size or default_size(len(positions)), tuple(modality.input_shape), options),
        objective=ObjectiveSpec(recipe.method, dict(recipe.method_options or {})),
        train=schedule(recipe, encoder, len(positions)),
        init=None if src is None else start_point(src),
        provenance=provenance(dev),
    )


def _pretrain_one(
    recipe: PretrainRecipe,
    data: Collection | str | os.PathLike[str],
    where: Where,
    positions: np.ndarray | None,
    init: Run | str | os.PathLike[str] | None,
) -> Run:
    out = where.out
    dev = dist.local_device(resolve_device(where.device))
    with dist.process_group(dev):
        col = open_collection(data)
        if init is not None and where.resume:
            info("--init is ignored with --resume: the run continues from its own checkpoint")
        src = None if init is None or where.resume else open_run(init)
        if src is not None and src.path.resolve() == out.resolve():
            raise UnlabeledError(f"--init and --out are both {out}; continue a run in place with --resume")
        # with --overwrite the old run goes only once the new one is known to start
        replace_old = claim_run_dir(out, where.resume, where.overwrite, remove=False)
        if where.resume:
            spec = RunSpec.from_config(read_config(out / "config.json"))
            if spec.kind != "encoder" or spec.objective.name not in PRETRAINING:
                made = LABELLED.get(spec.objective.name)
                how = f"`unlabeled {made} ... --resume`" if made else "the command that made it"
                raise UnlabeledError(f"{out} is not a pretraining run ({spec.objective.name}); resume it with {how}")
            _say_what_resume_ignores(recipe, spec, default_method(col))
            if recipe.mix is not None:
                info("--mix and --upsample-last are ignored with --resume: the run continues its own mixture")
            if spec.data.mix is not None:
                col = Mixture.from_json(spec.data.mix)
            if spec.data.fingerprint != col.fingerprint():
                raise UnlabeledError(f"{col.path} is not the collection {out} was trained on")
            pos = training_positions(col, spec, out)
        else:
            if recipe.mix is not None:
                col = Mixture.open(recipe.mix)
            check_split_name(col, recipe.exclude_split, "exclude_split")
            pos = col.indices(exclude=recipe.exclude_split)
            if positions is not None:
                pos = train_positions(col, positions, exclude=recipe.exclude_split)
            spec = pretrain_spec(recipe, col, pos, src, dev)
        return train(spec, col, pos, out, dev, resume=where.resume, replace_old=replace_old)


def _say_what_resume_ignores(recipe: PretrainRecipe, spec: RunSpec, default: str) -> None:
    """The settings asked for now that differ from the saved ones, named (the method only
    where it is not the data's ``default``, which the recipe holds when none was asked for)."""
    say_resume_ignores(
        [
            ("--method", recipe.method, spec.objective.name, default),
            ("--encoder", recipe.encoder, spec.encoder.name, None),
            ("--size", recipe.size, spec.encoder.size, None),
            ("--batch-size", recipe.batch_size, spec.train.batch_size, None),
            ("--lr", recipe.lr, spec.train.lr, None),
            ("--minutes", recipe.minutes, saved_budget(spec.train, "minutes"), None),
            ("--epochs", recipe.epochs, saved_budget(spec.train, "epochs"), None),
            ("--weight-decay", recipe.weight_decay, spec.train.weight_decay, None),
            ("--seed", recipe.seed, spec.train.seed, PretrainRecipe.seed),
            *option_pairs("--option", recipe.method_options, spec.objective.options),
            *option_pairs("--encoder-option", recipe.encoder_options, spec.encoder.options),
            *option_pairs("--augment", recipe.augment, spec.modality.get("augment") or {}),
        ]
    )


def _pretrain_sharded(
    recipe: PretrainRecipe,
    data: Collection | str | os.PathLike[str],
    where: Where,
    positions: np.ndarray | None,
    shards: int,
    init: Run | str | os.PathLike[str] | None,
) -> Run:
    """One pretraining run per SISA shard in ``OUT/shards/NN`` (a time budget split between
    them, one batch for all fitted to the smallest); a resumed run finishes the shards that
    did not."""
    out = where.out
    col = open_collection(data)
    refuse_text_shards(col, init)
    check_split_name(col, recipe.exclude_split, "exclude_split")
    pos = (
        col.indices(exclude=recipe.exclude_split)
        if positions is None
        else train_positions(col, positions, exclude=recipe.exclude_split)
    )
    if recipe.batch_size is None:  # one batch for every shard: fitted to the smallest
        smallest = min(len(p) for p in shard_split(pos, shards, recipe.seed))
        recipe = replace(recipe, batch_size=default_batch(smallest, dist.world_size()))
    minutes = DEFAULT_MINUTES if recipe.minutes is None and recipe.epochs is None else recipe.minutes
    shard = replace(recipe, minutes=None if minutes is None else minutes / shards)

    def one(folder: Path, part: np.ndarray, again: bool) -> Run:
        return _pretrain_one(shard, col, replace(where, out=folder, resume=again, overwrite=not again), part, init)

    # one process group for the whole run, so every rank waits for the top folder's removal
    with dist.process_group(dist.local_device(resolve_device(where.device))):
        # the top-level config is written last, so an interrupted run has only shard folders:
        # claim the folder as new then, and still resume the shards below
        old = claim_sharded(out, where.resume, where.overwrite)
        try:
            return train_shards(col, pos, out, shards, recipe.seed, one, where.resume)
        finally:
            put_back(old, out)  # the replaced run, where no shard of the new one reached a checkpoint
