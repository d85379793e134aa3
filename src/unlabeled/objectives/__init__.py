"""Self-supervised objectives, registered by name. Adding a method is one file and one line
in ``OBJECTIVES``."""

from __future__ import annotations

from unlabeled._console import UnlabeledError
from unlabeled.objectives.base import Objective
from unlabeled.objectives.simclr import SimCLR

OBJECTIVES: dict[str, type[Objective]] = {
    "simclr": SimCLR,
}


def build_objective(name: str, encoder, modality, **hparams) -> Objective:
    if name not in OBJECTIVES:
        raise UnlabeledError(f"unknown method {name!r}; choose from {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name](encoder, modality, **hparams)


__all__ = ["OBJECTIVES", "Objective", "SimCLR", "build_objective"]
