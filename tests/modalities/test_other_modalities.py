"""Series, audio and volume modalities: shapes, normalisation, padding, determinism."""

import numpy as np
import pytest
import torch

from unlabeled.modalities import AudioModality, SeriesModality, VolumeModality, fit_modality, modality_from_state
from unlabeled.modalities.audio import mel_filterbank
from unlabeled.modalities.series import crop_stretch, valid_lengths


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_series_fit_prepare_normalize(gunpoint):
    mod = fit_modality(gunpoint, gunpoint.indices("train"))
    assert isinstance(mod, SeriesModality) and mod.sample_shape == (1, 150)
    x = mod.prepare(gunpoint.get(gunpoint.indices("train")))
    assert x.shape == (50, *mod.input_shape) and mod.input_shape[2] % mod.patch_len == 0
    z = torch.nan_to_num(mod.normalize(x), nan=0.0)
    valid = ~torch.isnan(x)
    assert abs(z[valid].mean().item()) < 1e-4 and z[valid].std().item() == pytest.approx(1.0, abs=1e-3)
    assert modality_from_state(mod.state()).state() == mod.state()


def test_series_augment_keeps_padding_and_is_seeded():
    mod = SeriesModality((3, 50), [0.0] * 3, [1.0] * 3, patch_len=10)
    raw = np.random.default_rng(0).normal(size=(4, 3, 50)).astype(np.float32)
    raw[2, :, 30:] = np.nan
    x = mod.prepare(raw)
    a, b, c = mod.augment(x, _g(1)), mod.augment(x, _g(1)), mod.augment(x, _g(2))
    a0, b0, c0 = (torch.nan_to_num(v) for v in (a, b, c))
    assert torch.equal(a0, b0) and not torch.equal(a0, c0)
    assert torch.equal(torch.isnan(a), torch.isnan(x))  # padding stays exactly where it was
    assert valid_lengths(a).tolist() == [50, 50, 30, 50]


def test_crop_stretch_of_the_whole_series_is_identity():
    x = torch.randn(2, 1, 2, 20)
    x[1, ..., 12:] = float("nan")
    out = crop_stretch(x, valid_lengths(x), torch.ones(2), _g())
    torch.testing.assert_close(torch.nan_to_num(out), torch.nan_to_num(x))


def test_mel_filterbank_covers_the_spectrum():
    fb = mel_filterbank(16000, 512, 40)
    assert fb.shape == (257, 40) and (fb >= 0).all()
    assert (fb.sum(0) > 0).all()  # no empty band
    assert fb.argmax(0).diff().ge(0).all()  # bands rise in frequency


def test_audio_logmel_on_device(keywords):
    mod = fit_modality(keywords, keywords.indices("train"))
    assert isinstance(mod, AudioModality) and mod.sample_rate == 16000
    x = mod.prepare(keywords.get(keywords.indices()[:8]))
    assert x.shape == (8, *mod.input_shape) and mod.input_shape[1] == 64
    assert mod.input_shape[2] % mod.patch[1] == 0 and torch.isfinite(x).all()
    z = mod.normalize(x)
    assert abs(z.mean().item()) < 0.5
    a, b = mod.augment(x, _g(3)), mod.augment(x, _g(3))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    assert modality_from_state(mod.state()).state() == mod.state()


def test_a_tone_lands_in_the_right_mel_band():
    rate, f = 16000, 1000.0
    t = np.arange(rate) / rate
    mod = AudioModality((1, rate), [0.0], [1.0], sample_rate=rate, n_mels=40)
    spec = mod.prepare(np.sin(2 * np.pi * f * t).astype(np.float32)[None, None])[0, 0, :40]
    band = int(spec.mean(1).argmax())
    centres = mel_filterbank(rate, mod.n_fft, 40).argmax(0) * rate / mod.n_fft
    assert abs(centres[band].item() - f) < 150


def test_a_recording_shorter_than_the_stft_edge_still_makes_a_spectrogram():
    """``import --seconds 0.0001`` kept 2 samples a recording; the STFT's reflected edge needs
    more than half a window, and pretrain and embed ended in PyTorch's traceback."""
    mod = AudioModality((1, 2), [0.0], [1.0], sample_rate=16000, n_mels=40)
    spec = mod.prepare(np.ones((3, 1, 2), np.float32))
    assert spec.shape == (3, *mod.input_shape) and torch.isfinite(spec).all()


def test_volume_augment():
    from tests.conftest import digit_volumes

    vols, _ = digit_volumes(6)
    mod = VolumeModality((1, 16, 16, 16), [float(vols.mean())], [float(vols.std())])
    x = mod.prepare(vols[:, None])
    assert mod.patch == (4, 4, 4) and x.shape == (6, 1, 16, 16, 16)
    a, b = mod.augment(x, _g(5)), mod.augment(x, _g(5))
    assert torch.equal(a, b) and a.shape == x.shape
    flip = VolumeModality(
        (1, 16, 16, 16),
        [0.0],
        [1.0],
        augment={"crop_scale": (1.0, 1.0), "flip_p": 1.0, "intensity_p": 0.0, "noise_p": 0.0},
    )
    torch.testing.assert_close(flip.augment(x, _g()), x.flip(2, 3, 4), atol=1e-5, rtol=1e-5)


def test_a_word_for_an_augmentation_number_is_named():
    """``--augment noise_p=abc`` was "'<=' not supported between instances of 'int' and 'str'"."""
    from unlabeled import UnlabeledError

    mod = AudioModality((1, 16000), [0.0], [1.0], sample_rate=16000, n_mels=40)
    name = next(k for k, v in vars(mod.aug).items() if isinstance(v, float))
    with pytest.raises(UnlabeledError, match=f"--augment {name} takes a number"):
        mod.augmentation_with({name: "abc"})


def test_silent_recordings_are_not_scaled_up_a_million_times(tmp_path):
    """Every log-mel value of silence is log(LOG_EPS): the std was floored at 1e-6, so a gain
    augmentation made inputs of about a million (an MAE loss in the thousands)."""
    import soundfile as sf

    import unlabeled as ul

    root = tmp_path / "silence"
    root.mkdir()
    for i in range(4):
        sf.write(root / f"s{i}.wav", np.zeros(8000, np.float32), 16000)
    col = ul.import_source(root, tmp_path / "col").collection
    mod = AudioModality.fit(col)
    assert mod.std == [1.0]
    x = mod.prepare(col.get(np.arange(4)))
    assert mod.normalize(mod.augment(x, _g(0))).abs().max() < 100


def test_a_gap_inside_a_series_stays_a_gap_and_its_last_steps_are_kept():
    """A series with a missing step inside was counted shorter (its last real steps cropped as
    padding), and its gap was filled with a raw 0 (minus the mean over the std after scaling,
    -34.8 here) smeared into its neighbours."""
    from unlabeled.modalities.series import resample_valid

    raw = (100 + np.arange(10, dtype=np.float32))[None, None].copy()
    raw[0, 0, 3] = np.nan
    mod = SeriesModality((1, 10), [104.5], [3.0], patch_len=2)
    x = mod.prepare(raw)
    assert valid_lengths(x).tolist() == [10]
    same = crop_stretch(x, valid_lengths(x), torch.ones(1), _g(), fill=torch.full((1, 1, 1, 1), 104.5))
    assert torch.equal(torch.isnan(same), torch.isnan(x))  # the gap stays where it was, step 9 is kept
    assert same[0, 0, 0, 9] == 109
    for seed in range(5):  # whatever the window: values within the series' range, never a raw 0
        out = mod.augment(x, _g(seed), light=True)
        real = out[~torch.isnan(out)]
        assert real.min() >= 100 - 1e-3 and real.max() <= 109 + 1e-3
    two = np.stack([raw[0], raw[0]])
    two[1, 0, :] = 100 + np.arange(10)
    r = resample_valid(two, 20, np.array([104.5], np.float32))
    assert np.isnan(r[0, 0]).sum() in (1, 2) and not np.isnan(r[1]).any()
    assert np.nanmin(r[0]) >= 100 - 1e-3


def test_low_sample_rates_leave_no_mel_band_empty_and_padding_is_out_of_the_statistics(tmp_path):
    """At 1 kHz, 33 of 64 mel bands held no frequency bin (a constant log 1e-6, half of every
    patch); the fit counted the frames padded to the patch grid in its mean and std."""
    from unlabeled.data.collection import CollectionWriter

    low = AudioModality((1, 1000), [0.0], [1.0], sample_rate=1000)
    assert (mel_filterbank(1000, low.n_fft, low.n_mels).sum(0) > 0).all()
    assert AudioModality((1, 16000), [0.0], [1.0]).n_fft == 512  # the usual rate as before
    noise = np.random.default_rng(0).normal(0, 0.05, (16, 1, 16000)).astype(np.float32)
    w = CollectionWriter(tmp_path / "a", "audio", (1, 16000), "float32", extra_meta={"sample_rate": 16000})
    w.add(noise, [str(i) for i in range(16)])
    mod = AudioModality.fit(w.close())
    spec = mod.prepare(noise)[..., : mod.n_mels, : mod.frames].double()
    assert mod.input_shape[2] > mod.frames  # padded to the grid: the padding is out of the fit
    assert mod.mean[0] == pytest.approx(spec.mean().item(), rel=1e-6)


def test_a_constant_volume_channel_stays_near_zero_under_augmentation(tmp_path):
    """std 0 was floored at 1e-6: the rounding of one interpolation made inputs of 23, and the
    intensity augmentation (a factor of the raw values) 1e7."""
    from unlabeled.data.collection import CollectionWriter

    w = CollectionWriter(tmp_path / "v", "volume", (1, 8, 8, 8), "float32")
    w.add(np.full((4, 1, 8, 8, 8), 100.0, np.float32), list("abcd"))
    mod = VolumeModality.fit(w.close())
    x = torch.full((4, 1, 8, 8, 8), 100.0)
    for seed in range(3):
        assert mod.normalize(mod.augment(x, _g(seed))).abs().max() < 1.0
