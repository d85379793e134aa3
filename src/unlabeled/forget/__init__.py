"""Forget on request: remove samples or a class from a trained classifier, verify the result
against retraining, and record every request in an append-only audit log.

    new = forget("runs/clf", ids=["train-00017", ...], method="npo", out="runs/clf_forgot")
    table = verify(new)                   # gaps to a model retrained without those samples
    AuditLog("runs/clf").requests()       # what was asked, when, by which method, the outcome

Methods (``methods/``, one file each): ``retrain`` (exact: the original recipe on the retain
set, from the same starting point; the reference for every other), ``sisa`` (exact, for runs
trained with ``shards``: only the shards that held forgotten samples are retrained; Bourtoule
et al. 2021) and the approximate ``finetune``, ``ga``, ``npo``, ``scrub``, ``salun``.
Self-supervised encoders forget without labels: ``laf`` or ``retrain`` (the pretraining
recipe on the retain set, for as many steps).
The original run is never modified; only its audit log grows.
"""

from __future__ import annotations

from unlabeled.forget.api import forget
from unlabeled.forget.audit import AuditLog
from unlabeled.forget.methods import APPROXIMATE, ENCODER_METHODS, METHODS
from unlabeled.forget.request import forget_set, ids_hash
from unlabeled.forget.verification import REFERENCE, verify, verify_metrics

__all__ = [
    "APPROXIMATE",
    "ENCODER_METHODS",
    "METHODS",
    "REFERENCE",
    "AuditLog",
    "forget",
    "forget_set",
    "ids_hash",
    "verify",
    "verify_metrics",
]
