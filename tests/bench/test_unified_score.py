"""The unified score (``bench/result.py``), branch by branch, on hand-made rows whose expected
scores are worked out in the comments."""

import math

import pytest

from unlabeled.bench.result import BenchResult, ranked_unified, unified_cell_counts, unified_scores


def _row(model: str, mean: float, probe: str = "linear", setting: str = "10%", task: str = "t", hib: bool = True):
    """The fields of a bench row that the unified score reads."""
    return {"task": task, "model": model, "probe": probe, "setting": setting, "mean": mean, "higher_is_better": hib}


def test_raw_at_zero_the_best_at_one_and_the_rest_on_that_scale_clipped_at_minus_one():
    rows = [_row("raw", 0.5), _row("best", 0.9), _row("mid", 0.6), _row("poor", 0.2), _row("awful", 0.0)]
    # scale = best - raw = 0.4: mid (0.6 - 0.5) / 0.4, poor (0.2 - 0.5) / 0.4, awful -1.25 clipped
    assert unified_scores(rows) == pytest.approx({"raw": 0.0, "best": 1.0, "mid": 0.25, "poor": -0.75, "awful": -1.0})


def test_where_raw_features_are_best_the_scale_runs_from_the_worst_to_raw():
    rows = [_row("raw", 0.9), _row("a", 0.7), _row("worst", 0.5)]
    # nothing beats raw: scale = raw - worst = 0.4; a (0.7 - 0.9) / 0.4
    assert unified_scores(rows) == pytest.approx({"raw": 0.0, "a": -0.5, "worst": -1.0})


def test_a_lower_is_better_metric_is_flipped():
    rows = [_row("raw", 50.0, hib=False), _row("a", 40.0, hib=False), _row("b", 55.0, hib=False)]
    # negated: raw -50, a -40 (best), b -55; scale 10: a +1, b (-55 + 50) / 10
    assert unified_scores(rows) == pytest.approx({"raw": 0.0, "a": 1.0, "b": -0.5})
    everyone_worse = [_row("raw", 40.0, hib=False), _row("a", 50.0, hib=False), _row("b", 45.0, hib=False)]
    # raw has the lowest error: scale = -40 - (-50) = 10; b (-45 + 40) / 10
    assert unified_scores(everyone_worse) == pytest.approx({"raw": 0.0, "a": -1.0, "b": -0.5})


def test_a_probe_raw_features_cannot_take_is_scored_against_raws_best_probe_at_that_setting():
    rows = [
        _row("raw", 0.6, probe="linear"),
        _row("raw", 0.7, probe="knn"),
        _row("raw", 0.95, probe="knn", setting="100%"),  # another setting: not the reference
        _row("a", 0.8, probe="finetune"),
        _row("b", 0.65, probe="finetune"),
    ]
    # finetune cell: reference 0.7 (raw's best at 10%), scale 0.8 - 0.7; b (0.65 - 0.7) / 0.1.
    # raw itself: 0 in each of its three cells
    assert unified_scores(rows) == pytest.approx({"raw": 0.0, "a": 1.0, "b": -0.5})
    errors = [
        _row("raw", 50.0, probe="linear", hib=False),
        _row("raw", 45.0, probe="knn", hib=False),
        _row("a", 40.0, probe="finetune", hib=False),
        _row("b", 50.0, probe="finetune", hib=False),
    ]
    # lower is better: raw's best is its lowest error, 45; scale 5: b (-50 + 45) / 5
    assert unified_scores(errors) == pytest.approx({"raw": 0.0, "a": 1.0, "b": -1.0})


def test_cells_without_a_raw_reference_are_left_out_and_the_rest_averaged():
    rows = [
        _row("raw", 0.5),
        _row("a", 0.9),  # cell 1: a = 1
        _row("raw", 0.8, setting="1%"),
        _row("a", 0.7, setting="1%"),  # cell 2: raw best, scale 0.8 - 0.7 = 0.1: a = -1
        _row("a", 0.9, task="other"),  # no raw on task "other" at all: left out
        _row("only-elsewhere", 0.9, task="other"),
    ]
    scores = unified_scores(rows)
    assert scores == pytest.approx({"raw": 0.0, "a": 0.0})  # a: mean(1, -1)
    rows[2]["mean"] = 0.6  # cell 2 now: raw 0.6, a best 0.7: a = 1
    assert unified_scores(rows)["a"] == pytest.approx(1.0)


def test_a_cell_where_everyone_ties_with_raw_scores_zero():
    assert unified_scores([_row("raw", 0.7), _row("a", 0.7), _row("b", 0.7)]) == {"raw": 0.0, "a": 0.0, "b": 0.0}


def test_missing_results_are_dropped_and_a_missing_raw_row_falls_back_to_raws_other_probes():
    rows = [_row("raw", 0.5), _row("a", 0.9), _row("b", math.nan), _row("c", 0.7)]
    # b's NaN is not a result: the cell is raw 0.5, a 0.9, c 0.7, scale 0.4
    assert unified_scores(rows) == pytest.approx({"raw": 0.0, "a": 1.0, "c": 0.5})
    rows = [_row("raw", math.nan), _row("raw", 0.6, probe="knn"), _row("a", 0.8), _row("a", 0.6, probe="knn")]
    # raw failed with the linear probe: its knn 0.6 becomes the reference there, scale 0.2: a = 1;
    # in the knn cell a ties raw (0.6 = 0.6, nothing better, worst = raw): scale 0, a = 0
    assert unified_scores(rows) == pytest.approx({"raw": 0.0, "a": 0.5})


def test_a_model_scored_in_fewer_cells_ranks_after_those_scored_in_all():
    rows = [
        *[_row("raw", 0.6, setting=s) for s in ("1%", "10%")],
        _row("a", 0.7, setting="1%"),  # 1% is where a beat everyone: 1.0 there
        _row("b", 0.65, setting="1%"),
        _row("b", 0.9, setting="10%"),
        # a was not scored at 10% (a probe it cannot take, or a failed cell)
    ]
    scores, cells = unified_scores(rows), unified_cell_counts(rows)
    assert scores["a"] == pytest.approx(1.0) and scores["b"] == pytest.approx((0.5 + 1.0) / 2)
    assert cells == {"raw": 2, "a": 1, "b": 2}
    # by the means alone a (1.0, one cell) would outrank b (0.75, both cells)
    assert [m for m, _ in ranked_unified(scores, cells)] == ["b", "raw", "a"]
    table = BenchResult([], {}, unified=scores, unified_cells=cells).table()  # the unified part alone
    assert table.index("b ") < table.index("a ") and "(1 of 2 cells)" in table and "(2 of 2 cells)" in table


def test_models_scored_in_the_same_cells_show_no_cell_counts():
    rows = [_row("raw", 0.6), _row("a", 0.7)]
    table = BenchResult([], {}, unified=unified_scores(rows), unified_cells=unified_cell_counts(rows)).table()
    assert "cells)" not in table
