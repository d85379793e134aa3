"""Forget on request: remove samples or a class from a trained classifier, verify the result
against retraining, and record every request in an append-only audit log.

    new = forget("runs/clf", ids=["train-00017", ...], method="npo", out="runs/clf_forgot")
    table = verify(new)                   # gaps to a model retrained without those samples
    AuditLog("runs/clf").requests()       # what was asked, when, by which method, the outcome

Methods: ``retrain`` (exact: the original recipe on the retain set, from the same starting
point; the reference for every other), ``sisa`` (exact, for classifiers trained with
``shards``: only the shards that held forgotten samples are retrained; Bourtoule et al.
2021) and the approximate ``finetune``, ``ga``, ``npo``, ``scrub``, ``salun`` (see ``methods.py``).
Self-supervised encoders forget without labels: ``laf`` (``laf.py``) or ``retrain`` (the
pretraining recipe on the retain set, for as many steps).
The original run is never modified; only its audit log grows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError, info
from unlabeled.data.collection import Collection, open_collection
from unlabeled.forget.audit import AuditLog
from unlabeled.forget.methods import APPROXIMATE, Stream
from unlabeled.forget.verify import encoder_gaps, encoder_scores, gaps, scores
from unlabeled.models import saved_options
from unlabeled.runs import (
    FORGOTTEN_IDS,
    SHARDS,
    TRAINING_IDS,
    Run,
    encode,
    open_run,
    read_ids,
    resolve_device,
    write_ids,
)
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.finetune import finetune
from unlabeled.train.pretrain import claim_run_dir, default_batch, pretrain
from unlabeled.train.trainer import TrainConfig, Trainer

METHODS = ("retrain", "sisa", *APPROXIMATE, "laf")
ENCODER_METHODS = ("retrain", "sisa", "laf")
REFERENCE = "reference"


def ids_hash(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def _task(run: Run) -> Collection:
    """The collection a classifier was fine-tuned on, or an encoder pretrained on."""
    key = "task" if run.kind == "classifier" else "data"
    task = open_collection(run.config[key]["path"])
    if task.fingerprint() != run.config[key]["fingerprint"]:
        raise UnlabeledError(f"{task.path} changed since {run.path} was trained on it")
    return task


def forget_set(run: Run, task: Collection, ids: list[str] | None, class_: str | int | None) -> np.ndarray:
    """Positions (in the task) of the samples to forget, checked against the training set."""
    if (ids is None) == (class_ is None):
        raise UnlabeledError("say what to forget: ids (--ids FILE) or a class (--class NAME), not both")
    trained = set(run.training_ids())
    if ids is not None:
        ids = [str(i) for i in ids]
        missing = [i for i in ids if i not in trained]
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise UnlabeledError(f"{len(missing)} id(s) are not in the training set of {run.path}: {shown}")
        return np.sort(task.positions(sorted(set(ids))))
    classes = task.classes or []
    name = str(class_)
    if name in classes:
        code = classes.index(name)
    elif name.lstrip("-").isdigit() and 0 <= int(name) < max(len(classes), int(task.labels.max()) + 1):
        code = int(name)
    else:
        raise UnlabeledError(f"class {class_!r} does not exist; classes: {', '.join(classes) or 'none named'}")
    pos = task.positions(sorted(trained))
    return np.sort(pos[task.labels[pos] == code])


def forget(
    run: Run | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    method: str | None = None,
    ids: list[str] | None = None,
    class_: str | int | None = None,
    epochs: float | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
) -> Run:
    """Remove ``ids`` (or every training sample of class ``class_``) from a classifier or
    encoder ``run``; the result is a new run at ``out`` trained (or unlearned) without them.
    ``method`` defaults to ``salun`` for a classifier and to the exact ``retrain`` for an
    encoder (LAF, measured on Fashion-MNIST, moved representations further from a retrained
    encoder's than leaving the encoder unchanged did; BENCHMARKS.md)."""
    src = open_run(run)
    if method is None:
        method = "salun" if src.kind == "classifier" else "retrain"
    if method not in METHODS:
        raise UnlabeledError(f"unknown forget method {method!r}; choose from {', '.join(METHODS)}")
    if src.kind != "classifier" and method not in ENCODER_METHODS:
        raise UnlabeledError(
            f"{src.path} is a self-supervised encoder: forget from it with "
            f"{' or '.join(ENCODER_METHODS)} (or from a classifier made by `unlabeled finetune`)"
        )
    if src.kind == "classifier" and method == "laf":
        raise UnlabeledError("laf forgets from self-supervised encoders; for a classifier use npo, scrub, ...")
    out = Path(out)
    task = _task(src)
    forget_pos = forget_set(src, task, ids, class_)
    trained_pos = np.sort(task.positions(src.training_ids()))
    retain_pos = np.setdiff1d(trained_pos, forget_pos)
    if not len(forget_pos):
        raise UnlabeledError("nothing to forget: no training sample matches")
    if not len(retain_pos):
        raise UnlabeledError("that would forget every training sample; train a new model instead")
    if (out / "config.json").exists():
        done = json.loads((out / "config.json").read_text()).get("forget", {}).get("finished")
        if done and not overwrite:
            raise UnlabeledError(f"{out} already holds a finished forget request; pass --overwrite")
        overwrite = True  # an unfinished (crashed) request is redone
    forgotten_ids = [str(i) for i in task.ids[forget_pos]]
    request = {
        "request": uuid.uuid4().hex[:12],
        "method": method,
        "source": str(src.path.resolve()),
        "ids_hash": ids_hash(forgotten_ids),
        "forgotten": len(forget_pos),
        "class": None if class_ is None else str(class_),
    }
    log = AuditLog(src.path)
    log.append(
        request["request"],
        "started",
        method=method,
        ids_hash=request["ids_hash"],
        forgotten=len(forget_pos),
        output=str(out.resolve()),
    )
    t0 = time.perf_counter()
    if method == "sisa":
        result = _sisa(src, task, forget_pos, retain_pos, out, device, overwrite, request)
    elif src.kind != "classifier":
        result = _forget_encoder(
            src, task, method, forget_pos, retain_pos, out, epochs, lr, seed, device, overwrite, request
        )
    elif method == "retrain":
        shards = src.config.get("sisa", {}).get("shards", 1)
        result = finetune(
            src.config.get("source_run"),
            task,
            out,
            positions=retain_pos,
            shards=shards,
            device=device,
            overwrite=overwrite,
            extra_config={"forget": request},
            **_recipe(src),
        )
    else:
        result = _unlearn(src, task, method, forget_pos, retain_pos, out, epochs, lr, seed, device, overwrite, request)
    seconds = round(time.perf_counter() - t0, 2)
    config = dict(result.config)
    config["forget"] = {
        **request,
        "seconds": seconds,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "forget_ids_file": FORGOTTEN_IDS,
    }
    write_ids(out / FORGOTTEN_IDS, forgotten_ids)
    ckpt.atomic_write_json(out / "config.json", config)
    log.append(request["request"], "finished", method=method, output=str(out.resolve()), details={"seconds": seconds})
    info(f"forgot {len(forget_pos)} samples with {method} in {seconds:.0f} s -> {out}")
    return Run(out)


def _recipe(src: Run) -> dict[str, Any]:
    """The training recipe of a classifier run, for retraining it exactly."""
    train, enc = src.config["train"], src.config["encoder"]
    return {
        "epochs": train["epochs"],
        "batch_size": train["batch_size"],
        "lr": train["lr"],
        "weight_decay": train["weight_decay"],
        "seed": train["seed"],
        "encoder": enc["name"],
        "size": enc["size"],
        "augment": bool(src.config["method"].get("augment", True)),
    }


def _pretrain_recipe(src: Run, samples: int) -> dict[str, Any]:
    """The pretraining recipe of an encoder run (for a sharded run, its first shard's), for
    retraining it on ``samples`` samples (split between the shards) for as many steps as the
    original took."""
    one = src.shards()[0] if "sisa" in src.config else src
    train = one.config["train"]
    state = one.path / ckpt.STATE_FILE
    steps = int(ckpt.load_state(state)["step"]) if state.exists() else int(train["total_steps"])
    shards = int(src.config.get("sisa", {}).get("shards", 1))
    # the saved batch, unless what is kept is too small for it (a small set whose batch was
    # fitted to it, like pretrain's default): then the batch pretrain would fit to the rest
    batch = min(int(train["batch_size"]), default_batch(samples // shards))
    per_epoch = max(1, samples // (batch * shards))
    return {
        "method": one.config["method"]["name"],
        "encoder": one.config["encoder"]["name"],
        "size": one.config["encoder"]["size"],
        "epochs": steps / per_epoch,
        "batch_size": batch,
        "lr": train["lr"],
        "weight_decay": train["weight_decay"],
        "seed": int(train["seed"]),
        "method_options": {k: v for k, v in one.config["method"].items() if k != "name"},
        "encoder_options": saved_options(one.config["encoder"]),
        "augment": one.config["modality"]["augment"],
    }


def _sisa(
    src: Run,
    task: Collection,
    forget_pos: np.ndarray,
    retain_pos: np.ndarray,
    out: Path,
    device: str,
    overwrite: bool,
    request: dict[str, Any],
) -> Run:
    """Retrain only the shards that trained on a forgotten sample (each with its own recipe
    on what it keeps); copy the others."""
    if "sisa" not in src.config:
        flag = "finetune --shards" if src.kind == "classifier" else "pretrain --shards"
        raise UnlabeledError(f"sisa forgets from a sharded run; {src.path} was not trained with `{flag}`")
    forgotten = {str(i) for i in task.ids[forget_pos]}
    claim_run_dir(out, False, overwrite)
    affected = []
    for shard in src.shards():
        ids = shard.training_ids()
        dest = out / SHARDS / shard.path.name
        if forgotten.intersection(ids):
            keep = task.positions([i for i in ids if i not in forgotten])
            if src.kind == "classifier":
                finetune(
                    src.config.get("source_run"),
                    task,
                    dest,
                    positions=keep,
                    device=device,
                    overwrite=True,
                    **_recipe(shard),
                )
            else:
                pretrain(
                    task,
                    dest,
                    positions=keep,
                    device=device,
                    overwrite=True,
                    exclude_split=None,
                    **_pretrain_recipe(shard, len(keep)),
                )
            affected.append(shard.path.name)
        else:
            shutil.copytree(shard.path, dest, dirs_exist_ok=True)
    info(f"sisa: retrained {len(affected)} of {src.config['sisa']['shards']} shards")
    config = {**src.config, "sisa": {**src.config["sisa"], "retrained_shards": affected}, "forget": request}
    write_ids(out / TRAINING_IDS, task.ids[retain_pos])
    ckpt.atomic_write_json(out / "config.json", config)
    return Run(out)


def _unlearn(
    src: Run,
    task: Collection,
    method: str,
    forget_pos: np.ndarray,
    retain_pos: np.ndarray,
    out: Path,
    epochs: float | None,
    lr: float | None,
    seed: int,
    device: str,
    overwrite: bool,
    request: dict[str, Any],
) -> Run:
    cls, stream, default_epochs, default_lr = APPROXIMATE[method]
    own, other = (forget_pos, retain_pos) if stream == "forget" else (retain_pos, forget_pos)
    batch = int(src.config["train"]["batch_size"])
    objective = cls(
        src.encoder().train(), src.modality(), int(src.config["method"]["classes"]), other=Stream(task, other, batch)
    )
    objective.use_augment = bool(src.config["method"].get("augment", True))
    objective.head.load_state_dict(src.weights("head"))
    if objective.needs_original:
        objective.keep_original()
    objective.prepare(task, forget_pos, retain_pos, resolve_device(device))
    claim_run_dir(out, False, overwrite)
    if epochs is None:
        epochs = default_epochs * (float(src.config["train"]["epochs"] or 1) if stream == "retain" else 1.0)
    cfg = TrainConfig(
        batch_size=min(batch, len(own)), epochs=epochs, lr=lr or default_lr, weight_decay=0.0, warmup=0.0, seed=seed
    )
    config = {
        **src.config,
        "method": {**src.config["method"], "unlearning": method, **objective.hparams()},
        "train": vars(cfg).copy(),
        "source_run": src.config.get("source_run"),
        "forget": request,
    }
    config.pop("seconds", None)
    out.mkdir(parents=True, exist_ok=True)
    write_ids(out / TRAINING_IDS, task.ids[retain_pos])
    ckpt.atomic_write_json(out / "config.json", config)
    Trainer(objective, task, own, cfg, out, resolve_device(device)).fit()
    return Run(out)


def _forget_encoder(
    src: Run,
    data: Collection,
    method: str,
    forget_pos: np.ndarray,
    retain_pos: np.ndarray,
    out: Path,
    epochs: float | None,
    lr: float | None,
    seed: int,
    device: str,
    overwrite: bool,
    request: dict[str, Any],
) -> Run:
    """``retrain``: the run's pretraining recipe on the retain set (sharded again if the run
    was), for as many steps as the original took; ``laf``: Label-Agnostic Forgetting
    (``laf.py``)."""
    from unlabeled.forget.laf import LAF, fit_vae

    train = src.config["train"]
    if method == "retrain":
        shards = int(src.config.get("sisa", {}).get("shards", 1))
        run = pretrain(
            data,
            out,
            positions=retain_pos,
            exclude_split=None,
            shards=shards,
            device=device,
            overwrite=overwrite,
            **_pretrain_recipe(src, len(retain_pos)),
        )
        config = {**run.config, "forget": request}
        write_ids(out / TRAINING_IDS, data.ids[retain_pos])
        ckpt.atomic_write_json(out / "config.json", config)
        return Run(out)
    # laf: density models of the original representations, then the encoder update
    dev = resolve_device(device)
    encoder, modality = src.encoder(), src.modality()
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(retain_pos, min(len(retain_pos), 10_000), replace=False))
    vae_retain = fit_vae(encode(encoder, modality, data, sample, device=dev, description="laf: retain"), seed=seed)
    vae_forget = fit_vae(encode(encoder, modality, data, forget_pos, device=dev, description="laf: forget"), seed=seed)
    batch = int(train["batch_size"])
    objective = LAF(encoder, modality, vae_retain, vae_forget, Stream(data, retain_pos, batch))
    claim_run_dir(out, False, overwrite)
    cfg = TrainConfig(
        batch_size=min(batch, len(forget_pos)),
        epochs=epochs if epochs is not None else 10.0,
        lr=lr or 1e-4,
        weight_decay=0.0,
        warmup=0.0,
        seed=seed,
    )
    config = {
        **src.config,
        "method": {**src.config["method"], "unlearning": method, **objective.hparams()},
        "train": vars(cfg).copy(),
        "forget": request,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_ids(out / TRAINING_IDS, data.ids[retain_pos])
    ckpt.atomic_write_json(out / "config.json", config)
    Trainer(objective, data, forget_pos, cfg, out, dev).fit()
    return Run(out)


def verify(run: Run | str | os.PathLike[str], device: str = "auto", retrain: bool = True) -> dict[str, Any]:
    """The verification table of a forget request's output: its forget / retain / test
    accuracy and MIA efficacy beside a model retrained without the forget set (made once,
    in ``RUN/reference``, unless the request was itself a retrain), the gaps, and the times."""
    res = open_run(run)
    request = res.config.get("forget")
    if not request or not request.get("finished"):
        raise UnlabeledError(f"{res.path} is not the output of a finished forget request")
    src = open_run(request["source"])
    task = _task(res)
    forgotten = read_ids(res.path / FORGOTTEN_IDS)
    forget_pos = np.sort(task.positions(forgotten))
    retain_pos = np.sort(task.positions(res.training_ids()))
    test_pos = task.indices("test")
    if request["method"] == "retrain":
        ref = res
    else:
        ref_path = res.path / REFERENCE
        if not (ref_path / "config.json").exists() or not json.loads((ref_path / "config.json").read_text()).get(
            "forget", {}
        ).get("finished"):
            if not retrain:
                raise UnlabeledError(f"{res.path} has no retrained reference yet")
            info("retraining without the forget set for the reference (once) ...")
            forget(src, method="retrain", out=ref_path, ids=forgotten, device=device, overwrite=True)
        ref = Run(ref_path)
    runs = dict((("original", src), (request["method"], res), ("retrain", ref)))
    if res.kind == "classifier":
        rows = {
            name: scores(r.classifier(), r.modality(), task, forget_pos, retain_pos, test_pos, device)
            for name, r in runs.items()
        }
        gap = gaps(rows[request["method"]], rows["retrain"])
    else:
        if not len(test_pos) or len(test_pos) == len(task):
            raise UnlabeledError(f"{task.path} has no test split, which verifying an encoder needs (non-members)")
        rows = encoder_scores(
            {name: (r.encoder(), r.modality()) for name, r in runs.items()},
            "retrain",
            task,
            forget_pos,
            retain_pos,
            test_pos,
            device,
        )
        gap = encoder_gaps(rows[request["method"]], rows["retrain"])
    table = {
        "request": request["request"],
        "method": request["method"],
        "forgotten": len(forget_pos),
        "rows": rows,
        "gaps": gap,
        "seconds": request["seconds"],
        "retrain_seconds": ref.config["forget"]["seconds"],
    }
    table["time_ratio"] = table["seconds"] / max(table["retrain_seconds"], 1e-9)
    AuditLog(src.path).append(request["request"], "verified", method=request["method"], details=table)
    ckpt.atomic_write_json(res.path / "verification.json", table)
    return table


def verify_metrics(encoder: bool = False) -> tuple[str, ...]:
    """The metrics of the verification table, in order (a classifier's or an encoder's)."""
    from unlabeled.forget.verify import ENCODER_METRICS, METRICS

    return ENCODER_METRICS if encoder else METRICS


__all__ = ["METHODS", "AuditLog", "forget", "verify", "verify_metrics"]
