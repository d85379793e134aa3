"""Shared fixtures: small slices of real data (Fashion-MNIST from Debian's package,
scikit-learn's digits) written as collections once per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("UNLABELED_QUIET", "1")  # no progress bars in test logs

import unlabeled as ul  # noqa: E402
from unlabeled.data.builtins import load_fashion_mnist  # noqa: E402
from unlabeled.data.collection import CollectionWriter  # noqa: E402


@pytest.fixture(scope="session")
def fmnist_arrays():
    """The whole Fashion-MNIST in memory (read once)."""
    return load_fashion_mnist()


def write_slice(loaded, dest: Path, n_train: int, n_test: int, seed: int = 0) -> ul.Collection:
    rng = np.random.default_rng(seed)
    splits = np.asarray(loaded.splits)
    tr = np.sort(rng.choice(np.flatnonzero(splits == "train"), n_train, replace=False))
    te = np.sort(rng.choice(np.flatnonzero(splits == "test"), n_test, replace=False))
    pos = np.concatenate([tr, te])
    w = CollectionWriter(dest, "image", (1, 28, 28), "uint8", loaded.classes,
                         extra_meta={"name": "fmnist-slice"})  # fmt: skip
    w.add(loaded.arrays[pos], [loaded.ids[i] for i in pos], loaded.labels[pos], splits[pos].tolist())
    return w.close()


@pytest.fixture(scope="session")
def fmnist_small(tmp_path_factory, fmnist_arrays) -> ul.Collection:
    """2,000 train + 1,000 test Fashion-MNIST images."""
    return write_slice(fmnist_arrays, tmp_path_factory.mktemp("data") / "fmnist-small", 2000, 1000)


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> ul.Collection:
    return ul.import_source("digits", tmp_path_factory.mktemp("data") / "digits").collection
