"""MAE: masked autoencoding of patch tokens.

He, Chen, Xie, Li, Dollár, Girshick 2022, "Masked Autoencoders Are Scalable Vision Learners"
(CVPR). A random ``mask_ratio`` of each sample's patches is hidden; the encoder sees only the
visible ones; a light decoder gets the encoded tokens plus a shared mask token at every
hidden position and reconstructs the hidden patches; the loss is the mean squared error on
the hidden patches only, against each patch's values normalised by its own mean and variance
(``norm_pix``, the paper's better target). The geometry is whatever the encoder's patch grid
is, so the same objective serves spectrograms (SSAMBA, OPERA-GT), multispectral tiles
(SatMAE++), series and CT volumes (Hi-End-MAE). Padding patches are never targets.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unlabeled.models.transformer import Blocks, init_weights, sincos_embedding
from unlabeled.objectives.base import Objective, require_tokens


def random_masking(
    n: int, tokens: int, ratio: float, g: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, a random order of the patches: (kept indices (n, keep), mask (n, tokens)
    True where hidden)."""
    keep = max(1, round(tokens * (1 - ratio)))
    order = torch.rand(n, tokens, generator=g, device=device).argsort(1)
    mask = torch.ones(n, tokens, dtype=torch.bool, device=device)
    mask.scatter_(1, order[:, :keep], False)
    return order[:, :keep], mask


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_pix: bool) -> torch.Tensor:
    """MAE's loss: per-patch MSE averaged over the hidden patches (``mask`` True)."""
    if norm_pix:
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = ((pred.float() - target.float()) ** 2).mean(-1)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1)


class MAE(Objective):
    name = "mae"

    def __init__(
        self,
        encoder,
        modality,
        mask_ratio: float = 0.75,
        norm_pix: bool = True,
        decoder_dim: int = 128,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
    ) -> None:
        super().__init__(encoder, modality)
        require_tokens(encoder, self.name)
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if norm_pix and encoder.patch_dim < 2:  # a one-value patch has no variance: the loss would be NaN
            raise ValueError(
                f"norm_pix normalises each patch by its own mean and variance, and a patch here holds "
                f"{encoder.patch_dim} value; use larger patches (--encoder-option patch=...) or --option norm_pix=false"
            )
        self.mask_ratio, self.norm_pix = mask_ratio, norm_pix
        self.decoder_dim, self.decoder_depth, self.decoder_heads = decoder_dim, decoder_depth, decoder_heads
        self.to_decoder = nn.Linear(encoder.width, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer("decoder_pos", sincos_embedding(encoder.grid, decoder_dim)[None], persistent=False)
        self.decoder = Blocks(decoder_dim, decoder_depth, decoder_heads, bias=getattr(encoder, "bias", True))
        self.to_patch = nn.Linear(decoder_dim, encoder.patch_dim)
        init_weights(self.decoder)
        nn.init.normal_(self.mask_token, std=0.02)

    def hparams(self) -> dict[str, Any]:
        return {
            "mask_ratio": self.mask_ratio,
            "norm_pix": self.norm_pix,
            "decoder_dim": self.decoder_dim,
            "decoder_depth": self.decoder_depth,
            "decoder_heads": self.decoder_heads,
        }

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        enc, mod = self.encoder, self.modality
        with torch.autocast(x.device.type, enabled=False):
            x = mod.normalize(mod.augment(x, generator, light=True))
        tokens, pad = enc.tokenize(x)
        b, n, d = tokens.shape
        keep, mask = random_masking(b, n, self.mask_ratio, generator, x.device)
        visible = tokens.gather(1, keep[..., None].expand(-1, -1, d))
        vis_pad = None if pad is None else pad.gather(1, keep)
        latent = self.to_decoder(enc.run(visible, vis_pad)[:, enc.n_prefix :])
        full = self.mask_token.to(latent.dtype).expand(b, n, -1).clone()
        full.scatter_(1, keep[..., None].expand(-1, -1, latent.shape[-1]), latent)
        pred = self.to_patch(self.decoder(full + self.decoder_pos.to(full.dtype), pad))
        target = torch.nan_to_num(enc.patchify(x))
        if pad is not None:
            mask = mask & ~pad
        loss = masked_mse(pred, target, mask, self.norm_pix)
        return loss, {"loss": loss.detach()}
