"""Importers for series (UCR/UEA, tables, per-recording files), audio, volumes and multi-band
TIFF: modality inference, variable lengths, and bad files reported while the rest import."""

import numpy as np
import pytest

from unlabeled import UnlabeledError, import_source
from unlabeled.data.formats import ucr_names


def test_ucr_sets_import_with_their_split():
    assert {"GunPoint", "BasicMotions", "JapaneseVowels"} <= set(ucr_names())


def test_ucr_gunpoint(gunpoint):
    assert gunpoint.modality == "series" and gunpoint.sample_shape == (1, 150)
    assert len(gunpoint.indices("train")) == 50 and len(gunpoint.indices("test")) == 150
    assert gunpoint.classes == ["1", "2"]


def test_ucr_variable_length_multivariate(tmp_path):
    col = import_source("ucr:JapaneseVowels", tmp_path / "jv").collection
    x = col.get(col.indices())
    assert col.sample_shape[0] == 12 and len(col.classes) == 9
    lengths = (~np.isnan(x).all(1)).sum(1)
    assert lengths.min() < lengths.max() == col.sample_shape[1]  # shorter series are NaN-padded at the end


def test_unknown_ucr_name(tmp_path):
    with pytest.raises(UnlabeledError, match="bundled"):
        import_source("ucr:NoSuchSet", tmp_path / "x")


def test_wide_and_long_tables_report_bad_rows(tmp_path, gunpoint):
    import pandas as pd

    x, y = gunpoint.get(gunpoint.indices()[:20])[:, 0], gunpoint.labels[:20]
    wide = pd.DataFrame(x, columns=[f"t{i}" for i in range(150)])
    wide.insert(0, "label", y)
    wide = wide.astype(object)
    wide.iloc[3, 5] = "oops"
    wide.to_csv(tmp_path / "wide.csv", index=False)
    report = import_source(tmp_path / "wide.csv", tmp_path / "w")
    assert report.modality == "series" and "(inferred)" in report.summary()
    assert len(report.collection) == 19 and report.bad == [(f"{tmp_path / 'wide.csv'} line 5", "non-numeric values")]
    np.testing.assert_allclose(report.collection.get([0])[0, 0], x[0], rtol=1e-6)

    rows = []
    for i in range(6):
        n = 30 + 5 * i  # variable lengths
        for t in range(n):
            rows.append({"id": f"s{i}", "time": t, "ax": np.sin(t / 3 + i), "ay": float(t), "label": i % 2})
    rows.append({"id": "s_bad", "time": 0, "ax": np.inf, "ay": 1.0, "label": 0})
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_parquet(tmp_path / "long.parquet")  # shuffled rows
    report = import_source(tmp_path / "long.parquet", tmp_path / "l")
    col = report.collection
    assert col.sample_shape == (2, 55) and len(col) == 6 and report.bad[0][0].endswith("id=s_bad")
    first = col.get([col.ids.tolist().index("s1")])[0]
    np.testing.assert_allclose(first[1, :35], np.arange(35))  # time order restored
    assert np.isnan(first[:, 35:]).all()


def test_folder_of_recordings(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("walk", "run"):
        (tmp_path / "rec" / label).mkdir(parents=True)
        for i in range(3):
            rec = rng.normal(size=(40 + 10 * i, 3))  # time steps x channels, lengths vary
            np.savetxt(tmp_path / "rec" / label / f"{i}.csv", rec, delimiter=",", header="x,y,z", comments="")
    (tmp_path / "rec" / "run" / "broken.csv").write_text("x,y,z\n1,2,oops\n")
    report = import_source(tmp_path / "rec", tmp_path / "c")
    assert report.modality == "series" and report.collection.sample_shape == (3, 60)
    assert len(report.collection) == 6 and "non-numeric" in report.bad[0][1]


def test_audio_folder_with_a_corrupt_file(keywords_wav, tmp_path):
    import shutil

    src = tmp_path / "kw"
    shutil.copytree(keywords_wav, src)
    (src / "train" / "yes" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    report = import_source(src, tmp_path / "col", sample_rate=8000, seconds=0.5)
    col = report.collection
    assert report.modality == "audio" and col.meta["sample_rate"] == 8000 and col.sample_shape == (1, 4000)
    assert [p.split("/")[-1] for p, _ in report.bad] == ["corrupt.wav"]
    assert len(col) == 60 and len(col.classes) == 10 and set(col.splits) == {"train", "test"}
    assert np.abs(col.get(col.indices()[:5])).max() > 0.01  # real speech, not silence


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT", "DOUBLE"])
def test_a_long_recording_is_decoded_only_as_far_as_the_crop_and_reads_as_the_whole_file_did(tmp_path, subtype):
    """read_audio decoded a whole file in float64 before cropping it (an hour of 48 kHz stereo:
    2.8 GB a file, in a pool of threads); now it decodes the kept frames and the resampling
    filter's reach, and gives what resampling the whole file and cropping it gives."""
    import soundfile as sf
    from scipy.signal import resample_poly

    from unlabeled.data.formats import read_audio

    rng = np.random.default_rng(0)
    sound = (0.3 * rng.standard_normal((22050 * 20, 2))).clip(-1, 1)  # 20 s of stereo at 22.05 kHz
    sf.write(tmp_path / "long.wav", sound, 22050, subtype=subtype)
    whole, _ = sf.read(tmp_path / "long.wav", dtype="float64")
    expected = resample_poly(whole.mean(axis=1), 320, 441)[:8000]  # 22,050 -> 16,000 Hz, 0.5 s
    got = read_audio(tmp_path / "long.wav", 16000, 8000)
    assert got.shape == (1, 8000) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-6)


def test_keywords_default_duration(keywords):
    assert keywords.modality == "audio" and keywords.sample_shape[1] <= 16000 * 10
    assert keywords.meta["sample_rate"] == 16000


def test_nifti_volumes_resampled_and_bad_reported(tmp_path):
    import nibabel as nib

    from tests.conftest import digit_volumes

    vols, y = digit_volumes(8)
    for i, (v, label) in enumerate(zip(vols, y, strict=True)):
        (tmp_path / "scans" / f"d{label}").mkdir(parents=True, exist_ok=True)
        v = v if i else np.repeat(v, 2, axis=0)  # one scan at another resolution
        nib.save(nib.Nifti1Image(v, np.eye(4)), tmp_path / "scans" / f"d{label}" / f"{i}.nii.gz")
    (tmp_path / "scans" / "bad.nii.gz").write_bytes(b"\x1f\x8b not gzip")
    report = import_source(tmp_path / "scans", tmp_path / "vol")
    col = report.collection
    assert report.modality == "volume" and col.sample_shape == (1, 16, 16, 16) and len(col) == 8
    assert report.bad[0][0].endswith("bad.nii.gz")
    np.testing.assert_allclose(col.get([col.ids.tolist().index(f"d{y[1]}/1.nii.gz")])[0, 0], vols[1], atol=1e-6)
    assert any("resampled" in n for n in report.notes) or col.sample_shape == (1, 16, 16, 16)


def test_multiband_tiff(tmp_path):
    import tifffile

    rng = np.random.default_rng(0)
    (tmp_path / "tiles").mkdir()
    for i in range(4):
        tifffile.imwrite(tmp_path / "tiles" / f"{i}.tif", rng.integers(0, 10000, (6, 16, 16), dtype=np.uint16))
    tifffile.imwrite(
        tmp_path / "tiles" / "3band.tif", rng.integers(0, 10000, (3, 16, 16), dtype=np.uint16), photometric="minisblack"
    )
    report = import_source(tmp_path / "tiles", tmp_path / "s2")
    col = report.collection
    assert report.modality == "image" and col.sample_shape == (6, 16, 16) and len(col) == 4
    assert report.bad[0][0].endswith("3band.tif") and "bands" in report.bad[0][1]


def test_mixed_folder_needs_a_modality(tmp_path, keywords_wav):
    import shutil

    shutil.copytree(keywords_wav / "test", tmp_path / "mix")
    np.savetxt(tmp_path / "mix" / "s.csv", np.zeros((5, 2)), delimiter=",")
    with pytest.raises(UnlabeledError, match="--modality"):
        import_source(tmp_path / "mix", tmp_path / "out")
    assert import_source(tmp_path / "mix", tmp_path / "out", modality="audio").modality == "audio"


def test_npy_stacks_by_shape(tmp_path):
    np.save(tmp_path / "series.npy", np.random.default_rng(0).normal(size=(10, 64)).astype(np.float32))
    assert import_source(tmp_path / "series.npy", tmp_path / "s").collection.sample_shape == (1, 64)
    np.save(tmp_path / "vol.npy", np.zeros((3, 8, 8, 8), np.float32))
    vol = import_source(tmp_path / "vol.npy", tmp_path / "v", modality="volume").collection
    assert vol.sample_shape == (1, 8, 8, 8)
    with pytest.raises(UnlabeledError, match="not a stack of series"):
        import_source(tmp_path / "vol.npy", tmp_path / "x", modality="series")


def test_a_wide_csv_names_rows_by_line_and_ids_follow_the_file_past_a_skipped_row(tmp_path):
    """A row with too many fields is left out: the rows after it kept the ids and the line
    numbers of the rows before them shifted by one (id 000007 held line 10's data)."""
    rows = ["label," + ",".join(f"t{i}" for i in range(20))]
    for r in range(12):
        rows.append(f"{r % 2}," + ",".join(str(r + i / 100) for i in range(20)))
    rows[7] = rows[7] + ",1,2"  # data row 6: two fields too many
    rows[8] = "," * 20  # data row 7: every value missing
    (tmp_path / "wide.csv").write_text("\n".join(rows) + "\n")
    report = import_source(tmp_path / "wide.csv", tmp_path / "w")
    bad = dict(report.bad)
    assert f"{tmp_path / 'wide.csv'} line 8" in bad and "23 fields" in bad[f"{tmp_path / 'wide.csv'} line 8"]
    assert f"{tmp_path / 'wide.csv'} line 9" in bad, bad
    col = report.collection
    assert list(col.ids) == [f"{r:06d}" for r in range(12) if r not in (6, 7)]
    assert col.get([list(col.ids).index("000008")])[0, 0, 0] == pytest.approx(8.0)


def test_a_column_of_words_beside_the_readings_is_left_out_and_said(tmp_path):
    lines = ["id,time,ch1,ch2,note,label"]
    for s in range(6):
        lines += [f"s{s},{t},{s + t / 10},{t},hello,{'ab'[s % 2]}" for t in range(10)]
    (tmp_path / "long.csv").write_text("\n".join(lines) + "\n")
    report = import_source(tmp_path / "long.csv", tmp_path / "l")
    assert len(report.collection) == 6 and report.collection.sample_shape == (2, 10) and not report.bad
    assert any("note" in n and "no numbers" in n for n in report.notes), report.notes


def test_a_bad_case_of_a_ts_file_is_reported_by_line_and_the_others_load(tmp_path):
    """aeon refuses a whole file for one case; a case is now reported by its line, and a label
    that @classLabel does not declare is a bad case, not a new class."""
    head = "@problemName x\n@timeStamps false\n@univariate true\n@classLabel true a b\n@data\n"
    cases = ["1,2,3,4:a", "2,3,4,5:b", "x,y,z:b", "3,4,5,6:c", "4,5,6,7:a"]
    (tmp_path / "s.ts").write_text(head + "\n".join(cases) + "\n")
    report = import_source(tmp_path / "s.ts", tmp_path / "c")
    bad = dict(report.bad)
    assert set(bad) == {f"{tmp_path / 's.ts'} line 8", f"{tmp_path / 's.ts'} line 9"}, bad
    assert "not one of @classLabel's (a, b)" in bad[f"{tmp_path / 's.ts'} line 9"]
    col = report.collection
    assert list(col.ids) == ["000000", "000001", "000004"] and col.classes == ["a", "b"]
    np.testing.assert_allclose(col.get([2])[0, 0], [4, 5, 6, 7])


def test_a_wide_table_with_a_repeated_or_empty_id_stays_wide_and_cells_are_read_as_written(tmp_path):
    """One repeated id made the whole wide table long (6 samples of shape 1x3 read as 5 of
    3x1); a row without an id vanished in the long reader's groupby; pandas' numbers merged
    labels 01 and 1 and ids 007 and 7, and made 1 and 2 the classes 1.0 and 2.0 where a cell
    was empty."""
    lines = ["id,label,t0,t1,t2"] + [f"s{i},{i % 2 + 1},{i},{i + 1},{i + 2}" for i in range(6)]
    lines += ["s0,1,9,9,9", ",2,7,7,7", "007,01,1,1,1", "7,,2,2,2"]
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    report = import_source(tmp_path / "w.csv", tmp_path / "w")
    col = report.collection
    assert col.sample_shape == (1, 3) and col.ids.tolist() == [f"s{i}" for i in range(6)] + ["007", "7"]
    assert dict(report.bad) == {
        f"{tmp_path / 'w.csv'} line 8": "id s0 again (first on line 2): one row a sample",
        f"{tmp_path / 'w.csv'} line 9": "no id (its id cell is empty)",
    }
    assert col.classes == ["1", "2", "01"] and col.labels.tolist() == [0, 1, 0, 1, 0, 1, 2, -1]
    long = ["id,time,v"] + [f"a,{t},{t}" for t in range(3)] + [f",{t},{t}" for t in range(3)]
    (tmp_path / "l.csv").write_text("\n".join(long) + "\n")
    report = import_source(tmp_path / "l.csv", tmp_path / "l")
    assert len(report.collection) == 1 and report.bad == [
        (str(tmp_path / "l.csv"), "3 row(s) without an id: not imported")
    ]


def test_recordings_without_a_header_row_keep_their_first_time_step(tmp_path):
    """A recording's CSV with no header had its first row read as column names: one time step
    lost from every file. The 0, 1, 2 names pandas writes for unnamed columns stay a header."""
    import pandas as pd

    rec = tmp_path / "rec"
    rec.mkdir()
    data = np.arange(10, dtype=np.float64).reshape(5, 2) + 1
    for i in range(3):
        np.savetxt(rec / f"{i}.csv", data + i, delimiter=",")
    pd.DataFrame(data).to_csv(rec / "3.csv", index=False)  # header 0,1
    col = import_source(rec, tmp_path / "c").collection
    assert col.sample_shape == (2, 5)
    got = col.get(col.positions(["0.csv", "3.csv"]))
    np.testing.assert_allclose(got[0], data.T)
    np.testing.assert_allclose(got[1], data.T)


def test_a_ts_case_of_another_number_of_dimensions_is_a_bad_line(tmp_path):
    """Stacked with the others, one case of one dimension among cases of two failed the file."""
    head = "@problemName x\n@timeStamps false\n@univariate false\n@dimensions 2\n@classLabel true a b\n@data\n"
    cases = ["1,2,3:4,5,6:a", "2,3,4:5,6,7:b", "1,2,3:b", "3,4,5:6,7,8:a"]
    (tmp_path / "m.ts").write_text(head + "\n".join(cases) + "\n")
    report = import_source(tmp_path / "m.ts", tmp_path / "c")
    assert report.bad == [(f"{tmp_path / 'm.ts'} line 9", "1 dimension(s); the file's other cases have 2")]
    assert report.collection.sample_shape == (2, 3) and list(report.collection.ids) == ["000000", "000001", "000003"]
