"""Built-in real datasets that are available offline.

Each loader returns the whole dataset in memory as a :class:`Loaded`; they are all small
(Fashion-MNIST is 55 MB of uint8). ``unlabeled datasets`` lists them.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unlabeled._console import UnlabeledError
from unlabeled.data import corpora
from unlabeled.data.loaded import Loaded
from unlabeled.data.splits import holdout_split


@dataclass(frozen=True)
class Builtin:
    name: str
    description: str
    load: Callable[[], Loaded]


FASHION_MNIST_CLASSES = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get("UNLABELED_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST family's format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UnlabeledError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise UnlabeledError(f"{path}: expected {int(np.prod(dims))} values, found {body.size}")
    return body.reshape(dims)


def load_fashion_mnist() -> Loaded:
    root = fashion_mnist_dir()
    parts = {}
    for split, stem in (("train", "train"), ("test", "t10k")):
        files = {}
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            found = [root / f"{stem}-{kind}{ext}" for ext in (".gz", "")]
            found = [p for p in found if p.is_file()]
            if not found:
                raise UnlabeledError(
                    f"Fashion-MNIST not found under {root}: install Debian's "
                    "`dataset-fashion-mnist` package (scripts/setup.sh does) or set "
                    "UNLABELED_FASHION_MNIST to a folder holding the IDX files"
                )
            files[kind] = read_idx(found[0])
        parts[split] = files
    images = np.concatenate([parts[s]["images-idx3-ubyte"] for s in ("train", "test")])
    labels = np.concatenate([parts[s]["labels-idx1-ubyte"] for s in ("train", "test")])
    n_train = len(parts["train"]["images-idx3-ubyte"])
    splits = ["train"] * n_train + ["test"] * (len(images) - n_train)
    ids = [f"train-{i:05d}" for i in range(n_train)]
    ids += [f"test-{i:05d}" for i in range(len(images) - n_train)]
    return Loaded(
        arrays=images[:, None],
        ids=ids,
        labels=labels.astype(np.int64),
        splits=splits,
        classes=FASHION_MNIST_CLASSES,
        modality="image",
        source=str(root),
    )


def load_digits() -> Loaded:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    # pixel values are 0..16; stretch them to the 0..255 of every other image source
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    # scikit-learn's set has no test split: a stratified 20% with seed 0 (the split bench made
    # of it before), held out by every command as any collection's test split is
    _, test = holdout_split(len(d.target), 0.2, 0, d.target)
    splits = np.full(len(d.target), "train", dtype=object)
    splits[test] = "test"
    return Loaded(
        arrays=images[:, None],
        ids=[f"{i:04d}" for i in range(len(images))],
        labels=d.target.astype(np.int64),
        splits=splits.tolist(),
        classes=[str(c) for c in d.target_names],
        modality="image",
        source="sklearn.datasets.load_digits",
    )


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin(
            "fashion-mnist",
            "70,000 28x28 grey clothing images, 10 classes, 60k train / 10k test (Debian dataset-fashion-mnist)",
            load_fashion_mnist,
        ),
        Builtin(
            "digits",
            "1,797 8x8 grey handwritten digits, 10 classes, 1,438 train / 359 test (scikit-learn; a stratified split)",
            load_digits,
        ),
        Builtin(
            "wordnet",
            "117,659 English glosses (definitions and examples), 45 lexicographer categories (Debian wordnet-base)",
            corpora.load_wordnet,
        ),
        Builtin(
            "fortunes",
            "101,056 fortune cookies in 12 languages, labelled by language (Debian fortunes, fortunes-*)",
            corpora.load_fortunes,
        ),
        Builtin(
            "gcide",
            "126,236 entries of the Collaborative International Dictionary of English, 40 MB, unlabelled "
            "(Debian dict-gcide)",
            corpora.load_gcide,
        ),
    )
}
