"""``verify()``: a forget request's output beside a model retrained without the forget set
(made once, in ``RUN/reference``), scored with ``verify.py``'s metrics, the gaps and the
times recorded in the audit log and beside the run."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError, info
from unlabeled.data.collection import Collection
from unlabeled.forget.api import forget
from unlabeled.forget.audit import AuditLog
from unlabeled.forget.lm_metrics import LM_METRICS, lm_gaps, lm_rows
from unlabeled.forget.methods.lm import is_language_model
from unlabeled.forget.relearn import RELEARN, RELEARN_METRICS, relearning
from unlabeled.forget.request import source_task
from unlabeled.forget.verify import ENCODER_METRICS, METRICS, Parts, encoder_gaps, encoder_scores, gaps, scores
from unlabeled.runs import FORGOTTEN_IDS, Run, open_run, read_ids, resolve_device
from unlabeled.train import checkpoint as ckpt

REFERENCE = "reference"
# the exact method the others are measured against: its output is its own reference, and its
# row of the table is the reference's
RETRAIN = "retrain"


def verify(
    run: Run | str | os.PathLike[str], device: str = "auto", retrain: bool = True, ancestors: str = "keep"
) -> dict[str, Any]:
    """The verification table of a forget request's output: its forget / retain / test
    accuracy and MIA efficacy beside a model retrained without the forget set (made once,
    in ``RUN/reference``, unless the request was itself a retrain), the gaps, and the times.
    Where an ancestor of the original trained on the forget set, the reference retrains the
    run alone from the same ancestors (``ancestors="keep"``, the reference then not exact)
    or them too (``"retrain"``); ``table["reference"]`` says which ancestors were retrained."""
    if ancestors not in ("keep", "retrain"):
        raise UnlabeledError(f"--ancestors for a reference must be keep or retrain, got {ancestors!r}")
    res = open_run(run)
    request = res.config.get("forget")
    if not request or not request.get("finished"):
        raise UnlabeledError(f"{res.path} is not the output of a finished forget request")
    src = open_run(request["source"])
    task = source_task(res)
    forgotten = read_ids(res.path / FORGOTTEN_IDS)
    forget_pos, retain_pos = np.sort(task.positions(forgotten)), np.sort(task.positions(res.training_ids()))
    # non-members are test samples the original never trained on: an encoder pretrained through
    # the API without excluding the test split trained on it, and MIA counted members as unseen
    test = task.indices("test")
    unseen = np.setdiff1d(test, np.union1d(forget_pos, retain_pos))
    parts = Parts(forget_pos, retain_pos, unseen)
    if not is_language_model(res) and len(test) and len(test) < len(task) and not len(unseen):
        raise UnlabeledError(f"{src.path} trained on every test sample of {task.path}: no non-members to verify with")
    if not is_language_model(res) and (not len(test) or len(test) == len(task)):
        # checked before a reference is retrained: a collection without splits gives every
        # sample as its "test" split, training samples included
        what = "a classifier's test accuracy and MIA" if res.kind == "classifier" else "verifying an encoder"
        raise UnlabeledError(f"{task.path} has no test split, which {what} needs (non-members)")
    ref = res if request["method"] == RETRAIN else _reference(res, src, forgotten, device, retrain, ancestors)
    runs = dict((("original", src), (request["method"], res), (RETRAIN, ref)))
    rows, gap = _score(runs, request["method"], task, parts, device)
    table = {
        "request": request["request"],
        "method": request["method"],
        "forgotten": len(parts.forget),
        "rows": rows,
        "gaps": gap,
        "seconds": request["seconds"],
        "retrain_seconds": ref.config["forget"]["seconds"],
        "reference": _lineage(ref.config["forget"]),
    }
    table["time_ratio"] = table["seconds"] / max(table["retrain_seconds"], 1e-9)
    AuditLog(src.path).append(request["request"], "verified", method=request["method"], details=table)
    ckpt.atomic_write_json(res.path / "verification.json", table)
    return table


def _lineage(record: dict[str, Any]) -> dict[str, Any]:
    """Whether a retrain was exact and which of its ancestors it retrained and kept (requests
    made before ancestors were checked record neither: ``exact`` is then None)."""
    chain = record.get("ancestors", [])
    return {
        "exact": record.get("exact"),
        "retrained_ancestors": [a["run"] for a in chain if a["retrained"]],
        "kept_ancestors_that_saw": [a["run"] for a in chain if a["saw"] and not a["retrained"]],
    }


def _reference(res: Run, src: Run, forgotten: list[str], device: str, retrain: bool, ancestors: str) -> Run:
    """The model retrained without the forget set, in ``RUN/reference``: made the first time."""
    ref_path = res.path / REFERENCE
    config = ref_path / "config.json"
    made = json.loads(config.read_text()).get("forget", {}) if config.exists() else {}
    # an inexact reference (ancestors that saw the samples kept) is made again when asked to
    # retrain them; an exact one serves either request
    again = made.get("finished") and ancestors == "retrain" and made.get("exact") is False
    if again:
        info("the reference kept ancestors that trained on the forget set; --ancestors retrain: making it again")
    if not made.get("finished") or again:
        if not retrain:
            why = "keeps ancestors that trained on the forget set" if again else "has not been made yet"
            raise UnlabeledError(f"{res.path}'s retrained reference {why}; verify(..., retrain=True) makes it")
        info("retraining without the forget set for the reference (once) ...")
        forget(src, method=RETRAIN, out=ref_path, ids=forgotten, device=device, overwrite=True, ancestors=ancestors)
    return Run(ref_path)


def _score(
    runs: dict[str, Run],
    method: str,
    task: Collection,
    parts: Parts,
    device: str,
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Each run's scores on the forget, retain and test positions, and the gaps of ``method``'s
    run to the retrained one: classifiers by accuracy, encoders by their representations."""
    if runs[method].kind == "classifier":
        rows = {name: scores(r.classifier(), r.modality(), task, parts, device) for name, r in runs.items()}
        return rows, gaps(rows[method], rows[RETRAIN])
    if is_language_model(runs[method]):  # TOFU's table (forget/lm_metrics.py)
        if "question" not in task.columns:
            raise UnlabeledError(f"{task.path} has no question-answer columns: verify a language model on make-authors")
        dev = resolve_device(device)
        models = {name: (r.encoder().to(dev), r.modality()) for name, r in runs.items()}
        rows = lm_rows(models, RETRAIN, task, parts.forget, parts.retain)
        attack = relearning(runs, task, parts.forget, runs[method].path / RELEARN, reference=RETRAIN)
        rows = {name: {**row, **attack[name]} for name, row in rows.items()}
        return rows, lm_gaps(rows[method], rows[RETRAIN])
    encoders = {name: (r.encoder(), r.modality()) for name, r in runs.items()}
    rows = encoder_scores(encoders, RETRAIN, task, parts, device)
    return rows, encoder_gaps(rows[method], rows[RETRAIN])


def verify_metrics(encoder: bool = False, language_model: bool = False) -> tuple[str, ...]:
    """The metrics of the verification table, in order (a classifier's, an encoder's or a
    language model's)."""
    return (
        (*LM_METRICS, "general_perplexity", "forget_quality", *RELEARN_METRICS)
        if language_model
        else ENCODER_METRICS
        if encoder
        else METRICS
    )
