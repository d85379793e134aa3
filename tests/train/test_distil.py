"""``distil``: a student classifier from a teacher's soft labels on unlabeled data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unlabeled as ul
from unlabeled.data.collection import CollectionWriter
from unlabeled.runs import read_ids
from unlabeled.train.finetune import finetune


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, fmnist_small):
    labelled = fmnist_small.indices(exclude="test")[:300]
    return finetune(None, fmnist_small, tmp_path_factory.mktemp("t") / "teacher", positions=labelled, epochs=6)


def _predict(run: ul.Run, col: ul.Collection, pos: np.ndarray) -> np.ndarray:
    clf, mod = run.classifier(), run.modality()
    with torch.no_grad():
        return clf(mod.normalize(mod.prepare(col.get(pos)))).argmax(1).numpy()


@pytest.mark.slow
def test_a_student_learns_the_teachers_predictions_without_seeing_the_test_split(tmp_path, fmnist_small, teacher):
    student = ul.distil(teacher.path, fmnist_small, tmp_path / "s", size="tiny", epochs=3, batch_size=64)
    assert student.kind == "classifier" and student.config["method"]["name"] == "distil"
    test = fmnist_small.indices("test")
    trained = set(read_ids(student.path / "training-ids.txt"))
    assert trained == {str(i) for i in fmnist_small.ids[fmnist_small.indices(exclude="test")]}
    assert not trained & {str(i) for i in fmnist_small.ids[test]}
    agree = (_predict(student, fmnist_small, test) == _predict(teacher, fmnist_small, test)).mean()
    # an untrained head agrees on about 1 in 10; measured 0.699 (bf16 and AVX2-held fp32 alike)
    assert agree > 0.6, agree
    assert student.config["teacher"]["run"] == str(teacher.path.resolve())
    # a classifier run like any other: fine-tuned further, and resumed (already finished) as it was
    again = ul.distil(teacher.path, fmnist_small, tmp_path / "s", resume=True)
    assert again.step == student.step
    child = finetune(student, fmnist_small, tmp_path / "ft", epochs=1)
    assert child.config["source_run"] == str(student.path.resolve())
    # labels are mixed in only where a fine-tuned teacher saw them; a student's ids are the pool
    with pytest.raises(ul.UnlabeledError, match="label-weight needs a teacher fine-tuned"):
        ul.distil(student.path, fmnist_small, tmp_path / "s2", label_weight=0.5)
    with pytest.raises(ul.UnlabeledError, match="forget from its teacher"):
        ul.forget(student, ids=[str(fmnist_small.ids[0])], out=tmp_path / "f")


def test_clear_errors(tmp_path, fmnist_small, digits, teacher):
    with pytest.raises(ul.UnlabeledError, match="reads image samples of shape"):
        ul.distil(teacher.path, digits, tmp_path / "a")
    renamed = CollectionWriter(tmp_path / "renamed", "image", (1, 28, 28), "uint8", [f"c{i}" for i in range(10)])
    pos = fmnist_small.indices()[:50]
    renamed.add(fmnist_small.get(pos), [str(i) for i in fmnist_small.ids[pos]], fmnist_small.labels[pos], None)
    with pytest.raises(ul.UnlabeledError, match="knows the classes"):
        ul.distil(teacher.path, renamed.close(), tmp_path / "b")
    with pytest.raises(ul.UnlabeledError, match="label-weight must be between 0 and 1"):
        ul.distil(teacher.path, fmnist_small, tmp_path / "c", label_weight=2)
    for temperature in (1e-30, 1e6, float("inf")):  # 1e-30 was taken and the student's loss overflowed
        with pytest.raises(ul.UnlabeledError, match="temperature must be between 0.01 and 100"):
            ul.distil(teacher.path, fmnist_small, tmp_path / "c", temperature=temperature)
    # a copy whose labels were edited: the samples (and the fingerprint) are the teacher's, the
    # labels not; mixing them in was accepted
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(fmnist_small.path, tmp_path / "relabelled")
    table = pq.read_table(tmp_path / "relabelled" / "index.parquet")
    labels = table.column("label").to_numpy().copy()
    labels[:50] = (labels[:50] + 1) % 10
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels))
    pq.write_table(table, tmp_path / "relabelled" / "index.parquet")
    with pytest.raises(ul.UnlabeledError, match="labels or splits changed since the teacher"):
        ul.distil(teacher.path, ul.open_collection(tmp_path / "relabelled"), tmp_path / "d", label_weight=0.5)
    with pytest.raises(ul.UnlabeledError, match="is the teacher; write the student elsewhere"):
        ul.distil(teacher.path, fmnist_small, teacher.path, overwrite=True)
    with pytest.raises(ul.UnlabeledError, match="is not a distilled student"):
        ul.distil(teacher.path, fmnist_small, teacher.path, resume=True)
    held_out = CollectionWriter(tmp_path / "held", "image", (1, 28, 28), "uint8", fmnist_small.classes)
    held_out.add(fmnist_small.get(pos[:5]), [str(i) for i in fmnist_small.ids[pos[:5]]], None, ["test"] * 5)
    with pytest.raises(ul.UnlabeledError, match="0 sample.s. outside its test split; distil needs 2 or more"):
        ul.distil(teacher.path, held_out.close(), tmp_path / "e")
    assert teacher.classifier() is not None  # the teacher is still there
    assert not any((tmp_path / name).exists() for name in "abcde")  # a refused run leaves nothing behind


@pytest.mark.slow
def test_llkd_selection_reaches_the_run_and_its_metrics(tmp_path, fmnist_small, teacher):
    import json

    student = ul.distil(teacher.path, fmnist_small, tmp_path / "s", size="tiny", epochs=1, batch_size=64, select="llkd")
    assert student.config["method"]["select"] == "llkd"
    rows = [json.loads(line) for line in (student.path / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < r["kept"] < 1 for r in rows)  # a share of each batch, not all of it
    with pytest.raises(ul.UnlabeledError, match="--select must be all or llkd"):
        ul.distil(teacher.path, fmnist_small, tmp_path / "t", select="best")


def test_a_self_trained_run_and_its_student_name_the_labels_they_learnt_and_bench_says_so(tmp_path, fmnist_small):
    """A tester's session (2026-12-07): `bench` refused a self-trained run, and a student
    distilled from it, as trained on every test sample "with their labels" where the run had
    learnt 30 labels and pseudo-labelled the rest, and the student only its teacher's soft labels."""
    from unlabeled.bench.jobs import check_held_out
    from unlabeled.bench.tasks import make_task
    from unlabeled.data.collection import CollectionWriter
    from unlabeled.train.distil import DistilRecipe, soft_targets

    st = ul.selftrain(None, fmnist_small, tmp_path / "st", shots=3, epochs=0.05, batch_size=8, precision="fp32")
    assert len(st.labelled_ids()) == 30 and len(st.training_ids()) == len(fmnist_small.indices(exclude="test"))
    student = ul.distil(st.path, fmnist_small, tmp_path / "s", size="tiny", epochs=0.05, precision="fp32")
    assert student.labelled_ids() == []  # its teacher's soft labels alone, without --label-weight
    # yet those carry the teacher's 30 labels: bench's note on rows at fewer labels names the
    # teacher (the chain of runs went through the run a run started from, never a teacher)
    notes: list[str] = []
    check_held_out(student, make_task(fmnist_small), notes)
    assert [n for n in notes if f"{st.path} is a classifier trained on 30 of its labelled train samples" in n]
    # with it, the labels are those of the teacher's labelled draw, not of its whole pool (a
    # self-trained teacher was refused, its index hashed with the other labels hidden)
    mixed = ul.distil(st.path, fmnist_small, tmp_path / "m", size="tiny", epochs=0.05, label_weight=0.5)
    assert sorted(mixed.labelled_ids()) == sorted(st.labelled_ids())
    pool = fmnist_small.indices(exclude="test")
    targets = soft_targets(
        st, fmnist_small, pool, DistilRecipe(label_weight=1.0, precision="fp32"), torch.device("cpu")
    )
    assert set(np.flatnonzero((targets == 1).any(1))) == set(fmnist_small.positions(st.labelled_ids()))
    # the same samples with every train sample marked test: bench counts the labels apart
    splits = np.where(fmnist_small.splits == "train", "test", "train")
    w = CollectionWriter(tmp_path / "flip", "image", fmnist_small.sample_shape, "uint8", fmnist_small.classes)
    w.add(fmnist_small.get(np.arange(len(fmnist_small))), list(fmnist_small.ids), fmnist_small.labels, splits)
    task = make_task(w.close())
    with pytest.raises(ul.UnlabeledError, match=r"test samples \(30 with their labels, the rest with pseudo-labels"):
        ul.bench(st, task.collection, probes=["linear"], fractions=[1.0], seeds=1, baselines=())


def test_a_student_from_a_run_of_another_modality_of_the_same_shape_is_refused():
    """Audio waveforms (1, N) and a univariate series (1, N) share a shape: an audio --init
    passed for a series teacher, and the student read series through the audio front end."""
    from types import SimpleNamespace

    from unlabeled.train.distil import DistilRecipe, student_spec

    teacher = SimpleNamespace(config={"modality": {"name": "series", "sample_shape": [1, 400]}})
    src = SimpleNamespace(path="runs/audio", config={"modality": {"name": "audio", "sample_shape": [1, 400]}})
    with pytest.raises(ul.UnlabeledError, match="--init runs/audio was pretrained on other samples than the teacher"):
        student_spec(DistilRecipe(), teacher, src, None, 10, "cpu")
