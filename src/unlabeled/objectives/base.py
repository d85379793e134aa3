"""What every self-supervised objective is: an ``nn.Module`` owning the encoder, its heads
and any EMA target, with ``loss(x, generator) -> (scalar, logs)``.

``x`` is a batch already prepared by the modality (float, on the training device, not yet
augmented); ``generator`` drives every random choice of the step so that a resumed run
repeats exactly. ``forward`` is ``loss``, so the trainer can wrap an objective in DDP.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from unlabeled._console import UnlabeledError


def require_tokens(encoder: nn.Module, method: str) -> None:
    """Masked-prediction objectives need an encoder that works on patch tokens."""
    if not hasattr(encoder, "tokenize"):
        raise UnlabeledError(f"{method} needs a patch-token encoder; use --encoder transformer")


def require_text(encoder: nn.Module, method: str, causal: bool) -> None:
    """Language-model objectives need the token transformer of a text run, bidirectional or
    causal as the objective reads it."""
    if not getattr(encoder, "vocab", 0):
        raise UnlabeledError(f"{method} is for text: it needs the token transformer of a text collection")
    if bool(getattr(encoder, "causal", False)) != causal:
        have = "causal" if encoder.causal else "bidirectional"
        raise UnlabeledError(f"{method} needs a {'causal' if causal else 'bidirectional'} encoder, not a {have} one")


class Objective(nn.Module):
    name = "objective"
    # which submodule's weights are the pretrained encoder that downstream stages use
    export = "encoder"
    # whether the trainer passes the batch's labels: ``loss(x, generator, y)``
    uses_labels = False
    # the self-distillation penalty's teacher (objectives/self_distil.py), when one is given
    self_distil: Any = None

    def __init__(self, encoder: nn.Module, modality: Any) -> None:
        super().__init__()
        self.encoder = encoder
        self.modality = modality

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, generator: torch.Generator, *labels: torch.Tensor):
        loss, logs = self.loss(x, generator, *labels)
        if self.self_distil is not None:
            # on the inputs as the encoders read them: normalised (a text batch's token ids
            # are their own normalisation); the raw [0, 1] images pinned outputs on inputs
            # neither encoder ever saw
            with torch.autocast(x.device.type, enabled=False):
                seen = self.modality.normalize(x)
            penalty = self.self_distil.penalty(self.encoder, seen)
            loss = loss + self.self_distil.weight * penalty
            logs = {**logs, "self_distil": penalty.detach()}
        return loss, logs

    def inputs(self, raw: np.ndarray, device: torch.device) -> torch.Tensor:
        """The batch the loss takes, from samples as the source stores them: the modality's
        prepared tensor (float, on ``device``, not yet augmented)."""
        return self.modality.prepare(raw, device)

    def hparams(self) -> dict[str, Any]:
        """The objective's own settings, stored in the run's config.json."""
        return {}

    def load_encoder(self, weights: dict[str, torch.Tensor]) -> None:
        """Start the encoder (and any copy of it the objective keeps, such as an EMA target)
        from ``weights``: continued pretraining from another run."""
        self.encoder.load_state_dict(weights)

    def exported_state(self) -> dict[str, torch.Tensor]:
        """The weights a run exports (``model.safetensors``, snapshots): the whole state, unless
        an objective evaluates another copy of its model (an EMA of it, say)."""
        return self.state_dict()

    def before_update(self) -> None:
        """Called after the backward pass, before clipping and the optimiser step (gradient
        surgery such as SalUn's weight-saliency mask)."""

    def after_step(self, progress: float) -> None:
        """Called after each optimiser step with training progress in [0, 1] (EMA updates)."""
