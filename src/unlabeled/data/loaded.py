"""A dataset read into memory, the form every built-in and table reader hands to the
collection writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Loaded:
    """A dataset read into memory, ready to be written as a collection."""

    arrays: np.ndarray
    ids: list[str]
    labels: np.ndarray | None
    splits: list[str] | None
    classes: list[str] | None
    modality: str
    source: str
    groups: list[str | None] | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # extra collection.json entries (sample_rate)
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # extra index columns (regression targets)
    notes: list[str] = field(default_factory=list)  # what the import report says of them (documents cut)
