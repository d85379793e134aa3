import math

import pytest
import torch

from unlabeled import UnlabeledError
from unlabeled.modalities.image import ImageModality
from unlabeled.models import build_encoder
from unlabeled.objectives import OBJECTIVES, build_objective
from unlabeled.objectives.simclr import local_xent, nt_xent


def test_nt_xent_matches_the_formula():
    torch.manual_seed(0)
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    loss, _ = nt_xent(z1, z2, temperature=0.5)
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / 0.5
    total = 0.0
    for i in range(8):
        pos = (i + 4) % 8
        denom = sum(math.exp(sim[i, k]) for k in range(8) if k != i)
        total += -math.log(math.exp(sim[i, pos]) / denom)
    assert loss.item() == pytest.approx(total / 8, rel=1e-5)


def test_nt_xent_rewards_aligned_views():
    torch.manual_seed(0)
    z = torch.randn(32, 16)
    aligned, acc = nt_xent(z, z + 0.01 * torch.randn_like(z), 0.2)
    unrelated, _ = nt_xent(z, torch.randn(32, 16), 0.2)
    assert aligned < unrelated and acc == 1.0


def test_simclr_step_trains_encoder_and_head():
    enc = build_encoder("cnn", "tiny", (1, 16, 16))
    obj = build_objective("simclr", enc, ImageModality((1, 16, 16), [0.5], [0.25]), temperature=0.3)
    loss, logs = obj.loss(torch.rand(8, 1, 16, 16), torch.Generator().manual_seed(0))
    loss.backward()
    assert set(logs) == {"loss", "pos_acc"} and obj.hparams()["temperature"] == 0.3
    assert all(p.grad is not None for p in obj.parameters() if p.requires_grad)


def test_local_xent_matches_the_formula():
    """Each small view (view-major rows) is an anchor among the 2B full views, whose two
    positives are its own sample's full views, the two cross-entropies averaged."""
    torch.manual_seed(0)
    b, views = 3, 2
    z1, z2, zl = torch.randn(b, 8), torch.randn(b, 8), torch.randn(views * b, 8)
    loss = local_xent(zl, z1, z2, temperature=0.5)
    full = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    small = torch.nn.functional.normalize(zl, dim=1)
    total = 0.0
    for i in range(views * b):
        sim = [math.exp(v) for v in (small[i] @ full.T / 0.5).tolist()]
        sample = i % b
        total += -0.5 * (math.log(sim[sample] / sum(sim)) + math.log(sim[sample + b] / sum(sim)))
    assert loss.item() == pytest.approx(total / (views * b), rel=1e-5)


def test_multi_crop_adds_small_views_to_the_loss_and_none_without_it():
    enc = build_encoder("cnn", "tiny", (1, 16, 16))
    mod = ImageModality((1, 16, 16), [0.5], [0.25], augment={"local_views": 3, "local_size": 6})
    small = mod.local_views(torch.rand(5, 1, 16, 16), torch.Generator().manual_seed(0))
    assert len(small) == 3 and all(v.shape == (5, 1, 6, 6) for v in small)
    obj = build_objective("simclr", enc, mod, temperature=0.3)
    x, g = torch.rand(8, 1, 16, 16), torch.Generator().manual_seed(0)
    loss, logs = obj.loss(x, g)
    loss.backward()
    assert "local_loss" in logs and all(p.grad is not None for p in obj.parameters() if p.requires_grad)
    plain = ImageModality((1, 16, 16), [0.5], [0.25])
    assert plain.local_views(x, g) == [] and "local_loss" not in build_objective("simclr", enc, plain).loss(x, g)[1]
    with pytest.raises(ValueError, match="local_views must be 0 to 16"):
        ImageModality((1, 16, 16), [0.5], [0.25], augment={"local_views": 17})


def test_registry():
    assert "simclr" in OBJECTIVES
    with pytest.raises(UnlabeledError, match="simclr"):
        build_objective("nope", None, None)
