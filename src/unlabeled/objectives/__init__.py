"""Self-supervised objectives, registered by name. Adding a method is one file and one line
in ``OBJECTIVES``."""

from __future__ import annotations

from unlabeled._console import UnlabeledError
from unlabeled._settings import check_settings, settable
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


PRETRAINING = tuple(n for n, o in OBJECTIVES.items() if not o.uses_labels)  # what pretrain takes
LABELLED = {"supervised": "finetune", "fixmatch": "selftrain", "distil": "distil"}  # and the command for the rest


def check_pretraining_method(name: str) -> None:
    """``name`` is an objective that trains without labels; one that needs them names its command."""
    if not isinstance(name, str):
        raise UnlabeledError(f"method must be a name ({', '.join(PRETRAINING)}), got {name!r}")
    if name in LABELLED:
        raise UnlabeledError(f"{name} trains on labels; pretrain takes {', '.join(PRETRAINING)} (use {LABELLED[name]})")
    if name not in OBJECTIVES:
        raise UnlabeledError(f"unknown method {name!r}; choose from {', '.join(PRETRAINING)}")


def check_method_options(name: str, options: dict) -> None:
    """A new run's ``--option`` settings against what objective ``name`` takes (a saved run is
    rebuilt as it was saved, unchecked: older runs may hold values typed more loosely)."""
    if name in OBJECTIVES:
        check_settings(name, "--option", settable(OBJECTIVES[name], skip=("encoder", "modality")), options)


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
