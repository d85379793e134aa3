"""``finetune --fraction/--shots``: a few labels, drawn as the benchmark draws them."""

from __future__ import annotations

import numpy as np
import pytest

import unlabeled as ul
from unlabeled.bench.protocol import Setting
from unlabeled.bench.tasks import task_split
from unlabeled.data.collection import CollectionWriter
from unlabeled.train.finetune import few_labels, finetune


@pytest.mark.parametrize("setting", [Setting(fraction=0.05), Setting(shots=3)])
def test_the_labels_drawn_are_the_benchs_for_the_same_seed(fmnist_small, setting):
    train, _, _ = task_split(fmnist_small)
    bench_draw = train[setting.subset(fmnist_small.labels[train], "classification", 2)]
    ours = few_labels(fmnist_small, train, setting.fraction, setting.shots, 2)
    assert np.array_equal(ours, bench_draw)
    assert set(fmnist_small.labels[ours]) == set(range(10))  # every class keeps a label
    assert not np.isin(ours, fmnist_small.indices("test")).any()


def test_a_few_label_run_records_the_ids_it_trained_on(tmp_path, fmnist_small):
    run = finetune(None, fmnist_small, tmp_path / "f", fraction=0.02, epochs=1, seed=1)
    train, _, _ = task_split(fmnist_small)
    expected = few_labels(fmnist_small, train, 0.02, None, 1)
    assert run.training_ids() == [str(i) for i in fmnist_small.ids[expected]]
    assert run.config["task"]["samples"] == len(expected)
    # resumed when finished: its time stays what training took (it was overwritten with ~0 s)
    took = run.config["seconds"]
    again = finetune(None, fmnist_small, tmp_path / "f", fraction=0.02, epochs=1, seed=1, resume=True)
    assert again.config["seconds"] >= took > 0


def test_positions_without_labels_are_refused_before_anything_is_written(tmp_path, fmnist_small):
    """Positions given through the API that include unlabelled samples failed at the first
    step with cross-entropy's IndexError, and left config.json and the ids behind."""
    pos = fmnist_small.indices(exclude="test")[:40]
    w = CollectionWriter(tmp_path / "part", "image", (1, 28, 28), "uint8", fmnist_small.classes)
    labels = fmnist_small.labels[pos].copy()
    labels[:2] = -1
    w.add(fmnist_small.get(pos), [str(i) for i in fmnist_small.ids[pos]], labels)
    col = w.close()
    with pytest.raises(ul.UnlabeledError, match="2 of the 40 positions given have no label"):
        finetune(None, col, tmp_path / "out", positions=np.arange(40), epochs=1)
    assert not (tmp_path / "out").exists()


def test_clear_errors(fmnist_small):
    pos = fmnist_small.indices(exclude="test")
    with pytest.raises(ul.UnlabeledError, match="not both"):
        few_labels(fmnist_small, pos, 0.1, 5, 0)
    with pytest.raises(ul.UnlabeledError, match=r"--fraction must be in \(0, 1\]"):
        few_labels(fmnist_small, pos, 1.5, None, 0)
    with pytest.raises(ul.UnlabeledError, match="--shots must be at least 1"):
        few_labels(fmnist_small, pos, None, 0, 0)
