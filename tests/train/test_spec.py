"""Typed run specs: every run's config.json round-trips exactly, old runs included (issue 22)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

import unlabeled as ul
from unlabeled.train.spec import DataSpec, RunSpec, ids_hash, index_hash
from unlabeled.train.trainer import TrainConfig

# a config.json as runs wrote it before the specs existed (no ids hash, no init weights hash)
OLD = {
    "unlabeled": "0.1.0",
    "created": "2026-11-20T10:00:00+0000",
    "command": "unlabeled pretrain data/fmnist --out runs/a",
    "data": {"path": "/d", "name": "fmnist", "fingerprint": "abc", "samples": 60000, "exclude_split": "test"},
    "modality": {"name": "image", "sample_shape": [1, 28, 28], "mean": [0.28], "std": [0.35]},
    "encoder": {"name": "cnn", "size": "tiny", "sample_shape": [1, 28, 28], "options": {}, "weights": "encoder"},
    "method": {"name": "simclr", "temperature": 0.2},
    "train": {"batch_size": 128, "epochs": None, "minutes": 10.0, "lr": 0.002, "seed": 0, "total_steps": 500},
    "environment": {"torch": "2.13.0", "python": "3.11.7", "device": "cpu", "world_size": 1},
    "init": {"run": "/runs/g", "step": 40, "loaded": "the encoder"},
    "sisa": {"shards": 2},
}


def test_an_old_config_round_trips_and_fills_new_settings_with_their_defaults():
    spec = RunSpec.from_config(OLD)
    assert spec.kind == "encoder" and spec.encoder.sample_shape == (1, 28, 28) and spec.extra == {"sisa": {"shards": 2}}
    assert spec.train.schedule == "cosine" and spec.train.total_steps == 500
    again = spec.to_config()
    assert {k: v for k, v in again.items() if k != "train"} == {k: v for k, v in OLD.items() if k != "train"}
    assert {k: again["train"][k] for k in OLD["train"]} == OLD["train"]
    assert RunSpec.from_config(again) == spec


def test_specs_are_frozen_and_checked():
    spec = RunSpec.from_config(OLD)
    with pytest.raises(AttributeError):
        spec.kind = "classifier"  # type: ignore[misc]
    with pytest.raises(ul.UnlabeledError, match="schedule must be"):
        TrainConfig(schedule="linear")
    assert DataSpec.from_json({**OLD["data"], "unknown": 1}) == DataSpec.from_json(OLD["data"])
    assert ids_hash(["b", "a"]) == ids_hash(["a", "b"]) != ids_hash(["a"])


def test_the_index_hash_changes_with_labels_and_splits_not_with_the_samples():
    def col(labels, splits):
        return SimpleNamespace(
            ids=np.array(["a", "b"], dtype=object),
            labels=np.array(labels),
            classes=["x", "y"],
            splits=np.array(splits, dtype=object),
        )

    base = index_hash(col([0, 1], ["train", "test"]))
    assert base == index_hash(col([0, 1], ["train", "test"]))
    assert base != index_hash(col([1, 1], ["train", "test"]))
    assert base != index_hash(col([0, 1], ["train", "train"]))
    # a teacher's soft targets as labels (distil): hashed by the collection beneath, so its
    # relabelling is seen (cast to integers the targets hashed as zeros, whatever the labels)
    from unlabeled.train.sampling import Retargeted

    soft = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    assert index_hash(Retargeted(col([0, 1], ["train", "test"]), soft)) == base
    assert index_hash(Retargeted(col([1, 1], ["train", "test"]), soft)) != base
    assert index_hash(Retargeted(col([0, 1], ["train", "test"]), soft * 0.999)) == base  # recomputed targets


@pytest.mark.slow
def test_a_new_runs_config_is_its_spec_with_content_hashes(tmp_path, fmnist_small):
    run = ul.pretrain(fmnist_small, tmp_path / "a", epochs=0.5, batch_size=64, positions=range(0, 400, 2))
    config = json.loads((run.path / "config.json").read_text())
    spec = RunSpec.from_config(config)
    assert spec.to_config() == config
    assert spec.data.ids == ids_hash(fmnist_small.ids[list(range(0, 400, 2))])
    assert spec.data.index == index_hash(fmnist_small) and len(spec.data.index) == 16
    assert spec.objective.options["temperature"] > 0  # the objective's resolved settings are recorded
    child = ul.pretrain(fmnist_small, tmp_path / "b", epochs=0.5, batch_size=64, init=run.path)
    init = RunSpec.from_config(child.config).init
    assert init.loaded == "every weight" and init.step == run.step and len(init.weights) == 16
