import math

import numpy as np
import pytest
import torch

from unlabeled import UnlabeledError
from unlabeled.modalities.image import ImageModality
from unlabeled.modalities.series import SeriesModality
from unlabeled.models import build_encoder
from unlabeled.objectives import build_objective
from unlabeled.objectives.ts2vec import contrast, crop, hierarchical_loss, window
from unlabeled.train.pretrain import default_encoder


def test_contrast_matches_the_formula():
    """Each of the 2N rows picks its partner among the 2N - 1 others, by raw dot product."""
    torch.manual_seed(0)
    z1, z2 = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    total = 0.0
    for g in range(2):
        z = torch.cat([z1[g], z2[g]])
        sim = z @ z.T
        for i in range(6):
            pos = (i + 3) % 6
            denom = sum(math.exp(sim[i, k]) for k in range(6) if k != i)
            total += -math.log(math.exp(sim[i, pos]) / denom)
    assert contrast(z1, z2).item() == pytest.approx(total / 12, rel=1e-5)


def test_hierarchical_loss_rewards_agreeing_steps():
    torch.manual_seed(0)
    z = 3 * torch.randn(8, 16, 32)
    agree = hierarchical_loss(z, z + 0.01 * torch.randn_like(z))
    unrelated = hierarchical_loss(z, 3 * torch.randn(8, 16, 32))
    assert agree < 0.5 * unrelated
    # alpha=1: instance contrast only; alpha=0: temporal only; the default mixes them
    assert hierarchical_loss(z, z, alpha=1.0) != hierarchical_loss(z, z, alpha=0.0)


def test_crop_takes_each_series_from_its_own_start():
    x = torch.arange(2 * 3 * 10, dtype=torch.float32).view(2, 1, 3, 10)
    out = crop(x, torch.tensor([0, 6]), 4)
    assert torch.equal(out[0], x[0, ..., 0:4]) and torch.equal(out[1], x[1, ..., 6:10])


def test_window_stays_inside_each_series_valid_part():
    t, length = 40, 8
    x = torch.arange(t, dtype=torch.float32).repeat(50, 1).view(50, 1, 1, t)
    x[::2, ..., 20:] = float("nan")  # every other series has 20 valid steps
    out = window(x, length, torch.Generator().manual_seed(0))
    assert out.shape == (50, 1, 1, length)
    starts = out[:, 0, 0, 0]
    assert torch.equal(out[:, 0, 0], starts[:, None] + torch.arange(length))  # contiguous steps
    assert (starts[::2] <= 20 - length).all() and (starts[1::2] <= t - length).all() and (starts >= 0).all()
    assert starts[1::2].max() > 20 - length  # the longer series use their whole valid part
    assert not torch.isnan(out).any()
    g = torch.Generator().manual_seed(0)
    short = x[..., :length]
    assert window(short, length, g) is short  # no window, and no draw from the generator
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(0).get_state())


def test_ts2vec_contrasts_at_most_max_length_steps_of_a_long_series():
    """A step's cost is bounded: the encoder sees crops of the window, never the whole series."""
    mod = SeriesModality((1, 300), [0.0], [1.0])
    obj = build_objective("ts2vec", build_encoder("tcn", "tiny", mod.input_shape), mod, max_length=32)
    seen = []
    steps = obj.encoder.steps
    obj.encoder.steps = lambda x, mask=None: seen.append(x.shape[-1]) or steps(x, mask)
    x = mod.prepare(np.random.default_rng(0).normal(size=(4, 1, 300)).astype(np.float32))
    for seed in range(5):
        loss, _ = obj.loss(x, torch.Generator().manual_seed(seed))
        assert torch.isfinite(loss)
    assert max(seen) <= 32 and obj.hparams()["max_length"] == 32
    with pytest.raises(UnlabeledError, match="max_length must be at least min_crop"):
        build_objective("ts2vec", build_encoder("tcn", "tiny", mod.input_shape), mod, max_length=2)


def test_ts2vec_step_trains_the_tcn_and_needs_it():
    mod = SeriesModality((2, 60), [0.0, 0.0], [1.0, 1.0])
    obj = build_objective("ts2vec", build_encoder("tcn", "tiny", mod.input_shape), mod, alpha=0.3)
    x = mod.prepare(np.random.default_rng(0).normal(size=(6, 2, 60)).astype(np.float32))
    x[2, ..., 45:] = float("nan")  # a shorter series in the batch
    loss, logs = obj.loss(x, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and set(logs) == {"loss"} and obj.hparams()["alpha"] == 0.3
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in obj.parameters())
    again, _ = obj.loss(x, torch.Generator().manual_seed(0))
    assert again.item() == pytest.approx(loss.item())  # every draw from the generator
    with pytest.raises(UnlabeledError, match="tcn"):
        build_objective("ts2vec", build_encoder("transformer", "tiny", mod.input_shape), mod)
    image = ImageModality((1, 28, 28), [0.5], [0.25])  # would fit the tcn's shape, rows as channels
    with pytest.raises(UnlabeledError, match="series or audio"):
        build_objective("ts2vec", build_encoder("tcn", "tiny", (1, 28, 28)), image)


def test_default_encoders():
    assert default_encoder("series", "ts2vec") == default_encoder("series", "simclr") == "tcn"
    assert default_encoder("series", "mae") == default_encoder("audio", "simclr") == "transformer"
    assert default_encoder("image", "simclr") == "cnn" and default_encoder("audio", "ts2vec") == "tcn"
