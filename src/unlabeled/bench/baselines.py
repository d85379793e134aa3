"""The baselines every bench compares encoders with: the raw inputs as features, the run's
architecture with random weights, that architecture trained from scratch on the same labels,
and, for time series, MiniRocket's features (the method a user of series would otherwise pick).
The one definition of their names, for the bench, its result and its report."""

from __future__ import annotations

from typing import Any

RAW, RANDOM_INIT, SUPERVISED, MINIROCKET = "raw", "random-init", "supervised", "minirocket"
BASELINES = (RAW, RANDOM_INIT, SUPERVISED, MINIROCKET)  # minirocket: series tasks only


def is_baseline(row: dict[str, Any]) -> bool:
    """A row of a baseline model: raw features, a random-init encoder, or supervised from scratch."""
    if "baseline" in row:
        return bool(row["baseline"])
    model = str(row["model"])
    return model in BASELINES or model.startswith(f"{RANDOM_INIT}:")
