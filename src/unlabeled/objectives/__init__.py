"""Self-supervised objectives, registered by name. Adding a method is one file and one line
in ``OBJECTIVES``."""

from __future__ import annotations

from unlabeled._console import UnlabeledError
from unlabeled.objectives.base import Objective
from unlabeled.objectives.distil import Distil
from unlabeled.objectives.fixmatch import FixMatch
from unlabeled.objectives.jepa import JEPA
from unlabeled.objectives.mae import MAE
from unlabeled.objectives.simclr import SimCLR
from unlabeled.objectives.supervised import Classifier, Supervised
from unlabeled.objectives.ts2vec import TS2Vec

OBJECTIVES: dict[str, type[Objective]] = {
    "simclr": SimCLR,
    "mae": MAE,
    "jepa": JEPA,
    "ts2vec": TS2Vec,
    "supervised": Supervised,
    "distil": Distil,
    "fixmatch": FixMatch,
}


def build_objective(name: str, encoder, modality, **hparams) -> Objective:
    if name not in OBJECTIVES:
        raise UnlabeledError(f"unknown method {name!r}; choose from {', '.join(OBJECTIVES)}")
    try:
        return OBJECTIVES[name](encoder, modality, **hparams)
    except (TypeError, ValueError) as e:
        raise UnlabeledError(f"{name}: {e}") from None


__all__ = [
    "Distil",
    "FixMatch",
    "JEPA",
    "MAE",
    "OBJECTIVES",
    "Classifier",
    "Objective",
    "SimCLR",
    "Supervised",
    "TS2Vec",
    "build_objective",
]
