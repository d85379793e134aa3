"""What the Python API's training entry points refuse before they train: positions that are not
whole positions of the collection's train samples, a split name that is not the collection's,
keys that would replace a run's own config; and a collection read by id where a position goes."""

from __future__ import annotations

import numpy as np
import pytest

import unlabeled as ul
from unlabeled.train.finetune import finetune


@pytest.mark.parametrize(
    ("positions", "message"),
    [
        ("minus", "must be within 0.."),  # -1 wrapped round to the last sample, a test image
        ("test", "are in the test split"),
        (np.array([0.5, 1.5]), "whole sample positions"),  # cut to 0 and 1
        ("mask", "whole sample positions"),  # a boolean mask read as positions 0 and 1
        ("beyond", "must be within 0.."),  # an IndexError from deep inside
    ],
)
def test_pretrain_checks_the_positions_it_is_given(fmnist_small, tmp_path, positions, message):
    n = len(fmnist_small)
    given = (
        {
            "minus": np.array([-1, 0, 1]),
            "test": fmnist_small.indices("test")[:8],
            "mask": np.arange(n) < 10,
            "beyond": np.array([0, n]),
        }.get(positions, positions)
        if isinstance(positions, str)
        else positions
    )
    with pytest.raises(ul.UnlabeledError, match=message):
        ul.pretrain(fmnist_small, tmp_path / "r", epochs=1, positions=given)
    assert not (tmp_path / "r").exists()


def test_a_misspelt_split_to_leave_out_is_refused(fmnist_small, tmp_path):
    # it left nothing out: the test split was pretrained on
    with pytest.raises(ul.UnlabeledError, match="has no split 'tset' for exclude_split to leave out"):
        ul.pretrain(fmnist_small, tmp_path / "r", epochs=1, exclude_split="tset")
    assert not (tmp_path / "r").exists()


def test_finetune_refuses_a_boolean_mask_and_config_keys_of_its_own(fmnist_small, tmp_path):
    with pytest.raises(ul.UnlabeledError, match="whole sample positions"):
        finetune(None, fmnist_small, tmp_path / "a", epochs=1, positions=np.arange(len(fmnist_small)) < 50)
    # a run whose config.json could not be read back, made after training to the end
    with pytest.raises(ul.UnlabeledError, match="extra_config may not set method"):
        finetune(None, fmnist_small, tmp_path / "b", epochs=1, extra_config={"method": "x"})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_get_takes_positions_not_ids(fmnist_small):
    # "0005" was read as position 5, another sample than id 0005
    with pytest.raises(ul.UnlabeledError, match="get takes row positions"):
        fmnist_small.get("0005")
    with pytest.raises(ul.UnlabeledError, match="get takes row positions"):
        fmnist_small.get(np.array([True, False]))
    np.testing.assert_array_equal(fmnist_small.get(np.array([3.0, 1.0])), fmnist_small.get([3, 1]))
    assert fmnist_small.get(2).shape == fmnist_small.sample_shape


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d, o: ul.select(d, out=o, method="dedup", threshold="0.9"), "threshold takes a number"),
        (lambda d, o: ul.select(d, out=o, method="dedup", centroids=float("nan")), "--centroids must be"),
        (lambda d, o: ul.curate(d, o, lid_threshold=None), "lid_threshold takes a number"),
        (lambda d, o: ul.curate(d, o, workers=None), "workers must be a whole number"),
        (lambda d, o: ul.curate(d, o, steps=None), "steps takes some of"),
        (lambda d, o: ul.pretrain(d, o, shards="2"), "--shards must be a whole number"),
        (lambda d, o: ul.bench(o, task=d, fractions=None), "fractions must be a list"),
        (lambda d, o: ul.import_source(None, o), "source to import is None"),
        (lambda d, o: ul.import_source(d.path, o, sample_rate="16000"), "--sample-rate must be"),
    ],
)
def test_api_arguments_of_the_wrong_kind_are_refused_in_one_line(digits, tmp_path, call, message):
    """Each raised Python's own TypeError or ValueError from inside the call."""
    with pytest.raises(ul.UnlabeledError, match=message):
        call(digits, tmp_path / "out")
