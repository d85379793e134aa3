"""Label-Agnostic Forgetting for self-supervised encoders: Shen, Zhang, Zhao, Zhu, Qian,
Yang, Li 2024, "Label-Agnostic Forgetting: A Supervision-Free Unlearning in Deep Models"
(ICLR). No labels anywhere: the request is met at the level of representations.

1. Two small VAEs learn the distribution of the original encoder's representations, one of
   the retain set and one of the forget set (:func:`fit_vae`).
2. Extractor unlearning: the encoder is updated so that its retain representations stay
   well reconstructed by the retain VAE while its forget representations stop being
   reconstructed by the forget VAE (:func:`reconstruction_term`, the paper's
   ``sum exp(mse / (mse + 1))`` per sample).
3. Representation alignment: retain representations are pulled back to the original
   encoder's while forget representations are pushed away from theirs (:func:`alignment_loss`,
   a contrastive ratio of cosine distances with temperature).

The paper alternates steps 2 and 3 with two optimisers; here both terms are summed into the
one loss the project's Trainer runs (one optimiser, resumable), with weight ``alignment``.
The paper's last step refits a classifier head on the retain labels; an encoder has none.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.forget.methods.base import Method, train_config, unlearn, unlearning_config
from unlabeled.forget.recipe import origin_training
from unlabeled.forget.request import ForgetRequest
from unlabeled.forget.unlearner import Stream
from unlabeled.objectives.base import Objective
from unlabeled.runs import Run, encode, resolve_device
from unlabeled.train.pretrain import claim_run_dir
from unlabeled.train.sampling import ArraySource, SplitSampler
from unlabeled.train.trainer import TrainConfig, Trainer


class RepresentationVAE(nn.Module):
    """A two-layer VAE over representation vectors (LAF's density model)."""

    def __init__(self, dim: int, latent: int | None = None) -> None:
        super().__init__()
        latent = latent or max(8, dim // 4)
        self.enc = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, e: torch.Tensor, generator: torch.Generator | None = None):
        mu, logvar = self.enc(e).chunk(2, dim=1)
        if self.training:
            noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + noise * (0.5 * logvar).exp()
        else:
            z = mu
        return self.dec(z), mu, logvar

    def reconstruct(self, e: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(e).chunk(2, dim=1)[0])


def vae_loss(
    recon: torch.Tensor, e: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, kld_weight: float = 0.025
) -> torch.Tensor:
    """Reconstruction (squared error per sample) + weighted KL to N(0, I), as LAF trains its VAEs."""
    rec = ((recon - e) ** 2).sum(1).mean()
    kld = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1).mean()
    return rec + kld_weight * kld


class _VAEObjective(Objective):
    """A :class:`RepresentationVAE`'s loss for the Trainer: representation vectors in memory,
    no modality, the reparameterisation noise drawn from the step's generator."""

    name = "laf-vae"

    def __init__(self, vae: RepresentationVAE) -> None:
        super().__init__(vae, None)

    def inputs(self, raw: np.ndarray, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32)).to(device)

    def loss(self, e: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        recon, mu, logvar = self.encoder(e, generator)
        loss = vae_loss(recon, e, mu, logvar)
        return loss, {"loss": loss.detach()}


def fit_vae(
    embeddings: np.ndarray, epochs: int = 10, lr: float = 1e-3, batch_size: int = 128, seed: int = 0
) -> RepresentationVAE:
    """A VAE fitted to fixed representation vectors (a few seconds: they are small), by the one
    Trainer: Adam at a constant rate (AdamW without decay), fp32, no clipping, every vector once
    an epoch, as LAF trains its VAEs."""
    torch.manual_seed(seed)
    vae = RepresentationVAE(embeddings.shape[1])
    n = len(embeddings)
    batches = math.ceil(n / min(batch_size, n))
    cfg = TrainConfig(
        lr=lr,
        weight_decay=0.0,
        schedule="constant",
        grad_clip=0.0,
        precision="fp32",
        seed=seed,
        total_steps=epochs * batches,
    )
    sampler = SplitSampler(n, batches, seed)
    Trainer(_VAEObjective(vae), ArraySource(embeddings), np.arange(n), cfg, sampler=sampler, show_progress=False).fit()
    return vae.eval().requires_grad_(False)


def reconstruction_term(recon: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """LAF's bounded reconstruction error, ``mean exp(mse / (mse + 1))`` over the batch."""
    mse = ((recon - e) ** 2).sum(1)
    return torch.exp(mse / (mse + 1)).mean()


def alignment_loss(
    retain: torch.Tensor,
    retain_ref: torch.Tensor,
    forget: torch.Tensor,
    forget_ref: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """LAF's representation alignment: ``mean_i d_i^retain - log sum_j exp(d_j^forget / T)``
    with ``d = 1 - cos`` to the original encoder's representation of the same sample."""
    d_retain = 1 - F.cosine_similarity(retain, retain_ref, dim=1)
    d_forget = 1 - F.cosine_similarity(forget, forget_ref, dim=1)
    return d_retain.mean() - torch.logsumexp(d_forget / temperature, dim=0)


class LAF(Objective):
    """The trainer streams forget batches; retain batches come from ``other``."""

    name = "laf"

    def __init__(
        self,
        encoder: nn.Module,
        modality: Any,
        vae_retain: RepresentationVAE,
        vae_forget: RepresentationVAE,
        other: Stream,
        alignment: float = 1.0,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(encoder, modality)
        self.original = copy.deepcopy(encoder).requires_grad_(False).eval()
        self.vae_retain, self.vae_forget = vae_retain, vae_forget
        self.other, self.alignment, self.temperature = other, float(alignment), float(temperature)

    def exported_state(self) -> dict[str, torch.Tensor]:
        """The encoder alone: the original encoder and the density model of the forget set's
        representations describe the very samples forgotten (they stay in the resume state)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith("encoder.")}

    def hparams(self) -> dict[str, Any]:
        return {"alignment": self.alignment, "temperature": self.temperature}

    def train(self, mode: bool = True) -> LAF:
        """The encoder's normalisation statistics stay the original's (as in LAF, which
        updates the extractor in eval mode): only its weights move."""
        super().train(mode)
        for m in (self.encoder, self.original, self.vae_retain, self.vae_forget):
            m.eval()
        return self

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        mod = self.modality
        xr = self.other.draw(mod, generator, x.device)[0]
        with torch.autocast(x.device.type, enabled=False):
            u, s = mod.normalize(x), mod.normalize(xr)
        e_u, e_s = self.encoder.embed(u).float(), self.encoder.embed(s).float()
        with torch.no_grad():
            ref_u, ref_s = self.original.embed(u).float(), self.original.embed(s).float()
        unlearn = reconstruction_term(self.vae_retain.reconstruct(e_s), e_s) - reconstruction_term(
            self.vae_forget.reconstruct(e_u), e_u
        )
        align = alignment_loss(e_s, ref_s, e_u, ref_u, self.temperature)
        loss = unlearn + self.alignment * align
        return loss, {"loss": loss.detach(), "unlearn": unlearn.detach(), "align": align.detach()}


class LAFMethod(Method):
    """Density models of the original encoder's representations (of up to 10,000 retain
    samples, and of the forget set), then the encoder update."""

    name = "laf"
    classifiers = False
    encoders = True
    min_forget = 2  # a density model of the forget set, batches of two
    epochs = 10.0
    lr = 1e-4

    def run(self, request: ForgetRequest) -> Run:
        src, data, seed = request.source, request.task, request.seed
        dev = resolve_device(request.device)
        encoder, modality = src.encoder(), src.modality()
        rng = np.random.default_rng(seed)
        retain_pos, forget_pos = request.retain_pos, request.forget_pos
        sample = np.sort(rng.choice(retain_pos, min(len(retain_pos), 10_000), replace=False))
        vae_retain = fit_vae(encode(encoder, modality, data, sample, device=dev, description="laf: retain"), seed=seed)
        vae_forget = fit_vae(
            encode(encoder, modality, data, forget_pos, device=dev, description="laf: forget"), seed=seed
        )
        batch = int(origin_training(src)["batch_size"])
        objective = LAF(encoder, modality, vae_retain, vae_forget, Stream(data, retain_pos, batch))
        claim_run_dir(request.out, False, request.overwrite, resumable=False)
        epochs = request.epochs if request.epochs is not None else self.epochs
        cfg = train_config(request, min(batch, len(forget_pos)), epochs, self.lr)
        return unlearn(request, objective, forget_pos, cfg, unlearning_config(request, objective, cfg))
