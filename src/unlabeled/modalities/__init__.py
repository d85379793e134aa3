"""Modalities: one file each; a modality turns stored samples into model-ready tensors, says
how to cut them into patches, and augments whole batches on the training device.

The contract every modality follows (see ``base.py``)::

    mod = Modality.fit(collection)              # statistics for normalisation
    x = mod.prepare(collection.get(pos), dev)   # stored samples -> float tensor on device
    v = mod.normalize(mod.augment(x, gen))      # one random view, ready for the encoder
    mod.input_shape, mod.patch                  # what the transformer is built for
    Modality(**mod.state())                     # rebuilt from a run's config.json
"""

from __future__ import annotations

from typing import Any

from unlabeled._console import UnlabeledError
from unlabeled.data.collection import Collection
from unlabeled.modalities.audio import AudioAugment, AudioModality
from unlabeled.modalities.base import Modality
from unlabeled.modalities.image import ImageAugment, ImageModality
from unlabeled.modalities.series import SeriesAugment, SeriesModality
from unlabeled.modalities.text import TextModality
from unlabeled.modalities.volume import VolumeAugment, VolumeModality

MODALITIES: dict[str, type[Modality]] = {
    "image": ImageModality,
    "series": SeriesModality,
    "audio": AudioModality,
    "volume": VolumeModality,
    "text": TextModality,
}


def fit_modality(
    collection: Collection,
    positions=None,
    augment: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> Modality:
    """The modality of ``collection``, with its normalisation fitted on ``positions``;
    ``augment`` overrides settings of the modality's default augmentation; ``options`` go to
    the modality's ``fit`` (text: ``vocab``, the tokenizer's size)."""
    try:
        cls = MODALITIES[collection.modality]
    except KeyError:
        raise UnlabeledError(
            f"{collection.path}: modality {collection.modality!r} is not supported (available: {', '.join(MODALITIES)})"
        ) from None
    mod = cls.fit(collection, positions, **(options or {}))
    if augment:
        mod.aug = mod.augmentation_with(augment)
    return mod


def modality_from_state(state: dict[str, Any]) -> Modality:
    """Rebuild a modality from the ``state()`` stored in a run's config."""
    state = dict(state)
    return MODALITIES[state.pop("name")](**state)


__all__ = [
    "MODALITIES",
    "AudioAugment",
    "AudioModality",
    "ImageAugment",
    "ImageModality",
    "Modality",
    "SeriesAugment",
    "SeriesModality",
    "TextModality",
    "VolumeAugment",
    "VolumeModality",
    "fit_modality",
    "modality_from_state",
]
