import numpy as np
import pytest
from PIL import Image

from unlabeled import UnlabeledError, import_source, open_collection
from unlabeled.data.builtins import BUILTINS


def _save(path, array, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


@pytest.fixture
def image_folder(tmp_path, fmnist_arrays):
    """Real Fashion-MNIST images as PNG/JPEG in class folders, plus every kind of bad file."""
    root = tmp_path / "imgs"
    x, y = fmnist_arrays.arrays[:40, 0], fmnist_arrays.labels[:40]
    for i in range(40):
        ext = "jpg" if i % 5 == 0 else "png"
        _save(root / f"class{y[i]}" / f"{i:03d}.{ext}", x[i])
    _save(root / "class0" / "rgb.png", np.stack([x[0]] * 3, -1), "RGB")
    (root / "class0" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    png = (root / "class0" / "rgb.png").read_bytes()
    (root / "class0" / "truncated.png").write_bytes(png[: len(png) // 2])
    _save(root / "class2" / "wrongsize.png", np.zeros((30, 30), np.uint8))
    (root / "notes.txt").write_text("not an image")
    return root


def test_image_folder_reports_bad_files_and_imports_the_rest(image_folder, tmp_path):
    report = import_source(image_folder, tmp_path / "col")
    bad = dict(report.bad)
    assert set(map(lambda p: p.split("/")[-1], bad)) == {"corrupt.png", "truncated.png", "wrongsize.png"}
    assert "differs" in bad[str(image_folder / "class2" / "wrongsize.png")]
    col = report.collection
    assert len(col) == 41  # 40 + the RGB one
    assert col.sample_shape == (3, 28, 28)  # a colour image makes the collection RGB
    assert "corrupt.png" in report.summary()
    assert "ignored 1 file(s) with extension .txt (--modality text imports them)" in report.summary()
    # a PNG decodes losslessly: grey replicated to three channels equals the source pixels
    first = next(p for p in sorted(image_folder.glob("class*/0*.png")))
    rel = first.relative_to(image_folder).as_posix()
    sample = col.get(col.positions([rel]))[0]
    for c in range(3):
        np.testing.assert_array_equal(sample[c], np.asarray(Image.open(first)))
    assert col.classes[col.labels[col.positions([rel])[0]]] == first.parent.name


def test_class_folders_become_labels(tmp_path, fmnist_arrays):
    root = tmp_path / "imgs"
    for i in range(6):
        _save(root / ("cat" if i % 2 else "dog") / f"{i}.png", fmnist_arrays.arrays[i, 0])
    _save(root / "loose.png", fmnist_arrays.arrays[6, 0])
    col = import_source(root, tmp_path / "col").collection
    assert col.classes == ["cat", "dog"] and col.sample_shape == (1, 28, 28)
    labels = dict(zip(col.ids, col.labels, strict=True))
    assert labels["cat/1.png"] == 0 and labels["dog/0.png"] == 1 and labels["loose.png"] == -1
    got = col.get(col.positions(["dog/2.png"]))[0, 0]
    np.testing.assert_array_equal(got, fmnist_arrays.arrays[2, 0])


def test_split_folders_and_resize(tmp_path, fmnist_arrays):
    root = tmp_path / "imgs"
    for i in range(4):
        _save(root / ("train" if i < 3 else "test") / "a" / f"{i}.png", fmnist_arrays.arrays[i, 0])
    _save(root / "train" / "a" / "big.png", np.zeros((56, 56), np.uint8))
    col = import_source(root, tmp_path / "col", resize=(28, 28)).collection
    assert len(col) == 5 and sorted(col.splits.tolist()) == ["test"] + ["train"] * 4


def test_a_stray_file_beside_the_split_folders_is_reported_not_made_a_class_of_them(tmp_path, fmnist_arrays):
    """One cover.png beside train/ and test/ turned them into two classes (no split: the test
    images trained on, every label wrong). A class folder named like a split alone stays a class."""
    root = tmp_path / "imgs"
    for i in range(8):
        _save(
            root / ("train" if i < 6 else "test") / ("cat" if i % 2 else "dog") / f"{i}.png", fmnist_arrays.arrays[i, 0]
        )
    _save(root / "cover.png", fmnist_arrays.arrays[9, 0])
    report = import_source(root, tmp_path / "col")
    col = report.collection
    assert col.classes == ["cat", "dog"] and sorted(col.splits.tolist()) == ["test"] * 2 + ["train"] * 6
    assert (
        list(dict(report.bad)) == [str(root / "cover.png")]
        and "split folders" in dict(report.bad)[str(root / "cover.png")]
    )
    vehicles = tmp_path / "vehicles"
    for i, name in enumerate(["train", "bus", "car"]):
        _save(vehicles / name / f"{i}.png", fmnist_arrays.arrays[i, 0])
    col = import_source(vehicles, tmp_path / "v").collection
    assert col.classes == ["bus", "car", "train"] and col.splits is None


def test_empty_and_missing_sources_are_errors(tmp_path):
    with pytest.raises(UnlabeledError, match="not found"):
        import_source(tmp_path / "nope", tmp_path / "col")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnlabeledError, match="no importable files"):
        import_source(tmp_path / "empty", tmp_path / "col")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"garbage")
    with pytest.raises(UnlabeledError, match="could be read"):
        import_source(tmp_path / "bad", tmp_path / "col")
    assert not (tmp_path / "col").exists()


def test_npy_array_with_labels_file(tmp_path, fmnist_arrays):
    x = fmnist_arrays.arrays[:30, 0].astype(np.float32) / 255
    x[7, 0, 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "y.txt").write_text("\n".join(str(v) for v in fmnist_arrays.labels[:30]))
    report = import_source(tmp_path / "x.npy", tmp_path / "col", labels=tmp_path / "y.txt")
    assert report.bad == [(f"{tmp_path / 'x.npy'}[7]", "contains NaN or infinity")]
    col = open_collection(tmp_path / "col")
    assert len(col) == 29 and col.sample_shape == (1, 28, 28) and col.meta["dtype"] == "float32"
    (tmp_path / "short.txt").write_text("1\n2\n")
    with pytest.raises(UnlabeledError, match="2 labels for 30 samples"):
        import_source(tmp_path / "x.npy", tmp_path / "col2", labels=tmp_path / "short.txt")
    with pytest.raises(UnlabeledError, match="cannot read the labels file .*nope.txt"):
        import_source(tmp_path / "x.npy", tmp_path / "col3", labels=tmp_path / "nope.txt")
    y = fmnist_arrays.labels[:30].astype(np.float64)
    np.save(tmp_path / "yf.npy", y[:, None])  # a column of whole floats: classes 0..9, as in a text file
    assert import_source(tmp_path / "x.npy", tmp_path / "col4", labels=tmp_path / "yf.npy").collection.classes == [
        str(c) for c in sorted(set(fmnist_arrays.labels[:30].tolist()))
    ]
    y[3] = np.nan
    np.save(tmp_path / "ynan.npy", y)
    with pytest.raises(UnlabeledError, match="holds nan at position 3"):
        import_source(tmp_path / "x.npy", tmp_path / "col5", labels=tmp_path / "ynan.npy")
    np.save(tmp_path / "y2d.npy", np.zeros((15, 2)))
    with pytest.raises(UnlabeledError, match="holds a 15x2 array: one label per sample"):
        import_source(tmp_path / "x.npy", tmp_path / "col6", labels=tmp_path / "y2d.npy")
    assert (
        report.notes == []
        and import_source(  # whole numbers are classes without a word
            tmp_path / "x.npy", tmp_path / "col7", labels=tmp_path / "yf.npy"
        ).notes
        == []
    )


def test_labels_that_are_fractional_numbers_import_as_classes_with_a_note(tmp_path):
    """A regression target given as --labels became 30 classes of one sample each, silently."""
    np.save(tmp_path / "x.npy", np.zeros((30, 8), np.float32))
    np.save(tmp_path / "y.npy", np.linspace(0.5, 3.0, 30))
    report = import_source(tmp_path / "x.npy", tmp_path / "col", labels=tmp_path / "y.npy")
    assert len(report.collection.classes) == 30
    assert len(report.notes) == 1 and "not all whole (e.g. 0.5): each of the 30 values is a class" in report.notes[0]
    (tmp_path / "y.txt").write_text("\n".join(["nan", "inf", "1.5"] * 10))  # names that float() reads
    assert import_source(tmp_path / "x.npy", tmp_path / "col2", labels=tmp_path / "y.txt").notes == []


def test_folder_of_npy_files(tmp_path, fmnist_arrays):
    root = tmp_path / "arrs"
    (root / "a").mkdir(parents=True)
    for i in range(3):
        np.save(root / "a" / f"{i}.npy", fmnist_arrays.arrays[i, 0].astype(np.float32))
    np.save(root / "a" / "odd.npy", np.zeros((5, 5), np.float32))
    (root / "a" / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    report = import_source(root, tmp_path / "col")
    assert len(report.collection) == 3
    assert {p.split("/")[-1] for p, _ in report.bad} == {"odd.npy", "broken.npy"}


def test_builtins(tmp_path):
    assert {"fashion-mnist", "digits"} <= set(BUILTINS)
    col = import_source("digits", tmp_path / "d").collection
    assert len(col) == 1797 and col.sample_shape == (1, 8, 8) and col.get(col.indices()).max() == 255


def test_fashion_mnist_builtin(fmnist_arrays):
    assert fmnist_arrays.arrays.shape == (70000, 1, 28, 28)
    assert fmnist_arrays.splits.count("test") == 10000
    assert np.bincount(fmnist_arrays.labels).tolist() == [7000] * 10


def test_a_collection_folder_has_the_usual_permissions(tmp_path, fmnist_arrays):
    import os

    np.save(tmp_path / "x.npy", fmnist_arrays.arrays[:10, 0])
    col = import_source(tmp_path / "x.npy", tmp_path / "col").collection
    umask = os.umask(0)
    os.umask(umask)
    assert col.path.stat().st_mode & 0o777 == 0o777 & ~umask  # mkdtemp's 0700 kept others out


def test_an_empty_stack_and_a_file_that_is_no_npy_are_said_to_be(tmp_path):
    """An empty stack was numpy's reshape error (a traceback); a file of garbage named .npy was
    NumPy's advice to unpickle it with allow_pickle."""
    np.save(tmp_path / "empty.npy", np.zeros((0, 16, 16), np.float32))
    with pytest.raises(UnlabeledError, match=r"holds no samples \(an array of shape \(0, 16, 16\)\)"):
        import_source(tmp_path / "empty.npy", tmp_path / "a")
    (tmp_path / "folder").mkdir()
    np.save(tmp_path / "folder" / "good.npy", np.ones((8, 8), np.float32))
    (tmp_path / "folder" / "junk.npy").write_bytes(b"garbage, not an array")
    report = import_source(tmp_path / "folder", tmp_path / "b")
    assert len(report.collection) == 1 and dict(report.bad) == {
        str(tmp_path / "folder" / "junk.npy"): "not a .npy file (no NumPy header)"
    }


def test_options_a_source_would_ignore_are_refused(tmp_path):
    """A labels file given for a folder, resizing a stack, resampling a built-in set: each was
    accepted and silently did nothing."""
    stack = tmp_path / "x.npy"
    np.save(stack, np.zeros((4, 1, 8, 8), np.uint8))
    folder = tmp_path / "pngs"
    folder.mkdir()
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\na\nb\n")
    with pytest.raises(UnlabeledError, match="--labels applies to a .npy stack"):
        import_source(folder, tmp_path / "a", labels=labels)
    with pytest.raises(UnlabeledError, match="--resize applies to folders of files"):
        import_source(stack, tmp_path / "b", resize=(4, 4))
    with pytest.raises(UnlabeledError, match="--sample-rate applies to folders of files"):
        import_source("digits", tmp_path / "c", sample_rate=8000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "pngs", "x.npy"]
    assert len(import_source(stack, tmp_path / "d", labels=labels).collection.classes) == 2


def test_small_import_traps_are_reported_in_one_line(tmp_path, cli):
    """A labels file with a byte-order mark made its first label a class of its own; .npy
    samples with an empty dimension wrote a collection nobody could open; --resize was
    ignored for a folder of .npy images; a folder of 4-D arrays was never read as volumes; a
    bad file named with a superscript digit crashed the report's sort; --column naming a
    collection's own column was a traceback half-way through the write."""
    x = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "y.txt").write_text("\ufeffcat\ndog\ncat\ndog\n", encoding="utf-8")
    col = import_source(tmp_path / "x.npy", tmp_path / "a", labels=tmp_path / "y.txt").collection
    assert col.classes == ["cat", "dog"] and col.labels.tolist() == [0, 1, 0, 1]
    np.save(tmp_path / "z.npy", np.zeros((5, 0, 28), np.uint8))
    with pytest.raises(UnlabeledError, match="samples are empty"):
        import_source(tmp_path / "z.npy", tmp_path / "b")
    assert not (tmp_path / "b").exists()
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    for i in range(3):
        np.save(arrays / f"{i}.npy", x[i])
    with pytest.raises(UnlabeledError, match="--resize applies to image and volume files, not .npy"):
        import_source(arrays, tmp_path / "c", resize=(16, 16))
    vols = tmp_path / "vols"
    vols.mkdir()
    for i in range(3):
        np.save(vols / f"{i}.npy", np.zeros((1, 4, 4, 4), np.float32) + i)
    (vols / "1²2.npy").write_bytes(b"not an array")
    report = import_source(vols, tmp_path / "d")
    assert report.modality == "volume" and report.collection.sample_shape == (1, 4, 4, 4)
    assert [p.rsplit("/", 1)[-1] for p, _ in report.bad] == ["1²2.npy"]
    (tmp_path / "t.csv").write_text("id,row,t0,t1\na,1,0.5,0.25\nb,2,0.5,0.75\n")
    code, lines = cli("import", tmp_path / "t.csv", tmp_path / "e", "--column", "row")
    assert code == 2 and "--column row" in lines[-1] and not (tmp_path / "e").exists()


def test_a_file_changed_under_a_linked_folder_changes_the_sources_fingerprint(tmp_path):
    """rglob does not follow a symbolic link to a folder, which import does: curation and the
    bench's suites kept a stale import of a source changed there."""
    import os

    from unlabeled.data.importers import source_fingerprint

    (tmp_path / "real").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "real" / "x.txt").write_text("one")
    os.symlink(tmp_path / "real", tmp_path / "src" / "link")
    before = source_fingerprint(tmp_path / "src")
    (tmp_path / "real" / "x.txt").write_text("one more")
    assert source_fingerprint(tmp_path / "src") != before


def test_minus_one_in_an_array_of_labels_marks_an_unlabelled_sample(tmp_path):
    """scikit-learn's mark for no label was made a class "-1", and those samples trained as labelled."""
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((5, 8, 8)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.array([0, 1, -1, -1, 2]))
    col = import_source(tmp_path / "x.npy", tmp_path / "col", labels=tmp_path / "y.npy").collection
    assert col.classes == ["0", "1", "2"] and col.labels.tolist() == [0, 1, -1, -1, 2]
