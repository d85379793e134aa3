"""Time series, univariate or multivariate (ECG, IMU, sensors): per-channel normalisation,
variable length carried as NaN padding, and batched augmentations.

A sample is stored as a (C, T) float32 array; a series shorter than T is padded with NaN at
its end. ``prepare`` gives (B, 1, C, T') with T' a multiple of the patch length, and the
transformer cuts every channel into its own patches (a (C, T'/P) grid of 1 x P patches, as
PatchTST's channel-independent patching does: Nie et al. 2023, "A Time Series is Worth 64
Words"), NaN patches being padding.

Augmentations, each a tensor operation over the batch (the recipes of time-series
contrastive learning: Um et al. 2017 "Data augmentation of wearable sensor data"; TS-TCC,
Eleftheriadis et al. 2021): a random crop of the valid part stretched back to its length,
per-channel scaling, jitter (Gaussian noise relative to each channel's spread) and a masked
span set to the channel mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unlabeled._console import UnlabeledError
from unlabeled.data.collection import Collection
from unlabeled.modalities.base import Modality, chance, check_augment, sample_positions, uniform


@dataclass
class SeriesAugment:
    crop_scale: tuple[float, float] = (0.6, 1.0)  # fraction of the valid length kept
    scale_p: float = 0.8
    scale_std: float = 0.2  # per-channel amplitude factor ~ N(1, scale_std)
    jitter_p: float = 0.8
    jitter_std: float = 0.1  # noise, relative to the channel's std
    mask_p: float = 0.5
    mask_frac: float = 0.15  # longest masked span, as a fraction of the valid length

    def __post_init__(self) -> None:
        check_augment(self, ("scale_p", "jitter_p", "mask_p", "mask_frac"))


def valid_lengths(x: torch.Tensor) -> torch.Tensor:
    """Length of each series in (B, 1, C, T): one past its last time step with any value (the
    NaN padding after it). Counting the steps with a value made a series with a gap inside
    shorter than it is: its last steps were cropped as padding."""
    real = ~torch.isnan(x).all(dim=2).squeeze(1)  # (B, T)
    steps = torch.arange(1, real.shape[1] + 1, device=x.device)
    return (real * steps).amax(1)


def crop_stretch(
    x: torch.Tensor,
    length: torch.Tensor,
    scale: torch.Tensor,
    g: torch.Generator,
    fill: torch.Tensor | None = None,
) -> torch.Tensor:
    """Take a random window of ``scale`` x the valid length of each series and stretch it back
    to the valid length by linear interpolation; padding stays padding. A missing value inside
    is read as ``fill`` (each channel's mean, (1, 1, C, 1); 0 when None) and a step missing in
    every channel stays missing where it lands (the nearest source step decides): filled with a
    raw 0, a gap became an outlier of minus the mean over the std, smeared into its neighbours."""
    b, _, c, t = x.shape
    dev = x.device
    gap = torch.isnan(x).all(dim=2).squeeze(1)  # (B, T): steps without any value
    lf = length.to(x.dtype)
    win = (scale * lf).clamp(min=1.0)
    start = torch.rand(b, generator=g, device=dev, dtype=x.dtype) * (lf - win)
    steps = torch.arange(t, device=dev, dtype=x.dtype)
    src = start[:, None] + steps[None] * ((win - 1) / (lf - 1).clamp(min=1))[:, None]  # (B, T)
    src = torch.minimum(src, (lf - 1)[:, None]).clamp(min=0)
    lo = src.floor().long()
    hi = torch.minimum(lo + 1, (length - 1).clamp(min=0)[:, None])
    w = (src - lo).unsqueeze(1)
    filled = torch.nan_to_num(x.squeeze(1)) if fill is None else torch.where(torch.isnan(x), fill, x).squeeze(1)
    out = filled.gather(2, lo[:, None].expand(b, c, t)) * (1 - w) + filled.gather(2, hi[:, None].expand(b, c, t)) * w
    missing = torch.where(w.squeeze(1) < 0.5, gap.gather(1, lo), gap.gather(1, hi))  # (B, T)
    out = torch.where(((steps[None] < lf[:, None]) & ~missing)[:, None], out, torch.nan)
    return out.unsqueeze(1)


class SeriesModality(Modality):
    """Series stored as (C, T) float arrays, NaN-padded at the end when shorter than T."""

    name = "series"
    Augment = SeriesAugment

    def __init__(
        self,
        sample_shape: tuple[int, ...],
        mean: list[float],
        std: list[float],
        patch_len: int | None = None,
        augment: SeriesAugment | dict[str, Any] | None = None,
    ) -> None:
        if len(sample_shape) != 2:
            raise ValueError(f"series samples are (channels, time); got shape {tuple(sample_shape)}")
        super().__init__(sample_shape, mean, std, augment)
        self.patch_len = int(patch_len or default_patch_len(*self.sample_shape))

    @classmethod
    def fit(
        cls, collection: Collection, positions: np.ndarray | None = None, augment: Any = None, max_samples: int = 10_000
    ) -> SeriesModality:
        """Per-channel mean and std over every valid time step of (up to ``max_samples``) series."""
        x = collection.get(sample_positions(collection, positions, max_samples)).astype(np.float64)
        mean = np.nan_to_num(np.nanmean(x, axis=(0, 2)))
        std = np.maximum(np.nan_to_num(np.nanstd(x, axis=(0, 2))), 1e-6)
        return cls(collection.sample_shape, mean.tolist(), std.tolist(), augment=augment)

    def extra_state(self) -> dict[str, Any]:
        return {"patch_len": self.patch_len}

    @property
    def input_shape(self) -> tuple[int, ...]:
        c, t = self.sample_shape
        return (1, c, math.ceil(t / self.patch_len) * self.patch_len)

    @property
    def patch(self) -> tuple[int, ...]:
        return (1, self.patch_len)

    def stat_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (1, 1, -1, 1)

    def prepare(self, batch: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """(B, C, T) stored series -> (B, 1, C, T') float on ``device``, NaN-padded to T'."""
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
        extra = self.input_shape[2] - x.shape[2]
        if extra:
            x = F.pad(x, (0, extra), value=float("nan"))
        return x.unsqueeze(1)

    def adapt_factor(self, source: Modality) -> int:
        self._check_source(source)
        c, src_c = self.sample_shape[0], source.sample_shape[0]
        if src_c == c:
            return 1
        if c == 1:
            return src_c
        raise UnlabeledError(
            f"series with {src_c} channels do not fit an encoder of {c} channels (an encoder of "
            "univariate series embeds any number of channels, one at a time)"
        )

    def adapt(self, batch: np.ndarray, source: Modality) -> np.ndarray:
        """Series of another length: each resampled to this length. Multivariate series for
        a univariate encoder: every channel on its own (channel independence, as PatchTST and
        Tiny Time Mixers do), so ``(N, C, T)`` becomes ``(N * C, 1, length)``."""
        k = self.adapt_factor(source)
        if k == 1 and source.sample_shape == self.sample_shape:
            return batch
        x = np.asarray(batch, dtype=np.float32)
        if k > 1:
            x = x.reshape(-1, 1, x.shape[2])
        return resample_valid(x, self.sample_shape[1], np.asarray(self.mean, dtype=np.float32))

    def augment(self, x: torch.Tensor, generator: torch.Generator, light: bool = False) -> torch.Tensor:
        a, g = self.aug, generator
        b, _, c, t = x.shape
        dev = x.device
        length = valid_lengths(x)
        lo, hi = a.crop_scale
        if light:
            lo = max(lo, 0.8)
        mean = torch.tensor(self.mean, device=dev, dtype=x.dtype).view(1, 1, c, 1)
        std = torch.tensor(self.std, device=dev, dtype=x.dtype).view(1, 1, c, 1)
        x = crop_stretch(x, length, uniform(b, lo, hi, g, dev), g, fill=mean)
        if light:
            return x
        if a.scale_p > 0:
            factor = 1 + a.scale_std * torch.randn(b, 1, c, 1, generator=g, device=dev, dtype=x.dtype)
            on = chance(b, a.scale_p, g, dev).view(b, 1, 1, 1)
            x = torch.where(on, mean + (x - mean) * factor, x)
        if a.jitter_p > 0:
            noise = a.jitter_std * std * torch.randn(x.shape, generator=g, device=dev, dtype=x.dtype)
            x = x + chance(b, a.jitter_p, g, dev).view(b, 1, 1, 1) * noise
        if a.mask_p > 0 and a.mask_frac > 0:
            span = (uniform(b, 0, a.mask_frac, g, dev) * length).floor()
            start = torch.rand(b, generator=g, device=dev) * (length - span).clamp(min=0)
            steps = torch.arange(t, device=dev)
            inside = (steps[None] >= start[:, None]) & (steps[None] < (start + span)[:, None])
            inside &= chance(b, a.mask_p, g, dev)[:, None]
            # padding is never inside; a missing value inside stays missing (masked as it was)
            x = torch.where(inside.view(b, 1, 1, t) & ~torch.isnan(x), mean.expand_as(x), x)
        return x


def resample_valid(x: np.ndarray, length: int, fill: np.ndarray | None = None) -> np.ndarray:
    """(N, C, T) NaN-padded series -> (N, C, length): each sample's valid part (up to its
    last time step with any value) linearly resampled. A missing value inside reads as
    ``fill`` (each channel's mean, (C,); 0 when None) and a step missing in every channel
    stays missing (NaN) where its nearest resampled step lands, as :func:`crop_stretch` does."""
    n, c, t = x.shape
    out = np.empty((n, c, length), np.float32)
    has = ~np.isnan(x).all(axis=1)  # (N, T)
    valid = np.where(has.any(1), t - np.argmax(has[:, ::-1], axis=1), 1)
    fill = np.zeros(c, np.float32) if fill is None else np.broadcast_to(np.asarray(fill, np.float32), (c,))
    for i in range(n):
        src = np.linspace(0, valid[i] - 1, length)
        part = x[i, :, : valid[i]]
        part = np.where(np.isnan(part), fill[:, None], part)
        for j in range(c):
            out[i, j] = np.interp(src, np.arange(valid[i]), part[j])
        out[i, :, ~has[i, np.rint(src).astype(np.int64)]] = np.nan
    return out


def default_patch_len(channels: int, length: int) -> int:
    """Patch length: at most 32 patches per channel and about 256 tokens in all."""
    return max(2, math.ceil(length / 32), math.ceil(length * channels / 256))
