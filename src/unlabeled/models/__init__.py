"""Encoders and heads. ``build_encoder`` is how the rest of the project makes an encoder."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unlabeled._console import UnlabeledError
from unlabeled._settings import check_settings, settable
from unlabeled.models.cnn import CNN_SIZES, CNNEncoder
from unlabeled.models.tcn import TCN_SIZES, TCNEncoder
from unlabeled.models.transformer import TRANSFORMER_SIZES, PatchTransformer

ENCODERS = {"cnn": CNNEncoder, "transformer": PatchTransformer, "tcn": TCNEncoder}
SIZES = tuple(CNN_SIZES)
assert set(SIZES) == set(TRANSFORMER_SIZES) == set(TCN_SIZES)


def build_encoder(name: str, size: str, sample_shape: tuple[int, ...], **options: Any) -> nn.Module:
    """An untrained encoder for model inputs of ``sample_shape`` (what the modality's
    ``prepare`` gives, without the batch axis); every encoder has ``dim``,
    ``forward(x) -> tokens`` and ``embed(x) -> (batch, dim)``.

    Options: for the transformer ``patch`` (one size per axis), ``pool`` (mean, cls, stats or layers),
    ``positions`` (sincos or learned) and ``bias`` (biases in the blocks' linear layers, true or
    false); for the tcn (series) ``pool`` (max or stats), ``diff`` (orders of time differences
    read beside the series, 0 to 2) and ``layers`` (how many of the last blocks the embedding
    pools, or ``all``); for the cnn ``strided_stem`` (true: the stem's second convolution strides
    in place of the first pool, cheaper at the same feature-map sizes)."""
    if not isinstance(name, str) or name not in ENCODERS:
        raise UnlabeledError(f"unknown encoder {name!r}; choose from {', '.join(ENCODERS)}")
    if size not in SIZES:
        raise UnlabeledError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    if name == "cnn" and len(sample_shape) != 3:
        raise UnlabeledError(
            f"the CNN encoder takes 2D (C, H, W) inputs, not shape {tuple(sample_shape)}; use --encoder transformer"
        )
    try:
        if name == "cnn":
            return CNNEncoder(sample_shape[0], size, tuple(sample_shape[1:]), **options)
        return ENCODERS[name](sample_shape, size, **options)
    except (TypeError, ValueError) as e:
        raise UnlabeledError(f"{name} encoder: {e}") from None


def check_encoder_options(name: str, options: dict[str, Any]) -> None:
    """A new run's ``--encoder-option`` settings against what encoder ``name`` takes (a saved
    run is rebuilt as it was saved, unchecked: older runs may hold values typed more loosely)."""
    if not isinstance(name, str):
        raise UnlabeledError(f"unknown encoder {name!r}; choose from {', '.join(ENCODERS)}")
    if name in ENCODERS:
        skip = ("in_channels", "size", "image_size") if name == "cnn" else ("input_shape", "size")
        check_settings(f"the {name} encoder", "--encoder-option", settable(ENCODERS[name], skip=skip), options)


def default_options(
    name: str, modality: Any, given: dict[str, Any] | None = None, method: str | None = None
) -> dict[str, Any]:
    """The options a new run records for encoder ``name`` of ``modality``'s samples trained by
    ``method`` (``given``, then the modality's own over them (a text encoder's vocabulary), then
    the defaults resolved now, so that a later change of default never changes how a saved run
    rebuilds): a causal transformer for ``clm``; the transformer's ``patch`` (the modality's) and ``bias=False`` (no
    biases in its blocks' linear layers: faster in bf16 on a CPU, benchmarks/HISTORY.md); for the tcn under
    ``ts2vec``, ``diff=1`` (each series' first difference beside it, MultiRocket's second
    representation) and, since TS2Vec's loss never reads the embedding, ``pool=stats`` over
    ``layers=all`` blocks: +3 points of linear-probe accuracy together on the UCR sets. Under
    SimCLR the difference cost 3-4 points (its jitter swamps the differences of smooth series),
    so there, as in fine-tuning, the tcn reads the series alone (benchmarks/HISTORY.md)."""
    # the modality's own last: a text encoder's vocabulary is the tokenizer's, which learns at
    # most the size asked for (--encoder-option vocab=N asked 10 million of a small corpus)
    options = {**(given or {}), **modality.encoder_options()}
    if name == "transformer":
        span = options.get("patch")
        if modality.name == "series" and isinstance(span, int | float) and not isinstance(span, bool):
            options["patch"] = [1, span]  # a series' patch is a span of steps, one channel at a time (PatchTST)
        options.setdefault("patch", list(modality.patch))
        if method == "clm":
            options.setdefault("causal", True)
        if method == "simcse":
            options.setdefault("dropout", 0.1)  # SimCSE's (and BERT's) rate
        options.setdefault("bias", False)  # runs saved before this default rebuild with biases
    elif name == "tcn":
        options.setdefault("diff", 1 if method == "ts2vec" else 0)
        if method == "ts2vec":
            options.setdefault("pool", "stats")
            options.setdefault("layers", "all")
    return options


def saved_options(encoder_config: dict[str, Any]) -> dict[str, Any]:
    """The options a saved run's encoder was built with, from its config's ``encoder`` entry:
    what it recorded, plus the values of options added since, as they were before (a
    transformer saved before ``bias`` was recorded has biases). Every rebuild of a saved
    encoder (loading, resuming, ``--init``, SISA retraining) goes through here."""
    options = dict(encoder_config.get("options") or {})
    if encoder_config.get("name") == "transformer":
        options.setdefault("bias", True)
    return options


__all__ = [
    "ENCODERS",
    "SIZES",
    "CNNEncoder",
    "PatchTransformer",
    "TCNEncoder",
    "build_encoder",
    "default_options",
    "saved_options",
]


class ShardEncoders(nn.Module):
    """SISA's aggregate of encoders pretrained on disjoint shards (Bourtoule et al. 2021,
    "Machine Unlearning"): ``embed`` concatenates the members' embeddings, so a probe on top
    sees every shard and forgetting retrains only the shards that held the samples."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.dim = sum(int(m.dim) for m in members)

    def embed(self, x):  # noqa: ANN001, ANN201 - the encoders' own signature
        return torch.cat([m.embed(x) for m in self.members], dim=1)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.embed(x)
