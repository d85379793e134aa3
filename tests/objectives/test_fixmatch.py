"""FixMatch's pieces against their definitions: pseudo-labels and their confidence mask, the
weak view as their source, Cutout, the two losses, and the EMA teacher."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.objectives.fixmatch import FixMatch, cutout, pseudo_labels


class _Encoder(nn.Module):
    """A linear encoder without batch norm: its outputs depend on each sample alone."""

    def __init__(self, features: int = 12, dim: int = 6) -> None:
        super().__init__()
        self.dim, self.lin = dim, nn.Linear(features, dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))


class _Views:
    """A modality whose weak view is the sample itself and whose strong view is its negation
    plus 5: the two can never be mistaken for one another."""

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def augment(self, x: torch.Tensor, generator: torch.Generator, light: bool = False) -> torch.Tensor:
        return x.clone() if light else 5 - x

    def weak(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x.clone()


def test_pseudo_labels_are_the_argmax_masked_below_the_threshold():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.3, 0.2, 0.1], [0.0, 0.0, 9.0]])
    labels, mask = pseudo_labels(logits, threshold=0.9)
    assert labels.tolist() == [0, 0, 2]
    probs = logits.softmax(1).max(1).values
    assert mask.tolist() == (probs >= 0.9).tolist() == [True, False, True]
    assert not labels.requires_grad and not mask.requires_grad
    _, none = pseudo_labels(logits, threshold=1.0)
    assert not none.any()


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_pseudo_labels_come_from_the_weak_view_never_the_strong_one(monkeypatch, ema):
    torch.manual_seed(0)
    obj = FixMatch(_Encoder(), _Views(), classes=3, threshold=0.5, ema=ema, cutout=0.0)
    seen = []
    own = obj.pseudo_labels
    monkeypatch.setattr(obj, "pseudo_labels", lambda logits: (seen.append(logits), own(logits))[1])
    x = torch.randn(8, 1, 12)
    y = torch.tensor([0, 1, -1, -1, -1, -1, -1, -1])
    obj.loss(x, torch.Generator().manual_seed(0), y)
    with torch.no_grad():
        on_weak = obj.head(obj.encoder.embed(x[2:]))
        on_strong = obj.head(obj.encoder.embed(5 - x[2:]))
    torch.testing.assert_close(seen[0], on_weak)
    assert not torch.allclose(seen[0], on_strong)


@pytest.mark.parametrize("soft", [0.0, 0.4])
def test_the_loss_is_labelled_cross_entropy_plus_the_masked_pseudo_label_term(soft):
    """FixMatch's hard pseudo-labels (the weak view's argmax), or with ``soft`` UDA's: the
    weak view's probabilities sharpened at that temperature; the mask and the mean alike."""
    torch.manual_seed(0)
    obj = FixMatch(_Encoder(), _Views(), classes=3, threshold=0.0, unlabeled_weight=2.0, cutout=0.0, soft=soft)
    x, y = torch.randn(6, 1, 12), torch.tensor([2, 0, -1, -1, -1, -1])
    loss, logs = obj.loss(x, torch.Generator().manual_seed(0), y)
    with torch.no_grad():
        logits_l = obj.head(obj.encoder.embed(x[:2]))
        weak = obj.head(obj.encoder.embed(x[2:]))
        logp_s = obj.head(obj.encoder.embed(5 - x[2:])).log_softmax(1)
    sup = F.cross_entropy(logits_l, y[:2])
    # threshold 0: every pseudo-label counts
    hard = -logp_s.gather(1, weak.argmax(1, keepdim=True)).mean()
    unsup = -((weak / soft).softmax(1) * logp_s).sum(1).mean() if soft else hard
    torch.testing.assert_close(loss.detach(), sup + 2.0 * unsup)
    assert logs["mask"] == 1.0 and (not soft or not torch.isclose(unsup, hard))
    # a threshold nothing reaches: the unlabelled samples add nothing
    obj.threshold = 1.0
    loss, logs = obj.loss(x, torch.Generator().manual_seed(0), y)
    torch.testing.assert_close(loss.detach(), sup)
    assert logs["mask"] == 0.0 and logs["unsup"] == 0.0


def test_only_confident_samples_get_a_strong_view_and_the_mean_is_over_all(monkeypatch):
    """The strong views of samples below the threshold would add zeros: they are not made or
    run, and the pseudo-label term is still the mean over every unlabelled sample."""
    torch.manual_seed(1)
    obj = FixMatch(_Encoder(), _Views(), classes=3, threshold=0.5, cutout=0.0)
    x, y = torch.randn(12, 1, 12) * 3, torch.tensor([1, 0] + [-1] * 10)
    with torch.no_grad():
        guess = obj.head(obj.encoder.embed(x[2:]))
    targets, confident = pseudo_labels(guess, 0.5)
    assert 0 < confident.sum() < 10  # some above the threshold, some below
    strong = []
    original = obj.views
    monkeypatch.setattr(obj, "views", lambda v, g, s: (strong.append(len(v)) if s else None, original(v, g, s))[1])
    loss, logs = obj.loss(x, torch.Generator().manual_seed(0), y)
    assert strong == [int(confident.sum())]
    with torch.no_grad():
        sup = F.cross_entropy(obj.head(obj.encoder.embed(x[:2])), y[:2])
        per = F.cross_entropy(obj.head(obj.encoder.embed(5 - x[2:])), targets, reduction="none")
    torch.testing.assert_close(loss.detach(), sup + (per * confident).sum() / 10)
    assert logs["mask"] == confident.float().mean()


def test_the_adaptive_threshold_follows_freematchs_moving_averages():
    """FreeMatch's self-adaptive threshold, by hand: both averages start at 1/C, move by
    (1 - m) toward the batch's mean top probability and mean class probabilities, and a
    pseudo-label counts where its probability reaches tau * class_tau[c] / max(class_tau)."""
    obj = FixMatch(_Encoder(), _Views(), classes=3, adaptive=0.5)
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.2, 0.1, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.4]])
    probs = logits.softmax(-1)
    labels, mask = obj.pseudo_labels(logits)
    tau = 0.5 / 3 + 0.5 * probs.max(-1).values.mean()
    class_tau = 0.5 / 3 + 0.5 * probs.mean(0)
    level = tau * class_tau / class_tau.max()
    torch.testing.assert_close(obj.tau, tau)
    torch.testing.assert_close(obj.class_tau, class_tau)
    assert labels.tolist() == [0, 0, 1, 2]
    assert mask.tolist() == (probs.max(-1).values >= level[labels]).tolist()
    assert mask.any() and not mask.all()  # a threshold between the sure and the unsure
    # a second batch moves the averages again, from where the first left them
    obj.pseudo_labels(logits)
    torch.testing.assert_close(obj.tau, 0.5 * tau + 0.5 * probs.max(-1).values.mean())
    # the averages are state: a resumed run thresholds as an uninterrupted one
    assert {"tau", "class_tau"} <= set(obj.state_dict())


def test_soft_pseudo_labels_are_sharpened_after_alignment():
    """With ``soft`` and ``align`` together the samples were chosen by their aligned class but
    trained toward the unaligned prediction: the targets are the aligned probabilities,
    sharpened (ReMixMatch aligns, then sharpens)."""
    torch.manual_seed(0)
    obj = FixMatch(_Encoder(), _Views(), classes=3, threshold=0.0, cutout=0.0, soft=0.5, align=0.5, prior=[4, 1, 1])
    x, y = torch.randn(6, 1, 12), torch.tensor([2, 0, -1, -1, -1, -1])
    loss, _ = obj.loss(x, torch.Generator().manual_seed(0), y)
    with torch.no_grad():
        sup = F.cross_entropy(obj.head(obj.encoder.embed(x[:2])), y[:2])
        probs = obj.head(obj.encoder.embed(x[2:])).softmax(1)
        logp_s = obj.head(obj.encoder.embed(5 - x[2:])).log_softmax(1)
    running = 0.5 / 3 + 0.5 * probs.mean(0)
    aligned = probs * (torch.tensor([4 / 6, 1 / 6, 1 / 6]) / running)
    aligned = aligned / aligned.sum(-1, keepdim=True)
    targets = aligned**2 / (aligned**2).sum(-1, keepdim=True)  # sharpened at temperature 0.5
    torch.testing.assert_close(loss.detach(), sup - (targets * logp_s).sum(1).mean())


def test_distribution_alignment_scales_by_the_prior_over_the_models_moving_mean_prediction():
    """ReMixMatch's alignment, by hand: the running mean prediction starts at 1/C and moves by
    (1 - m) toward the batch's; probabilities are multiplied by prior / running mean and
    renormalised, so a class the model under-predicts wins samples it was unsure of."""
    obj = FixMatch(_Encoder(), _Views(), classes=3, threshold=0.5, align=0.5, prior=[2.0, 1.0, 1.0])
    logits = torch.tensor([[2.0, 1.9, 0.0], [2.0, 0.0, 0.0], [1.5, 1.4, 0.0], [0.0, 0.0, 3.0]])
    probs = logits.softmax(-1)
    labels, mask = obj.pseudo_labels(logits)
    running = 0.5 / 3 + 0.5 * probs.mean(0)
    torch.testing.assert_close(obj.p_model, running)
    aligned = probs * (torch.tensor([0.5, 0.25, 0.25]) / running)
    aligned = aligned / aligned.sum(-1, keepdim=True)
    assert labels.tolist() == aligned.argmax(-1).tolist()
    assert mask.tolist() == (aligned.max(-1).values >= 0.5).tolist()
    # without a prior the target is uniform: class 0, which the model predicts most, loses its
    # first sample (0.49 against 0.44 before, 0.42 against 0.51 aligned) to class 1
    plain = FixMatch(_Encoder(), _Views(), classes=3, threshold=0.5, align=0.5)
    labels, _ = plain.pseudo_labels(logits)
    assert torch.equal(plain.p_target, torch.full((3,), 1 / 3)) and "p_model" in plain.state_dict()
    assert probs[0].argmax() == 0 and labels[0] == 1


@pytest.mark.parametrize("shape", [(4, 2, 40), (4, 1, 10, 20), (4, 1, 8, 8, 8)])
def test_cutout_zeroes_one_box_of_the_given_share_of_each_spatial_axis(shape):
    x = torch.rand(shape) + 1.0  # no zero anywhere before
    out = cutout(x, 0.5, torch.Generator().manual_seed(0))
    box = 1
    for size in shape[2:]:
        box *= round(0.5 * size)
    zeros = (out == 0).flatten(2).sum(-1)  # per sample and channel
    assert (zeros == box).all()
    assert torch.equal(out[out != 0], x[out != 0]) and (x > 0).all()
    assert torch.equal(cutout(x, 0.0, torch.Generator()), x)


def test_the_ema_teacher_moves_toward_the_model_by_one_minus_the_decay():
    torch.manual_seed(0)
    obj = FixMatch(_Encoder(), _Views(), classes=3, ema=0.75)
    before = obj.teacher_head.weight.clone()
    assert torch.equal(before, obj.head.weight)
    with torch.no_grad():
        obj.head.weight.add_(1.0)
    obj.after_step(0.5)
    torch.testing.assert_close(obj.teacher_head.weight, before + 0.25)
    assert not any(p.requires_grad for p in obj.teacher_encoder.parameters())
    assert {k.split(".")[0] for k in obj.state_dict()} == {"encoder", "head", "teacher_encoder", "teacher_head"}
    # the run exports the teacher, under a classifier's names
    exported = obj.exported_state()
    assert set(exported) == {"encoder.lin.weight", "encoder.lin.bias", "head.weight", "head.bias"}
    assert torch.equal(exported["head.weight"], obj.teacher_head.weight)
    assert not torch.equal(exported["head.weight"], obj.head.weight)


@pytest.mark.parametrize("ema_teacher", [True, False])
def test_the_ema_gives_the_pseudo_labels_only_as_a_teacher(monkeypatch, ema_teacher):
    """With ``ema_teacher`` the average pseudo-labels (Mean Teacher); without it the trained
    model does and the average is only exported (FixMatch's evaluation model)."""
    torch.manual_seed(0)
    obj = FixMatch(_Encoder(), _Views(), classes=3, threshold=0.5, ema=0.9, cutout=0.0, ema_teacher=ema_teacher)
    with torch.no_grad():
        obj.head.weight.add_(1.0)  # the model and its average now disagree
    seen = []
    own = obj.pseudo_labels
    monkeypatch.setattr(obj, "pseudo_labels", lambda logits: (seen.append(logits), own(logits))[1])
    x, y = torch.randn(8, 1, 12), torch.tensor([0, 1, -1, -1, -1, -1, -1, -1])
    obj.loss(x, torch.Generator().manual_seed(0), y)
    with torch.no_grad():
        by_teacher = obj.teacher_head(obj.teacher_encoder.embed(x[2:]))
        by_model = obj.head(obj.encoder.embed(x[2:]))
    torch.testing.assert_close(seen[0], by_teacher if ema_teacher else by_model)
    assert not torch.allclose(seen[0], by_model if ema_teacher else by_teacher)
    assert torch.equal(obj.exported_state()["head.weight"], obj.teacher_head.weight)


def test_bad_settings_are_refused():
    for bad in (
        {"threshold": -0.1},
        {"ema": 1.0},
        {"cutout": 1.0},
        {"unlabeled_weight": -1.0},
        {"classes": 1},
        {"adaptive": 1.0},
        {"align": 1.0},
        {"align": 0.5, "prior": [1.0, 1.0]},
        {"align": 0.5, "prior": [1.0, 0.0, 1.0]},
        {"soft": 1.5},
        {"soft": -0.1},
    ):
        with pytest.raises(ValueError):
            FixMatch(_Encoder(), _Views(), **{"classes": 3, **bad})


def test_strong_views_of_another_size_than_the_weak_ones_train_in_their_own_pass():
    """An encoder pretrained with a smaller ``view_size`` hands its resized crops to FixMatch's
    strong view: the two sizes cannot share a batch, so each gets its own forward pass."""
    from unlabeled.models.cnn import CNNEncoder

    class _Smaller(_Views):
        def augment(self, x, generator, light=False):
            return F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)

    torch.manual_seed(0)
    enc = CNNEncoder(1, "tiny", (28, 28)).eval()  # eval: batch norm per sample, comparable by hand
    obj = FixMatch(enc, _Smaller(), classes=3, threshold=0.0, cutout=0.0).eval()
    x, y = torch.randn(6, 1, 28, 28), torch.tensor([2, 0, -1, -1, -1, -1])
    loss, logs = obj.loss(x, torch.Generator().manual_seed(0), y)
    with torch.no_grad():
        logits_l = obj.head(enc.embed(x[:2]))
        targets = obj.head(enc.embed(x[2:])).argmax(1)
        small = F.interpolate(x[2:], size=(16, 16), mode="bilinear", align_corners=False)
        logits_s = obj.head(enc.embed(small))
    expected = F.cross_entropy(logits_l, y[:2]) + F.cross_entropy(logits_s, targets)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-4, atol=1e-5)
    assert logs["mask"] == 1.0


class _NormedEncoder(nn.Module):
    """Pools any length to 12 values, then a linear layer and a BatchNorm1d (as the bench's
    batch-normalised head has): a batch of one cannot be normalised in train mode."""

    def __init__(self, dim: int = 6) -> None:
        super().__init__()
        self.dim, self.lin, self.norm = dim, nn.Linear(12, dim), nn.BatchNorm1d(dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.lin(F.adaptive_avg_pool1d(x, 12).flatten(1)))


class _SmallStrongViews(_Views):
    """Strong views at half the length (an encoder pretrained on smaller views): one pass each."""

    def augment(self, x: torch.Tensor, generator: torch.Generator, light: bool = False) -> torch.Tensor:
        return x.clone() if light else 5 - x[..., ::2]


@pytest.mark.parametrize("confident", [1, 2])
def test_one_confident_sample_whose_strong_view_runs_alone_is_left_out_not_a_batch_norm_error(monkeypatch, confident):
    """`unlabeled demo --semi` stopped with "Expected more than 1 value per channel when
    training": the demo's encoder makes 12 px strong views, run apart from the 28 px weak ones,
    and a step with one confident sample ran a batch of one through batch norm."""
    torch.manual_seed(0)
    obj = FixMatch(_NormedEncoder(), _SmallStrongViews(), classes=3, threshold=0.5, cutout=0.0)
    obj.train()
    mask = torch.arange(4) < confident  # of the 4 unlabelled samples, the first `confident`
    monkeypatch.setattr(obj, "pseudo_labels", lambda guess: (guess.argmax(1), mask))
    x, y = torch.randn(6, 1, 24), torch.tensor([1, 0, -1, -1, -1, -1])
    loss, logs = obj.loss(x, torch.Generator().manual_seed(0), y)
    assert torch.isfinite(loss)
    if confident == 1:  # left out: no pseudo-label term this step
        assert logs["mask"] == 0
        with torch.no_grad():  # the labelled pass alone, as the step ran it (its batch's statistics)
            sup = F.cross_entropy(obj.head(obj.encoder.embed(x[:2])), y[:2])
        torch.testing.assert_close(loss.detach(), sup)
    else:
        assert logs["mask"] == 0.5 and logs["unsup"] > 0
