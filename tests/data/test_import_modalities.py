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
    assert len(report.collection) == 19 and report.bad == [(f"{tmp_path / 'wide.csv'} row 5", "non-numeric values")]
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
