"""Audio: waveforms stored at one sample rate, turned into log-mel spectrograms in torch on the
training device, and augmented as spectrograms.

A sample is stored as a (1, S) float32 waveform (mono, resampled on import, cropped or
zero-padded to a common duration). ``prepare`` computes the log-mel spectrogram, (B, 1,
n_mels, frames), with ``torch.stft`` and a mel filterbank built here (the HTK mel scale;
torchaudio is not a dependency because it is tied to one torch build). The transformer patches
the spectrogram like an image (AST, Gong et al. 2021; SSAMBA and OPERA pretrain on the same
input).

Augmentations on the spectrogram: a random time crop stretched back to full length, gain
(an offset in log power), SpecAugment's frequency and time masks (Park et al. 2019) and
Gaussian noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unlabeled._console import UnlabeledError
from unlabeled.data.collection import Collection
from unlabeled.modalities.base import Modality, chance, check_augment, sample_positions, uniform

LOG_EPS = 1e-6


@dataclass
class AudioAugment:
    crop_scale: tuple[float, float] = (0.7, 1.0)  # fraction of the frames kept by the time crop
    gain_db: float = 6.0  # +- gain, in decibels
    freq_mask_p: float = 0.8
    freq_mask: float = 0.15  # widest frequency mask, as a fraction of the mel bands
    time_mask_p: float = 0.8
    time_mask: float = 0.15  # widest time mask, as a fraction of the frames
    noise_p: float = 0.5
    noise_std: float = 0.2  # in units of the log-mel std

    def __post_init__(self) -> None:
        check_augment(self, ("freq_mask_p", "freq_mask", "time_mask_p", "time_mask", "noise_p"))


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) triangular filters, evenly spaced on the HTK mel scale."""
    fmax = fmax or sample_rate / 2

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    lower = (freqs[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])[None]
    upper = (edges[None, 2:] - freqs[:, None]) / (edges[2:] - edges[1:-1])[None]
    return torch.from_numpy(np.maximum(0, np.minimum(lower, upper))).float()


class AudioModality(Modality):
    """Mono waveforms stored as (1, S) float arrays at ``sample_rate``."""

    name = "audio"
    Augment = AudioAugment

    def __init__(
        self,
        sample_shape: tuple[int, ...],
        mean: list[float],
        std: list[float],
        sample_rate: int = 16000,
        n_mels: int = 64,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        augment: AudioAugment | dict[str, Any] | None = None,
    ) -> None:
        if len(sample_shape) != 2 or sample_shape[0] != 1:
            raise ValueError(f"audio samples are mono waveforms (1, samples); got shape {tuple(sample_shape)}")
        super().__init__(sample_shape, mean, std, augment)
        self.sample_rate, self.n_mels, self.win_ms, self.hop_ms = int(sample_rate), int(n_mels), win_ms, hop_ms
        self.win = round(sample_rate * win_ms / 1000)
        self.hop = round(sample_rate * hop_ms / 1000)
        self.n_fft = 2 ** math.ceil(math.log2(self.win))
        # a finer (zero-padded) spectrum where a band would hold no frequency bin: at 1 kHz, 33 of
        # 64 bands were empty, a constant log 1e-6 making half of every patch
        while (mel_filterbank(self.sample_rate, self.n_fft, self.n_mels).sum(0) == 0).any() and self.n_fft < 2**16:
            self.n_fft *= 2
        self.frames = 1 + self.sample_shape[1] // self.hop
        self._mel: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def fit(
        cls, collection: Collection, positions: np.ndarray | None = None, augment: Any = None, max_samples: int = 2000
    ) -> AudioModality:
        """Mean and std of the log-mel values of (up to ``max_samples``) recordings."""
        rate = int(collection.meta.get("sample_rate", 16000))
        mod = cls(collection.sample_shape, [0.0], [1.0], sample_rate=rate, augment=augment)
        pos = sample_positions(collection, positions, max_samples)
        total, sq, n = 0.0, 0.0, 0
        for start in range(0, len(pos), 256):
            # the real bands and frames alone: the padding to the patch grid (log 1e-6 each)
            # pulled the mean down and the std up wherever the recordings' spread was small
            spec = mod.prepare(collection.get(pos[start : start + 256]))[..., : mod.n_mels, : mod.frames].double()
            total, sq, n = total + spec.sum().item(), sq + (spec**2).sum().item(), n + spec.numel()
        mean = total / n
        # the std at least 1 in natural-log units (4.3 dB): recordings of speech or sound spread
        # over several, and silence alone (every value log(LOG_EPS)) would otherwise be divided by
        # 1e-6, so that a gain augmentation made inputs of a million and an MAE loss in thousands
        mod.mean, mod.std = [mean], [max(math.sqrt(max(sq / n - mean**2, 0.0)), 1.0)]
        return mod

    def adapt(self, batch: np.ndarray, source: Modality) -> np.ndarray:
        """Recordings of another duration: cropped or zero-padded to this one (the sample
        rates must agree; import with ``--sample-rate`` to make them)."""
        self._check_source(source)
        if getattr(source, "sample_rate", self.sample_rate) != self.sample_rate:
            raise UnlabeledError(
                f"audio at {source.sample_rate} Hz does not fit an encoder of {self.sample_rate} Hz audio; "
                f"import it with --sample-rate {self.sample_rate}"
            )
        n = self.sample_shape[1]
        x = np.asarray(batch, dtype=np.float32)[:, :, :n]
        return np.pad(x, ((0, 0), (0, 0), (0, n - x.shape[2]))) if x.shape[2] < n else x

    def extra_state(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "n_mels": self.n_mels, "win_ms": self.win_ms, "hop_ms": self.hop_ms}

    @property
    def patch(self) -> tuple[int, ...]:
        """8 mel bands x 8 frames (80 ms) for clips up to ~2.5 s, 8 x 16 beyond."""
        return (min(8, self.n_mels), 8 if self.frames <= 256 else 16)

    @property
    def input_shape(self) -> tuple[int, ...]:
        p = self.patch
        return (1, math.ceil(self.n_mels / p[0]) * p[0], math.ceil(self.frames / p[1]) * p[1])

    def stat_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (1, 1, 1, 1)

    def prepare(self, batch: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """(B, 1, S) waveforms -> (B, 1, mels, frames) log-mel power on ``device``."""
        dev = torch.device(device)
        wave = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(dev).flatten(1)
        if dev not in self._mel:
            self._mel[dev] = (
                torch.hann_window(self.win, device=dev),
                mel_filterbank(self.sample_rate, self.n_fft, self.n_mels).to(dev),
            )
        window, fbank = self._mel[dev]
        if wave.shape[1] <= self.n_fft // 2:  # shorter than STFT's reflected edge: silence after it
            wave = F.pad(wave, (0, self.n_fft // 2 + 1 - wave.shape[1]))
        with torch.autocast(dev.type, enabled=False):
            spec = torch.stft(wave, self.n_fft, self.hop, self.win, window, center=True, return_complex=True)
            power = spec.real**2 + spec.imag**2  # (B, freqs, frames)
            logmel = torch.log(torch.einsum("bft,fm->bmt", power, fbank) + LOG_EPS)
        _, mels, frames = self.input_shape
        logmel = F.pad(logmel, (0, frames - logmel.shape[2], 0, mels - logmel.shape[1]), value=math.log(LOG_EPS))
        return logmel.unsqueeze(1)

    def augment(self, x: torch.Tensor, generator: torch.Generator, light: bool = False) -> torch.Tensor:
        a, g = self.aug, generator
        b, _, m, t = x.shape
        dev = x.device
        scale = uniform(b, *((max(a.crop_scale[0], 0.85), 1.0) if light else a.crop_scale), g, dev)
        shift = (torch.rand(b, generator=g, device=dev) * 2 - 1) * (1 - scale)
        theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1] = scale, shift, 1.0  # crop in time only
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        gain = uniform(b, -a.gain_db, a.gain_db, g, dev) * (math.log(10) / 10)  # dB -> natural log of power
        x = x + gain.view(b, 1, 1, 1)
        if light:
            return x
        fill = self.mean[0]
        for axis, size, p, frac in ((2, m, a.freq_mask_p, a.freq_mask), (3, t, a.time_mask_p, a.time_mask)):
            width = (uniform(b, 0, frac, g, dev) * size).floor()
            start = torch.rand(b, generator=g, device=dev) * (size - width)
            idx = torch.arange(size, device=dev)
            inside = (idx[None] >= start[:, None]) & (idx[None] < (start + width)[:, None])
            inside &= chance(b, p, g, dev)[:, None]
            shape = (b, 1, size, 1) if axis == 2 else (b, 1, 1, size)
            x = torch.where(inside.view(shape), torch.full_like(x, fill), x)
        if a.noise_p > 0:
            noise = a.noise_std * self.std[0] * torch.randn(x.shape, generator=g, device=dev, dtype=x.dtype)
            x = x + chance(b, a.noise_p, g, dev).view(b, 1, 1, 1) * noise
        return x
