"""What every modality shares: its augmentation settings as a dataclass, the state that
rebuilds it from a run's config, normalisation statistics cached per device, and the random
draws of batched augmentations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import Any, ClassVar

import numpy as np
import torch

from unlabeled._console import UnlabeledError
from unlabeled._settings import check_kind
from unlabeled.data.collection import Collection


def uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """``n`` draws from U(lo, hi)."""
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def chance(n: int, p: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """``n`` coin flips that come up True with probability ``p``."""
    return torch.rand(n, generator=g, device=device) < p


def sample_positions(collection: Collection, positions: np.ndarray | None, max_samples: int) -> np.ndarray:
    """Up to ``max_samples`` of ``positions`` (a fixed random subset), to fit statistics on."""
    pos = collection.indices() if positions is None else np.asarray(positions)
    if len(pos) > max_samples:
        pos = np.sort(np.random.default_rng(0).choice(pos, max_samples, replace=False))
    return pos


def check_augment(aug: Any, fractions: tuple[str, ...], scales: tuple[str, ...] = ("crop_scale",)) -> None:
    """Validate an augmentation dataclass: each of ``scales`` (``crop_scale``, say) a range
    within (0, 1], each of ``fractions`` (chances and relative sizes) within [0, 1]."""
    for name in scales:
        lo, hi = getattr(aug, name)
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"{name} must satisfy 0 < lo <= hi <= 1, got {getattr(aug, name)}")
    for name in fractions:
        if not 0 <= getattr(aug, name) <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {getattr(aug, name)}")


def power_of_two_patch(side: int, per_side: int, cap: int = 16) -> int:
    """The power of two (at most ``cap``) giving at least ``per_side`` patches along ``side``."""
    return min(cap, 2 ** max(0, math.floor(math.log2(max(side, 1) / per_side))))


class Modality:
    """Base of the modalities. A subclass sets ``name`` and ``Augment`` (a dataclass of
    augmentation strengths) and implements ``fit``, ``prepare``, ``augment``, ``input_shape``
    and ``patch``; ``state()`` must hold exactly the constructor's arguments."""

    name: ClassVar[str]
    Augment: ClassVar[type]

    def __init__(
        self, sample_shape: Sequence[int], mean: Sequence[float], std: Sequence[float], augment: Any = None
    ) -> None:
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
        self.aug = self._as_augment(augment) if augment is not None else self.default_augment()
        self._stats: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    # -- to be provided by each modality ----------------------------------------------------
    @classmethod
    def fit(cls, collection: Collection, positions: np.ndarray | None = None, augment: Any = None) -> Modality:
        raise NotImplementedError

    def default_augment(self) -> Any:
        return self.Augment()

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample as ``prepare`` gives it to the encoder: (C, *spatial)."""
        raise NotImplementedError

    @property
    def patch(self) -> tuple[int, ...]:
        """Default patch size per spatial axis of ``input_shape`` for the transformer."""
        raise NotImplementedError

    def stat_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        """How ``mean``/``std`` broadcast against a prepared batch (default: per channel)."""
        return (1, -1) + (1,) * (x.dim() - 2)

    def prepare(self, batch: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        raise NotImplementedError

    def augment(self, x: torch.Tensor, generator: torch.Generator, light: bool = False) -> torch.Tensor:
        """One random view of every sample of a prepared batch. ``light``: only the geometric
        part (crops, flips, shifts), what masked-prediction objectives use (MAE, I-JEPA)."""
        raise NotImplementedError

    def weak(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The least distorting random view, what self-training takes pseudo-labels from
        (FixMatch's "weak" augmentation): the light view unless a modality has a milder one."""
        return self.augment(x, generator, light=True)

    def local_views(self, x: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """Multi-crop's extra small views of every sample (Caron et al. 2020, "Unsupervised
        Learning of Visual Features by Contrasting Cluster Assignments", section 3.2): none
        unless a modality's augmentation asks for them."""
        return []

    # -- shared -----------------------------------------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.dtype)
        if key not in self._stats:
            shape = self.stat_shape(x)
            mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(shape)
            std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(shape)
            self._stats[key] = (mean, std)
        mean, std = self._stats[key]
        return (x - mean) / std

    def _as_augment(self, value: Any) -> Any:
        if isinstance(value, self.Augment):
            return value
        return self.Augment(**{k: tuple(v) if isinstance(v, list) else v for k, v in dict(value).items()})

    def augmentation_with(self, changes: dict[str, Any]) -> Any:
        """This modality's augmentation with some settings changed (unknown names are errors)."""
        known = {f.name for f in fields(self.Augment)}
        unknown = set(changes) - known
        if unknown:
            settings = f"known: {', '.join(sorted(known))}" if known else "it has no augmentation settings"
            raise UnlabeledError(f"unknown {self.name} augmentation setting(s) {sorted(unknown)}; {settings}")
        current = asdict(self.aug)
        for name, value in changes.items():  # a word for a number is named, not a failed comparison
            check_kind(f"--augment {name}", value, current[name])
        try:
            return self._as_augment({**current, **changes})
        except (TypeError, ValueError) as e:
            raise UnlabeledError(f"{self.name} augmentation: {e}") from None

    def encoder_options(self) -> dict[str, Any]:
        """Options every encoder of this modality's samples is built with (text: the vocabulary)."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Constructor arguments beyond sample_shape, mean, std and augment."""
        return {}

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sample_shape": list(self.sample_shape),
            "mean": self.mean,
            "std": self.std,
            **self.extra_state(),
            "augment": asdict(self.aug),
        }

    @property
    def channels(self) -> int:
        return self.input_shape[0]

    # -- samples of another collection ------------------------------------------------------
    def adapt_factor(self, source: Modality) -> int:
        """How many of this modality's samples one ``source`` sample becomes under
        :meth:`adapt` (more than one for channel-independent series); its features are
        those samples' embeddings side by side."""
        self._check_source(source)
        return 1

    def adapt(self, batch: np.ndarray, source: Modality) -> np.ndarray:
        """Samples stored as ``source`` stores them -> samples as this modality stores them,
        so that an encoder pretrained on one collection can embed another (a benchmark
        suite's tasks differ in size, length and channels). The base case: the same shape."""
        self._check_source(source)
        if source.sample_shape != self.sample_shape:
            raise UnlabeledError(
                f"{self.name} samples of shape {list(source.sample_shape)} do not fit an encoder of "
                f"shape {list(self.sample_shape)}"
            )
        return batch

    def _check_source(self, source: Modality) -> None:
        if source.name != self.name:
            raise UnlabeledError(f"an encoder of {self.name} samples cannot embed {source.name} samples")
