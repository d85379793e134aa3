"""Encoders and heads. ``build_encoder`` is how the rest of the project makes an encoder."""

from __future__ import annotations

from typing import Any

from torch import nn

from unlabeled._console import UnlabeledError
from unlabeled.models.cnn import CNN_SIZES, CNNEncoder

ENCODERS = {"cnn": CNNEncoder}
SIZES = tuple(CNN_SIZES)


def build_encoder(name: str, size: str, sample_shape: tuple[int, ...], **options: Any) -> nn.Module:
    """An untrained encoder for samples of ``sample_shape``; every encoder has ``dim``,
    ``forward(x) -> tokens`` and ``embed(x) -> (batch, dim)``."""
    if name not in ENCODERS:
        raise UnlabeledError(f"unknown encoder {name!r}; choose from {', '.join(ENCODERS)}")
    if name == "cnn":
        if len(sample_shape) != 3:
            raise UnlabeledError(f"the CNN encoder takes (C, H, W) images, not shape {sample_shape}")
        return CNNEncoder(sample_shape[0], size, tuple(sample_shape[1:]), **options)
    raise AssertionError(name)


__all__ = ["ENCODERS", "SIZES", "CNNEncoder", "build_encoder"]
