"""Text collections: the ragged UTF-8 layout, the built-in corpora (Debian packages) and text
from a user's folders and tables, each bad document reported by path (and line) and reason."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unlabeled import UnlabeledError, import_source, open_collection
from unlabeled.data.collection import CollectionWriter, derive_collection
from unlabeled.data.corpora import WORDNET_CATEGORIES, hash_splits


def test_documents_round_trip_across_shards_and_into_a_derived_collection(tmp_path):
    docs = ["héllo wörld", "b", "日本語のテキスト", "a longer document\nover two lines", "b"]
    w = CollectionWriter(tmp_path / "c", modality="text", sample_shape=(), dtype="object", shard_bytes=24)
    w.add(docs, [f"d{i}" for i in range(5)], labels=[0, 1, 0, 1, 1])
    col = w.close()
    assert col.is_text and len(col.meta["shards"]) > 1  # 24-byte shards: several
    assert list(col.get([4, 2, 0, 3])) == [docs[4], docs[2], docs[0], docs[3]]
    assert col.get(2) == docs[2] and col.get(np.int64(0)) == docs[0]  # one position: its sample
    assert w.duplicates == [("d4", "d1")]
    sub = derive_collection(col, np.array([3, 2]), tmp_path / "sub", {})
    assert list(sub.get([0, 1])) == [docs[2], docs[3]]  # positions sorted: d2 then d3


def test_a_text_fingerprint_tells_where_documents_end(tmp_path):
    """The fingerprint hashed the documents' bytes one after another, so ["ab", "c"] and
    ["a", "bc"] were one collection to every cache and lineage check keyed on it."""

    def fingerprint(docs: list[str], name: str) -> str:
        w = CollectionWriter(tmp_path / name, modality="text", sample_shape=(), dtype="object")
        w.add(docs, ["x", "y"])
        return w.close().fingerprint()

    assert fingerprint(["ab", "c"], "one") != fingerprint(["a", "bc"], "two")
    assert fingerprint(["ab", "c"], "three") == fingerprint(["ab", "c"], "four")


def test_a_text_shard_cut_short_is_an_error_naming_it(tmp_path):
    w = CollectionWriter(tmp_path / "c", modality="text", sample_shape=(), dtype="object")
    w.add(["one document", "another document"], ["a", "b"])
    col = w.close()
    shard = col.path / col.meta["shards"][0]
    np.save(shard, np.load(shard)[:5])
    with pytest.raises(UnlabeledError, match="holds 5 bytes, but .* refers to byte"):
        open_collection(col.path).get([1])


def test_wordnet_is_every_gloss_with_its_lexicographer_category(tmp_path):
    col = import_source("wordnet", tmp_path / "wn").collection
    assert len(col) == 117_659 and col.classes == WORDNET_CATEGORIES and len(set(col.ids)) == len(col)
    assert np.bincount(col.labels, minlength=45).min() >= 42  # every category has glosses
    dwarf = col.get(col.positions(["n00005930"]))[0]
    assert dwarf == "a plant or animal that is atypically small"
    assert col.classes[col.labels[col.positions(["n00005930"])[0]]] == "noun.Tops"  # lex file 03 in data.noun
    test = col.indices("test")
    assert 0.19 < len(test) / len(col) < 0.21


def test_the_split_depends_on_the_id_alone():
    ids = [f"doc{i}" for i in range(2000)]
    assert hash_splits(ids) == hash_splits(list(reversed(ids)))[::-1]
    assert hash_splits(ids[:100]) == hash_splits(ids)[:100]


def test_an_exact_copy_takes_the_split_of_the_first_and_nothing_else_moves():
    ids = [f"doc{i}" for i in range(2000)]
    by_id = hash_splits(ids)
    a = by_id.index("test")
    b = by_id.index("train", a)  # a later document, hashed into train by its id
    texts = [f"text {i}" for i in range(2000)]
    texts[b] = texts[a]  # made a copy of the earlier test document
    splits = hash_splits(ids, texts=texts)
    assert splits[b] == "test" and [s for i, s in enumerate(splits) if i != b] == by_id[:b] + by_id[b + 1 :]


def test_fortunes_are_labelled_by_language_without_the_offensive_sets(tmp_path):
    col = import_source("fortunes", tmp_path / "f").collection
    assert len(col.classes) == 12 and {"en", "de", "ru", "zh", "pt", "ga"} <= set(col.classes)
    assert not any("/off/" in str(g) for g in col.groups)
    de = col.indices()[col.labels == col.classes.index("de")][:3]
    assert all(str(g).startswith("de/") for g in col.groups[de])
    train, test = (set(col.get(col.indices(s))) for s in ("train", "test"))
    assert not train & test  # the same cookie in two files is on one side of the split


def test_gcide_is_an_unlabelled_pool_of_dictionary_entries(tmp_path):
    col = import_source("gcide", tmp_path / "g").collection
    assert len(col) > 100_000 and not col.has_labels()
    assert sum(int(n) for n in col._nbytes) > 35e6  # about 40 MB of English
    assert "Webster" in col.get(col.positions(["gcide:Zythepsary"]))[0]


@pytest.fixture
def text_folder(tmp_path):
    """Two classes of real sentences, and every kind of bad document."""
    root = tmp_path / "docs"
    for label, lines in {
        "animals": ["a beagle is a small hound", "cats purr"],
        "tools": ["a hammer drives nails"],
    }.items():
        (root / label).mkdir(parents=True)
        for i, line in enumerate(lines):
            (root / label / f"{i}.txt").write_text(line + "\n", encoding="utf-8")
    (root / "tools" / "notes.md").write_text("# Saw\n\nA saw *cuts* wood.", encoding="utf-8")
    (root / "tools" / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "tools" / "empty.txt").write_bytes(b"")
    (root / "tools" / "blank.txt").write_text("  \n\t\n")
    (root / "tools" / "binary.txt").write_bytes(b"\x7fELF\x02\x01\x00\x00binary")
    (root / "tools" / "bom.txt").write_bytes("\ufeffwith a byte-order mark".encode())
    return root


def test_a_text_folder_reports_each_bad_document_and_imports_the_rest(text_folder, tmp_path):
    report = import_source(text_folder, tmp_path / "col")
    bad = {p.split("/")[-1]: r for p, r in report.bad}
    assert set(bad) == {"latin1.txt", "empty.txt", "blank.txt", "binary.txt"}
    assert "not UTF-8" in bad["latin1.txt"] and "0xe9 at offset 3" in bad["latin1.txt"]
    assert "empty" in bad["empty.txt"] and "white space" in bad["blank.txt"] and "binary" in bad["binary.txt"]
    col = report.collection
    assert report.modality == "text" and col.classes == ["animals", "tools"] and len(col) == 5
    docs = dict(zip(col.ids, col.get(col.indices()), strict=True))
    assert docs["tools/bom.txt"] == "with a byte-order mark"  # the mark is dropped
    assert docs["animals/0.txt"] == "a beagle is a small hound\n"
    assert "latin1.txt: not UTF-8" in report.summary()


def test_notes_beside_images_are_not_a_text_collection(tmp_path, fmnist_arrays):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.fromarray(fmnist_arrays.arrays[i, 0]).save(tmp_path / "imgs" / f"{i}.png")
    (tmp_path / "imgs" / "README.txt").write_text("three images")
    report = import_source(tmp_path / "imgs", tmp_path / "col")
    assert report.modality == "image" and len(report.collection) == 3


def test_a_jsonl_table_reports_bad_rows_by_line(tmp_path):
    src = tmp_path / "docs.jsonl"
    rows = [
        json.dumps({"id": "a", "text": "first document", "label": "x"}).encode(),
        b"{not json",
        json.dumps(["a", "list"]).encode(),
        json.dumps({"id": "c", "label": "y"}).encode(),
        json.dumps({"id": "d", "text": 42}).encode(),
        json.dumps({"id": "e", "text": "   "}).encode(),
        b'{"id": "f", "text": "caf\xe9"}',
        b"",
        json.dumps({"id": "g", "text": "second document", "label": "y", "split": "test"}).encode(),
    ]
    src.write_bytes(b"\n".join(rows) + b"\n")
    report = import_source(src, tmp_path / "col")
    bad = dict(report.bad)
    assert set(bad) == {f"{src} line {n}" for n in (2, 3, 4, 5, 6, 7)}
    assert "not JSON" in bad[f"{src} line 2"] and "not an object" in bad[f"{src} line 3"]
    assert "no text" in bad[f"{src} line 4"] and "holds int" in bad[f"{src} line 5"]
    assert "empty" in bad[f"{src} line 6"] and "not UTF-8" in bad[f"{src} line 7"]
    col = report.collection
    assert list(col.ids) == ["a", "g"] and col.classes == ["x", "y"] and list(col.splits) == [None, "test"]


def test_a_csv_row_with_bad_bytes_is_reported_and_the_others_import(tmp_path):
    src = tmp_path / "docs.csv"
    src.write_bytes(b"body,label\n" + b"good one,a\n" + b"caf\xe9,b\n" + b",a\n" + b"good two,b\n")
    report = import_source(src, tmp_path / "col", text_column="body")
    assert dict(report.bad).keys() == {f"{src} line 3", f"{src} line 4"}
    assert list(report.collection.get(report.collection.indices())) == ["good one", "good two"]


def test_a_csv_quote_that_never_closes_is_reported_and_the_rows_after_it_import(tmp_path):
    """An unclosed quote made the csv module read every later line into one field, silently:
    one document held the rest of the file. The record is reported by the line it starts on and
    the lines after it are read again; a quoted field that spans lines properly still imports."""
    src = tmp_path / "docs.csv"
    src.write_bytes(b'text,label\nfirst,a\n"never closed,b\nthird,a\n"two\nlines",b\nfifth,a\n')
    report = import_source(src, tmp_path / "col", modality="text")
    bad = dict(report.bad)
    assert list(bad) == [f"{src} line 3"] and "does not close" in bad[f"{src} line 3"]
    col = report.collection
    assert list(col.get(col.indices())) == ["first", "third", "two\nlines", "fifth"]
    stray = tmp_path / "stray.csv"  # a quote closed in the middle of a field: the field runs on
    stray.write_bytes(b'text,label\n"an "odd" one",a\nfine,b\n')
    report = import_source(stray, tmp_path / "stray", modality="text")
    assert list(dict(report.bad)) == [f"{stray} line 2"]
    assert list(report.collection.get(report.collection.indices())) == ["fine"]


def test_a_table_without_the_text_column_or_with_numbers_in_it_is_a_clear_error(tmp_path):
    src = tmp_path / "t.parquet"
    pq.write_table(pa.table({"body": pa.array([1, 2, 3])}), src)
    with pytest.raises(UnlabeledError, match="has no column 'text' .*body.*--text-column"):
        import_source(src, tmp_path / "a", modality="text")
    with pytest.raises(UnlabeledError, match="no document could be read .* holds int"):
        import_source(src, tmp_path / "b", text_column="body")
    with pytest.raises(UnlabeledError, match="--text-column applies to tables"):
        import_source(tmp_path, tmp_path / "c", text_column="body")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_table_messages_say_where_and_what(tmp_path):
    """A byte-order mark is not part of a column's name; a broken JSON line says at which
    column; a lone surrogate is named as such; a ';'-separated file and text read as series
    each get a hint; the summary counts rows as rows."""
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfbody,label\nhello there,a\nsecond doc,b\n")
    assert len(import_source(bom, tmp_path / "bom", text_column="body").collection) == 2
    src = tmp_path / "docs.jsonl"
    src.write_bytes(b'{"text": "fine"}\n{"text": "broken line\n{"text": "\\ud800 alone"}\n')
    report = import_source(src, tmp_path / "j")
    bad = dict(report.bad)
    assert bad[f"{src} line 2"].startswith("not JSON (") and "at column" in bad[f"{src} line 2"]
    assert "lone surrogate" in bad[f"{src} line 3"]
    assert "skipped 2 bad row(s):" in report.summary()
    semi = tmp_path / "semi.csv"
    semi.write_text("body;label\nhello;a\n")
    with pytest.raises(UnlabeledError, match="';'-separated"):
        import_source(semi, tmp_path / "s", text_column="body")
    words = tmp_path / "words.csv"
    words.write_text("id,body,label\n1,hello there,a\n2,more words,b\n")
    with pytest.raises(UnlabeledError, match="--text-column NAME"):
        import_source(words, tmp_path / "w")


def test_long_documents_are_cut_and_said_to_be_and_a_repeated_id_is_a_bad_row(tmp_path):
    """A document over 1 MiB is cut at a whole character, in a folder and in a table alike, and
    the import names it; a row whose id an earlier row took is reported by line, the rest
    imported; a NUL byte in what is kept makes a file binary; a broken JSON line says its column
    once. Past the cut nothing is read: a Latin-1 byte at 2 MiB refused the whole file."""
    from unlabeled.data.textfiles import MAX_DOCUMENT_BYTES

    (tmp_path / "docs").mkdir()
    cut = b"a" * (MAX_DOCUMENT_BYTES - 1) + "🐱".encode() + b"tail"
    (tmp_path / "docs" / "cut.txt").write_bytes(cut)
    (tmp_path / "docs" / "ok.txt").write_text("fine")
    (tmp_path / "docs" / "nul.txt").write_bytes(b"a" * 9000 + b"\x00binary")
    (tmp_path / "docs" / "latin.txt").write_bytes(b"b" * (2 * MAX_DOCUMENT_BYTES) + b"caf\xe9")
    report = import_source(tmp_path / "docs", tmp_path / "c1")
    assert [n for n in report.notes if "cut to their first MiB" in n and "cut.txt (1.0 MiB)" in n], report.notes
    assert [n for n in report.notes if "latin.txt (2.0 MiB)" in n], report.notes
    assert "nul.txt" in str(report.bad) and len(report.collection) == 3
    col = report.collection
    assert col.get(list(col.ids).index("cut.txt")) == "a" * (MAX_DOCUMENT_BYTES - 1)  # not half a cat
    src = tmp_path / "t.jsonl"
    rows = [{"id": "a", "text": "one"}, {"id": "b", "text": "x" * (MAX_DOCUMENT_BYTES + 5)}, {"id": "a", "text": "2"}]
    src.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"id": "c", "text": "open\n')
    report = import_source(src, tmp_path / "c2")
    bad = dict(report.bad)
    assert bad[f"{src} line 3"] == "id 'a' already used on line 1"
    assert bad[f"{src} line 4"] == "not JSON (Unterminated string starting at column 21)", bad
    assert list(report.collection.ids) == ["a", "b"] and any(f"{src} line 2 (1.0 MiB)" in n for n in report.notes)
    assert len(report.collection.get(1)) == MAX_DOCUMENT_BYTES
    # a CSV cell over the csv module's 131,072 characters stopped the import with _csv.Error;
    # a long row with a byte that is not UTF-8 before the cut is reported, not passed cleaned
    long = tmp_path / "long.csv"
    with open(long, "wb") as f:
        f.write(
            b"id,text\nshort,fine\nlong,"
            + b"y" * 200_000
            + b"\nbad,x"
            + b"\xe9"
            + b"z" * (MAX_DOCUMENT_BYTES + 9)
            + b"\n"
        )
    report = import_source(long, tmp_path / "c3", text_column="text")
    assert list(report.collection.ids) == ["short", "long"] and len(report.collection.get(1)) == 200_000
    assert "not UTF-8" in dict(report.bad)[f"{long} line 4"], report.bad


def test_a_row_without_an_id_among_rows_with_ids_is_named_by_its_line_not_none(tmp_path):
    """Rows without an id beside rows with one all became the id "None", and the import failed
    on "duplicate ids: None"; then each was skipped, which lost most of a file with one stray
    id; now each is named by its line, as where no row has one, with a note."""
    src = tmp_path / "s.jsonl"
    src.write_text('{"text": "a doc", "id": "x1"}\n{"text": "b doc"}\n{"text": "c doc", "id": null}\n')
    report = import_source(src, tmp_path / "col")
    assert report.bad == [] and list(report.collection.ids) == ["x1", "2", "3"]
    assert any("2 row(s)" in n and "have no id" in n for n in report.notes), report.notes
    none = tmp_path / "n.jsonl"  # no row has one: each is named by its line, as before
    none.write_text('{"text": "a doc"}\n{"text": "b doc"}\n')
    assert list(import_source(none, tmp_path / "n").collection.ids) == ["1", "2"]


def test_an_array_imported_as_text_and_a_collection_with_nothing_to_pretrain_on_fail_in_one_line(tmp_path):
    import unlabeled as ul

    np.save(tmp_path / "img.npy", np.zeros((4, 8, 8), dtype=np.float32))
    with pytest.raises(UnlabeledError, match="not a stack of text samples"):
        import_source(tmp_path / "img.npy", tmp_path / "q", modality="text")
    src = tmp_path / "all-test.jsonl"
    src.write_text("".join(json.dumps({"text": f"doc {i}", "split": "test"}) + "\n" for i in range(8)))
    col = import_source(src, tmp_path / "t").collection
    with pytest.raises(UnlabeledError, match="no sample outside its test split: nothing to pretrain on"):
        ul.pretrain(col, tmp_path / "r", method="clm", epochs=0.2)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("stray", ["t.csv", "x.npy", "broken.png"])
def test_a_folder_of_documents_with_a_stray_file_imports_the_documents(stray, tmp_path):
    """The rule "notes beside data are not a modality" let one stray file decide: 30 .txt and
    one .csv imported one series sample (the documents ignored), one .npy an image of the .txt
    files read as arrays, one unreadable .png failed the whole folder. Documents in the
    majority make a text folder; a note says what was left out."""
    src = tmp_path / "docs"
    src.mkdir()
    for i in range(30):
        (src / f"d{i}.txt").write_text(f"document number {i} is about cats")
    if stray.endswith(".npy"):
        np.save(src / stray, np.zeros((8, 8), dtype=np.float32))
    else:
        (src / stray).write_bytes(b"a,b\n1,2\n" if stray.endswith(".csv") else b"not a png")
    report = import_source(src, tmp_path / "col")
    assert report.collection.is_text and len(report.collection) == 30
    assert any(stray.rsplit(".", 1)[1] in n for n in report.notes)
    arrays = tmp_path / "arrays"  # the other way round: a README beside the data stays a note
    arrays.mkdir()
    for i in range(5):
        np.save(arrays / f"x{i}.npy", np.full((8, 8), i, dtype=np.float32))
    (arrays / "README.txt").write_text("what these are")
    assert len(import_source(arrays, tmp_path / "a").collection) == 5


def test_options_that_do_not_apply_to_documents_are_refused_not_ignored(tmp_path):
    """``--modality image`` on a .jsonl imported it as text, and ``--resize`` on a folder of
    documents was dropped, both without a word."""
    src = tmp_path / "docs.jsonl"
    src.write_text('{"text": "a document"}\n')
    with pytest.raises(UnlabeledError, match="imports as text, not image"):
        import_source(src, tmp_path / "a", modality="image")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("a document")
    with pytest.raises(UnlabeledError, match="--resize applies to image and volume folders"):
        import_source(folder, tmp_path / "b", resize=(28, 28))
    with pytest.raises(UnlabeledError, match="--sample-rate applies to audio folders"):
        import_source(folder, tmp_path / "c", sample_rate=8000)
    assert not any((tmp_path / n).exists() for n in "abc")


def test_a_split_spelt_in_capitals_is_the_test_split_and_an_empty_label_no_class(tmp_path):
    """ "TEST" was a split of its own, so its documents were trained on; "" became a class."""
    src = tmp_path / "docs.jsonl"
    rows = [("TEST", "x"), (" Test ", "y"), ("", ""), ("train", "x"), ("val", "y")]
    src.write_text(
        "".join(
            json.dumps({"text": f"document {i}", "split": s, "label": lab}) + "\n" for i, (s, lab) in enumerate(rows)
        )
    )
    col = import_source(src, tmp_path / "col").collection
    assert list(col.splits) == ["test", "test", None, "train", "val"]
    assert col.classes == ["x", "y"] and list(col.labels) == [0, 1, -1, 0, 1]
    assert list(col.indices(exclude="test")) == [2, 3, 4]


def test_a_jsonl_line_python_cannot_parse_is_reported_and_the_rest_imported(tmp_path):
    """A number of 5,000 digits (Python's limit on int conversion) or 100,000 nested brackets
    raised past the JSON error the reader caught: a traceback, nothing imported."""
    lines = ['{"text": "one"}', '{"text": "x", "id": ' + "1" * 5000 + "}", "[" * 100000, '{"text": "two"}']
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    report = import_source(tmp_path / "d.jsonl", tmp_path / "c")
    assert sorted(report.collection.get(np.arange(2)).tolist()) == ["one", "two"]
    why = dict(report.bad)
    assert set(why) == {f"{tmp_path / 'd.jsonl'} line 2", f"{tmp_path / 'd.jsonl'} line 3"}
    assert "nested too deeply" in why[f"{tmp_path / 'd.jsonl'} line 3"]


def test_a_row_left_out_takes_no_id_a_json_surrogate_is_no_character_and_utf16_is_named(tmp_path):
    """A valid row was left out as a duplicate of an empty one never imported; JSON's escaped
    lone surrogates "\\udcc3\\udca9" became the bytes of "é"; a UTF-16 file was "binary"."""
    src = tmp_path / "docs.jsonl"
    src.write_text(
        '{"id": "a", "text": ""}\n{"id": "a", "text": "hello world"}\n'
        '{"id": "b", "text": "\\udcc3\\udca9t\\u00e9"}\n{"id": "c", "text": "fine"}\n'
    )
    report = import_source(src, tmp_path / "col")
    bad = dict(report.bad)
    assert list(report.collection.ids) == ["a", "c"] and "empty" in bad[f"{src} line 1"]
    assert "lone surrogate" in bad[f"{src} line 3"]
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "windows.txt").write_bytes("Unicode text\r\n".encode("utf-16"))
    (folder / "plain.txt").write_text("plain text")
    report = import_source(folder, tmp_path / "col2")
    assert dict(report.bad)[str(folder / "windows.txt")].startswith("UTF-16 text (its byte-order mark says so)")


def test_a_fortune_keeps_a_percent_sign_of_its_own():
    """Stripping every % off an entry's ends took "98%" to "98" and left one entry a "\\n%"."""
    from unlabeled.data.corpora import _without_separators

    assert _without_separators("составляет 98%\n") == "составляет 98%"
    assert _without_separators("%\nfirst of a file") == "first of a file"
    assert _without_separators("pLug\n%\n") == "pLug" and _without_separators("%") == ""
