"""A small ResNet-style CNN encoder for 2D images, sized for small images and CPUs.

Residual units (He et al. 2016, "Deep Residual Learning for Image Recognition") after a
"deep stem" of two 3x3 convolutions at full resolution (ResNet-C in He et al. 2019, "Bag of
Tricks for Image Classification with Convolutional Neural Networks"), with max-pooling
between stages. ``tiny`` uses one-convolution residual units: measured on Fashion-MNIST, it
learns better SimCLR features per second of CPU than strided two-convolution blocks
(BENCHMARKS.md).

``strided_stem=True`` gives the stem's second convolution a stride of 2 in place of the first
stage's max-pool: every later feature map keeps its size, and the widest full-resolution
activation is gone. On cnn-tiny at 28x28 in fp32 a SimCLR step has 23% fewer FLOPs and ran
1.25x faster (the step already runs at about 90% of the CPU's fp32 GEMM peak); FixMatch after
SimCLR did not gain from the extra steps (BENCHMARKS.md), so it is not the default.

    enc = CNNEncoder(in_channels=1, size="tiny", image_size=(28, 28))
    tokens = enc(x)        # (B, H'*W', dim): the last feature map as tokens
    z = enc.embed(x)       # (B, dim): global average pool
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unlabeled._console import UnlabeledError


@dataclass(frozen=True)
class CNNSize:
    stem: tuple[int, int]  # widths of the two full-resolution stem convolutions
    widths: tuple[int, ...]  # one stage each, after a 2x max-pool
    blocks: int  # residual units per stage
    convs: int  # convolutions per residual unit (1 or 2)


CNN_SIZES = {
    "tiny": CNNSize((32, 64), (128, 256), 1, 1),
    "small": CNNSize((32, 64), (128, 256, 512), 1, 2),
    "base": CNNSize((64, 64), (128, 256, 512), 2, 2),
}


def conv_bn(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]


class PoolReLU(nn.Module):
    """2x max-pool, then ReLU: the same as ReLU then pool (the max commutes with any
    increasing function), with the ReLU on a quarter of the values. Placed after a layer
    whose own final ReLU is left out."""

    def __init__(self, ceil_mode: bool = True) -> None:
        super().__init__()
        self.ceil_mode = ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(nn.functional.max_pool2d(x, 2, ceil_mode=self.ceil_mode))


class ResidualUnit(nn.Module):
    """``convs`` 3x3 convolutions with batch norm, added to the (1x1-projected) input, then
    ReLU (left to the next :class:`PoolReLU` when ``relu=False``)."""

    def __init__(self, cin: int, cout: int, convs: int, relu: bool = True) -> None:
        super().__init__()
        self.relu = relu
        layers: list[nn.Module] = []
        for i in range(convs):
            layers += conv_bn(cin if i == 0 else cout, cout)
            if i < convs - 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)
        self.skip = (
            nn.Identity() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x) + self.skip(x)
        return torch.relu_(y) if self.relu else y


class CNNEncoder(nn.Module):
    """Deep stem, then one stage per width: 2x max-pool and ``blocks`` residual units."""

    def __init__(
        self, in_channels: int, size: str = "tiny", image_size: tuple[int, int] = (32, 32), strided_stem: bool = False
    ):
        super().__init__()
        if size not in CNN_SIZES:
            raise UnlabeledError(f"unknown encoder size {size!r}; choose from {', '.join(CNN_SIZES)}")
        cfg = CNN_SIZES[size]
        s0, s1 = cfg.stem
        # every ReLU that a 2x max-pool follows moves after the pool (PoolReLU): the same
        # function with a quarter of the ReLU's work; on cnn-tiny at 28x28 the bf16 SimCLR step
        # ran 5% faster (median of an A/B, BENCHMARKS.md). Parameter names are unchanged.
        stem: list[nn.Module] = [
            *conv_bn(in_channels, s0, 2 if min(image_size) >= 64 else 1),  # large images: stride early
            nn.ReLU(inplace=True),
            *conv_bn(s0, s1, 2 if strided_stem else 1),
        ]
        if min(image_size) >= 128:
            stem.append(PoolReLU(ceil_mode=False))  # large images: pool once more in the stem
        elif strided_stem:  # the stride stands in for the first stage's pool
            stem.append(nn.ReLU(inplace=True))
        self.stem = nn.Sequential(*stem)
        self.strided_stem = bool(strided_stem)
        stages: list[nn.Module] = []
        cin = s1
        pool_relu = min(image_size) < 128  # else the stem has pooled and activated already
        for i, width in enumerate(cfg.widths):
            if i or not strided_stem:
                stages.append(PoolReLU() if pool_relu else nn.MaxPool2d(2, ceil_mode=True))
            for b in range(cfg.blocks):
                pool_relu = b == cfg.blocks - 1 and i < len(cfg.widths) - 1  # a pool comes next
                stages.append(ResidualUnit(cin, width, cfg.convs, relu=not pool_relu))
                cin = width
        self.stages = nn.Sequential(*stages)
        self.dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # channels-last weights match the channels-last batches the image modality makes;
        # oneDNN's convolutions run about 1.5x faster that way on CPU (BENCHMARKS.md)
        self.to(memory_format=torch.channels_last)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).flatten(2).transpose(1, 2)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))
