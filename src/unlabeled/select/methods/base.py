"""The contract every selection method keeps: a class naming the method, saying what it
needs (embeddings, a target, a budget), and choosing pool positions from a ``MethodInput``
that ``unlabeled.select.api`` has prepared and validated."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to a single bool
class MethodInput:
    """What a method chooses from. ``vectors`` are the candidates' embeddings (row i is
    candidate i; None for a method that needs none), ``target`` the target's embeddings (None
    unless the method needs a target), ``budget`` a count of candidates (None unless the method
    needs a budget)."""

    size: int
    vectors: np.ndarray | None
    target: np.ndarray | None
    budget: int | None
    seed: int
    threshold: float
    centroids: int | None
    stop_similarity: float | None


class SelectionMethod(ABC):
    """One selection method. Subclasses set ``name`` (what ``select(method=...)`` takes) and
    whichever of the ``needs_*`` flags differ from the defaults; the api checks those needs
    before ``select`` runs."""

    name: ClassVar[str]
    needs_embeddings: ClassVar[bool] = True  # works on an encoder's embeddings of the pool
    needs_target: ClassVar[bool] = False  # needs the embeddings of a target set
    needs_budget: ClassVar[bool] = True  # keeps a given number of samples
    clusters_target: ClassVar[bool] = False  # its --centroids cluster the target, not the pool
    # the settings it reads beyond the budget and target: any other given is refused, not ignored
    takes: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def select(self, data: MethodInput) -> tuple[np.ndarray, dict[str, Any]]:
        """The chosen candidate positions (sorted, in ``range(data.size)``) and what
        ``selection.json`` should record about how they were chosen."""
