"""Bad input, kind by kind (issue 24): a bad file is reported by path and reason and the rest
still load; a command fails with one ``error:`` line and exit code 2, never a traceback;
nothing is left half-written and nothing that was there is lost.

The commands run in this process through ``unlabeled.cli.main`` (the real error handling,
exit codes included) except where a second process is the point: two processes writing one
run, a file-size limit set by the kernel, SIGTERM during an import."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import unlabeled as ul
from unlabeled import cli as cli_module
from unlabeled._console import UnlabeledError
from unlabeled.data.collection import CollectionWriter
from unlabeled.train import checkpoint as ckpt

SRC = Path(ul.__file__).parent.parent
ENV = {**os.environ, "UNLABELED_QUIET": "1", "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
AS_ROOT = os.geteuid() == 0
ROOT_READS_ANYTHING = "runs as root, which reads files and folders whatever their permissions"


# -- helpers ---------------------------------------------------------------------------------
def one_error(result: tuple[int, list[str]], *needles: object) -> str:
    """The failure's one ``error:`` line (the last line printed; exit code 2), which names each
    of ``needles``."""
    code, lines = result
    text = "\n".join(lines)
    assert code == 2, text
    assert "Traceback" not in text
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], text
    for n in needles:
        assert str(n) in errors[0], (n, errors[0])
    return errors[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> content hash)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def no_leftovers(parent: Path, name: str) -> None:
    """No temporary folder or file of ``name`` (``.name.*``) was left in ``parent``."""
    assert not [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def png(path: Path, size: tuple[int, int] = (8, 8), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(path)
    return path


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def good_images(root: Path, n: int = 3) -> None:
    for i in range(n):
        png(root / f"ok{i}.png", seed=i)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[ul.Collection, ul.Run]:
    """A collection of 96 labelled 8x8 images (80 train, 16 test) and a run pretrained on it."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    w = CollectionWriter(root / "col", "image", (1, 8, 8), "uint8", ["a", "b"])
    w.add(
        rng.integers(0, 256, (96, 1, 8, 8), dtype=np.uint8),
        [f"s{i:03d}" for i in range(96)],
        rng.integers(0, 2, 96),
        ["train"] * 80 + ["test"] * 16,
    )
    col = w.close()
    run = ul.pretrain(col, root / "run", epochs=1, batch_size=32, size="tiny", device="cpu", precision="fp32")
    return col, run


@pytest.fixture
def col_copy(tiny, tmp_path) -> Path:
    return Path(shutil.copytree(tiny[0].path, tmp_path / "col"))


@pytest.fixture
def run_copy(tiny, tmp_path) -> Path:
    return Path(shutil.copytree(tiny[1].path, tmp_path / "run"))


# -- a folder of images: the bad file is reported, the others import -------------------------
def _zero_byte(root: Path) -> Path:
    (root / "zero.png").touch()
    return root / "zero.png"


def _truncated(root: Path) -> Path:
    whole = png(root / "whole.png", seed=9).read_bytes()
    (root / "whole.png").unlink()
    (root / "cut.png").write_bytes(whole[: len(whole) * 2 // 3])
    return root / "cut.png"


def _not_an_image(root: Path) -> Path:
    (root / "notes.png").write_text("these are notes, not pixels")
    return root / "notes.png"


def _bomb(root: Path) -> Path:
    (root / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    return root / "bomb.png"


def _large(root: Path) -> Path:  # above Pillow's limit, below twice it: a warning, made an error
    (root / "large.png").write_bytes(png_declaring(10_000, 10_000))
    return root / "large.png"


def _other_size(root: Path) -> Path:
    return png(root / "big.png", size=(12, 10))


def _file_loop(root: Path) -> Path:
    os.symlink("b.png", root / "a.png")
    os.symlink("a.png", root / "b.png")
    return root / "a.png"


def _folder_loop(root: Path) -> Path:
    os.symlink(".", root / "again")
    return root / "again"


def _broken_link(root: Path) -> Path:
    os.symlink("gone.png", root / "link.png")
    return root / "link.png"


def _unreadable_file(root: Path) -> Path:
    path = png(root / "secret.png")
    path.chmod(0)
    return path


def _unreadable_folder(root: Path) -> Path:
    png(root / "locked" / "x.png")
    (root / "locked").chmod(0)
    return root / "locked"


BAD_IMAGES = {
    "zero-byte image": (_zero_byte, "empty file (0 bytes)"),
    "truncated image": (_truncated, "truncated"),
    "not an image": (_not_an_image, "not an image Pillow can read"),
    "decompression bomb": (_bomb, "decompression bomb"),
    "huge declared size": (_large, "decompression bomb"),
    "image of another size": (_other_size, "differs from the collection's 8x8"),
    "symlink loop (file)": (_file_loop, "Too many levels of symbolic links"),
    "symlink loop (folder)": (_folder_loop, "symbolic link loop"),
    "broken symlink": (_broken_link, "broken symbolic link"),
    "unreadable file": (_unreadable_file, "Permission denied"),
    "unreadable folder": (_unreadable_folder, "cannot list this folder: Permission denied"),
}


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_a_bad_image_is_reported_and_the_rest_import(kind, tmp_path):
    make, reason = BAD_IMAGES[kind]
    if kind.startswith("unreadable") and AS_ROOT:
        pytest.skip(ROOT_READS_ANYTHING)
    root = tmp_path / "images"
    good_images(root)
    bad = make(root)
    report = ul.import_source(root, tmp_path / "col")
    assert len(report.collection) == 3
    reasons = dict(report.bad)
    assert str(bad) in reasons and reason in reasons[str(bad)], report.bad
    assert str(bad) in report.summary()


def test_a_folder_of_only_bad_files_fails_in_one_line(cli, tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    _zero_byte(root)
    _not_an_image(root)
    line = one_error(cli("import", root, tmp_path / "col"), root, "none of the 2 file(s)", "empty file")
    assert "zero.png" in line and "notes.png" in line
    assert not (tmp_path / "col").exists()
    no_leftovers(tmp_path, "col")


def test_a_folder_of_arrays_reports_the_bad_ones(tmp_path):
    root = tmp_path / "arrays"
    root.mkdir()
    for i in range(3):
        np.save(root / f"ok{i}.npy", np.full((8, 8), i, np.float32))
    nan = np.zeros((8, 8), np.float32)
    nan[2, 2] = np.nan
    np.save(root / "nan.npy", nan)
    np.save(root / "text.npy", np.full((8, 8), "x"))
    np.save(root / "shape.npy", np.zeros((3, 8, 8, 2), np.float32))
    (root / "zero.npy").touch()
    report = ul.import_source(root, tmp_path / "col")
    reasons = {Path(p).name: r for p, r in report.bad}
    assert len(report.collection) == 3
    assert "NaN" in reasons["nan.npy"] and "text" in reasons["text.npy"]
    assert "not an image" in reasons["shape.npy"] and reasons["zero.npy"] == "empty file (0 bytes)"


# -- a .npy stack and its labels: a bad row is reported, a bad file fails in one line ---------
@pytest.mark.parametrize(
    "kind",
    ["text dtype", "complex dtype", "object dtype", "wrong shape", "truncated", "zero-byte", "every row NaN"],
)
def test_a_bad_array_file_fails_in_one_line(kind, cli, tmp_path):
    path = tmp_path / "stack.npy"
    ok = np.random.default_rng(0).random((6, 8, 8)).astype(np.float32)
    if kind == "text dtype":
        np.save(path, np.full((6, 8, 8), "a"))
    elif kind == "complex dtype":
        np.save(path, ok.astype(np.complex64))
    elif kind == "object dtype":
        np.save(path, np.array([{"a": 1}] * 6, dtype=object), allow_pickle=True)
    elif kind == "wrong shape":
        np.save(path, np.arange(10.0))
    elif kind == "truncated":
        np.save(path, ok)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "zero-byte":
        path.touch()
    else:
        np.save(path, np.full((6, 8, 8), np.nan, np.float32))
    needs = {"text dtype": "holds text", "complex dtype": "complex numbers", "wrong shape": "not a stack of images"}
    one_error(cli("import", path, tmp_path / "col"), path, needs.get(kind, ""))
    assert not (tmp_path / "col").exists()
    no_leftovers(tmp_path, "col")


def test_nan_and_infinite_rows_are_reported_and_the_rest_import(tmp_path):
    a = np.random.default_rng(0).random((6, 8, 8)).astype(np.float32)
    a[1, 0, 0], a[4, 3, 3] = np.nan, -np.inf
    np.save(tmp_path / "stack.npy", a)
    report = ul.import_source(tmp_path / "stack.npy", tmp_path / "col")
    assert len(report.collection) == 4
    assert [p for p, _ in report.bad] == [f"{tmp_path / 'stack.npy'}[1]", f"{tmp_path / 'stack.npy'}[4]"]
    assert all(r == "contains NaN or infinity" for _, r in report.bad)


@pytest.mark.parametrize("kind", ["invalid UTF-8", "blank line inside", "too few labels"])
def test_a_bad_labels_file_fails_in_one_line(kind, cli, tmp_path):
    np.save(tmp_path / "stack.npy", np.zeros((4, 8, 8), np.uint8))
    labels = tmp_path / "labels.txt"
    labels.write_bytes(
        {
            "invalid UTF-8": b"cat\ndog\n\xff\xfe\ncat\n",
            "blank line inside": b"cat\n\ndog\ncat\ndog\n",
            "too few labels": b"cat\ndog\n",
        }[kind]
    )
    needs = {"invalid UTF-8": "not UTF-8 text (byte 0xff on line 3)", "blank line inside": "blank line at line 2"}
    one_error(cli("import", tmp_path / "stack.npy", tmp_path / "col", "--labels", labels), labels, needs.get(kind, ""))
    assert not (tmp_path / "col").exists()


def test_blank_lines_at_the_end_of_a_labels_file_are_no_labels(tmp_path):
    np.save(tmp_path / "stack.npy", np.arange(4 * 64, dtype=np.uint8).reshape(4, 8, 8))
    (tmp_path / "labels.txt").write_text("cat\ndog\ncat\ndog\n\n\n")
    col = ul.import_source(tmp_path / "stack.npy", tmp_path / "col", labels=tmp_path / "labels.txt").collection
    assert col.classes == ["cat", "dog"] and col.labels.tolist() == [0, 1, 0, 1]


# -- tables of series -----------------------------------------------------------------------
def test_ragged_csv_rows_are_reported_by_line_and_the_rest_import(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("t0,t1,t2\n1,2,3\n4,5,6,7,8\n7,8,9\n1,2,3,4\n")
    report = ul.import_source(path, tmp_path / "col")
    assert len(report.collection) == 2
    assert report.bad == [
        (f"{path} line 3", "5 fields, the header has 3"),
        (f"{path} line 5", "4 fields, the header has 3"),
    ]


@pytest.mark.parametrize(
    "kind", ["invalid UTF-8", "zero-byte", "first row longer than the header", "Parquet label column of lists"]
)
def test_a_bad_table_fails_in_one_line(kind, cli, tmp_path):
    path = tmp_path / ("t.parquet" if "Parquet" in kind else "t.csv")
    if kind == "invalid UTF-8":
        path.write_bytes(b"t0,t1\n1,2\n3,\xff4\n")
    elif kind == "zero-byte":
        path.touch()
    elif kind == "first row longer than the header":
        path.write_text("t0,t1\n1,2,3\n4,5,6\n")
    else:
        pd.DataFrame({"t0": [1.0, 2.0], "t1": [3.0, 4.0], "label": [[1, 2], [3]]}).to_parquet(path)
    needs = {
        "invalid UTF-8": "not UTF-8 text (byte 0xff at offset 12)",
        "first row longer than the header": "the first row has 3 fields, the header 2",
        "Parquet label column of lists": "column 'label' holds lists",
    }
    one_error(cli("import", path, tmp_path / "col"), path, needs.get(kind, ""))
    assert not (tmp_path / "col").exists()


def test_a_parquet_column_of_text_reports_its_rows(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"t0": [1.0, 2.0, 3.0], "t1": ["1.5", "n/a", "2.5"]}).to_parquet(path)
    report = ul.import_source(path, tmp_path / "col")
    assert len(report.collection) == 2 and report.bad == [(f"{path} row 2", "non-numeric values")]  # 1-based


def test_a_folder_of_recordings_reports_the_bad_tables(tmp_path):
    root = tmp_path / "recordings"
    root.mkdir()
    for i in range(3):
        (root / f"r{i}.csv").write_text(f"x,y\n{i},2\n3,4\n5,6\n")
    (root / "latin1.csv").write_bytes(b"x,y\n1,\xe9\n")
    (root / "ragged.csv").write_text("x,y\n1,2\n3,4,5\n")
    (root / "shifted.csv").write_text("x,y\n1,2,3\n4,5,6\n")
    (root / "empty.csv").touch()
    report = ul.import_source(root, tmp_path / "col")
    reasons = {Path(p).name: r for p, r in report.bad}
    assert len(report.collection) == 3
    assert reasons["latin1.csv"] == "not UTF-8 text (byte 0xe9 at offset 6)"
    assert "Expected 2 fields in line 3, saw 3" in reasons["ragged.csv"]
    assert reasons["shifted.csv"] == "the first row has 3 fields, the header 2"
    assert reasons["empty.csv"] == "empty file (0 bytes)"


def test_a_long_table_with_a_time_step_twice_reports_that_series(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("id,time,x\na,0,1\na,0,2\na,1,3\nb,0,1\nb,1,2\nc,0,4\nc,1,5\n")
    report = ul.import_source(path, tmp_path / "col")
    assert list(report.collection.ids) == ["b", "c"]  # a's two readings at time 0 did not become steps
    assert report.bad == [(f"{path} id=a", "time 0 appears in more than one row")]
    assert "skipped 1 bad series:" in report.summary()


# -- names and columns that are not UTF-8 ----------------------------------------------------
LATIN1 = os.fsdecode(b"caf\xe9")  # what Python reads for a Latin-1 name on a UTF-8 system


def _wav(path: Path | str, frames: int = 1600, seed: int = 0) -> None:
    import soundfile as sf

    sf.write(os.fsencode(path), np.random.default_rng(seed).normal(0, 0.1, frames).astype(np.float32), 16000)


@pytest.mark.parametrize("kind", ["image", "text", "audio"])
def test_file_and_folder_names_that_are_not_utf8_import_with_escaped_ids(kind, tmp_path):
    root = tmp_path / "src"
    for label in ("a", LATIN1):
        (root / label).mkdir(parents=True)
        for i in range(2):
            name = root / label / f"{i}.x"
            if kind == "image":
                png(name.with_suffix(".png"), seed=i + len(label))
            elif kind == "text":
                name.with_suffix(".txt").write_text(f"document {i} of {label!r}")
            else:
                _wav(name.with_suffix(".wav"), seed=i + len(label))
    ext = {"image": ".png", "text": ".txt", "audio": ".wav"}[kind]
    odd = root / "a" / (LATIN1 + ext)
    shutil.copy(root / "a" / f"0{ext}", odd)
    report = ul.import_source(root, tmp_path / "col")
    col = report.collection
    assert len(col) == 5 and report.bad == []
    assert col.classes == ["a", "caf\\xe9"]
    assert "a/caf\\xe9" + ext in list(col.ids) and "caf\\xe9/1" + ext in list(col.ids)
    assert any("not valid UTF-8" in n for n in report.notes)
    assert ul.open_collection(tmp_path / "col").classes == col.classes  # written and read back


def test_a_text_table_whose_id_or_label_is_not_utf8_reports_the_row(tmp_path):
    csv_path = tmp_path / "t.csv"
    csv_path.write_bytes(b"id,body,label\nx1,fine,a\ncaf\xe9,second,b\nx3,more,a\nx4,yet,\xe9b\nx5,last,b\n")
    report = ul.import_source(csv_path, tmp_path / "col", text_column="body")
    assert list(report.collection.ids) == ["x1", "x3", "x5"]
    assert report.bad == [
        (f"{csv_path} line 3", "column 'id' is not UTF-8 text (byte 0xe9 at character 3)"),
        (f"{csv_path} line 5", "column 'label' is not UTF-8 text (byte 0xe9 at character 0)"),
    ]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"text": "a", "label": "\\ud800"}\n{"text": "b", "label": "x"}\n{"text": "c", "label": "y"}\n')
    report = ul.import_source(jsonl, tmp_path / "col2")
    assert report.bad == [
        (f"{jsonl} line 1", "column 'label' is not UTF-8 text (a lone surrogate '\\ud800' at character 0)")
    ]
    ul.pretrain(report.collection, tmp_path / "run", method="mlm", epochs=1, batch_size=2, size="tiny")  # it reads


def test_a_csv_row_that_spans_lines_is_named_by_the_line_it_starts_on(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('id,body\nd1,"first\nspans\nthree lines"\nd2,second\nd1,again\nd4,\n')
    report = ul.import_source(path, tmp_path / "col", text_column="body")
    assert report.bad == [
        (f"{path} line 6", "id 'd1' already used on line 2"),
        (f"{path} line 7", "no text in column 'body'"),
    ]


def test_bad_rows_are_listed_by_line_number(tmp_path):
    path = tmp_path / "t.jsonl"
    lines = ['{"text": "a", "id": "1"}', '{"text": "", "id": "2"}'] + [
        f'{{"text": "t", "id": "{i}"}}' for i in range(3, 41)
    ]
    path.write_text("\n".join([*lines, "not json"]) + "\n")
    report = ul.import_source(path, tmp_path / "col")
    assert [p for p, _ in report.bad] == [f"{path} line 2", f"{path} line 41"]  # 2 before 41, not as text


def test_a_truncated_wav_is_reported(tmp_path):
    root = tmp_path / "rec"
    root.mkdir()
    for i in range(2):
        _wav(root / f"r{i}.wav", 6400, seed=i)
    (root / "cut.wav").write_bytes((root / "r0.wav").read_bytes()[:3000])
    report = ul.import_source(root, tmp_path / "col")
    assert len(report.collection) == 2
    assert report.bad == [(str(root / "cut.wav"), "truncated: its header declares 6400 frames, the file holds 1478")]


def test_a_photo_stored_sideways_imports_as_shown(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    stored = np.zeros((28, 40), dtype=np.uint8)
    stored[:4] = 255  # a bar along the top of the stored pixels
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # shown turned a quarter clockwise, as a phone stores a portrait photo
    im.save(root / "turned.jpg", exif=exif.tobytes())
    Image.fromarray(np.zeros((40, 28), dtype=np.uint8)).save(root / "upright.jpg")
    report = ul.import_source(root, tmp_path / "col")
    col = report.collection
    assert report.bad == [] and col.sample_shape == (1, 40, 28)
    turned = col.get([list(col.ids).index("turned.jpg")])[0, 0].astype(float)
    assert turned[:, -4:].mean() > 200 and turned[:, :20].mean() < 30  # the bar is on the right, as shown


# -- collections on disk --------------------------------------------------------------------
def _break_collection(col: Path, kind: str) -> None:
    meta = json.loads((col / "collection.json").read_text())
    if kind == "collection.json not JSON":
        (col / "collection.json").write_text("{not json")
    elif kind == "collection.json without shards":
        del meta["shards"]
        (col / "collection.json").write_text(json.dumps(meta))
    elif kind == "collection.json shape of text":
        meta["sample_shape"] = "1x8x8"
        (col / "collection.json").write_text(json.dumps(meta))
    elif kind.startswith("collection.json modality "):
        meta["modality"] = kind.rsplit(" ", 1)[1]
        (col / "collection.json").write_text(json.dumps(meta))
    elif kind == "index.parquet damaged":
        (col / "index.parquet").write_bytes(b"PAR1 garbage")
    elif kind == "shard missing":
        (col / "arrays-00000.npy").unlink()
    elif kind == "shard of another shape":
        np.save(col / "arrays-00000.npy", np.zeros((96, 3, 4, 4), np.float32))
    else:  # shard cut short
        np.save(col / "arrays-00000.npy", np.zeros((10, 1, 8, 8), np.uint8))


COLLECTION_DAMAGE = {
    "collection.json not JSON": "collection.json",
    "collection.json without shards": "'shards' should be a list, found no entry",
    "collection.json shape of text": "'sample_shape' should be a list",
    "collection.json modality series": "series samples are (channels, time), but sample_shape is [1, 8, 8]",
    "collection.json modality volume": "volume samples are (channels, depth, height, width), but",
    "collection.json modality audio": "audio samples are (1, samples), but",
    "index.parquet damaged": "index.parquet",
    "shard missing": "arrays-00000.npy, a shard of",
    "shard of another shape": "holds float32 samples of shape (3, 4, 4)",
    "shard cut short": "holds 10 samples",
}


@pytest.mark.parametrize("kind", list(COLLECTION_DAMAGE))
def test_a_damaged_collection_fails_in_one_line(kind, cli, col_copy, tmp_path):
    _break_collection(col_copy, kind)
    before = snapshot(col_copy)
    args = ("pretrain", col_copy, "--out", tmp_path / "r", "--epochs", "1", "--batch-size", "32", "--device", "cpu")
    one_error(cli(*args), col_copy, COLLECTION_DAMAGE[kind])
    assert snapshot(col_copy) == before and not (tmp_path / "r" / "model.safetensors").exists()


def test_duplicate_ids_write_nothing(tmp_path):
    w = CollectionWriter(tmp_path / "col", "image", (1, 2, 2), "uint8")
    w.add(np.zeros((3, 1, 2, 2), np.uint8), ["a", "b", "a"])
    with pytest.raises(UnlabeledError, match=r"1 id\(s\) occur more than once.*col.*: a"):
        w.close()
    assert not (tmp_path / "col").exists()
    no_leftovers(tmp_path, "col")


def test_overwrite_refuses_a_collection_folder_that_holds_the_users_files(cli, tmp_path):
    """``import --overwrite`` onto a collection deleted the notes and the collections the user
    kept inside its folder, exit code 0."""
    src = tmp_path / "imgs"
    good_images(src / "a")
    good_images(src / "b")
    dest = tmp_path / "col"
    ul.import_source(src, dest)
    (dest / "notes").mkdir()
    (dest / "notes" / "todo.txt").write_text("important")
    before = snapshot(dest)
    one_error(cli("import", src, dest, "--overwrite"), "holds files besides the collection (notes)")
    assert snapshot(dest) == before
    (dest / "notes" / "todo.txt").unlink()
    (dest / "notes").rmdir()
    ul.import_source(src, dest, overwrite=True)  # its own files alone: replaced as before
    ul.make_authors(tmp_path / "authors", authors=10)
    ul.make_authors(tmp_path / "authors", authors=10, overwrite=True)  # side files of its own


@pytest.mark.parametrize(
    "args",
    [
        ["pretrain", "{data}", "--out", "{out}", "--epochs", "1e308"],
        ["pretrain", "{data}", "--out", "{out}", "--minutes", "1e307"],  # round(inf): OverflowError
        ["finetune", "--task", "{data}", "--out", "{out}", "--epochs", "0.1", "--lr", "1e300"],  # the optimizer's
        ["pretrain", "{data}", "--out", "{out}", "--epochs", "0.1", "--seed", str(2**64)],
        ["finetune", "--task", "{data}", "--out", "{out}", "--epochs", "0.1", "--seed", str(2**64)],
        ["select", "{data}", "--out", "{out}", "--budget", "10", "--seed", "-1"],
    ],
)
def test_a_seed_or_a_budget_out_of_range_fails_in_one_line_before_writing(args, cli, tiny, tmp_path):
    """Seeds past 2**63 - 1 failed in torch's generator (a traceback, a half-written run, a
    forget request "incomplete" forever), 1e308 epochs in the step count (a run that
    --resume could not finish), a negative seed in select's numpy generator."""
    out = tmp_path / "out"
    one_error(cli(*[a.format(data=tiny[0].path, out=out) for a in args]), "must be")
    assert not out.exists()


def test_a_failed_import_over_a_collection_keeps_it(cli, col_copy, tmp_path):
    before = snapshot(col_copy)
    np.save(tmp_path / "nan.npy", np.full((4, 8, 8), np.nan, np.float32))  # fails once the writer has started
    one_error(
        cli("import", tmp_path / "nan.npy", col_copy, "--overwrite"),
        "no valid samples",
        "every one of its 4 samples is bad (contains NaN or infinity)",
    )
    assert snapshot(col_copy) == before
    no_leftovers(tmp_path, "col")


# -- runs: a hand-edited config.json, damaged weights or resume state ----------------------------
def _edit_config(run: Path, kind: str) -> None:
    path = run / "config.json"
    config = json.loads(path.read_text())
    if kind == "config.json not JSON":
        path.write_text(path.read_text()[:-20])
        return
    if kind == "config.json a list":
        path.write_text("[1, 2]")
        return
    if kind == "config.json without encoder":
        del config["encoder"]
    elif kind == "config.json input shape of text":
        config["encoder"]["sample_shape"] = "1x8x8"
    elif kind == "config.json encoder name a number":
        config["encoder"]["name"] = 5
    elif kind == "config.json unknown training setting":
        config["train"]["epoch"] = 3
    path.write_text(json.dumps(config))


CONFIG_EDITS = {
    "config.json not JSON": "is not valid JSON",
    "config.json a list": "holds list, not an object",
    "config.json without encoder": "has no 'encoder' entry",
    "config.json input shape of text": "encoder.sample_shape should be a list of positive integers",
    "config.json encoder name a number": "encoder.name should be a string",
    "config.json unknown training setting": "train.epoch is not a setting",
}


@pytest.mark.parametrize("kind", list(CONFIG_EDITS))
def test_a_hand_edited_config_fails_in_one_line(kind, cli, tiny, run_copy):
    _edit_config(run_copy, kind)
    before = snapshot(run_copy)
    one_error(cli("embed", run_copy, tiny[0].path, "--device", "cpu"), run_copy / "config.json", CONFIG_EDITS[kind])
    assert snapshot(run_copy) == before


def test_a_config_of_the_wrong_type_stops_a_resume(cli, tiny, run_copy):
    config = json.loads((run_copy / "config.json").read_text())
    config["train"]["batch_size"] = "32"
    (run_copy / "config.json").write_text(json.dumps(config))
    before = snapshot(run_copy)
    result = cli("pretrain", tiny[0].path, "--out", run_copy, "--resume", "--device", "cpu")
    one_error(result, run_copy / "config.json", 'train.batch_size should be of type int, not "32"')
    assert snapshot(run_copy) == before


def _damage_weights(run: Path, kind: str) -> None:
    path = run / "model.safetensors"
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(os.urandom(4096))
    else:
        weights = load_file(path)
        name = next(k for k, v in weights.items() if k.startswith("encoder.") and v.ndim > 1)
        if kind == "wrong shape":
            weights[name] = weights[name][:1].clone()
        else:
            weights[name] = weights[name].long()
        save_file(weights, path, metadata={"step": "2"})


WEIGHT_DAMAGE = {
    "truncated": "is damaged",
    "zero-byte": "is damaged",
    "garbage": "is damaged",
    "wrong shape": "does not fit the model config.json describes",
    "wrong dtype": "not floating-point numbers",
}


@pytest.mark.parametrize("kind", list(WEIGHT_DAMAGE))
def test_damaged_weights_fail_in_one_line(kind, cli, tiny, run_copy):
    _damage_weights(run_copy, kind)
    before = snapshot(run_copy)
    one_error(
        cli("embed", run_copy, tiny[0].path, "--device", "cpu"), run_copy / "model.safetensors", WEIGHT_DAMAGE[kind]
    )
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("kind", ["truncated", "cut to its start", "garbage", "another pickle", "another run's shapes"])
def test_a_damaged_resume_state_fails_in_one_line(kind, cli, tiny, run_copy):
    path = run_copy / "state.pt"
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "cut to its start":  # torch's reader fails with a bare OSError (Invalid argument)
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "garbage":
        path.write_bytes(b"not a checkpoint")
    elif kind == "another pickle":
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        state = torch.load(path, weights_only=True)
        name = next(k for k, v in state["model"].items() if v.ndim > 1)
        state["model"][name] = state["model"][name][:1].clone()
        torch.save(state, path)
    before = snapshot(run_copy)
    result = cli("pretrain", tiny[0].path, "--out", run_copy, "--resume", "--device", "cpu")
    needs = {
        "another pickle": "not a resume state",
        "another run's shapes": "does not fit the run config.json describes",
    }
    one_error(result, path, needs.get(kind, "is damaged"))
    assert snapshot(run_copy) == before


# -- id files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["invalid UTF-8", "only blank lines", "unknown id", "a folder"])
def test_a_bad_ids_file_fails_in_one_line(kind, cli, tiny, tmp_path):
    ids = tmp_path / "ids.txt"
    if kind == "a folder":
        ids.mkdir()
    else:
        ids.write_bytes(
            {"invalid UTF-8": b"s001\n\xff\n", "only blank lines": b"\n \n\n", "unknown id": b"s001\nnope\n"}[kind]
        )
    needs = {
        "invalid UTF-8": "not UTF-8 text (byte 0xff on line 2)",
        "only blank lines": "lists no ids",
        "unknown id": "nope",
        "a folder": "is a folder; give the file that lists them",
    }
    out = tmp_path / "forgot"
    result = cli("forget", tiny[1].path, "--ids", ids, "--out", out, "--device", "cpu")
    one_error(result, needs[kind], tiny[1].path if kind == "unknown id" else ids)
    assert not out.exists()
    no_leftovers(tmp_path, "forgot")


def test_blank_lines_and_repeats_in_an_ids_file_are_ignored(tmp_path):
    (tmp_path / "ids.txt").write_text("s001\n\n  s002 \ns001\n\n")
    assert cli_module.read_id_file(tmp_path / "ids.txt") == ["s001", "s002"]
    os.mkfifo(tmp_path / "pipe")  # as a shell's <(...) gives: no regular file, read as one
    writer = subprocess.Popen(["sh", "-c", f"echo s003 > '{tmp_path / 'pipe'}'"])
    assert cli_module.read_id_file(tmp_path / "pipe") == ["s003"]
    writer.wait()


# -- processes, disks and signals -------------------------------------------------------------
def _wait_for(what, seconds: float = 300.0) -> None:
    end = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_second_process_cannot_write_a_run_in_progress(cli, tiny, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "unlabeled", "pretrain", tiny[0].path, "--out", out, "--epochs", "100000"]
        + [
            "--batch-size",
            "32",
            "--size",
            "tiny",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--checkpoint-steps",
            "20",
        ],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # its first checkpoint: it is training (and handles SIGTERM by checkpointing)
        _wait_for(lambda: (out / ckpt.STATE_FILE).exists() or first.poll() is not None)
        assert first.poll() is None, first.stderr.read()
        for how in ("--overwrite", "--resume"):
            result = cli("pretrain", tiny[0].path, "--out", out, how, "--device", "cpu")
            one_error(result, out, f"is being written by another process (pid {first.pid})")
        assert (out / "config.json").exists()  # --overwrite removed nothing
    finally:
        first.send_signal(signal.SIGTERM)  # it checkpoints and stops
        first.wait(300)
    assert first.returncode == 130, first.stderr.read()
    run = ul.open_run(out)
    assert not run.finished and run.step >= 1 and not (tmp_path / ".run.lock").exists()


@pytest.mark.parametrize("failing", [ckpt.STATE_FILE, ckpt.MODEL_FILE])
def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(failing, cli, tiny, tmp_path, monkeypatch):
    out = tmp_path / "run"
    writer = "_write_state" if failing == ckpt.STATE_FILE else "_write_weights"
    real, calls = getattr(ckpt, writer), []

    def fill_the_disk(tmp: str, *args: object) -> None:
        calls.append(tmp)
        if len(calls) < 2:
            return real(tmp, *args)
        Path(tmp).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt, writer, fill_the_disk)
    args = ("pretrain", tiny[0].path, "--out", out, "--epochs", "3", "--batch-size", "32", "--size", "tiny")
    result = cli(*args, "--checkpoint-steps", "1", "--device", "cpu", "--precision", "fp32")
    one_error(result, "No space left on device", out / failing)
    assert ckpt.load_state(out / ckpt.STATE_FILE)["step"] == 1  # the previous checkpoint, both files of it
    assert ul.open_run(out).step == 1
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(ckpt, writer, real)
    assert cli("pretrain", tiny[0].path, "--out", out, "--resume", "--device", "cpu")[0] == 0
    assert ul.open_run(out).finished and ul.open_run(out).step == 6


@pytest.mark.slow
def test_a_file_size_limit_during_a_checkpoint_keeps_the_previous_one(tiny, run_copy):
    """The kernel's own refusal (RLIMIT_FSIZE: EFBIG, as a full disk gives ENOSPC), in a process
    that resumes a run with one step left and so writes its checkpoint (a finished run's resume
    writes nothing)."""
    state = ckpt.load_state(run_copy / ckpt.STATE_FILE)
    ckpt.save_state(run_copy / ckpt.STATE_FILE, {**state, "total_steps": state["step"] + 1})
    before = snapshot(run_copy)
    limit = run_copy.joinpath(ckpt.MODEL_FILE).stat().st_size // 2

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "unlabeled", "pretrain", tiny[0].path, "--out", run_copy, "--resume"]
        + ["--device", "cpu"],
        env={**ENV, "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=small_files,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stderr.splitlines()
    one_error((done.returncode, lines), "File too large", run_copy / ckpt.MODEL_FILE)  # the weights are written first
    after = snapshot(run_copy)
    # the step it trained logged its line; a resume drops lines past the checkpoint
    assert after.pop("metrics.jsonl") != before.pop("metrics.jsonl") and after == before


@pytest.mark.slow
def test_sigterm_during_an_import_leaves_nothing_half_written(col_copy, tmp_path):
    """An import over an existing collection, terminated while it writes: the old collection
    stays as it was and no temporary folder is left."""
    root = tmp_path / "images"
    for i in range(200):
        png(root / f"{i:03d}.png", seed=i)
    before = snapshot(col_copy)
    slow_reader = (
        "import sys, time\n"
        "import unlabeled.data.importers as imp\n"
        "read = imp._read_image\n"
        "imp._read_image = lambda *a: (time.sleep(0.05), read(*a))[1]\n"
        "from unlabeled.cli import main\n"
        f"sys.argv = ['unlabeled', 'import', {str(root)!r}, {str(col_copy)!r}, '--overwrite']\n"
        "main()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", slow_reader], env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: any(p.name.startswith(".col.") for p in tmp_path.iterdir()) or proc.poll() is not None)
        assert proc.poll() is None, "the import finished before it could be terminated"
        proc.send_signal(signal.SIGTERM)
        proc.wait(300)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, err
    assert snapshot(col_copy) == before
    no_leftovers(tmp_path, "col")


# -- options: a bad value is one line before anything is written ------------------------------
@pytest.mark.parametrize(
    ("args", "needs"),
    [
        (["--lr", "-1"], "the learning rate must be 0 or more"),
        (["--minutes", "nan"], "minutes must be a finite number"),
        (["--minutes", "1", "--epochs", "2"], "give --epochs or --minutes, not both"),
        (["--epochs", "inf"], "epochs must be a finite number"),
        (["--seed", "-1"], "seed must be a whole number from 0"),
        (["--shards", "0"], "--shards must be a whole number, 1 or more"),
        (["--method", "supervised"], "supervised trains on labels; pretrain takes"),
        (["--option", "bogus=1"], "simclr has no setting 'bogus'; its --option settings:"),
        (["--option", "temperature=abc"], "--option temperature takes a number"),
        (["--encoder-option", "patch=0"], "the cnn encoder has no setting 'patch'"),
    ],
)
def test_a_bad_pretraining_option_fails_in_one_line_and_writes_nothing(args, needs, cli, tiny, tmp_path):
    budget = [] if "--minutes" in args else ["--epochs", "0.1"]
    one_error(cli("pretrain", tiny[0].path, "--out", tmp_path / "run", *budget, *args), needs)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("content", "needs"),
    [
        (
            "@problemName x\n@timeStamps false\n@univariate true\n@classLabel true a b\n@data\n1,2,x,4:a\n",
            "cannot read",
        ),
        ("@data\n", "holds no series"),
    ],
)
def test_a_malformed_ts_file_fails_in_one_line(content, needs, cli, tmp_path):
    path = tmp_path / "bad.ts"
    path.write_text(content)
    one_error(cli("import", path, tmp_path / "col"), path, needs)
    assert not (tmp_path / "col").exists()


def test_bad_audio_options_and_an_import_into_its_own_source_fail_in_one_line(cli, tmp_path):
    src = tmp_path / "imgs"
    good_images(src)
    for args, needs in (
        (["--seconds", "nan"], "--seconds must be over 0"),
        (["--seconds", "-1"], "--seconds must be over 0"),
        (["--sample-rate", "1"], "--sample-rate must be between 1000 and 384000"),
        (["--resize", "5000x5000"], "at most 16,777,216 values a sample"),
    ):
        one_error(cli("import", src, tmp_path / "col", *args), needs)
    one_error(cli("import", src, src / "inside"), "is inside", "read back as part of its source")
    assert not (tmp_path / "col").exists() and not (src / "inside").exists()


def test_bench_refuses_fractional_shots_and_no_probe_and_forget_names_its_values_file(cli, tiny, tmp_path):
    col, run = tiny
    one_error(cli("bench", run.path, "--task", col.path, "--shots", "1.5", "--out", tmp_path / "b"), "whole numbers")
    one_error(cli("bench", run.path, "--task", col.path, "--probes", "", "--out", tmp_path / "b"), "at least one probe")
    missing = tmp_path / "nofile.txt"
    one_error(
        cli("forget", run.path, "--group", "label", "--values", missing, "--out", tmp_path / "f"),
        "values file not found",
        missing,
    )
    assert not (tmp_path / "b").exists() and not (tmp_path / "f").exists()


def test_a_resume_names_the_settings_it_ignores(cli, tiny, run_copy):
    code, lines = cli(
        "pretrain", tiny[0].path, "--out", run_copy, "--resume", "--encoder", "transformer", "--lr", "0.5"
    )
    text = "\n".join(lines)
    assert code == 0, text
    assert "ignored: --encoder transformer (saved: cnn), --lr 0.5 (saved: " in text


def test_a_complex_valued_nifti_is_reported_and_the_rest_import(tmp_path):
    import nibabel

    src = tmp_path / "vols"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        nibabel.save(nibabel.Nifti1Image(rng.random((6, 6, 6)).astype(np.float32), np.eye(4)), src / f"v{i}.nii.gz")
    nibabel.save(nibabel.Nifti1Image(np.ones((6, 6, 6), np.complex64), np.eye(4)), src / "complex.nii.gz")
    report = ul.import_source(src, tmp_path / "col")
    assert len(report.collection) == 3
    assert [(Path(p).name, "complex-valued" in r) for p, r in report.bad] == [("complex.nii.gz", True)]


def test_a_resumed_self_training_run_names_the_settings_it_ignores(cli, tiny, tmp_path):
    args = ["selftrain", tiny[1].path, "--task", tiny[0].path, "--out", tmp_path / "st", "--shots", "4"]
    args += ["--batch-size", "4", "--ratio", "2", "--epochs", "0.1"]
    code, lines = cli(*args)
    assert code == 0, "\n".join(lines)
    code, lines = cli(*args[:6], "--fraction", "0.5", "--threshold", "0.5", "--epochs", "0.1", "--resume")
    text = "\n".join(lines)
    assert code == 0, text
    assert "ignored: --fraction 0.5 (saved: 8 labelled samples), --threshold 0.5 (saved: 0.95)" in text


def test_an_architecture_asked_of_a_classifier_from_a_run_is_named_as_ignored(cli, tiny, tmp_path):
    code, lines = cli("finetune", tiny[1].path, "--task", tiny[0].path, "--out", tmp_path / "ft", "--size", "base")
    text = "\n".join(lines)
    assert code == 0, text
    assert "note: --size base ignored: the classifier is" in text and "cnn-tiny encoder" in text


@pytest.mark.parametrize("command", ["finetune", "selftrain"])
def test_a_class_only_in_the_test_split_is_named(cli, command, tmp_path):
    rng = np.random.default_rng(1)
    w = CollectionWriter(tmp_path / "col", "image", (1, 8, 8), "uint8", ["a", "b", "c"])
    labels = np.r_[rng.integers(0, 2, 40), [2, 2, 0, 1]]
    splits = ["train"] * 40 + ["test"] * 4
    w.add(rng.integers(0, 256, (44, 1, 8, 8), dtype=np.uint8), [f"s{i}" for i in range(44)], labels, splits=splits)
    w.close()
    args = [command, "--task", tmp_path / "col", "--out", tmp_path / "ft", "--epochs", "0.5"]
    args += ["--fraction", "0.5", "--batch-size", "4", "--ratio", "2"] if command == "selftrain" else []
    code, lines = cli(*args)
    text = "\n".join(lines)
    assert code == 0, text
    assert "no labelled training sample of class c: the classifier cannot learn it" in text
    # refused for another reason (the run is there): the refusal alone, no note before it
    code, lines = cli(*args)
    assert code == 2 and len(lines) == 1 and "already" in lines[0], lines


def test_resume_and_overwrite_together_are_refused_and_a_finished_run_says_so(cli, tiny, run_copy):
    one_error(cli("pretrain", tiny[0].path, "--out", run_copy, "--resume", "--overwrite"), "give one of them")
    code, lines = cli("pretrain", tiny[0].path, "--out", run_copy, "--resume")
    said = [line for line in lines if "had finished" in line and "nothing left to train" in line]
    assert code == 0 and said and "--init" in said[0]  # and how to train longer


def test_forget_log_and_verify_are_one_at_a_time(cli, tiny, tmp_path):
    run = tiny[1].path
    one_error(cli("forget", "--log", run, "--verify", run), "one at a time")
    one_error(cli("forget", run, "--out", tmp_path / "f", "--log", run), "give no RUN or --out with them")


def test_api_arguments_of_the_wrong_kind_are_named(tiny, tmp_path):
    col, run = tiny
    for call, match in (
        (lambda: ul.finetune(run, col, tmp_path / "x", fraction="0.5"), "--fraction must be a number"),
        (lambda: ul.finetune(run, col, tmp_path / "x", epochs="2"), "epochs must be a number, got '2'"),
        (lambda: ul.selftrain(run, col, tmp_path / "x", shots=4, threshold="0.9"), "threshold must be a number"),
        (lambda: ul.selftrain(run, col, tmp_path / "x", shots=4, ratio=True), "ratio must be a whole number"),
    ):
        with pytest.raises(ul.UnlabeledError, match=match):
            call()
    assert not (tmp_path / "x").exists()
    ul.finetune(run, col, tmp_path / "ok", epochs=np.float32(0.5), batch_size=np.int64(16))  # numpy numbers are numbers


def test_a_damaged_audit_log_or_ids_file_fails_in_one_line(cli, run_copy, tmp_path):
    """SQLite's errors are not OSErrors: a damaged forget-audit.sqlite ended in a traceback, and
    so did a training-ids.txt that is not UTF-8."""
    from unlabeled.runs import read_ids

    (run_copy / "forget-audit.sqlite").write_text("garbage")
    one_error(cli("forget", "--log", run_copy), "forget-audit.sqlite", "the forget audit log cannot be used")
    (tmp_path / "ids.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(UnlabeledError, match="is not UTF-8 text"):
        read_ids(tmp_path / "ids.txt")


def test_a_collection_a_run_or_a_builtin_with_file_options_is_refused_as_a_source(cli, tiny, tmp_path):
    """A collection imported as a folder of files "succeeded" with its index read as a series
    and its shards reported bad; a built-in took --modality series and ignored it."""
    col, run = tiny
    one_error(cli("import", col.path, tmp_path / "a"), "is a collection already")
    one_error(cli("import", run.path, tmp_path / "b"), "is a run, not data")
    one_error(cli("import", "digits", tmp_path / "c", "--modality", "series"), "--modality applies to files")
    assert not any((tmp_path / n).exists() for n in "abc")


def test_selftrain_says_which_settings_change_nothing(cli, tmp_path):
    rng = np.random.default_rng(1)
    w = CollectionWriter(tmp_path / "col", "image", (1, 8, 8), "uint8", ["a", "b"])
    w.add(rng.integers(0, 256, (40, 1, 8, 8), dtype=np.uint8), [f"s{i}" for i in range(40)], rng.integers(0, 2, 40))
    w.close()
    args = ["selftrain", "--task", tmp_path / "col", "--out", tmp_path / "st", "--epochs", "0.5", "--fraction", "0.5"]
    code, lines = cli(*args, "--batch-size", "4", "--ratio", "2", "--no-ema-teacher", "--head", "random")
    text = "\n".join(lines)
    assert code == 0, text
    assert "--no-ema-teacher has no average to leave out without --ema" in text
    assert "--head random applies to a pretrained run" in text


def test_a_refused_finetune_over_a_run_keeps_the_run(tiny, tmp_path):
    """`finetune --overwrite` removed the old run before the new one was known to start: one
    labelled sample was then refused ("batch size must be at least 2") and the run was gone."""
    col, run = tiny
    ft = ul.finetune(run, col, tmp_path / "ft", epochs=0.1, device="cpu", precision="fp32")
    before = snapshot(ft.path)
    with pytest.raises(ul.UnlabeledError, match="needs at least 2 labelled samples to train on, got 1"):
        ul.finetune(run, col, tmp_path / "ft", positions=col.indices("train")[:1], overwrite=True)
    assert snapshot(tmp_path / "ft") == before


def test_a_run_resumes_with_the_process_count_it_started_with(tiny, tmp_path):
    """A run started by two processes resumed by one was accepted, and trained the rest of its
    steps on other batches in another order (each step's batch is per process)."""
    col, _ = tiny
    out = tmp_path / "r"
    ul.pretrain(col, out, epochs=2, batch_size=32, checkpoint_steps=1, device="cpu", precision="fp32")
    state = torch.load(out / "state.pt", weights_only=False)
    state["step"] = 1  # as if killed after its first step
    torch.save(state, out / "state.pt")
    config = json.loads((out / "config.json").read_text())
    config["environment"]["world_size"] = 2
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ul.UnlabeledError, match="trained by 2 process.*this is 1: resume it with torchrun --nproc_per"):
        ul.pretrain(col, out, resume=True, device="cpu")


def test_overwrite_keeps_the_old_run_where_the_new_one_stops_before_its_first_checkpoint(tiny, tmp_path):
    """`--overwrite` with a budget shorter than one step removed the old run, then stopped."""
    col, _ = tiny
    out = tmp_path / "p"
    ul.pretrain(col, out, epochs=1, batch_size=32, device="cpu", precision="fp32")
    before = snapshot(out)
    with pytest.raises(ul.UnlabeledError, match="shorter than one training step"):
        ul.pretrain(col, out, minutes=1e-9, batch_size=32, overwrite=True, device="cpu", precision="fp32")
    assert snapshot(out) == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".p.")]  # nothing set aside is left


def test_few_labels_from_a_task_without_labelled_train_samples_is_one_line(tiny, tmp_path):
    """Labels in the test split alone: --shots and --fraction stopped on numpy's "need at least
    one array to concatenate"; selftrain said "the labelled samples must all have labels"."""
    col, run = tiny
    w = CollectionWriter(tmp_path / "held", "image", (1, 8, 8), "uint8", ["a", "b"])
    pos = np.arange(len(col))
    labels = np.where(col.splits[pos] == "test", col.labels[pos], -1)
    w.add(col.get(pos), [str(i) for i in col.ids[pos]], labels, list(col.splits[pos]))
    held = w.close()
    for call in (
        lambda: ul.finetune(run, held, tmp_path / "f", shots=1),
        lambda: ul.finetune(run, held, tmp_path / "f", fraction=0.5),
    ):
        with pytest.raises(ul.UnlabeledError, match="no labelled train samples to draw --fraction or --shots from"):
            call()
    with pytest.raises(ul.UnlabeledError, match="no labelled train samples"):
        ul.selftrain(run, held, tmp_path / "s", epochs=0.05)
