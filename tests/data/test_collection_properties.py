"""Property tests of the collection format (issue 24): whatever samples, ids, labels, splits,
groups and shard size go in, the same come back out after a close and a reopen, and a derived
collection reads back exactly the rows it was given."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from unlabeled.data.collection import NO_LABEL, Collection, CollectionWriter, derive_collection  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IDS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
SPLIT = st.one_of(st.none(), st.sampled_from(["train", "test", "val"]))
GROUP = st.one_of(st.none(), st.text(max_size=6))


@st.composite
def samples(draw: st.DrawFn) -> dict:
    """A batch of samples of one shape and dtype, with unique ids and optional labels,
    splits and groups, and a shard size from one sample per shard to all in one."""
    dtype = draw(st.sampled_from(["uint8", "float32", "int16"]))
    shape = draw(st.tuples(*[st.integers(1, 4)] * draw(st.integers(1, 3))))
    n = draw(st.integers(1, 24))
    elements = st.floats(-1e6, 1e6, width=32) if dtype == "float32" else None
    arrays = draw(hnp.arrays(dtype, (n, *shape), elements=elements))
    ids = draw(st.lists(IDS, min_size=n, max_size=n, unique=True))
    classes = draw(st.one_of(st.none(), st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4, unique=True)))
    labels = (
        None if classes is None else draw(st.lists(st.integers(NO_LABEL, len(classes) - 1), min_size=n, max_size=n))
    )
    splits = draw(st.one_of(st.none(), st.lists(SPLIT, min_size=n, max_size=n)))
    groups = draw(st.one_of(st.none(), st.lists(GROUP, min_size=n, max_size=n)))
    per = arrays[0].nbytes
    shard_bytes = per * draw(st.integers(1, n + 1))
    return dict(arrays=arrays, ids=ids, classes=classes, labels=labels, splits=splits, groups=groups, shard=shard_bytes)


def _write(folder: Path, s: dict, cut: int) -> Collection:
    """Write ``s`` in two ``add`` calls (split at ``cut``), as importers add chunk by chunk."""
    w = CollectionWriter(
        folder, "image", s["arrays"].shape[1:], str(s["arrays"].dtype), s["classes"], shard_bytes=s["shard"]
    )
    for part in (slice(0, cut), slice(cut, None)):
        if len(s["arrays"][part]):
            w.add(
                s["arrays"][part],
                s["ids"][part],
                None if s["labels"] is None else s["labels"][part],
                None if s["splits"] is None else s["splits"][part],
                None if s["groups"] is None else s["groups"][part],
            )
    return w.close()


@SETTINGS
@given(s=samples(), data=st.data())
def test_what_goes_in_comes_back_out(s: dict, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(s["ids"])))
    root = Path(tempfile.mkdtemp())
    try:
        col = _write(root / "col", s, cut)
        again = Collection(root / "col")  # reopened from disk alone
        n = len(s["ids"])
        assert len(again) == n and again.ids.tolist() == s["ids"]
        assert again.sample_shape == s["arrays"].shape[1:] and again.meta["dtype"] == str(s["arrays"].dtype)
        np.testing.assert_array_equal(again.get(np.arange(n)), s["arrays"])
        order = data.draw(st.permutations(list(range(n))))
        np.testing.assert_array_equal(again.get(order), s["arrays"][order])
        assert again.positions([s["ids"][i] for i in order]).tolist() == list(order)
        labelled = s["labels"] is not None and any(v != NO_LABEL for v in s["labels"])
        assert (again.labels.tolist() if again.labels is not None else None) == (s["labels"] if labelled else None)
        assert again.classes == s["classes"]
        for name in ("splits", "groups"):
            given_values = s[name] if s[name] is not None and any(v is not None for v in s[name]) else None
            got = getattr(again, name)
            assert (got.tolist() if got is not None else None) == given_values
        assert again.fingerprint() == col.fingerprint()
        assert _write(root / "twin", s, 0).fingerprint() == col.fingerprint()  # content, not chunking
    finally:
        shutil.rmtree(root)


@SETTINGS
@given(s=samples(), data=st.data())
def test_a_derived_collection_reads_the_rows_it_was_given(s: dict, data: st.DataObject) -> None:
    n = len(s["ids"])
    keep = sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n)))
    root = Path(tempfile.mkdtemp())
    try:
        col = _write(root / "col", s, n // 2)
        sub = derive_collection(col, np.asarray(keep), root / "sub", {"note": "a selection"})
        again = Collection(root / "sub")
        assert again.ids.tolist() == [s["ids"][i] for i in keep] and again.meta["note"] == "a selection"
        np.testing.assert_array_equal(again.get(np.arange(len(keep))), s["arrays"][keep])
        assert sub.fingerprint() != "" and again.fingerprint() == sub.fingerprint()
    finally:
        shutil.rmtree(root)
