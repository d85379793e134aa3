"""``forget()``: check a request once, hand it to its method, and finish every request the
same way (forgotten ids, the finished record in the new run's config, the audit log)."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError, info
from unlabeled._settings import folder
from unlabeled.data.collection import Collection
from unlabeled.forget import lineage
from unlabeled.forget.audit import AuditLog
from unlabeled.forget.methods import ENCODER_METHODS, LM_METHODS, METHODS, Method, is_language_model, lm_method
from unlabeled.forget.methods.lm import FORGET_DOCUMENTS, REINFORCED
from unlabeled.forget.recipe import retrain
from unlabeled.forget.request import ForgetRequest, forget_set, group_ids, ids_hash, source_task
from unlabeled.runs import (
    ANCESTORS,
    FORGOTTEN_IDS,
    Run,
    open_run,
    read_config,
    refuse_losing_audit,
    resolve_device,
    write_ids,
)
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.run import check_run_folder, refuse_out_at, run_lock
from unlabeled.train.trainer import TrainConfig, resume_hint

# what an exact method does when an ancestor of the run trained on the samples to forget
ANCESTOR_POLICIES = ("refuse", "retrain", "keep")

# a classifier's default, and an encoder's: the exact retrain (LAF, measured on Fashion-MNIST,
# moved representations further from a retrained encoder's than leaving the encoder unchanged
# did); a language model's: SSD, the one method that kept 95% of the utility and forgot (forget
# quality p >= 0.05) on the development split of the fictitious-author benchmark (BENCHMARKS.md)
DEFAULT_METHOD = {"classifier": "salun", "encoder": "retrain", "language model": "ssd"}


def forget(
    run: Run | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    method: str | None = None,
    ids: list[str] | None = None,
    class_: str | int | None = None,
    group: str | None = None,
    values: list[str] | None = None,
    epochs: float | None = None,
    lr: float | None = None,
    options: dict[str, float] | None = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    ancestors: str = "refuse",
) -> Run:
    """Remove ``ids`` (or every training sample of class ``class_``, or every one whose
    ``group`` column holds one of ``values``: an author, a patient) from a classifier or
    encoder ``run``; the result is a new run at ``out`` trained (or unlearned) without them.
    ``method`` defaults to ``salun`` for a classifier and to the exact ``retrain`` for an
    encoder (LAF, measured on Fashion-MNIST, moved representations further from a retrained
    encoder's than leaving the encoder unchanged did; BENCHMARKS.md).

    An exact method (``retrain``, ``sisa``) is exact only if no ancestor of ``run`` (the
    pretrained encoder a classifier was fine-tuned from, the ``--init`` run of an encoder)
    trained on the samples: when one did, ``ancestors="refuse"`` stops with an error naming
    it, ``"retrain"`` retrains it without them (and every run between it and ``run``) into
    ``out/ancestors`` and starts from there, and ``"keep"`` retrains ``run`` alone from the
    same ancestors, recorded as not exact (:mod:`unlabeled.forget.lineage`). ``options`` set
    the objective (NPO's ``{"beta": 0.2}``): each method's ``settings`` says which it takes."""
    if ancestors not in ANCESTOR_POLICIES:
        raise UnlabeledError(f"--ancestors must be one of {', '.join(ANCESTOR_POLICIES)}, got {ancestors!r}")
    src = open_run(run)
    if method is None:
        kind = "language model" if is_language_model(src) else "classifier" if src.kind == "classifier" else "encoder"
        method = "sisa" if "sisa" in src.config else DEFAULT_METHOD[kind]  # a sharded run's own method
    chosen = _method(src, method)
    options = _options(chosen, options or {})
    out = folder(out)
    _check_request(src, out, {"epochs": epochs, "lr": lr, "seed": seed}, device, ids)
    task = source_task(src)
    if group is not None:
        if ids is not None or class_ is not None:
            raise UnlabeledError("say what to forget one way: --ids, --class, or --group with --values")
        ids = group_ids(src, task, group, values)
    forget_pos = forget_set(src, task, ids, class_)
    retain_pos = np.setdiff1d(np.sort(task.positions(src.training_ids())), forget_pos)
    _check_sets(chosen, forget_pos, retain_pos)
    _note_copies_kept(task, forget_pos, retain_pos)
    record = {
        "request": uuid.uuid4().hex[:12],
        "method": method,
        "source": str(src.path.resolve()),
        "ids_hash": ids_hash([str(i) for i in task.ids[forget_pos]]),
        "forgotten": len(forget_pos),
        "class": None if class_ is None else str(class_),
        "group": None if group is None else {"column": group, "values": sorted(map(str, values or []))},
        **({"options": options} if options else {}),
    }
    redo = _check_lineage(chosen, src, task, forget_pos, ancestors, record, out)
    request = ForgetRequest(
        source=src,
        task=task,
        forget_pos=forget_pos,
        retain_pos=retain_pos,
        out=out,
        seed=seed,
        device=device,
        epochs=epochs,
        lr=lr,
        overwrite=_may_replace(out, overwrite, src),
        record=record,
        options=options,
    )
    _note_unused(chosen, epochs=epochs, lr=lr)
    with run_lock(out):  # one process writes a run at a time
        return _carry_out(chosen, request, redo)


def _note_unused(chosen: Method, **given: float | None) -> None:
    """``--epochs`` or ``--lr`` given to a method that takes neither: said, not dropped."""
    unused = [f"--{k}" for k, v in given.items() if v is not None and getattr(chosen, k) is None]
    if unused:
        info(
            f"note: {' and '.join(unused)} ignored by {chosen.name}, which does not take them (retrain and sisa "
            "repeat the original run's recipe; ssd does not train)"
        )


def _semi(a: lineage.Ancestor) -> bool:
    """Whether ancestor ``a`` is a self-trained classifier that saw the samples, or a student."""
    name = a.run.config["method"]["name"] if a.run.kind == "classifier" else "supervised"
    return name == "distil" or (name != "supervised" and bool(a.saw))


def _check_sets(chosen: Method, forget_pos: np.ndarray, retain_pos: np.ndarray) -> None:
    """A forget set the method can forget, and something left to keep."""
    if not len(forget_pos):
        raise UnlabeledError("nothing to forget: no training sample matches")
    if not len(retain_pos):
        raise UnlabeledError("that would forget every training sample; train a new model instead")
    if len(forget_pos) < chosen.min_forget:
        raise UnlabeledError(
            f"{chosen.name} fits a model to the samples it forgets and needs {chosen.min_forget} at least, "
            f"got {len(forget_pos)}; choose another --method for so few"
        )


def _note_copies_kept(task: Collection, forget_pos: np.ndarray, retain_pos: np.ndarray) -> None:
    """Say which retained samples are byte-identical copies of forgotten ones: the run's own
    samples are forgotten by id, so they stay, where its ancestors are matched by content (a
    retrained encoder leaves them out too). Said, so the request can name them as well. Only
    where the import found copies (or, for an older collection, did not count them)."""
    if task.meta.get("exact_duplicates", 1) == 0:
        return
    gone = set(task.content_digests(forget_pos))
    copies = retain_pos[np.fromiter((d in gone for d in task.content_digests(retain_pos)), bool, len(retain_pos))]
    if len(copies):
        shown = ", ".join(map(str, task.ids[copies[:3]])) + (" ..." if len(copies) > 3 else "")
        info(
            f"note: {len(copies)} retained sample(s) are byte-identical copies of forgotten ones ({shown}); "
            "forgetting is by id, so they stay: name their ids too to forget them"
        )


def _check_request(src: Run, out: Path, train: dict[str, Any], device: str, ids: Any) -> None:
    """What a request asks checked before it is logged (the audit log is append-only): where
    it writes, its training settings (``epochs``, ``lr``, ``seed``), the device, the ids, and
    the run it forgets from, which must be whole (a forget request that did not finish holds
    a half-unlearned model) and not an ECO result (its guard would be lost)."""
    refuse_out_at(out, src, "the run to forget from, which is never modified")
    check_run_folder(out)
    TrainConfig(**{k: v for k, v in train.items() if v is not None})
    resolve_device(device)
    src.refuse_unfinished_forget()
    if "eco" in src.config:
        raise UnlabeledError(
            f"{src.path} is an ECO result: its weights are its source's behind a prompt guard, which a "
            "further forget would drop (the first request undone). Forget from the run it was made from, "
            "with both requests' values"
        )
    if isinstance(ids, str):
        raise UnlabeledError(f"ids must be a list of sample ids, got the string {ids!r}")


def _check_lineage(
    chosen: Method,
    src: Run,
    task: Collection,
    forget_pos: np.ndarray,
    ancestors: str,
    record: dict[str, Any],
    out: Path,
) -> list[lineage.Ancestor]:
    """The ancestors an exact method must retrain first (``ancestors="retrain"``), after
    checking every one: refused where one saw the samples (``"refuse"``) or the lineage
    cannot be read (unless ``"keep"``), or where ``out`` is one of them; what was found goes
    into ``record``."""
    method = record["method"]
    try:
        chain, unchecked = lineage.ancestors(src, task, forget_pos), None
    except UnlabeledError as e:  # an ancestor gone, changed or unreadable
        if chosen.exact and ancestors != "keep":
            raise
        chain, unchecked = [], str(e)
        info(f"note: the runs this one descends from could not be checked ({e})")
    for a in chain:  # the lineage an exact method checks, and retrains from, is never written over
        how = {"source": "the pretrained encoder", "unlearned": "the run unlearned from"}.get(
            a.relation, "the --init run"
        )
        refuse_out_at(out, a.run, f"{how} {src.path} descends from")
    redo = lineage.to_retrain(chain) if chosen.exact and ancestors == "retrain" else []
    grown = [a.run for a in redo if "grown" in a.run.config]
    if grown:  # a grown run was not trained: it is a function of the run it grew from
        raise UnlabeledError(
            f"{grown[0].path} was made by `unlabeled grow`, which --ancestors retrain does not redo; "
            "forget from the run it grew from, grow the result again and continue pretraining from it"
        )
    # a self-trained ancestor that saw the samples, or any distilled one (its teacher's lineage
    # is not recorded): no recipe here retrains it without them
    semi = [a for a in chain if _semi(a)]
    if semi and chosen.exact and ancestors != "keep":
        name = semi[-1].run.config["method"]["name"]
        raise UnlabeledError(
            f"{semi[-1].run.path}, which {src.path} descends from, is a {name} run: it learnt from a whole "
            "unlabelled pool, which retraining does not redo exactly; train again from data without the samples, "
            "or pass --ancestors keep (not exact)"
        )
    dirty = [a for a in chain if a.saw]
    unlearned = [a for a in chain if a.relation == "unlearned"]
    if unlearned and dirty and chosen.exact and ancestors == "retrain":  # no recipe redoes an unlearning
        raise UnlabeledError(
            f"{src.path} descends from {unlearned[0].run.path} through the output of an approximate forget request, "
            f"and {dirty[-1].run.path} trained on {dirty[-1].saw} of the samples: retraining cannot redo that "
            "unlearning exactly; train again from data without them, or pass --ancestors keep (not exact)"
        )
    if dirty and chosen.exact and ancestors == "refuse":
        raise lineage.refusal(method, src, dirty[-1])
    record["ancestors"] = [
        {"run": str(a.run.path.resolve()), "relation": a.relation, "saw": a.saw, "retrained": a in redo} for a in chain
    ]
    if unchecked:
        record["ancestors_unchecked"] = unchecked
    record["exact"] = chosen.exact and not unchecked and not semi and (not dirty or bool(redo))
    for a in dirty if not record["exact"] else []:
        info(
            f"note: {a.describe()} trained on {a.saw} sample(s) with these samples' content and keeps them; "
            "the result is not exact"
        )
    return redo


def _method(src: Run, name: str) -> Method:
    """The method called ``name``, if it applies to ``src``."""
    if is_language_model(src):
        return lm_method(name)
    if name not in METHODS:
        only = " forgets from causal language models only;" if name in LM_METHODS else " is an unknown forget method;"
        raise UnlabeledError(f"{name!r}{only} {src.path} forgets with {', '.join(METHODS)}")
    method = METHODS[name]()
    if src.kind != "classifier" and not method.encoders:
        raise UnlabeledError(
            f"{src.path} is a self-supervised encoder: forget from it with "
            f"{' or '.join(ENCODER_METHODS)} (or from a classifier made by `unlabeled finetune`)"
        )
    if src.kind == "classifier" and src.config["method"]["name"] != "supervised":
        # a student (distil) or a self-trained classifier (fixmatch) learnt from a whole
        # unlabelled pool, which neither retraining nor the label-based unlearning objectives
        # reproduce
        how = {"distil": "forget from its teacher (a classifier made by `unlabeled finetune`) and distil again"}
        raise UnlabeledError(
            f"{src.path} is a {src.config['method']['name']} run; "
            + how.get(src.config["method"]["name"], "remove the samples from the data and self-train again")
        )
    if src.kind == "classifier" and not method.classifiers:
        raise UnlabeledError(f"{name} forgets from self-supervised encoders; for a classifier use npo, scrub, ...")
    sharded = "sisa" in src.config
    if method.sharded_only and not sharded:
        flag = "finetune --shards" if src.kind == "classifier" else "pretrain --shards"
        raise UnlabeledError(f"{method.name} forgets from a sharded run; {src.path} was not trained with `{flag}`")
    if sharded and not (method.sharded_only or method.name == "retrain"):
        raise UnlabeledError(
            f"{src.path} was trained with --shards, an ensemble {name} does not unlearn from; "
            "forget with sisa (retrains the shards that held the samples) or retrain"
        )
    return method


def _options(method: Method, options: dict[str, Any]) -> dict[str, float]:
    """``options`` checked against what ``method`` takes: each one of its ``settings``, each a
    finite number."""
    unknown = sorted(set(options) - set(method.settings))
    if unknown:
        takes = f"takes --option {', '.join(method.settings)}" if method.settings else "takes no --option"
        raise UnlabeledError(f"forget method {method.name} {takes}; got {', '.join(unknown)}")
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise UnlabeledError(f"--option {key} must be a number, got {value!r}")
    checked = {k: float(v) for k, v in options.items()}
    method.check_options(checked)
    return checked


def _may_replace(out: Path, overwrite: bool, src: Run) -> bool:
    """Whether the run in ``out`` may be replaced: with ``overwrite``, or when it is an
    unfinished (crashed) forget request, which is redone. Any other run there is refused (a
    finished pretraining or classifier run, having no forget record, passed for a crashed
    request and was deleted). A retrained encoder interrupted before its record was written
    is told by ``src``'s audit log: a request it started for ``out`` and never finished."""
    if (out / "config.json").exists():
        record = read_config(out / "config.json").get("forget")
        if record is None and not overwrite and not _started_here(src, out):
            raise UnlabeledError(f"{out} already holds a run; pass --overwrite to replace it, or write elsewhere")
        if record is not None and record.get("finished") and not overwrite:
            raise UnlabeledError(f"{out} already holds a finished forget request; pass --overwrite")
        refuse_losing_audit(out)
        return True
    return overwrite


def _started_here(src: Run, out: Path) -> bool:
    """Whether ``src``'s audit log has a request into ``out`` that started and did not finish."""
    mine = [e["event"] for e in AuditLog(src.path).events() if e.get("output") == str(out.resolve())]
    return bool(mine) and mine[-1] == "started"


def _retrain_ancestors(redo: list[lineage.Ancestor], request: ForgetRequest) -> Run:
    """Each ancestor in ``redo`` (farthest first) trained again without the forgotten samples
    into ``OUT/ancestors/NN-name``, each from the one before (the first from its own
    starting point); the last, which the request's run starts from. A finished one from an
    interrupted attempt at the same request is kept."""
    start: Run | None = None
    for i, a in enumerate(redo):
        dest = request.out / ANCESTORS / f"{i:02d}-{a.run.name}"
        done = (dest / "config.json").exists() and Run(dest).finished
        # the same request of the same run (an attempt from another run into this --out left
        # one that matched on the ids alone), from the start the one before it gives
        mine = {
            "retrained_for": request.record["ids_hash"],
            "retrained_from": str(a.run.path.resolve()),
            "retrained_after": None if start is None else str(start.path.resolve()),
        }
        if done and all(Run(dest).config.get(k) == v for k, v in mine.items()):
            start = Run(dest)
            continue
        info(f"retraining ancestor {a.run.path} without the {a.saw} samples it saw ...")
        kept = np.setdiff1d(np.sort(a.collection.positions(a.run.training_ids())), a.forgotten)
        new = retrain(a.run, a.collection, kept, dest, device=request.device, overwrite=True, start=start)
        ckpt.atomic_write_json(dest / "config.json", {**new.config, **mine})
        start = Run(dest)
    assert start is not None
    return start


def _clear_for_ancestors(out: Path) -> None:
    """An old run in ``out`` removed, but not the ancestors an interrupted request retrained."""
    if not (out / "config.json").exists():
        return
    for p in out.iterdir():
        if p.name != ANCESTORS:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


# what a finished approximate request keeps of its training state: enough to say it finished
FINISHED_STATE = ("step", "total_steps", "elapsed", "budget_fixed", "budget")


def drop_what_saw_the_samples(out: Path) -> None:
    """Remove from a finished approximate request's run what still holds the forgotten
    samples: the resume state's weights and optimizer moments (NPO's and SCRUB's frozen copy of
    the original model, LAF's density model of the forget set, WHP's reinforced model, all in
    the objective's state) and WHP's reinforced run and forget documents. The exported weights
    never held them; the run was shipped with the original model inside it."""
    for name in (REINFORCED, FORGET_DOCUMENTS):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    state = out / ckpt.STATE_FILE
    if state.exists():
        kept = {k: v for k, v in ckpt.load_state(state).items() if k in FINISHED_STATE}
        ckpt.save_state(state, kept)


def _carry_out(method: Method, request: ForgetRequest, redo: list[lineage.Ancestor]) -> Run:
    """Log the start, retrain the ancestors ``redo`` lists, run the method, and finish: the
    forgotten ids and the finished record beside the new run, and the end in the audit log."""
    src, out, record = request.source, request.out, request.record
    log = AuditLog(src.path)
    log.append(
        record["request"],
        "started",
        method=record["method"],
        ids_hash=record["ids_hash"],
        forgotten=record["forgotten"],
        output=str(out.resolve()),
    )
    t0 = time.perf_counter()
    with resume_hint("run the same command again to finish it"):  # forget has no --resume
        if redo:
            if request.overwrite:
                _clear_for_ancestors(out)
            request = replace(request, start=_retrain_ancestors(redo, request), overwrite=False)
        result = method.run(request)
    if not method.exact:
        drop_what_saw_the_samples(out)
    seconds = round(time.perf_counter() - t0, 2)
    config = dict(result.config)
    config["forget"] = {
        **record,
        "seconds": seconds,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "forget_ids_file": FORGOTTEN_IDS,
    }
    write_ids(out / FORGOTTEN_IDS, request.forgotten_ids)
    ckpt.atomic_write_json(out / "config.json", config)
    done = {"seconds": seconds, "exact": record["exact"], "ancestors_retrained": len(redo)}
    log.append(record["request"], "finished", method=record["method"], output=str(out.resolve()), details=done)
    how = ("exact" if record["exact"] else "approximate") + (f", {len(redo)} ancestor(s) retrained" if redo else "")
    info(f"forgot {record['forgotten']} samples with {record['method']} ({how}) in {seconds:.0f} s -> {out}")
    return Run(out)
