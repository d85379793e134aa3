"""Choose what to pretrain on: ``select`` turns a pool collection into a smaller collection
that reads the pool's arrays in place, with ``selection.json`` saying how it was made.

    sel = select("data/pool", method="simcore", encoder="runs/a", target="data/target",
                 budget=20000, out="data/pool_simcore")

Methods (one file each in ``methods/``, with its paper): ``random``, ``kcenter``, ``simcore``
(needs a target), ``dedup`` (SemDeDup, needs a threshold, no budget), ``target-shift``
(GOT-D, needs a target). Every method but ``random`` works on the embeddings of an encoder run.

Layers, each importing only those below it: ``index`` (embeddings and their search),
``algorithms`` (what several methods share), ``methods`` (the registry), ``api`` (``select``).
"""

from __future__ import annotations

from unlabeled.select.api import METHODS, SELECTION_FILE, select
from unlabeled.select.index import EmbeddingIndex

__all__ = ["METHODS", "SELECTION_FILE", "EmbeddingIndex", "select"]
