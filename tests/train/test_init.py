"""Continued pretraining (`pretrain --init RUN`): the new run starts from the other run's
weights, takes its encoder settings, and refuses data the weights cannot read."""

import os

import numpy as np
import pytest
import torch

import unlabeled as ul
from unlabeled._console import UnlabeledError
from unlabeled.data.collection import CollectionWriter
from unlabeled.runs import encoder_weights
from unlabeled.train import checkpoint as ckpt


def series_collection(path, x: np.ndarray) -> ul.Collection:
    w = CollectionWriter(path, "series", x.shape[1:], "float32", None)
    w.add(x, [str(i) for i in range(len(x))], splits=["train"] * len(x))
    return w.close()


@pytest.fixture(scope="module")
def ts2vec_run(tmp_path_factory, gunpoint):
    out = tmp_path_factory.mktemp("runs") / "ts2vec"
    return ul.pretrain(gunpoint, out, method="ts2vec", epochs=2 / (50 // 8), batch_size=8, seed=0)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


def test_continues_from_every_weight_on_series_of_another_length(tmp_path, gunpoint, ts2vec_run):
    shorter = series_collection(tmp_path / "short", gunpoint.get(gunpoint.indices("train"))[:, :, :96])
    # lr 0: the run's weights stay where --init put them
    run = ul.pretrain(shorter, tmp_path / "cont", method="ts2vec", init=ts2vec_run.path, epochs=1, batch_size=8, lr=0.0)
    assert run.config["init"]["loaded"] == "every weight" and run.config["init"]["step"] == ts2vec_run.step
    assert run.config["encoder"]["options"] == ts2vec_run.config["encoder"]["options"]
    assert run.config["encoder"]["sample_shape"] == [1, 1, 96]
    assert_same_weights(run.encoder().state_dict(), ts2vec_run.encoder().state_dict())
    # and trains from there with a rate
    moved = ul.pretrain(shorter, tmp_path / "cont2", method="ts2vec", init=ts2vec_run.path, epochs=1, batch_size=8)
    assert not torch.equal(moved.encoder().input_fc.weight, ts2vec_run.encoder().input_fc.weight)


@pytest.mark.slow
def test_from_the_command_line(tmp_path, gunpoint, ts2vec_run):
    import subprocess
    import sys

    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "unlabeled",
            "pretrain",
            str(gunpoint.path),
            "--out",
            str(tmp_path / "r"),
            "--method",
            "ts2vec",
            "--init",
            str(ts2vec_run.path),
            "--epochs",
            "1",
            "--batch-size",
            "8",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "UNLABELED_QUIET": "1"},
    )
    assert p.returncode == 0, p.stderr
    assert "starting from" in p.stderr and ul.open_run(tmp_path / "r").config["init"]["loaded"] == "every weight"


def test_another_method_takes_the_encoder_into_both_of_jepas_copies(tmp_path, gunpoint):
    mae = ul.pretrain(gunpoint, tmp_path / "mae", method="mae", epochs=1, batch_size=16)
    jepa = ul.pretrain(gunpoint, tmp_path / "jepa", method="jepa", init=mae.path, epochs=1, batch_size=16, lr=0.0)
    assert jepa.config["init"]["loaded"] == "the encoder"
    saved = ckpt.load_weights(jepa.path / ckpt.MODEL_FILE)
    want = mae.encoder().state_dict()
    assert_same_weights(encoder_weights(saved, "encoder"), want)
    assert_same_weights(encoder_weights(saved, "target"), want)


def test_clear_errors(tmp_path, gunpoint, fmnist_small, ts2vec_run):
    with pytest.raises(UnlabeledError, match="holds a tcn encoder; drop --encoder transformer"):
        ul.pretrain(gunpoint, tmp_path / "a", method="ts2vec", encoder="transformer", init=ts2vec_run.path, epochs=1)
    with pytest.raises(UnlabeledError, match="pretrained on series data, not image"):
        ul.pretrain(fmnist_small, tmp_path / "b", init=ts2vec_run.path, epochs=1)
    x = gunpoint.get(gunpoint.indices("train"))
    two = series_collection(tmp_path / "two", np.concatenate([x, x[::-1]], axis=1))
    with pytest.raises(UnlabeledError, match=r"does not fit inputs \(1, 2, 150\).*size mismatch"):
        ul.pretrain(two, tmp_path / "c", method="ts2vec", init=ts2vec_run.path, epochs=1, batch_size=8)
    with pytest.raises(UnlabeledError, match="continue a run in place with --resume"):
        ul.pretrain(gunpoint, ts2vec_run.path, method="ts2vec", init=ts2vec_run.path, overwrite=True, epochs=1)
    assert (ts2vec_run.path / ckpt.MODEL_FILE).exists()
    assert not (tmp_path / "c").exists()  # a refused start leaves no half-made run
    unsaved = tmp_path / "unsaved"
    unsaved.mkdir()
    (unsaved / "config.json").write_text((ts2vec_run.path / "config.json").read_text())
    with pytest.raises(UnlabeledError, match="no saved weights"):
        ul.pretrain(gunpoint, tmp_path / "d", init=unsaved, epochs=1)
