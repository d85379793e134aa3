"""TS2Vec: hierarchical contrasting of per-time-step representations of overlapping crops.

Yue, Wang, Duan, Yang, Huang, Tong, Xu 2022, "TS2Vec: Towards Universal Representation of
Time Series" (AAAI). Two crops of each series are taken so that they overlap; the encoder
(the dilated convolutions of :class:`~unlabeled.models.tcn.TCNEncoder`) sees each crop with a
random half of its time steps masked in latent space, and the representations of the
overlap must agree step by step: a step's two views must be closer to each other than to
the other steps of the same series (temporal contrast) and than to the same step of the
other series in the batch (instance contrast). The loss is repeated after max-pooling the
time axis by 2, again and again, so that every scale from a single step to the whole crop is
contrasted. There is no projection head: the representations themselves are compared by dot
product, and a sample's embedding is their maximum over time. Under data parallelism each
rank contrasts its own batch (TS2Vec trains on batches of 8; nothing is gathered).

The temporal contrast compares every step of a crop with every other (a (2T, 2T) matrix per
series), so a step's cost grows with the square of the series' length: on this project's
2-core CPU a batch of 64 of ACSF1's 1,460-step series took 60 s and 14 GB at its worst (crops
of the whole series), 10 s and 3 GB in windows of 512 (BENCHMARKS.md). As TS2Vec's own
code cuts series longer than ``max_train_length`` into sections, each step here first takes
from every series a random window of at most ``max_length`` steps of its valid part (the
crops are drawn inside it); the encoder still embeds whole series. Series no longer than
``max_length`` are untouched, draws included.

    obj = TS2Vec(TCNEncoder((1, 1, 150)), modality)
    loss, logs = obj.loss(x, generator)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from unlabeled._console import UnlabeledError
from unlabeled.modalities.series import valid_lengths
from unlabeled.objectives.base import Objective

# The longest window a step contrasts (see the module's docstring). Set for cost, not chosen on
# a score: a worst-case step of a batch of 64 takes seconds on a 2-core CPU, and every set the
# UCR comparison chooses on (up to 427 steps) stays whole.
MAX_LENGTH = 512


def contrast(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of picking each row's partner among the others, over groups:
    ``z1``, ``z2`` are (G, N, D); row i of ``z1`` is paired with row i of ``z2``, and every
    other row of both (2N - 2 candidates) is a negative. Averaged over the 2N anchors and G."""
    g, n, _ = z1.shape
    z = torch.cat([z1, z2], 1)  # (G, 2N, D)
    sim = z @ z.transpose(1, 2)
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    idx = torch.arange(n, device=z.device)
    target = torch.cat([idx + n, idx]).expand(g, -1)
    return F.cross_entropy(sim.flatten(0, 1), target.flatten())


def hierarchical_loss(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """TS2Vec's loss over (B, T, D) step representations of the overlap: at each scale,
    ``alpha`` x instance contrast (each step against the same step of the other series) +
    (1 - ``alpha``) x temporal contrast (each step against the series' other steps), then
    max-pool time by 2, down to a single step (instance contrast only there)."""
    loss, scales = z1.new_zeros(()), 0
    while True:
        if alpha > 0 and z1.shape[0] > 1:
            loss = loss + alpha * contrast(z1.transpose(0, 1), z2.transpose(0, 1))
        if z1.shape[1] == 1:
            scales += 1
            break
        if alpha < 1:
            loss = loss + (1 - alpha) * contrast(z1, z2)
        scales += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), 2, ceil_mode=True).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), 2, ceil_mode=True).transpose(1, 2)
    return loss / scales


class TS2Vec(Objective):
    name = "ts2vec"

    def __init__(
        self,
        encoder,
        modality,
        alpha: float = 0.5,
        mask_p: float = 0.5,
        min_crop: int = 4,
        max_length: int = MAX_LENGTH,
    ) -> None:
        super().__init__(encoder, modality)
        if modality.name not in ("series", "audio"):
            raise UnlabeledError(f"ts2vec contrasts time steps: it takes series or audio, not {modality.name} data")
        if not hasattr(encoder, "steps"):
            raise UnlabeledError("ts2vec contrasts time steps: it needs --encoder tcn")
        if min_crop < 1:
            raise ValueError(f"min_crop must be at least 1, got {min_crop}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if not 0 <= mask_p < 1:
            raise ValueError(f"mask_p must be in [0, 1), got {mask_p}")
        if max_length < min_crop:
            raise ValueError(f"max_length must be at least min_crop ({min_crop}), got {max_length}")
        self.alpha, self.mask_p, self.min_crop, self.max_length = alpha, mask_p, min_crop, int(max_length)

    def hparams(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "mask_p": self.mask_p, "min_crop": self.min_crop, "max_length": self.max_length}

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """``x``: (B, 1, C, T) series. One overlap length for the batch; each series' crops at
        its own offset, as TS2Vec draws them (its section 3.2, "contextual consistency")."""
        x = window(x, self.max_length, generator)
        b, t = x.shape[0], x.shape[-1]
        dev = x.device

        def draw(lo: int, hi: int) -> int:  # an integer in [lo, hi)
            return lo + int(torch.randint(hi - lo, (1,), generator=generator, device=dev))

        x = self.modality.normalize(x)
        overlap = draw(min(self.min_crop, t), t + 1)
        left = draw(0, t - overlap + 1)
        right = left + overlap
        left1 = draw(0, left + 1)  # crop 1 is [left1, right), crop 2 is [left, right2)
        right2 = draw(right, t + 1)
        shift = torch.randint(-left1, t - right2 + 1, (b,), generator=generator, device=dev)
        crop1 = crop(x, shift + left1, right - left1)
        crop2 = crop(x, shift + left, right2 - left)
        z1 = self.encoder.steps(crop1, self.step_mask(crop1, generator))[0].transpose(1, 2)[:, -overlap:]
        z2 = self.encoder.steps(crop2, self.step_mask(crop2, generator))[0].transpose(1, 2)[:, :overlap]
        loss = hierarchical_loss(z1.float(), z2.float(), self.alpha)
        return loss, {"loss": loss.detach()}

    def step_mask(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor | None:
        """(B, T) True for the steps hidden from the encoder (TS2Vec's binomial timestamp mask)."""
        if self.mask_p == 0:
            return None
        return torch.rand(x.shape[0], x.shape[-1], generator=generator, device=x.device) < self.mask_p


def window(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """(B, 1, C, T) -> (B, 1, C, min(T, ``length``)): each series' random window of ``length``
    steps inside its valid part (from the start where the valid part is shorter); ``x`` itself,
    and no draw, where T <= ``length``."""
    if x.shape[-1] <= length:
        return x
    room = (valid_lengths(x) - length).clamp(min=0) + 1  # the window's possible starts
    u = torch.rand(x.shape[0], generator=generator, device=x.device)
    start = (u * room).long().minimum(room - 1)
    return crop(x, start, length)


def crop(x: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    """(B, 1, C, T) -> (B, 1, C, length): each series from its own ``start`` (all within range)."""
    steps = start[:, None] + torch.arange(length, device=x.device)
    return x.gather(3, steps[:, None, None, :].expand(-1, x.shape[1], x.shape[2], -1))
