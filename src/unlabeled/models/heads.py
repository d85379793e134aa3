"""Heads that objectives put on top of an encoder."""

from __future__ import annotations

from torch import nn


def projection_head(in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2) -> nn.Sequential:
    """MLP projection head with batch norm (SimCLR, Chen et al. 2020, section 2.1): the
    contrastive loss is applied to its output, the representation is taken before it."""
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(d, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        d = hidden_dim
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)
