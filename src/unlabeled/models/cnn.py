"""A small ResNet-style CNN encoder for 2D images (He et al. 2016, "Deep Residual Learning
for Image Recognition"), sized for small images and CPUs.

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
    widths: tuple[int, ...]
    blocks: tuple[int, ...]


CNN_SIZES = {
    "tiny": CNNSize((32, 64, 128, 256), (1, 1, 1, 1)),
    "small": CNNSize((64, 128, 256, 512), (1, 1, 1, 1)),
    "base": CNNSize((64, 128, 256, 512), (2, 2, 2, 2)),
}


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity (Goyal et al. 2017)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


class CNNEncoder(nn.Module):
    """ResNet-style encoder: a 3x3 stem (strided for images of 64 px and more), then one
    stage per width, each halving the resolution after the first."""

    def __init__(self, in_channels: int, size: str = "tiny", image_size: tuple[int, int] = (32, 32)):
        super().__init__()
        if size not in CNN_SIZES:
            raise UnlabeledError(f"unknown encoder size {size!r}; choose from {', '.join(CNN_SIZES)}")
        cfg = CNN_SIZES[size]
        w0 = cfg.widths[0]
        stem: list[nn.Module] = [
            nn.Conv2d(in_channels, w0, 3, 2 if min(image_size) >= 64 else 1, 1, bias=False),
            nn.BatchNorm2d(w0),
            nn.ReLU(inplace=True),
        ]
        if min(image_size) >= 128:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        layers: list[nn.Module] = []
        cin = w0
        for i, (width, n) in enumerate(zip(cfg.widths, cfg.blocks, strict=True)):
            for j in range(n):
                layers.append(BasicBlock(cin, width, 2 if (i > 0 and j == 0) else 1))
                cin = width
        self.stages = nn.Sequential(*layers)
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
