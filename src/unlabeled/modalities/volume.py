"""3D volumes (CT, MRI, microscopy stacks): per-channel normalisation and batched 3D
augmentations.

A sample is stored as a (C, D, H, W) float32 array, every volume of a collection resampled
to one shape on import. The transformer cuts it into cubes (Hi-End-MAE and MIS-FM pretrain
3D ViTs on such patches).

Augmentations, one ``grid_sample`` for the geometry of the whole batch: a random resized 3D
crop with independent flips of each axis; then intensity scale and shift, and Gaussian
noise (the usual CT/MRI self-supervision recipe, e.g. Models Genesis and SwinUNETR).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unlabeled._console import UnlabeledError
from unlabeled.data.collection import Collection
from unlabeled.modalities.base import Modality, chance, check_augment, power_of_two_patch, sample_positions, uniform


@dataclass
class VolumeAugment:
    crop_scale: tuple[float, float] = (0.4, 1.0)  # fraction of the volume kept by the crop
    flip_p: float = 0.5  # per axis
    intensity_p: float = 0.8
    intensity: float = 0.2  # scale in 1 +- this, shift +- this (in units of the channel std)
    noise_p: float = 0.3
    noise_std: float = 0.1  # in units of the channel std

    def __post_init__(self) -> None:
        check_augment(self, ("flip_p", "intensity_p", "noise_p"))


class VolumeModality(Modality):
    """Volumes stored as (C, D, H, W) float arrays."""

    name = "volume"
    Augment = VolumeAugment

    def __init__(
        self,
        sample_shape: tuple[int, ...],
        mean: list[float],
        std: list[float],
        augment: VolumeAugment | dict[str, Any] | None = None,
    ) -> None:
        if len(sample_shape) != 4:
            raise ValueError(f"volume samples are (C, D, H, W); got shape {tuple(sample_shape)}")
        super().__init__(sample_shape, mean, std, augment)

    @classmethod
    def fit(
        cls, collection: Collection, positions: np.ndarray | None = None, augment: Any = None, max_samples: int = 500
    ) -> VolumeModality:
        """Per-channel mean and std of (up to ``max_samples``) volumes."""
        pos = sample_positions(collection, positions, max_samples)
        c = collection.sample_shape[0]
        total, sq, n = np.zeros(c), np.zeros(c), 0
        for start in range(0, len(pos), 64):
            x = collection.get(pos[start : start + 64]).astype(np.float64)
            total += x.sum(axis=(0, 2, 3, 4))
            sq += (x**2).sum(axis=(0, 2, 3, 4))
            n += x.shape[0] * int(np.prod(x.shape[2:]))
        mean = total / n
        # floored relative to the values too: a constant channel of 100 (std 0) was divided by
        # 1e-6, so the rounding of one interpolation made inputs of 23 and an intensity change 1e7
        std = np.maximum(np.sqrt(np.maximum(sq / n - mean**2, 0)), np.maximum(1e-4 * np.abs(mean), 1e-6))
        return cls(collection.sample_shape, mean.tolist(), std.tolist(), augment)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.sample_shape

    @property
    def patch(self) -> tuple[int, ...]:
        """Cubes giving about 4-8 patches a side: 32^3 -> 8^3 voxels (64 tokens), 96^3 -> 16^3."""
        return (power_of_two_patch(min(self.sample_shape[1:]), 4),) * 3

    def prepare(self, batch: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)

    def adapt(self, batch: np.ndarray, source: Modality) -> np.ndarray:
        """Volumes of another size: resized (trilinear); the channel counts must agree."""
        self._check_source(source)
        if source.sample_shape == self.sample_shape:
            return batch
        if source.sample_shape[0] != self.sample_shape[0]:
            raise UnlabeledError(
                f"volumes with {source.sample_shape[0]} channels do not fit an encoder of "
                f"{self.sample_shape[0]} channels"
            )
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return F.interpolate(x, size=self.sample_shape[1:], mode="trilinear", align_corners=False).numpy()

    def augment(self, x: torch.Tensor, generator: torch.Generator, light: bool = False) -> torch.Tensor:
        a, g = self.aug, generator
        b, c = x.shape[:2]
        dev = x.device
        lo, hi = (max(a.crop_scale[0], 0.6), 1.0) if light else a.crop_scale
        side = uniform(b, lo, hi, g, dev) ** (1 / 3)  # the same fraction along each axis
        theta = torch.zeros(b, 3, 4, device=dev, dtype=x.dtype)
        for i in range(3):
            flip = torch.where(chance(b, a.flip_p, g, dev), -1.0, 1.0)
            theta[:, i, i] = side * flip
            theta[:, i, 3] = uniform(b, -1.0, 1.0, g, dev) * (1 - side)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if light:
            return x
        std = torch.tensor(self.std, device=dev, dtype=x.dtype).view(1, c, 1, 1, 1)
        mean = torch.tensor(self.mean, device=dev, dtype=x.dtype).view(1, c, 1, 1, 1)
        on = chance(b, a.intensity_p, g, dev).view(b, 1, 1, 1, 1)
        factor = uniform(b, 1 - a.intensity, 1 + a.intensity, g, dev).view(b, 1, 1, 1, 1)
        shift = uniform(b, -a.intensity, a.intensity, g, dev).view(b, 1, 1, 1, 1) * std
        # contrast about the channel's mean, as the series' scaling: a factor of the raw values
        # moved a channel far from zero by factor x its mean, many of its stds
        x = torch.where(on, mean + (x - mean) * factor + shift, x)
        if a.noise_p > 0:
            noise = a.noise_std * std * torch.randn(x.shape, generator=g, device=dev, dtype=x.dtype)
            x = x + chance(b, a.noise_p, g, dev).view(b, 1, 1, 1, 1) * noise
        return x
