"""Images (1..N channels): batching, normalisation and augmentation of a whole batch at once.

Every augmentation is a tensor operation over the batch on the training device, with
per-sample random parameters drawn from one ``torch.Generator``: random resized crop and
horizontal flip in a single ``grid_sample``, brightness/contrast jitter, random greyscale,
Gaussian blur as a grouped convolution with a per-sample kernel, and Gaussian noise. This
replaces the per-sample PIL transforms of torchvision-style pipelines (SimCLR's augmentation
recipe, Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", section 3 and appendix A).

    mod = ImageModality.fit(collection)
    x = mod.prepare(collection.get(positions), device)      # float in [0, 1], (B, C, H, W)
    view = mod.normalize(mod.augment(x, generator))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unlabeled._console import UnlabeledError
from unlabeled.data.collection import Collection
from unlabeled.modalities.base import Modality, chance, check_augment, power_of_two_patch, sample_positions, uniform


@dataclass
class ImageAugment:
    """Strengths of the batched image augmentations; each ``*_p`` is a per-sample chance."""

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    noise_p: float = 0.0
    noise_std: float = 0.05
    weak_shift: float = 0.125  # the weak view's largest shift, a share of each side
    view_size: int = 0  # the full augmentation's crops resized to this side (0: the image's own size)
    # multi-crop (SwAV): this many more views a sample, smaller crops at a smaller side
    local_views: int = 0
    local_size: int = 8
    local_scale: tuple[float, float] = (0.1, 0.35)

    @classmethod
    def for_size(cls, height: int, width: int) -> ImageAugment:
        """Defaults by image size. Small images (under 64 px, CIFAR- or MNIST-like) get
        milder crops and no blur, as SimCLR does for CIFAR-10 (Chen et al. 2020, appendix
        B.9); measured on Fashion-MNIST, blur and crops down to 25% cost 1-2 points of
        1%-label accuracy (BENCHMARKS.md)."""
        if min(height, width) < 64:
            return cls(crop_scale=(0.35, 1.0), blur_p=0.0)
        return cls()

    def __post_init__(self) -> None:
        fractions = ("flip_p", "jitter_p", "grayscale_p", "blur_p", "noise_p", "weak_shift")
        check_augment(self, fractions, ("crop_scale", "local_scale"))
        if not 0 <= self.view_size <= 4096:
            raise ValueError(f"view_size must be 0 (the image's size) or a side in pixels, got {self.view_size}")
        if not 0 <= self.local_views <= 16:
            raise ValueError(f"local_views must be 0 to 16, got {self.local_views}")
        if not 2 <= self.local_size <= 4096:
            raise ValueError(f"local_size must be a side in pixels, at least 2, got {self.local_size}")


def resized_crop_flip(x: torch.Tensor, aug: ImageAugment, g: torch.Generator, size: int = 0) -> torch.Tensor:
    """Random resized crop plus horizontal flip of every image, as one affine ``grid_sample``;
    the crops come out ``size`` x ``size`` pixels (0: the images' own size). Smaller views cost
    less to encode: a CNN's global pooling takes any size, so an encoder pretrained on them
    embeds full-size images (training below the test resolution, as in Touvron et al. 2019,
    "Fixing the train-test resolution discrepancy")."""
    b, dev = x.shape[0], x.device
    area = uniform(b, *aug.crop_scale, g, dev)
    log_ratio = uniform(b, math.log(aug.crop_ratio[0]), math.log(aug.crop_ratio[1]), g, dev)
    ratio = torch.exp(log_ratio)
    w = torch.sqrt(area * ratio).clamp(max=1.0)  # crop size as a fraction of the image
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = uniform(b, -1.0, 1.0, g, dev) * (1 - w)  # crop centre, in grid coordinates
    cy = uniform(b, -1.0, 1.0, g, dev) * (1 - h)
    flip = torch.where(chance(b, aug.flip_p, g, dev), -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    shape = list(x.shape) if not size else [b, x.shape[1], size, size]
    grid = F.affine_grid(theta, shape, align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def shift_flip(x: torch.Tensor, shift: float, flip_p: float, g: torch.Generator) -> torch.Tensor:
    """Every image moved by up to ``shift`` of its width and height (reflected at the border)
    and flipped horizontally with chance ``flip_p``: FixMatch's weak view, its "flip-and-shift"
    (Sohn et al. 2020, section 2.3), as one affine ``grid_sample``."""
    b, dev = x.shape[0], x.device
    theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0] = torch.where(chance(b, flip_p, g, dev), -1.0, 1.0)
    theta[:, 1, 1] = 1.0
    theta[:, :, 2] = uniform(2 * b, -2 * shift, 2 * shift, g, dev).view(b, 2)  # the grid spans 2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own sigma: a separable grouped convolution, one group per
    (image, channel)."""
    b, c, h, w = x.shape
    k = min(2 * math.ceil(3 * float(sigma.max())) + 1, 2 * (min(h, w) // 2) - 1)
    if k < 3:
        return x
    r = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kern = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    kern = (kern / kern.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (b*c, k)
    p = k // 2
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (p, p, 0, 0), mode="reflect"), kern.view(b * c, 1, 1, k), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, p, p), mode="reflect"), kern.view(b * c, 1, k, 1), groups=b * c)
    return y.reshape(b, c, h, w)


def augment_images(x: torch.Tensor, aug: ImageAugment, g: torch.Generator) -> torch.Tensor:
    """One random view of every image in ``x`` (values in [0, 1], shape (B, C, H, W))."""
    b, c, dev = x.shape[0], x.shape[1], x.device
    x = resized_crop_flip(x, aug, g, aug.view_size)
    jitter = chance(b, aug.jitter_p, g, dev)[:, None, None, None]
    bright = uniform(b, 1 - aug.brightness, 1 + aug.brightness, g, dev)[:, None, None, None]
    contrast = uniform(b, 1 - aug.contrast, 1 + aug.contrast, g, dev)[:, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    jittered = ((x * bright - mean * bright) * contrast + mean * bright).clamp(0, 1)
    x = torch.where(jitter, jittered, x)
    if c == 3 and aug.grayscale_p > 0:
        grey = (x * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = torch.where(chance(b, aug.grayscale_p, g, dev)[:, None, None, None], grey.expand_as(x), x)
    if aug.blur_p > 0:
        blur = chance(b, aug.blur_p, g, dev)
        sigma = uniform(b, *aug.blur_sigma, g, dev)
        if blur.any():
            x = x.clone()
            x[blur] = gaussian_blur(x[blur], sigma[blur])
    if aug.noise_p > 0:
        noisy = chance(b, aug.noise_p, g, dev)[:, None, None, None]
        std = uniform(b, 0.0, aug.noise_std, g, dev)[:, None, None, None]
        x = x + noisy * std * torch.randn(x.shape, generator=g, device=dev, dtype=x.dtype)
    return x.clamp(0, 1)


class ImageModality(Modality):
    """Images stored as (C, H, W) arrays, any number of channels: uint8 (scaled by 1/255) or
    float (used as is)."""

    name = "image"
    Augment = ImageAugment

    def __init__(
        self,
        sample_shape: tuple[int, ...],
        mean: list[float],
        std: list[float],
        scale: float = 255.0,
        augment: ImageAugment | dict[str, Any] | None = None,
    ) -> None:
        if len(sample_shape) != 3:
            raise ValueError(f"image samples are (C, H, W); got shape {tuple(sample_shape)}")
        self.scale = float(scale)
        super().__init__(sample_shape, mean, std, augment)

    def default_augment(self) -> ImageAugment:
        return ImageAugment.for_size(*self.sample_shape[1:])

    @classmethod
    def fit(
        cls,
        collection: Collection,
        positions: np.ndarray | None = None,
        augment: ImageAugment | None = None,
        max_samples: int = 10_000,
    ) -> ImageModality:
        """Per-channel mean and std from (up to ``max_samples`` of) the given samples."""
        pos = sample_positions(collection, positions, max_samples)
        x = collection.get(pos).astype(np.float64)
        # augmentations work on [0, 1]: uint8 is divided by 255, other types (16-bit or
        # float multispectral bands, say) by the largest value seen
        scale = 255.0 if collection.meta["dtype"] == "uint8" else max(1.0, float(np.abs(x).max()))
        x /= scale
        mean = x.mean(axis=(0, 2, 3))
        std = np.maximum(x.std(axis=(0, 2, 3)), 1e-6)
        return cls(collection.sample_shape, mean.tolist(), std.tolist(), scale, augment)

    def extra_state(self) -> dict[str, Any]:
        return {"scale": self.scale}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.sample_shape

    @property
    def patch(self) -> tuple[int, ...]:
        """About 7-14 patches a side: 28x28 -> 4x4 pixels, 224x224 -> 16x16 (ViT's)."""
        return (power_of_two_patch(min(self.sample_shape[1:]), 7),) * 2

    def prepare(self, batch: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """A batch of stored samples as float in [0, 1] on ``device``, channels-last."""
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(device, non_blocking=True)
        x = x.float().div_(self.scale) if self.scale != 1 else x.float()
        return x.contiguous(memory_format=torch.channels_last)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return super().normalize(x).contiguous(memory_format=torch.channels_last)

    def adapt(self, batch: np.ndarray, source: Modality) -> np.ndarray:
        """Other images: rescaled to this modality's units, resized (bilinear, antialiased
        when shrinking), grey repeated to this modality's channels or channels averaged to grey."""
        self._check_source(source)
        if source.sample_shape == self.sample_shape and getattr(source, "scale", self.scale) == self.scale:
            return batch
        c, h, w = self.sample_shape
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)) / getattr(source, "scale", 1.0)
        if x.shape[1] != c:
            if x.shape[1] == 1:
                x = x.expand(-1, c, -1, -1)
            elif c == 1:
                x = x.mean(1, keepdim=True)
            else:
                raise UnlabeledError(f"images with {x.shape[1]} channels do not fit an encoder of {c} channels")
        if x.shape[2:] != (h, w):
            shrink = x.shape[2] > h or x.shape[3] > w
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
        return (x.clamp(0, 1) * self.scale).numpy()

    def augment(self, x: torch.Tensor, generator: torch.Generator, light: bool = False) -> torch.Tensor:
        if light:
            return resized_crop_flip(x, self.aug, generator)
        return augment_images(x, self.aug, generator)

    def local_views(self, x: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """``local_views`` more views of every image: the full augmentation on crops of
        ``local_scale`` of the image, resized to ``local_size`` pixels a side (SwAV's
        multi-crop, Caron et al. 2020, section 3.2: small views cost little to encode)."""
        if not self.aug.local_views:
            return []
        local = replace(self.aug, crop_scale=self.aug.local_scale, view_size=self.aug.local_size)
        return [augment_images(x, local, generator) for _ in range(self.aug.local_views)]

    def weak(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Flip and shift by up to ``weak_shift`` of each side, no crop: the light view's
        crops (down to 35% of the area on small images) change what a garment looks like
        enough to make pseudo-labels less sure."""
        return shift_flip(x, self.aug.weak_shift, self.aug.flip_p, generator)
