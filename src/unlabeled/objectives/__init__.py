"""Self-supervised objectives, registered by name. Adding a method is one file and one line
in ``OBJECTIVES``."""

from __future__ import annotations

from unlabeled._console import UnlabeledError
from unlabeled.objectives.base import Objective
from unlabeled.objectives.clm import CLM
from unlabeled.objectives.distil import Distil
from unlabeled.objectives.fixmatch import FixMatch
from unlabeled.objectives.jepa import JEPA
from unlabeled.objectives.mae import MAE
from unlabeled.objectives.mlm import MLM
from unlabeled.objectives.simclr import SimCLR
from unlabeled.objectives.simcse import SimCSE
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
    "mlm": MLM,
    "clm": CLM,
    "simcse": SimCSE,
}
# what text can be trained by: the language-model objectives and the ones with labels or a
# teacher; the others need augmentations or pixel patches that text does not have
TEXT_OBJECTIVES = ("mlm", "clm", "simcse", "supervised", "distil")


def build_objective(name: str, encoder, modality, **hparams) -> Objective:
    if name not in OBJECTIVES:
        raise UnlabeledError(f"unknown method {name!r}; choose from {', '.join(OBJECTIVES)}")
    if getattr(modality, "name", None) == "text" and name not in TEXT_OBJECTIVES:
        raise UnlabeledError(f"{name} does not train on text; for text choose {', '.join(TEXT_OBJECTIVES[:3])}")
    try:
        return OBJECTIVES[name](encoder, modality, **hparams)
    except (TypeError, ValueError) as e:
        raise UnlabeledError(f"{name}: {e}") from None


__all__ = [
    "CLM",
    "TEXT_OBJECTIVES",
    "SimCSE",
    "Distil",
    "FixMatch",
    "JEPA",
    "MAE",
    "MLM",
    "OBJECTIVES",
    "Classifier",
    "Objective",
    "SimCLR",
    "Supervised",
    "TS2Vec",
    "build_objective",
]
