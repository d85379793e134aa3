"""The shared parts of the approximate unlearners: each is an Objective that the one Trainer
runs, starting from the trained classifier's weights. The trainer's own stream is the forget
set or the retain set (as the method declares); an objective that needs the other set draws
its batches itself from a :class:`Stream`, with the step's generator, so a run is
reproducible. The methods themselves are in ``methods/``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from unlabeled.data.collection import Collection
from unlabeled.objectives.base import Objective


class Stream:
    """Random labelled batches from ``positions`` of a collection, drawn with a generator."""

    def __init__(self, collection: Collection, positions: np.ndarray, batch_size: int) -> None:
        self.collection, self.positions = collection, np.asarray(positions)
        self.batch_size = min(batch_size, len(self.positions))

    def draw(self, modality: Any, generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, ...]:
        pick = torch.randint(len(self.positions), (self.batch_size,), generator=generator, device=generator.device)
        pos = np.sort(self.positions[pick.cpu().numpy()])
        x = modality.prepare(self.collection.get(pos), device)
        if self.collection.labels is None:  # an unlabelled collection (encoder unlearning)
            return x, torch.zeros(len(pos), dtype=torch.long, device=device)
        return x, torch.from_numpy(self.collection.labels[pos]).to(device)


class Unlearner(Objective):
    """Shared parts: the classifier's encoder and head (so its weights load as they are), the
    light view of a batch, and a frozen copy of the original classifier where needed."""

    uses_labels = True
    needs_original = False

    def __init__(self, encoder: nn.Module, modality: Any, classes: int, other: Stream | None = None) -> None:
        super().__init__(encoder, modality)
        self.head = nn.Linear(encoder.dim, classes)
        self.other = other
        self.original: nn.ModuleDict | None = None
        self.use_augment = True  # as the classifier was trained (``finetune --no-augment``)

    def prepare(self, collection: Collection, forget: np.ndarray, retain: np.ndarray, device: torch.device) -> None:
        """Anything a method computes from the forget and retain sets before its first step."""

    def keep_original(self) -> None:
        """Freeze a copy of the current (original) weights as teacher / reference."""
        self.original = nn.ModuleDict({"encoder": copy.deepcopy(self.encoder), "head": copy.deepcopy(self.head)})
        self.original.requires_grad_(False).eval()

    def exported_state(self) -> dict[str, torch.Tensor]:
        """The unlearned model alone: the frozen copy of the original is a reference for
        training (kept in the resume state), and exporting it put the weights that saw the
        forgotten samples back into the result."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("original.")}

    def logits(self, x: torch.Tensor, generator: torch.Generator, original: bool = False) -> torch.Tensor:
        mod = self.modality
        with torch.autocast(x.device.type, enabled=False):
            v = mod.normalize(mod.augment(x, generator, light=True) if self.use_augment else x)
        if original:
            assert self.original is not None
            with torch.no_grad():
                return self.original["head"](self.original["encoder"].embed(v))
        return self.head(self.encoder.embed(v))

    def paired_logits(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(model, original) logits of the same augmented view of ``x``."""
        state = generator.get_state()
        own = self.logits(x, generator)
        generator.set_state(state)
        return own, self.logits(x, generator, original=True)
