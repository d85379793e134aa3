"""Shared fixtures: small slices of real data (Fashion-MNIST and WordNet from Debian's
packages, scikit-learn's digits) written as collections once per session."""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("UNLABELED_QUIET", "1")  # no progress bars in test logs
# under pytest-xdist (`make test` runs a worker per core), each worker's torch and the commands
# its tests start get an equal share of the cores, set before torch is imported: every worker
# with a thread per core oversubscribed them
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import unlabeled as ul  # noqa: E402
from unlabeled import cli as cli_module  # noqa: E402
from unlabeled._console import console  # noqa: E402
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
    shape = loaded.arrays.shape[1:]
    name = "wordnet-slice" if loaded.modality == "text" else "fmnist-slice"
    w = CollectionWriter(dest, loaded.modality, shape, str(loaded.arrays.dtype), loaded.classes, {"name": name})
    w.add(loaded.arrays[pos], [loaded.ids[i] for i in pos], loaded.labels[pos], splits[pos].tolist())
    return w.close()


@pytest.fixture(scope="session")
def fmnist_small(tmp_path_factory, fmnist_arrays) -> ul.Collection:
    """2,000 train + 1,000 test Fashion-MNIST images."""
    return write_slice(fmnist_arrays, tmp_path_factory.mktemp("data") / "fmnist-small", 2000, 1000)


@pytest.fixture(scope="session")
def wordnet_small(tmp_path_factory) -> ul.Collection:
    """2,000 train + 500 test WordNet glosses, labelled by lexicographer category (45)."""
    from unlabeled.data.corpora import load_wordnet

    return write_slice(load_wordnet(), tmp_path_factory.mktemp("data") / "wordnet-small", 2000, 500)


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> ul.Collection:
    return ul.import_source("digits", tmp_path_factory.mktemp("data") / "digits").collection


@pytest.fixture(scope="session")
def gunpoint(tmp_path_factory) -> ul.Collection:
    """UCR GunPoint (bundled in aeon): 50 train + 150 test univariate series of length 150."""
    return ul.import_source("ucr:GunPoint", tmp_path_factory.mktemp("data") / "gunpoint").collection


@pytest.fixture(scope="session")
def keywords_wav(tmp_path_factory) -> Path:
    """A small spoken-keyword folder from scripts/make_keywords.py (espeak-ng): 10 words,
    3 speakers (one held out for test), one speed, two pitches."""
    import runpy

    out = tmp_path_factory.mktemp("data") / "keywords-wav"
    script = runpy.run_path(str(Path(__file__).parent.parent / "scripts" / "make_keywords.py"))
    assert (
        script["main"](
            [
                "--out",
                str(out),
                "--words",
                "10",
                "--speakers",
                "3",
                "--test-speakers",
                "1",
                "--speeds",
                "160",
                "--pitches",
                "35,65",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="session")
def keywords(tmp_path_factory, keywords_wav) -> ul.Collection:
    return ul.import_source(keywords_wav, tmp_path_factory.mktemp("data") / "keywords").collection


def digit_volumes(n: int = 40, side: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Volumes made from scikit-learn's digits: each 8x8 digit upsampled and extruded along a
    depth axis with a random thickness (real digit shapes, a synthetic third axis)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    idx = rng.choice(len(d.images), n, replace=False)
    vols = np.zeros((n, side, side, side), np.float32)
    for k, i in enumerate(idx):
        img = np.kron(d.images[i], np.ones((side // 8, side // 8))) / 16.0
        lo = rng.integers(0, side // 2)
        vols[k, lo : lo + side // 2] = img
    return vols, d.target[idx]


@pytest.fixture(scope="session")
def volumes(tmp_path_factory) -> ul.Collection:
    """40 digit volumes of 16^3 (see ``digit_volumes``), 30 train / 10 test."""
    vols, y = digit_volumes(40)
    w = CollectionWriter(
        tmp_path_factory.mktemp("data") / "volumes",
        "volume",
        (1, 16, 16, 16),
        "float32",
        [str(i) for i in range(10)],
        extra_meta={"name": "digit-volumes"},
    )
    w.add(vols[:, None], [f"{i:03d}" for i in range(40)], y, ["train"] * 30 + ["test"] * 10)
    return w.close()


@pytest.fixture
def cli(monkeypatch):
    """Run ``unlabeled ARGS`` in this process: (exit code, the lines it printed)."""
    monkeypatch.setattr(cli_module, "tune_process", lambda: None)  # process-wide: not in the test process
    old_term = signal.getsignal(signal.SIGTERM)

    def run(*args: object) -> tuple[int, list[str]]:
        out = io.StringIO()
        monkeypatch.setattr(console, "_file", out)  # rich's own slot: undone to None, its live stderr again
        monkeypatch.setattr(sys, "argv", ["unlabeled", *map(str, args)])
        code = 0
        try:
            cli_module.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        finally:
            signal.signal(signal.SIGTERM, old_term)
        return code, out.getvalue().splitlines()

    return run
