"""SimCLRv2's distillation loss, against its formula."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from unlabeled.objectives.distil import distillation_loss, teacher_probs


def test_the_loss_is_the_cross_entropy_of_tempered_distributions():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    tau = 2.0
    p_t = teacher_probs(teacher, tau)
    expected = (
        sum(
            -sum(
                p_t[i, y] * math.log(math.exp(student[i, y] / tau) / sum(math.exp(v / tau) for v in student[i]))
                for y in range(5)
            )
            for i in range(4)
        )
        / 4
    )
    assert torch.allclose(distillation_loss(student, p_t, tau), torch.tensor(float(expected)), atol=1e-5)
    assert torch.allclose(p_t.sum(1), torch.ones(4))


def test_one_hot_targets_give_the_label_loss_and_the_teacher_itself_gives_its_entropy():
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(6, 3, generator=g), torch.tensor([0, 1, 2, 2, 1, 0])
    assert torch.allclose(distillation_loss(logits, F.one_hot(y, 3).float()), F.cross_entropy(logits, y))
    p = teacher_probs(logits)
    entropy = -(p * p.log()).sum(1).mean()
    assert torch.allclose(distillation_loss(logits, p), entropy, atol=1e-6)
    # any other student is further from the teacher: the loss is the entropy plus a KL >= 0
    assert distillation_loss(logits + torch.randn(6, 3, generator=g), p) > entropy
