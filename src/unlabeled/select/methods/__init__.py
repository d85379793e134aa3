"""Selection methods behind a registry: each method is a ``SelectionMethod`` subclass in its
own ``*_method.py`` file, beside the algorithm it runs, and ``METHODS`` maps the name
``select(method=...)`` takes to that class. Adding a method is one new file and one line in
``METHODS``; ``unlabeled.select.api`` never names a method.

The files end in ``_method`` so that a module never shares its name with the algorithm
function re-exported here (``methods.kcenter`` is the function, as before the registry).
"""

from __future__ import annotations

from unlabeled.select.algorithms import kmeans
from unlabeled.select.methods.base import MethodInput, SelectionMethod
from unlabeled.select.methods.dedup_method import SemDeDup, semdedup
from unlabeled.select.methods.kcenter_method import KCenter, kcenter
from unlabeled.select.methods.random_method import RandomSelection, random_selection
from unlabeled.select.methods.simcore_method import SimCore, simcore
from unlabeled.select.methods.target_shift_method import TargetShift, sinkhorn_potentials, target_shift

# in the order the CLI's help and the unknown-method error list them
METHODS: dict[str, type[SelectionMethod]] = {
    cls.name: cls
    for cls in (
        RandomSelection,
        KCenter,
        SimCore,
        SemDeDup,
        TargetShift,
    )
}

__all__ = [
    "METHODS",
    "KCenter",
    "MethodInput",
    "RandomSelection",
    "SelectionMethod",
    "SemDeDup",
    "SimCore",
    "TargetShift",
    "kcenter",
    "kmeans",
    "random_selection",
    "semdedup",
    "simcore",
    "sinkhorn_potentials",
    "target_shift",
]
