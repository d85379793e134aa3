import numpy as np
import pytest

from unlabeled.data.splits import stratified_split, stratified_subset


def test_subset_is_stratified_seeded_and_has_every_class():
    y = np.repeat(np.arange(10), 600)
    a = stratified_subset(y, 0.01, seed=3)
    assert len(a) == 60 and np.bincount(y[a]).tolist() == [6] * 10
    assert (a == stratified_subset(y, 0.01, seed=3)).all()
    assert not (a == stratified_subset(y, 0.01, seed=4)).all()
    tiny = stratified_subset(y, 1e-5, seed=0)
    assert np.bincount(y[tiny]).tolist() == [1] * 10
    assert len(stratified_subset(y, 1.0, seed=0)) == len(y)
    with pytest.raises(ValueError):
        stratified_subset(y, 0, seed=0)


def test_split_is_disjoint_and_covers():
    y = np.repeat(np.arange(5), [1, 2, 10, 50, 3])
    fit, held = stratified_split(y, 0.2, seed=0)
    assert set(fit).isdisjoint(held) and len(fit) + len(held) == len(y)
    assert 0 in y[fit]  # a class of one stays on the fitting side
    assert set(np.unique(y[held])) == {1, 2, 3, 4}


def test_shots_random_subsets_and_group_holdout():
    from unlabeled.data.splits import holdout_split, random_subset, shots_subset

    y = np.repeat(np.arange(4), [3, 10, 10, 10])
    s = shots_subset(y, 5, seed=0)
    assert np.bincount(y[s]).tolist() == [3, 5, 5, 5]  # a class with fewer gives all it has
    assert (s == shots_subset(y, 5, seed=0)).all()
    r = random_subset(100, 0.1, seed=0)
    assert len(r) == 10 and len(set(r)) == 10 and len(random_subset(100, 0.001, seed=0)) == 2
    groups = np.array([f"p{i // 3}" for i in range(len(y))])  # 11 patients of 3 samples
    fit, held = holdout_split(len(y), 0.2, 0, y, groups)
    assert set(groups[fit]).isdisjoint(groups[held]) and len(fit) + len(held) == len(y) and len(held)
    fit, held = holdout_split(len(y), 0.2, 0, None, groups)  # regression targets: no classes
    assert set(groups[fit]).isdisjoint(groups[held])
