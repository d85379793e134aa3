import math

import pytest
import torch

from unlabeled import UnlabeledError
from unlabeled.modalities.image import ImageModality
from unlabeled.models import build_encoder
from unlabeled.objectives import OBJECTIVES, build_objective
from unlabeled.objectives.simclr import nt_xent


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


def test_registry():
    assert "simclr" in OBJECTIVES
    with pytest.raises(UnlabeledError, match="simclr"):
        build_objective("nope", None, None)
