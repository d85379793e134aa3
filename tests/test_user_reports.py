"""What a user trying odd inputs found (a tester's session, 2026-12-06), each held to the fix:
hand-edited files that changed results silently, defaults that refused data they could
have served, inputs imported without a word, and a resumed finished run that wrote files."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import unlabeled as ul
from unlabeled._console import UnlabeledError
from unlabeled.bench.jobs import plan_task
from unlabeled.bench.request import BenchRequest
from unlabeled.bench.tasks import make_task
from unlabeled.data.collection import CollectionWriter
from unlabeled.models import build_encoder, default_options
from unlabeled.objectives import build_objective
from unlabeled.train.pretrain import default_encoder


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[ul.Collection, ul.Run]:
    """64 labelled 8x8 images (48 train, 8 validation, 8 test) and a run pretrained on them."""
    root = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(0)
    w = CollectionWriter(root / "col", "image", (1, 8, 8), "uint8", ["a", "b"])
    w.add(
        rng.integers(0, 256, (64, 1, 8, 8), dtype=np.uint8),
        [f"s{i:03d}" for i in range(64)],
        rng.integers(0, 2, 64),
        ["train"] * 48 + ["validation"] * 8 + ["test"] * 8,
    )
    col = w.close()
    run = ul.pretrain(col, root / "run", epochs=1, batch_size=16, size="tiny", device="cpu", precision="fp32")
    return col, run


def test_a_config_whose_modality_shape_was_edited_is_refused_not_embedded_resized(small, tmp_path):
    """Editing config.json's modality shape made embed resize the images to it, silently."""
    col, run = small
    edited = tmp_path / "run"
    shutil.copytree(run.path, edited)
    config = json.loads((edited / "config.json").read_text())
    config["modality"]["sample_shape"] = [1, 5, 5]
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnlabeledError, match=r"modality makes inputs of shape \[1, 5, 5\].*edited by hand"):
        ul.open_run(edited).encode(col)
    assert ul.open_run(run.path).encode(col).shape == (64, run.encoder().dim)  # the unedited run embeds


def test_label_codes_beyond_the_named_classes_are_refused_when_the_collection_opens(small, tmp_path):
    col, _ = small
    copy = tmp_path / "col"
    shutil.copytree(col.path, copy)
    meta = json.loads((copy / "collection.json").read_text())
    meta["classes"] = ["a"]
    (copy / "collection.json").write_text(json.dumps(meta))
    with pytest.raises(UnlabeledError, match="holds label code 1, but collection.json names 1 class"):
        ul.open_collection(copy)


def test_mae_with_one_value_patches_is_refused_before_training_not_nan_at_step_0():
    """norm_pix divides by each patch's variance; a patch of one value has none (torch's
    unbiased variance of one element is NaN), and the run died at step 0 advising a lower lr."""
    mod = fit_modality_for_series(np.random.default_rng(0).standard_normal((8, 1, 16)).astype(np.float32))
    options = default_options("transformer", mod, {"patch": 1})
    enc = build_encoder("transformer", "tiny", tuple(mod.input_shape), **options)
    assert enc.patch_dim == 1
    with pytest.raises(UnlabeledError, match="norm_pix.*patch here holds 1 value.*norm_pix=false"):
        build_objective("mae", enc, mod)
    assert build_objective("mae", enc, mod, norm_pix=False).norm_pix is False


def fit_modality_for_series(x: np.ndarray):
    from unlabeled.modalities.series import SeriesModality

    return SeriesModality(x.shape[1:], x.mean(axis=(0, 2)).tolist(), x.std(axis=(0, 2)).tolist())


def test_a_scalar_patch_on_series_is_a_span_of_steps_not_a_square():
    """``--encoder-option patch=2`` on a series became (2, 2) and was refused against (1x64)."""
    mod = fit_modality_for_series(np.zeros((4, 1, 64), np.float32) + np.arange(64, dtype=np.float32))
    options = default_options("transformer", mod, {"patch": 2})
    assert options["patch"] == [1, 2]
    assert build_encoder("transformer", "tiny", tuple(mod.input_shape), **options).patch == (1, 2)


def test_import_takes_the_clis_resize_text_and_refuses_a_wrong_one_in_words(tmp_path):
    root = tmp_path / "imgs" / "a"
    root.mkdir(parents=True)
    for i, side in enumerate((10, 12, 12)):
        Image.fromarray(np.full((side, side), 40 * i, np.uint8)).save(root / f"{i}.png")
    report = ul.import_source(tmp_path / "imgs", tmp_path / "col", resize="8x9")
    assert report.collection.sample_shape == (1, 8, 9) and len(report.collection) == 3
    for bad in ("8by9", (8,), (8, 0), (8.5, 9), "x"):
        with pytest.raises(UnlabeledError, match="--resize takes HEIGHTxWIDTH"):
            ul.import_source(tmp_path / "imgs", tmp_path / "col2", resize=bad)


def test_images_of_which_no_size_is_most_are_refused_with_the_resize_to_pass(tmp_path):
    """Ten images of ten sizes imported one of them and called its size "most"."""
    root = tmp_path / "imgs" / "a"
    root.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.zeros((10 + i, 12 + i), np.uint8)).save(root / f"{i}.png")
    with pytest.raises(UnlabeledError, match=r"4 files come in 4 shapes and none is most of them.*pass --resize"):
        ul.import_source(tmp_path / "imgs", tmp_path / "col")
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(root / "4.png")
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(root / "5.png")  # 3 of 6: still no majority
    with pytest.raises(UnlabeledError, match="none is most of them"):
        ul.import_source(tmp_path / "imgs", tmp_path / "col")
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(root / "6.png")  # 4 of 7: the majority, the rest reported
    report = ul.import_source(tmp_path / "imgs", tmp_path / "col")
    assert len(report.collection) == 4 and len(report.bad) == 3


def test_a_tables_fractional_label_column_gets_the_note_a_labels_file_gets(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.standard_normal((20, 10)), columns=[f"t{i}" for i in range(10)])
    table["label"] = np.round(rng.random(20) * 3, 2)
    table.to_csv(tmp_path / "t.csv", index=False)
    report = ul.import_source(tmp_path / "t.csv", tmp_path / "col")
    assert any("label column are numbers, not all whole" in n for n in report.notes), report.notes
    table["label"] = np.arange(20) % 3  # whole numbers: classes, without a word
    table.to_csv(tmp_path / "w.csv", index=False)
    assert not any("not all whole" in n for n in ul.import_source(tmp_path / "w.csv", tmp_path / "col2").notes)


def test_series_missing_values_inside_are_imported_with_a_note_padding_without_one(tmp_path):
    x = np.random.default_rng(1).standard_normal((20, 16)).astype(np.float32)
    x[3, 10:] = np.nan  # padding at the end: a shorter series, no note
    np.save(tmp_path / "pad.npy", x)
    assert not any("miss values" in n for n in ul.import_source(tmp_path / "pad.npy", tmp_path / "a").notes)
    x[5, 4] = np.nan  # a gap inside
    np.save(tmp_path / "gap.npy", x)
    report = ul.import_source(tmp_path / "gap.npy", tmp_path / "b")
    assert len(report.collection) == 20
    assert any(n.startswith("1 series miss values before their end") for n in report.notes), report.notes
    table = pd.DataFrame(x, columns=[f"t{i}" for i in range(16)])  # the same through a table's empty cell
    table.to_csv(tmp_path / "gap.csv", index=False)
    assert any("1 series miss values" in n for n in ul.import_source(tmp_path / "gap.csv", tmp_path / "c").notes)


def test_classifiers_from_scratch_default_to_an_encoder_the_modality_takes():
    """finetune/selftrain defaulted to the CNN and refused volumes and series; mae on images
    refused the CNN instead of taking the transformer it needs."""
    assert default_encoder("image") == "cnn"
    assert default_encoder("series") == "tcn"
    assert default_encoder("volume") == default_encoder("audio") == "transformer"
    assert default_encoder("image", "mae") == default_encoder("image", "jepa") == "transformer"
    assert default_encoder("series", "simclr") == default_encoder("series", "ts2vec") == "tcn"


def test_finetune_from_scratch_on_volumes_trains_without_naming_an_encoder(volumes, tmp_path):
    run = ul.finetune(None, volumes, tmp_path / "ft", epochs=0.2, batch_size=8, device="cpu", precision="fp32")
    assert run.config["encoder"]["name"] == "transformer"


def test_bench_notes_a_named_baseline_that_does_not_apply_and_a_split_it_leaves_out(small):
    col, run = small
    task = make_task(col)
    notes: list[str] = []
    plan_task(task, BenchRequest(runs=(run,), task=col, baselines=("raw", "minirocket"), probes=("linear",)), notes)
    assert any("baseline minirocket applies to series tasks" in n for n in notes), notes
    assert any("split(s) validation (8) are neither train nor test: left out" in n for n in notes), notes
    notes = []
    plan_task(task, BenchRequest(runs=(run,), task=col, probes=("linear",)), notes)  # the default set: no word of it
    assert not any("minirocket" in n for n in notes)


def test_a_runs_training_samples_imported_again_as_another_test_split_are_found_by_content(small, tmp_path):
    from unlabeled.bench.jobs import check_held_out

    col, run = small  # pretrained on the 56 samples outside its test split (48 train, 8 validation)

    def imported(name: str, order: np.ndarray, splits: list[str]) -> ul.Collection:
        w = CollectionWriter(tmp_path / name, "image", (1, 8, 8), "uint8", ["a", "b"])
        w.add(col.get(order), [f"{name}{i}" for i in range(64)], col.labels[order], splits)
        return w.close()

    # the same images under other ids, in another order (another fingerprint: matched by
    # content), and in the same order (the same fingerprint: by position); positions 40-63 of
    # the first are the test split, and they are col's 23-0, all trained on
    for again, seen in (
        (imported("rev", np.arange(64)[::-1], ["train"] * 40 + ["test"] * 24), 24),
        (imported("copy", np.arange(64), ["train"] * 40 + ["test"] * 24), 16),
    ):
        notes: list[str] = []
        check_held_out(run, make_task(again), notes)
        assert any(f"{run.path} was pretrained on {seen} of its 24 test samples" in n for n in notes), notes
    clf = ul.finetune(run, col, tmp_path / "clf", epochs=1, batch_size=16, precision="fp32")
    with pytest.raises(UnlabeledError, match="was trained on 24 of task rev2's 24 test samples, with their labels"):
        check_held_out(clf, make_task(imported("rev2", np.arange(64)[::-1], ["train"] * 40 + ["test"] * 24)), [])
    notes = []  # other images: nothing found, nothing said
    other = CollectionWriter(tmp_path / "other", "image", (1, 8, 8), "uint8", ["a", "b"])
    other.add(255 - col.get(np.arange(64)), [f"x{i}" for i in range(64)], col.labels, ["train"] * 40 + ["test"] * 24)
    check_held_out(clf, make_task(other.close()), notes)
    assert not notes, notes


def test_perplexity_warns_where_the_model_trained_on_the_documents_in_another_collection(tmp_path):
    from unlabeled._console import console

    docs = [f"document {i} says {'abc'[i % 3]} then {i * 7 % 13} and stops" for i in range(40)]

    def text(name: str, order: list[int], splits: list[str]) -> ul.Collection:
        w = CollectionWriter(tmp_path / name, "text", (), "uint8", None, {})
        w.add([docs[i] for i in order], [f"{name}{i}" for i in range(40)], None, splits)
        return w.close()

    col = text("a", list(range(40)), ["train"] * 30 + ["test"] * 10)
    lm = ul.pretrain(col, tmp_path / "lm", method="clm", epochs=1, batch_size=8, size="tiny", precision="fp32")
    again = text("b", list(range(40))[::-1], ["train"] * 30 + ["test"] * 10)  # b's test: a's first 10 train docs
    with console.capture() as out:
        ul.perplexity(lm, again)
    assert f"{lm.path} trained on 10 of the 10 documents scored" in " ".join(out.get().split()), out.get()
    with console.capture() as out:  # a's own test split: held out, nothing said
        ul.perplexity(lm, col)
    assert "not a held-out one" not in out.get()


def test_resume_refuses_another_commands_run_relabelled_data_and_another_shard_split(small, tmp_path):
    from unlabeled._console import console

    col, _ = small
    kw = dict(epochs=1, precision="fp32")
    st = ul.selftrain(None, col, tmp_path / "st", shots=2, ratio=2, batch_size=4, **kw)
    # pretrain --resume trained a self-training run on every label (or died with a traceback)
    with pytest.raises(
        UnlabeledError, match=r"not a pretraining run \(fixmatch\); resume it with `unlabeled selftrain"
    ):
        ul.pretrain(col, st.path, resume=True)
    ft = ul.finetune(None, col, tmp_path / "ft", batch_size=16, **kw)
    # the same samples imported again with other labels: the same fingerprint, another index
    w = CollectionWriter(tmp_path / "relabelled", "image", (1, 8, 8), "uint8", ["a", "b"])
    w.add(col.get(np.arange(64)), [str(i) for i in col.ids], 1 - col.labels, col.splits.tolist())
    with pytest.raises(UnlabeledError, match="ids, labels or splits changed since"):
        ul.finetune(None, w.close(), ft.path, resume=True)
    with console.capture() as out:  # what a resume does not take is named
        ul.finetune(None, col, ft.path, resume=True, lr=0.5, fraction=0.5)
    text = " ".join(out.get().split())
    assert "ignored: --lr 0.5 (saved: 0.001)" in text and "that --fraction, --shots and --seed draw" in text, text
    # SISA: a resumed run re-split its samples with the seed given now
    sh = tmp_path / "sh"
    ul.finetune(None, col, sh, shards=2, fraction=0.5, seed=0, batch_size=8, **kw)
    with pytest.raises(UnlabeledError, match="split into shards with other options"):
        ul.finetune(None, col, sh, shards=2, fraction=0.5, seed=1, batch_size=8, resume=True, **kw)
    ul.finetune(None, col, sh, shards=2, fraction=0.5, seed=0, batch_size=8, resume=True, **kw)  # as it started


def test_resuming_a_finished_run_leaves_its_files_as_they_were(small, cli):
    _, run = small

    def digests() -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(run.path).iterdir() if p.is_file()}

    before = digests()
    code, lines = cli("pretrain", run.config["data"]["path"], "--out", run.path, "--resume")
    assert code == 0 and any("had finished" in line and "(pretrain --init)" in line for line in lines), lines
    assert digests() == before


def test_resuming_a_finished_classifier_names_commands_that_start_from_it(small, cli, tmp_path):
    """It advised `pretrain --init`, which refuses a classifier."""
    col, run = small
    args = ("finetune", run.path, "--task", col.path, "--fraction", "0.5", "--epochs", "0.2", "--out", tmp_path / "ft")
    assert cli(*args)[0] == 0
    code, lines = cli(*args, "--resume")
    said = [line for line in lines if "had finished" in line]
    assert code == 0 and said and "finetune, selftrain or distil RUN" in said[0] and "--init" not in said[0], lines


def test_a_learning_rate_of_zero_trains_with_a_note_that_the_weights_stay(small, cli, tmp_path):
    col, _ = small
    code, lines = cli("pretrain", col.path, "--out", tmp_path / "r", "--epochs", "1", "--batch-size", "16", "--lr", "0")
    assert code == 0 and any("learning rate is 0" in line for line in lines), lines
    code, lines = cli("pretrain", col.path, "--out", tmp_path / "r2", "--epochs", "1", "--batch-size", "16")
    assert code == 0 and not any("learning rate is 0" in line for line in lines), lines


def test_a_named_pipe_in_a_text_folder_is_reported_not_waited_on(tmp_path):
    """Opening a FIFO waits for a writer: the import hung, and SIGTERM did not end it."""
    import os

    (tmp_path / "docs" / "a").mkdir(parents=True)
    (tmp_path / "docs" / "a" / "1.txt").write_text("a document")
    os.mkfifo(tmp_path / "docs" / "a" / "pipe.txt")
    report = ul.import_source(tmp_path / "docs", tmp_path / "col")
    assert len(report.collection) == 1
    assert [(Path(p).name, r) for p, r in report.bad] == [("pipe.txt", "not a regular file (a named pipe)")]


def test_a_byte_order_mark_alone_is_an_empty_document_not_one_of_no_bytes(tmp_path):
    (tmp_path / "docs" / "a").mkdir(parents=True)
    (tmp_path / "docs" / "a" / "ok.txt").write_bytes(b"\xef\xbb\xbfreal document\n")
    (tmp_path / "docs" / "a" / "bom.txt").write_bytes(b"\xef\xbb\xbf")
    (tmp_path / "docs" / "a" / "bomws.txt").write_bytes(b"\xef\xbb\xbf \n\t\n")
    (tmp_path / "docs" / "a" / "bad.txt").write_bytes(b"\xef\xbb\xbfab\xff")
    report = ul.import_source(tmp_path / "docs", tmp_path / "col")
    assert report.collection.get(np.arange(len(report.collection))).tolist() == ["real document\n"]
    reasons = {Path(p).name: r for p, r in report.bad}
    assert reasons["bom.txt"] == "empty document" and reasons["bomws.txt"] == "empty document (only white space)"
    assert "offset 5" in reasons["bad.txt"]  # the offset in the file, its mark counted


def test_a_csv_header_that_names_a_column_twice_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text("id,text,text\n1,first,second\n2,third,fourth\n")
    with pytest.raises(UnlabeledError, match=r"names a column twice: 'text' \(columns 2, 3\)"):
        ul.import_source(tmp_path / "t.csv", tmp_path / "col", text_column="text")


def test_a_table_row_shorter_than_its_header_is_reported_by_line_not_read_as_unlabelled(tmp_path):
    # "4,5,1" under a,b,c,label: pandas reads label missing (an unlabelled sample of values
    # 4,5,1) where the row lost a reading; an empty field ("7,8,9,") is a value left out, kept
    (tmp_path / "t.csv").write_text('a,b,c,label\n1,2,3,0\n4,5,1\n7,8,9,\n\n1,1,"1",1\n')
    report = ul.import_source(tmp_path / "t.csv", tmp_path / "col")
    assert report.bad == [(f"{tmp_path / 't.csv'} line 3", "3 fields, the header has 4")]
    col = report.collection
    assert len(col) == 3 and col.labels.tolist() == [0, -1, 1]
    assert col.get([0, 2]).reshape(2, -1).tolist() == [[1, 2, 3], [1, 1, 1]]
    # a recording per file: the file is reported by its line, the others import
    (tmp_path / "rec").mkdir()
    for name in ("a", "b"):
        (tmp_path / "rec" / f"{name}.csv").write_text("x,y\n1,2\n3,4\n5,6\n")
    (tmp_path / "rec" / "c.csv").write_text("x,y\n1,2\n3\n5,6\n")
    report = ul.import_source(tmp_path / "rec", tmp_path / "rec-col")
    assert report.imported == 2 and report.bad == [
        (str(tmp_path / "rec" / "c.csv"), "line 3: 1 field, the header has 2")
    ]


def test_curate_names_options_that_only_a_step_left_out_reads(cli, tmp_path):
    (tmp_path / "docs" / "en").mkdir(parents=True)
    for i, text in enumerate(("The cat sat on the warm mat all afternoon.", "My brother drives a red truck.")):
        (tmp_path / "docs" / "en" / f"{i}.txt").write_text(text)
    args = ("curate", tmp_path / "docs", "--out", tmp_path / "out", "--languages", "en", "--steps", "dedup")
    code, lines = cli(*args, "--option", "gopher_quality.min_doc_words=5")
    assert code == 0, lines
    assert any(
        "note: --languages (read by the lid step), --option (read by the quality step) ignored" in line
        for line in lines
    ), lines


def test_views_larger_than_the_images_and_a_budget_of_one_get_a_note(small, cli, tmp_path):
    col, run = small
    code, lines = cli("pretrain", col.path, "--out", tmp_path / "big", "--epochs", "0.1", "--augment", "view_size=12")
    assert code == 0 and any("view_size=12 is larger than the images (8x8)" in line for line in lines), lines
    code, lines = cli("select", col.path, "--method", "random", "--budget", "1.0", "--out", tmp_path / "one")
    assert code == 0 and any("--budget 1 keeps one sample of" in line for line in lines), lines


def test_select_and_grow_name_what_is_wrong_not_a_shape_or_a_size(small, tmp_path):
    """select said "another shape" for an image run on a text pool; grow called a larger model
    with fewer, wider heads not larger."""
    from unlabeled.models.grow import Shapes

    _, run = small
    w = CollectionWriter(tmp_path / "docs", "text", (), "uint8", None, {})
    w.add(["a short document", "another one", "and a third"], ["d0", "d1", "d2"])
    with pytest.raises(UnlabeledError, match=r"trained on image samples of shape 1x8x8; .* holds text documents"):
        ul.select(w.close(), method="kcenter", budget=1, encoder=run, out=tmp_path / "sel")
    with pytest.raises(ValueError, match=r"here heads 8 -> 6 \(\(width, depth, heads\)"):
        Shapes((256, 8, 8), (384, 12, 6))


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rows_without_an_id_beside_rows_with_one_are_named_by_their_line_not_dropped(tmp_path):
    """One row with an ``id`` made the import skip the 20 without one ("the other rows have
    one"); a line number that is a given id stays the given id's, and the row is reported."""
    rows = [{"text": f"doc {i}"} for i in range(20)] + [{"id": "x1", "text": "named"}, {"id": "3", "text": "three"}]
    report = ul.import_source(_jsonl(tmp_path / "t.jsonl", rows), tmp_path / "col")
    col = report.collection
    assert len(col) == 21 and {"1", "20", "x1", "3"} <= set(col.ids)
    assert col.get(col.positions(np.array(["3"]))).tolist() == ["three"]
    assert [(Path(p).name, r) for p, r in report.bad] == [
        ("t.jsonl line 3", "no id, and its line number 3 is another row's id")
    ]
    assert any("have no id" in n and "line numbers" in n for n in report.notes), report.notes


def test_a_label_that_is_an_object_or_a_list_is_reported_by_line_not_made_a_class(tmp_path):
    rows = [{"text": f"doc {i}", "label": "ab"[i % 2]} for i in range(6)]
    rows += [{"text": "t1", "label": {"x": 1}}, {"text": "t2", "label": [1, 2]}]
    report = ul.import_source(_jsonl(tmp_path / "t.jsonl", rows), tmp_path / "col")
    assert report.collection.classes == ["a", "b"]
    assert [r for _, r in report.bad] == [
        "column 'label' holds dict, not text or a number",
        "column 'label' holds list, not text or a number",
    ]
    pd.DataFrame({"text": ["a doc", "b doc", "c doc"], "label": [[1], [2], [1]]}).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(UnlabeledError, match="no document could be read.*holds ndarray|holds list"):
        ul.import_source(tmp_path / "t.parquet", tmp_path / "col2", text_column="text")


def test_a_text_tables_fractional_labels_get_a_note(tmp_path):
    rows = [{"text": f"doc {i}", "label": [1.5, 2.0, 3.25][i % 3]} for i in range(6)]
    report = ul.import_source(_jsonl(tmp_path / "t.jsonl", rows), tmp_path / "col")
    assert len(report.collection.classes) == 3
    assert any("numbers, not all whole" in n for n in report.notes), report.notes


def test_a_prompt_or_a_path_not_in_utf8_fails_in_one_line(cli, tmp_path):
    """Bytes that are not UTF-8 on the command line reached the tokenizer (TypeError) and
    pyarrow's file system (UnicodeEncodeError) as tracebacks."""
    rows = [{"text": f"the quick brown fox number {i} jumps over the lazy dog"} for i in range(40)]
    src = _jsonl(tmp_path / "c.jsonl", rows)
    code, lines = cli("import", src, str(tmp_path) + "/col\udce9")
    assert code == 2 and any("is not UTF-8 (byte 0xe9" in line for line in lines), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl"]  # nothing half-written
    col = ul.import_source(src, tmp_path / "col").collection
    ul.pretrain(col, tmp_path / "lm", method="clm", size="tiny", epochs=0.1)
    code, lines = cli("generate", tmp_path / "lm", "caf\udce9")
    assert code == 2 and any("the prompt is not UTF-8 text (byte 0xe9 at character 3)" in line for line in lines)


def test_a_patch_size_asked_of_a_text_encoder_is_named_in_a_note_and_not_kept(cli, tmp_path):
    rows = [{"text": f"the quick brown fox number {i} jumps over the lazy dog"} for i in range(40)]
    col = ul.import_source(_jsonl(tmp_path / "c.jsonl", rows), tmp_path / "col").collection
    args = ("pretrain", col.path, "--out", tmp_path / "p", "--size", "tiny", "--epochs", "0.1")
    code, lines = cli(*args, "--encoder-option", "patch=4")
    assert code == 0 and any("patch=4 has no part in a text encoder" in line for line in lines), lines
    assert ul.open_run(tmp_path / "p").config["encoder"]["options"]["patch"] == [1]


def test_a_long_series_whose_rows_disagree_on_label_or_split_is_reported_not_given_the_first(tmp_path):
    """Series a's second row was marked test and labelled y: it went into a train sample
    labelled x without a word (a test row trained on)."""
    path = tmp_path / "conflict.csv"
    path.write_text(
        "id,time,v,label,split\na,0,1,x,train\na,1,2,y,test\nb,0,5,y,test\nb,1,2,y,test\n"
        "c,0,1,x,train\nc,1,3,x,train\nd,0,1,x,Train\nd,1,1,x,train\n"
    )
    report = ul.import_source(path, tmp_path / "col")
    assert sorted(report.collection.ids) == ["b", "c", "d"]  # d: one split, spelt twice
    assert report.bad == [(f"{path} id=a", "its rows disagree on label ('x', 'y'): one value a series")]


def test_finetune_draws_its_labels_from_the_train_split_as_bench_does(tmp_path, cli):
    """With train/val/test splits, finetune trained on the 20 val labels too, and bench then
    said the run had seen 60 labelled train samples."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(100, 30)).round(3), columns=[f"t{i}" for i in range(30)])
    df.insert(0, "label", np.arange(100) % 2)
    df.insert(1, "split", ["train"] * 60 + ["val"] * 20 + ["test"] * 20)
    df.to_csv(tmp_path / "tvt.csv", index=False)
    col = ul.import_source(tmp_path / "tvt.csv", tmp_path / "tvt").collection
    code, lines = cli("finetune", "--task", col.path, "--fraction", "1", "--out", tmp_path / "ft", "--epochs", "0.2")
    assert code == 0 and any("split(s) val (20) are neither train nor test" in line for line in lines), lines
    trained = (tmp_path / "ft" / "training-ids.txt").read_text().split()
    assert len(trained) == 60 and set(col.splits[col.positions(np.array(trained))]) == {"train"}
    # refused (the run exists): the one error line alone, not the split note before it
    code, lines = cli("finetune", "--task", col.path, "--fraction", "1", "--out", tmp_path / "ft", "--epochs", "0.2")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), lines


def test_a_collection_is_not_written_inside_another(tmp_path, cli):
    src = tmp_path / "a"
    for c in "xy":
        (src / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(src / c / f"{i}.png")
    col = ul.import_source(src, tmp_path / "col").collection
    code, lines = cli("import", src, tmp_path / "col" / "inner")
    assert code == 2 and any("is inside the collection" in line for line in lines), lines
    code, lines = cli("select", col.path, "--budget", "3", "--method", "random", "--out", tmp_path / "col" / "sub")
    assert code == 2 and any("is inside the collection" in line for line in lines), lines
    assert sorted(p.name for p in (tmp_path / "col").iterdir()) == [
        "arrays-00000.npy",
        "collection.json",
        "index.parquet",
    ]


def test_a_csv_whose_header_is_all_numbers_is_imported_with_a_note(tmp_path):
    """A file with no header lost its first row to the column names without a word."""
    (tmp_path / "t.csv").write_text("1,2,3\n3,2,1\n1,2,4\n5,1,1\n")
    report = ul.import_source(tmp_path / "t.csv", tmp_path / "col")
    assert len(report.collection) == 3
    assert any("header row" in n and "all numbers (1, 2, 3)" in n for n in report.notes), report.notes


def test_a_value_beyond_float32_is_reported_as_such_once_not_as_infinity(tmp_path):
    (tmp_path / "t.csv").write_text("id,time,v\na,0,1\na,1,2\nb,0,1e39\nb,1,2\nc,0,inf\nc,1,1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warning was printed with a source line
        report = ul.import_source(tmp_path / "t.csv", tmp_path / "col")
    assert [r for _, r in report.bad] == ["a value beyond float32's range (1e+39)", "contains infinity"]


def test_bench_refuses_a_task_whose_test_classes_are_none_of_train_and_repeated_settings(small, tmp_path):
    """Grouped by the label itself, no test sample's class had a train label: every cell
    scored 0.0000 (by construction) beside numpy's "Mean of empty slice" warnings."""
    col, run = small
    w = CollectionWriter(tmp_path / "apart", "image", (1, 8, 8), "uint8", ["a", "b", "c", "d"])
    rng = np.random.default_rng(1)
    w.add(
        rng.integers(0, 256, (32, 1, 8, 8), dtype=np.uint8),
        [f"s{i}" for i in range(32)],
        np.arange(32) % 4,
        ["train" if i % 4 < 2 else "test" for i in range(32)],
    )
    apart = w.close()
    with pytest.raises(UnlabeledError, match="no test sample is of a class the train split labels"):
        plan_task(make_task(apart), BenchRequest(runs=(run,), task=apart, probes=("linear",)), [])
    with pytest.raises(UnlabeledError, match="--fractions lists 0.1 more than once"):
        BenchRequest(runs=(run,), task=col, fractions=(0.1, 0.1, 1.0))
    with pytest.raises(UnlabeledError, match="--shots lists 5 more than once"):
        BenchRequest(runs=(run,), task=col, fractions=(), shots=(5, 5))
    # two fractions the table labels alike were fitted as one cell, the second's rows the first's
    with pytest.raises(UnlabeledError, match="--fractions 0.1 and 0.1000001 are both 10%"):
        BenchRequest(runs=(run,), task=col, fractions=(0.1, 0.1000001))


def test_an_ids_file_saved_with_a_byte_order_mark_reads_its_first_id(tmp_path):
    from unlabeled.cli import read_id_file

    (tmp_path / "ids.txt").write_bytes(b"\xef\xbb\xbfs000\r\ns001\n")
    assert read_id_file(tmp_path / "ids.txt") == ["s000", "s001"]


def test_a_runs_own_id_file_given_back_reads_every_id_whole(tmp_path):
    """forgotten-ids.txt fed back to --ids: an id with spaces at its ends lost them (another
    sample, where that one exists), one holding U+2028 became two, a quoted one kept its quotes."""
    from unlabeled.cli import read_id_file
    from unlabeled.runs import read_ids, write_ids

    ids = [" x", "a\u2028b", "q\nr", "plain"]
    write_ids(tmp_path / "ids.txt", ids)
    assert read_ids(tmp_path / "ids.txt") == ids == read_id_file(tmp_path / "ids.txt")
    (tmp_path / "typed.txt").write_text("  s1  \n\ns2\r\n")  # typed by hand: spaces and blank lines forgiven
    assert read_id_file(tmp_path / "typed.txt") == ["s1", "s2"]


def test_volumes_and_audio_name_values_beyond_float32_empty_dimensions_and_unreadable_files(tmp_path):
    """A tester's session (2026-12-07): a volume or float WAV holding 1e39 / 1e300 was reported
    as "contains NaN or infinity" after numpy's overflow warning; a volume with a dimension of 0
    gave PyTorch's resize error as its reason; a text file named .wav gave libsndfile's class
    name and the path as bytes. Each is skipped, named by its reason, and the rest imported."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    for c in "ab":
        (tmp_path / "v" / c).mkdir(parents=True)
        for i in range(3):
            np.save(tmp_path / "v" / c / f"{i}.npy", rng.random((8, 8, 8), dtype=np.float32))
    big = np.ones((8, 8, 8))
    big[0, 0, 0] = 1e39
    np.save(tmp_path / "v" / "a" / "big.npy", big)
    np.save(tmp_path / "v" / "b" / "empty.npy", np.zeros((0, 8, 8), np.float32))
    (tmp_path / "w" / "x").mkdir(parents=True)
    for i in range(2):
        sf.write(tmp_path / "w" / "x" / f"{i}.wav", rng.random(8000) * 0.1, 8000)
    sf.write(tmp_path / "w" / "x" / "wide.wav", np.full(800, 1e300), 8000, subtype="DOUBLE")
    (tmp_path / "w" / "x" / "text.wav").write_text("hello")
    import nibabel as nib

    (tmp_path / "n" / "a").mkdir(parents=True)
    for i in range(3):
        volume = nib.Nifti1Image(rng.integers(0, 100, (8, 8, 8)).astype(np.int16), np.eye(4))
        nib.save(volume, tmp_path / "n" / "a" / f"{i}.nii")
    scaled = tmp_path / "n" / "a" / "scaled.nii"
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), 30000, np.int16), np.eye(4)), scaled)
    with open(scaled, "r+b") as f:  # its header's scl_slope (bytes 112-115): 30000 x 1e36 is beyond float32
        f.seek(112)
        f.write(np.float32(1e36).tobytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warning reaches the user
        vol = ul.import_source(tmp_path / "v", tmp_path / "cv", modality="volume")
        aud = ul.import_source(tmp_path / "w", tmp_path / "ca", modality="audio")
        nii = ul.import_source(tmp_path / "n", tmp_path / "cn", modality="volume")
    reasons = {Path(p).name: r for p, r in vol.bad + aud.bad + nii.bad}
    assert reasons["scaled.nii"] == "a value beyond float32's range (3e+40)" and len(nii.collection) == 3
    assert reasons["big.npy"] == "a value beyond float32's range (1e+39)"
    assert "empty dimension" in reasons["empty.npy"]
    assert reasons["wide.wav"] == "a value beyond float32's range (1e+300)"
    assert reasons["text.wav"] == "not a readable audio file (format not recognised)"
    assert len(vol.collection) == 6 and len(aud.collection) == 2


def test_a_sample_far_larger_than_the_rest_is_named_at_import(tmp_path):
    """A volume of int64 2**62 beside volumes in [0, 1) imported without a word, and its values
    made the collection's mean and std, so every probe scored chance."""
    rng = np.random.default_rng(0)
    for c in "ab":
        (tmp_path / "v" / c).mkdir(parents=True)
        for i in range(3):
            np.save(tmp_path / "v" / c / f"{i}.npy", rng.random((8, 8, 8), dtype=np.float32))
    np.save(tmp_path / "v" / "b" / "huge.npy", np.full((8, 8, 8), 2**62, dtype=np.int64))
    report = ul.import_source(tmp_path / "v", tmp_path / "cv", modality="volume")
    assert len(report.collection) == 7
    (note,) = [n for n in report.notes if "times the median" in n]
    assert "b/huge.npy" in note and "4.61e+18" in note
    clean = ul.import_source(tmp_path / "v" / "a", tmp_path / "ca", modality="volume")
    assert not [n for n in clean.notes if "times the median" in n]
    # most samples empty (masks, silence): the median of those that hold something (was 0: no note)
    for i in range(8):
        np.save(tmp_path / "v" / "a" / f"zero{i}.npy", np.zeros((8, 8, 8), np.float32))
    masks = ul.import_source(tmp_path / "v", tmp_path / "cm", modality="volume")
    (note,) = [n for n in masks.notes if "times the median" in n]
    assert "b/huge.npy" in note


def test_an_array_file_names_the_rows_beyond_float32(tmp_path):
    """A float64 .npy stack with a row holding 1e39: named by its row, the rest imported."""
    x = np.random.default_rng(0).random((10, 8, 8))
    x[3, 0, 0] = -1e39
    np.save(tmp_path / "x.npy", x)
    report = ul.import_source(tmp_path / "x.npy", tmp_path / "c")
    assert report.bad == [(f"{tmp_path / 'x.npy'}[3]", "a value beyond float32's range (-1e+39)")]
    assert len(report.collection) == 9
    # every row bad, for two reasons: each named once (was "every one of its 2 a value beyond...")
    x = np.ones((2, 8, 8))
    x[0, 0, 0], x[1, 0, 0] = np.nan, 1e39
    np.save(tmp_path / "y.npy", x)
    with pytest.raises(
        UnlabeledError,
        match=r"every one of its 2 samples is bad \(a value beyond float32's range; "
        r"contains NaN or infinity\)",
    ):
        ul.import_source(tmp_path / "y.npy", tmp_path / "d")


def test_the_api_names_an_argument_of_the_wrong_kind(small, tmp_path):
    """A tester's session (2026-12-07): a list where a name or a dict of settings belongs gave
    "unhashable type: 'list'" or dict()'s "dictionary update sequence element #0 has length 11";
    `shots=2.5` was "must be a number"."""
    col, run = small
    kw = dict(epochs=0.05, overwrite=True)
    with pytest.raises(UnlabeledError, match="method must be a name"):
        ul.pretrain(col, tmp_path / "a", method=["simclr"], **kw)
    with pytest.raises(UnlabeledError, match="unknown encoder"):
        ul.pretrain(col, tmp_path / "a", encoder=["cnn"], **kw)
    for name in ("augment", "method_options", "encoder_options"):
        with pytest.raises(UnlabeledError, match=f"{name} takes settings by name"):
            ul.pretrain(col, tmp_path / "a", **{name: ["view_size=6"]}, **kw)
    with pytest.raises(UnlabeledError, match="augment takes settings by name"):
        ul.selftrain(run, col, tmp_path / "s", fraction=0.5, augment=["view_size=0"], **kw)
    with pytest.raises(UnlabeledError, match="--shots must be a whole number, got 2.5"):
        ul.finetune(run, col, tmp_path / "f", shots=2.5, **kw)
    assert not (tmp_path / "a").exists() and not (tmp_path / "s").exists()


def test_the_api_names_an_out_that_is_no_path(small, tmp_path):
    """`ul.pretrain(data, None)` and `ul.bench(run, out=3)` stopped with pathlib's "expected
    str, bytes or os.PathLike object, not NoneType" from inside the command."""
    col, run = small
    calls = {
        "pretrain": lambda: ul.pretrain(col, None, epochs=0.05),
        "finetune": lambda: ul.finetune(run, col, 3, epochs=0.05),
        "selftrain": lambda: ul.selftrain(run, col, None, fraction=0.5, epochs=0.05),
        "bench": lambda: ul.bench(run, col, out=3, probes=["linear"], fractions=[1.0], seeds=1, baselines=()),
        "embed": lambda: ul.embed(run, col, out=["x"]),
        "select": lambda: ul.select(col, method="random", budget=0.5, out=None),
        "import": lambda: ul.import_source(str(col.path), None),
        "forget": lambda: ul.forget(run, ids=[str(col.ids[0])], out=""),
    }
    for call in calls.values():  # a failure's traceback shows the call's line
        with pytest.raises(UnlabeledError, match="takes a folder's path"):
            call()


def test_import_messages_show_the_value_given_and_one_pair_of_brackets(tmp_path):
    """`--resize abc` was echoed as the [] it parsed to; a stack of the wrong shape for audio
    said ((audio imports from files))."""
    from unlabeled.data.importers import size_option

    with pytest.raises(UnlabeledError, match=r"got 'abc'$"):
        size_option("abc")
    np.save(tmp_path / "a.npy", np.zeros((3, 4, 5, 6), np.uint8))
    with pytest.raises(UnlabeledError, match=r"samples \(audio imports from files\)$"):
        ul.import_source(tmp_path / "a.npy", tmp_path / "c", modality="audio")


def test_finetune_on_a_collection_without_splits_leaves_out_what_bench_tests_on(tmp_path, cli):
    """Without a split column bench tests on a stratified 20% (seed 0), and finetune drew its
    labels from every sample: another draw than bench's, holding samples bench then tested on."""
    from unlabeled.bench.tasks import make_task

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    np.save(tmp_path / "x.npy", (rng.normal(size=(100, 30)) + y[:, None]).astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    col = ul.import_source(tmp_path / "x.npy", tmp_path / "col", labels=tmp_path / "y.npy").collection
    assert col.splits is None
    code, lines = cli("finetune", "--task", col.path, "--fraction", "0.5", "--out", tmp_path / "ft", "--epochs", "0.2")
    assert code == 0 and any("bench tests on (20, seed 0) are left out" in line for line in lines), lines
    trained = col.positions(np.array((tmp_path / "ft" / "training-ids.txt").read_text().split()))
    task = make_task(col)
    assert len(trained) == 40 and set(trained) <= set(task.train) and not set(trained) & set(task.test)
