"""A dilated convolutional encoder for series: every time step becomes a token that sees
an exponentially growing window of its neighbours.

The encoder of TS2Vec (Yue et al. 2022, "TS2Vec: Towards Universal Representation of Time
Series", AAAI): a per-step linear projection of the channels, then residual blocks of two
"same"-padded 1D convolutions (kernel 3) with GELU, the dilation doubling from block to
block (1, 2, 4, ...), the last block widening to the output width. ``tiny`` has TS2Vec's
widths (64 hidden, 320 out) and ten blocks where TS2Vec has eleven: ten already see about
2,000 steps on either side of each step, more than the series measured here are long. A
sample's embedding is the maximum of its steps' features over time (TS2Vec's instance-level
representation), or their mean, max and standard deviation side by side (``pool="stats"``).

``layers=k`` (or ``"all"``) embeds the last k blocks' pooled features side by side, the
probe reading every scale of the hierarchy as DINO's linear evaluation reads its last blocks
(Caron et al. 2021): +1 point on the UCR sets after TS2Vec, whose loss never reads the
embedding; under SimCLR and fine-tuning the embedding is what trains, so there it stays 1.

``diff=1`` feeds each series' first difference (each sample's scaled to unit standard
deviation) beside the series as more input channels, ``diff=2`` the second as well: the
series and its first difference are MultiRocket's two representations (Tan et al. 2022,
"MultiRocket: multiple pooling operators and transformations for fast and effective time
series classification"). On slowly varying series such as leaf and arrowhead outlines the
difference carries the shape that the level hides (+3 to +11 points of linear-probe accuracy
on OSULeaf and ArrowHead under TS2Vec, benchmarks/HISTORY.md); new ts2vec runs default to ``diff=1``.
Under SimCLR it lost 3-4 points: the jitter augmentation swamps the differences.

Input is what the series modality's ``prepare`` gives: ``(B, 1, C, T)`` with the channels as
the convolution's input channels (a spectrogram ``(B, 1, F, T)`` works the same way, its
frequency bins as channels). Time steps whose every channel is NaN are padding: they are
zeroed before every convolution and left out of the pooling, so variable-length series batch
without a separate mask. A NaN inside a series (a missing value) reads as the channel mean
(0 after normalisation).

    enc = TCNEncoder((1, 3, 200), size="tiny")
    tokens = enc(x)       # (B, T, width): one token per time step
    z = enc.embed(x)      # (B, dim): max over time (or mean|max|std with pool="stats")
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.models.transformer import max_tokens, token_stats

TCN_POOLS = ("max", "stats")
# name -> (hidden width, residual blocks, output width); tiny has TS2Vec's widths
TCN_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (64, 10, 320),
    "small": (128, 10, 320),
    "base": (256, 12, 512),
}


class DilatedBlock(nn.Module):
    """GELU, dilated conv, GELU, dilated conv, added to the (1x1-projected) input."""

    def __init__(self, cin: int, cout: int, dilation: int, kernel: int = 3) -> None:
        super().__init__()
        pad = (kernel - 1) * dilation // 2  # odd receptive field: the output keeps the length
        self.conv1 = nn.Conv1d(cin, cout, kernel, padding=pad, dilation=dilation)
        self.conv2 = nn.Conv1d(cout, cout, kernel, padding=pad, dilation=dilation)
        self.skip = nn.Identity() if cin == cout else nn.Conv1d(cin, cout, 1)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``keep`` (B, 1, T): 1 for real steps, 0 for padding, which is zeroed before each
        convolution, as the convolution's own padding is."""
        if keep is not None:
            x = x * keep
        h = F.gelu(self.conv1(F.gelu(x)))
        return self.skip(x) + self.conv2(h if keep is None else h * keep)


class TCNEncoder(nn.Module):
    """Dilated residual 1D convolutions over ``(1, C, T)`` samples; see the module docstring."""

    def __init__(
        self, input_shape: Sequence[int], size: str = "tiny", pool: str = "max", diff: int = 0, layers: int | str = 1
    ) -> None:
        super().__init__()
        if size not in TCN_SIZES:
            raise ValueError(f"unknown tcn size {size!r}; choose from {', '.join(TCN_SIZES)}")
        if pool not in TCN_POOLS:
            raise ValueError(f"pool must be one of {', '.join(TCN_POOLS)}, got {pool!r}")
        if diff not in (0, 1, 2):
            raise ValueError(f"diff must be 0, 1 or 2 (orders of time differences), got {diff!r}")
        if len(input_shape) != 3 or int(input_shape[0]) != 1:
            raise ValueError(
                f"the tcn encoder takes series (1, channels, time) as the series and audio modalities "
                f"prepare them, not shape {tuple(input_shape)}"
            )
        hidden, depth, out = TCN_SIZES[size]
        self.layers = depth if layers == "all" else layers
        if not isinstance(self.layers, int) or not 1 <= self.layers <= depth:
            raise ValueError(f"layers must be 'all' or a number of blocks from 1 to {depth}, got {layers!r}")
        self.input_shape, self.pool = tuple(int(s) for s in input_shape), pool
        self.width = out
        self.dim = (out + (self.layers - 1) * hidden) * (3 if pool == "stats" else 1)
        self.diff = int(diff)
        self.input_fc = nn.Conv1d(self.input_shape[1] * (1 + self.diff), hidden, 1)
        widths = [hidden] * depth + [out]
        self.blocks = nn.ModuleList(DilatedBlock(widths[i], widths[i + 1], dilation=2**i) for i in range(depth))

    def steps(self, x: torch.Tensor, hide: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-step features (B, width, T) and the padding mask (B, T) (True = padding) or None.
        ``hide`` (B, T), True where a step's projected input is zeroed (TS2Vec's timestamp
        masking, used in training only)."""
        outs, pad = self._blocks(x, hide, 1)
        return outs[-1], pad

    def _blocks(
        self, x: torch.Tensor, hide: torch.Tensor | None, keep_last: int
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """The last ``keep_last`` blocks' per-step outputs and the padding mask."""
        x = x.squeeze(1)
        if self.diff:
            parts, d = [x], x
            for _ in range(self.diff):
                d = torch.diff(d, dim=2, prepend=d[:, :, :1])
                parts.append(unit_std(d))
            x = torch.cat(parts, 1)
        nan = torch.isnan(x)
        pad = None
        if bool(nan.any()):
            pad = nan.all(1)
            x = torch.nan_to_num(x, nan=0.0)
        h = self.input_fc(x)
        if hide is not None:
            h = h.masked_fill(hide.unsqueeze(1), 0.0)
        keep = None if pad is None else (~pad).unsqueeze(1).to(h.dtype)
        outs = []
        for i, blk in enumerate(self.blocks):
            h = blk(h, keep)
            if i >= len(self.blocks) - keep_last:
                outs.append(h)
        return outs, pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.steps(x)[0].transpose(1, 2)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        outs, pad = self._blocks(x, None, self.layers)
        pool = token_stats if self.pool == "stats" else max_tokens
        return torch.cat([pool(h.transpose(1, 2), pad) for h in outs], 1)


def unit_std(d: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, C, T) series, each scaled to unit standard deviation over its valid (non-NaN) steps.
    Per sample rather than from data statistics: the encoder needs no fitted state, and a
    crop's differences have about the whole series' spread."""
    std = (d - d.nanmean(2, keepdim=True)).square().nanmean(2, keepdim=True).sqrt()
    return d / (std + eps)
