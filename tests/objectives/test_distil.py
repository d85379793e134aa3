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


def test_llkd_keeps_samples_the_teacher_is_sure_of_and_the_student_is_not():
    from unlabeled.objectives.distil import LLKDSelection

    sel = LLKDSelection(classes=3, momentum=0.9)
    targets = torch.tensor([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.1, 0.1, 0.8]])
    unsure, sure = torch.zeros(3), torch.tensor([8.0, 0.0, 0.0])
    student = torch.stack([unsure, sure, unsure, unsure])
    w = sel(targets, student)
    # first batch: the teacher's thresholds are its own means (confidence 0.75; class 0's mean
    # 0.733, class 2's 0.8 is the largest); the student's is the batch's mean of [1, ~0, 1, 1]
    c = targets.max(1).values
    u = torch.tensor([1.0, float(-(student[1].softmax(0) * student[1].log_softmax(0)).sum() / math.log(3)), 1.0, 1.0])
    assert torch.isclose(sel.confidence, c.mean())
    keep = torch.tensor([True, False, False, True])  # sure teacher + unsure student; 1: student sure; 2: teacher unsure
    assert torch.equal(w > 0, keep)
    torch.testing.assert_close(w[keep], (c * u)[keep])
    # later batches move the averages by 1 - momentum
    before = sel.confidence.clone()
    sel(targets[:1], student[:1])
    torch.testing.assert_close(sel.confidence, 0.9 * before + 0.1 * c[0])
    assert set(sel.state_dict()) == {"confidence", "class_confidence", "batches"}


def test_a_weighted_distillation_loss_is_the_weighted_mean_of_the_per_sample_losses():
    logits, targets = torch.randn(5, 4), torch.rand(5, 4).softmax(1)
    w = torch.tensor([0.0, 1.0, 0.5, 0.0, 2.0])
    per = -(targets * logits.log_softmax(1)).sum(1)
    torch.testing.assert_close(distillation_loss(logits, targets, 1.0, w), (per * w).sum() / w.sum())
    zero = distillation_loss(logits.requires_grad_(), targets, 1.0, torch.zeros(5))
    assert zero.item() == 0 and zero.requires_grad  # nothing kept: no step, no error
