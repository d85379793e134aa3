"""JEPA: joint-embedding prediction of masked blocks in latent space.

Assran, Duval, Misra, Bojanowski, Vincent, Rabbat, LeCun, Ballas 2023, "Self-Supervised
Learning from Images with a Joint-Embedding Predictive Architecture" (I-JEPA, CVPR). From
one view, a large context block (minus the targets) is encoded by the online encoder; a
narrow predictor, given the context tokens and a mask token at each position of a target
block, predicts the target encoder's (layer-normed) representations of the ``targets``
blocks; the target encoder is an exponential moving average of the online one, its momentum
rising from ``ema`` to 1 over training. The loss is in latent space, not pixels.

Blocks are sampled on the encoder's patch grid, whatever its number of axes (time spans of
series as in ECG-JEPA, rectangles of images and spectrograms as in SAR-JEPA, boxes of
volumes): one block shape per batch (so every sample has the same number of target
tokens), positions per sample, as I-JEPA's collator does. The target encoder is the one
downstream stages use, as in the paper's evaluation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled._console import UnlabeledError
from unlabeled.models.transformer import Blocks, init_weights, sincos_embedding
from unlabeled.objectives.base import Objective, require_tokens

MASK_TRIES = 20  # draws of a batch's masks before a grid is called too small for its targets


def block_shape(
    grid: Sequence[int], scale: tuple[float, float], aspect: tuple[float, float], g: torch.Generator
) -> tuple[int, ...]:
    """One block shape covering about U(scale) of the grid, with random aspect ratios between
    the axes that have more than one patch."""
    free = [i for i, n in enumerate(grid) if n > 1]
    size = [1] * len(grid)
    if not free:
        return tuple(size)
    u = torch.rand(1 + len(free), generator=g, device=g.device).tolist()
    s = scale[0] + (scale[1] - scale[0]) * u[0]
    logs = [math.log(aspect[0]) / 2 + (math.log(aspect[1]) - math.log(aspect[0])) / 2 * v for v in u[1:]]
    mean_log = sum(logs) / len(logs)
    side = s ** (1 / len(free))
    for i, lg in zip(free, logs, strict=True):
        size[i] = min(grid[i], max(1, round(grid[i] * side * math.exp(lg - mean_log))))
    return tuple(size)


def block_masks(
    coords: torch.Tensor, grid: Sequence[int], shape: Sequence[int], n: int, blocks: int, g: torch.Generator
) -> torch.Tensor:
    """(n, blocks, N) bool: for every sample, ``blocks`` boxes of ``shape`` at random places
    on the grid; ``coords`` (N, axes) are the patches' grid coordinates."""
    room = torch.tensor([gr - s + 1 for gr, s in zip(grid, shape, strict=True)], device=coords.device)
    start = (torch.rand(n, blocks, len(grid), generator=g, device=coords.device) * room).floor().long()
    size = torch.tensor(shape, device=coords.device)
    c = coords[None, None]  # (1, 1, N, axes)
    return ((c >= start[:, :, None]) & (c < (start + size)[:, :, None])).all(-1)


def first_true(mask: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the first ``k`` True entries along the last axis (each row has at least k)."""
    return torch.sort(mask.to(torch.int8), dim=-1, descending=True, stable=True).indices[..., :k]


class JEPA(Objective):
    name = "jepa"
    export = "target"

    def __init__(
        self,
        encoder,
        modality,
        targets: int = 4,
        target_scale: tuple[float, float] = (0.15, 0.2),
        target_aspect: tuple[float, float] = (0.75, 1.5),
        context_scale: tuple[float, float] = (0.85, 1.0),
        ema: float = 0.996,
        predictor_dim: int | None = None,
        predictor_depth: int = 3,
        predictor_heads: int = 4,
    ) -> None:
        super().__init__(encoder, modality)
        require_tokens(encoder, self.name)
        if not 0 <= ema <= 1:
            raise ValueError(f"ema must be in [0, 1], got {ema}")
        self.targets, self.ema = int(targets), float(ema)
        self.target_scale, self.target_aspect = tuple(target_scale), tuple(target_aspect)
        self.context_scale = tuple(context_scale)
        self.predictor_dim = int(predictor_dim or max(64, encoder.width // 2))
        self.predictor_depth, self.predictor_heads = predictor_depth, predictor_heads
        self.target = copy.deepcopy(encoder).requires_grad_(False)
        grid = encoder.grid
        axes = [torch.arange(n) for n in grid]
        self.register_buffer(
            "coords", torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(grid)), persistent=False
        )
        self.to_predictor = nn.Linear(encoder.width, self.predictor_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.predictor_dim))
        self.register_buffer("predictor_pos", sincos_embedding(grid, self.predictor_dim), persistent=False)
        bias = getattr(encoder, "bias", True)  # the predictor follows the encoder's layout
        self.predictor = Blocks(self.predictor_dim, predictor_depth, predictor_heads, bias=bias)
        self.from_predictor = nn.Linear(self.predictor_dim, encoder.width)
        init_weights(self.predictor)
        nn.init.normal_(self.mask_token, std=0.02)
        self._momentum = self.ema
        self._logged_momentum = torch.full((), float("nan"))

    def hparams(self) -> dict[str, Any]:
        return {
            "targets": self.targets,
            "target_scale": list(self.target_scale),
            "target_aspect": list(self.target_aspect),
            "context_scale": list(self.context_scale),
            "ema": self.ema,
            "predictor_dim": self.predictor_dim,
            "predictor_depth": self.predictor_depth,
            "predictor_heads": self.predictor_heads,
        }

    def masks(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(context indices (n, k), target indices (n, targets, t)) on the patch grid."""
        grid = self.encoder.grid
        # drawn again (as I-JEPA's mask collator does) until every sample keeps a context patch
        # outside its targets: on a small grid (a short series) the targets covered a sample's
        # whole context block, which then held target patches, the answer given to the predictor
        for _ in range(MASK_TRIES):
            tshape = block_shape(grid, self.target_scale, self.target_aspect, g)
            cshape = block_shape(grid, self.context_scale, (1.0, 1.0), g)
            tmask = block_masks(self.coords, grid, tshape, n, self.targets, g)  # (n, M, N)
            cmask = block_masks(self.coords, grid, cshape, n, 1, g)[:, 0] & ~tmask.any(1)
            if int(cmask.sum(1).min()) >= 1:
                break
        else:
            raise UnlabeledError(
                f"jepa: in {MASK_TRIES} draws the {self.targets} target blocks covered some sample's whole context "
                f"on this patch grid of {math.prod(grid)} patches; use fewer --option targets, smaller "
                "target_scale, or longer inputs"
            )
        k = int(cmask.sum(1).min())
        # random k of each sample's context patches, none of them a target's
        score = 2.0 * cmask + 0.5 * torch.rand(cmask.shape, generator=g, device=g.device)
        ctx = score.topk(k, dim=1).indices
        return ctx, first_true(tmask, math.prod(tshape))

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        enc, mod = self.encoder, self.modality
        with torch.autocast(x.device.type, enabled=False):
            x = mod.normalize(mod.augment(x, generator, light=True))
        ctx_idx, tgt_idx = self.masks(x.shape[0], generator)
        b, m, t = tgt_idx.shape
        k = ctx_idx.shape[1]
        with torch.no_grad():
            h_tokens, pad = self.target.tokenize(x)
            h = self.target.run(h_tokens, pad)[:, self.target.n_prefix :]
            h = F.layer_norm(h.float(), h.shape[-1:])
            target = h.gather(1, tgt_idx.reshape(b, m * t, 1).expand(-1, -1, h.shape[-1])).reshape(b * m, t, -1)
        tokens, pad = enc.tokenize(x)
        d = tokens.shape[-1]
        ctx_pad = None if pad is None else pad.gather(1, ctx_idx)
        z = enc.run(tokens.gather(1, ctx_idx[..., None].expand(-1, -1, d)), ctx_pad)[:, enc.n_prefix :]
        pos = self.predictor_pos.to(z.dtype)
        z = self.to_predictor(z) + pos[ctx_idx]
        q = self.mask_token.to(z.dtype) + pos[tgt_idx.reshape(b * m, t)]
        seq = torch.cat([z.repeat_interleave(m, 0), q], 1)
        seq_pad = None if ctx_pad is None else F.pad(ctx_pad.repeat_interleave(m, 0), (0, t), value=False)
        pred = self.from_predictor(self.predictor(seq, seq_pad)[:, k:])
        per_token = ((pred.float() - target) ** 2).mean(-1)
        if pad is None:
            loss = per_token.mean()
        else:
            real = ~pad.gather(1, tgt_idx.reshape(b, m * t)).reshape(b * m, t)
            loss = (per_token * real).sum() / real.sum().clamp(min=1)
        # the momentum this step's update applies, filled in by after_step (a value kept from the
        # step before logged the starting momentum on the first step after a resume)
        self._logged_momentum = torch.full((), float("nan"))
        return loss, {"loss": loss.detach(), "momentum": self._logged_momentum}

    def load_encoder(self, weights: dict[str, torch.Tensor]) -> None:
        """The context encoder and its EMA target both start from ``weights``."""
        self.encoder.load_state_dict(weights)
        self.target.load_state_dict(weights)

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        """EMA update of the target encoder, momentum rising linearly from ``ema`` to 1."""
        self._momentum = self.ema + (1 - self.ema) * min(1.0, progress)
        self._logged_momentum.fill_(self._momentum)
        for t, o in zip(self.target.parameters(), self.encoder.parameters(), strict=True):
            t.lerp_(o.detach(), 1 - self._momentum)
