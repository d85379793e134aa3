"""Self-training with pseudo-labels and consistency (Sohn et al. 2020, "FixMatch: Simplifying
Semi-Supervised Learning with Consistency and Confidence").

Each batch holds ``B`` labelled samples and ``mu * B`` unlabelled ones (label ``-1``). The
labelled ones train with cross-entropy on a weak view; each unlabelled sample gets a
pseudo-label, the class the model predicts on its weak view, kept only where that prediction's
probability reaches ``threshold``, and the model is trained to predict it on a strong view:

    loss = CE(f(weak(x_l)), y_l) + lambda_u * mean_u[ 1(max p_u >= tau) * CE(f(strong(x_u)), argmax p_u) ]

Views come from the modality's batched augmentations, so every modality that has them
(image, series, audio, volume) self-trains: the weak view is the light, geometric one (crops,
flips, shifts), the strong view the full one pretraining uses, followed by Cutout (DeVries &
Taylor 2017), which FixMatch's strong view ends with: a box of ``cutout`` of each spatial
axis set to the normalised mean.

With ``adaptive`` > 0 the threshold is FreeMatch's self-adaptive one (Wang et al. 2023,
"FreeMatch: Self-adaptive Thresholding for Semi-supervised Learning", section 3.2) instead of the
fixed ``threshold``: a global level ``tau``, the moving average (momentum ``adaptive``, 0.999 in
the paper) of the unlabelled batches' mean top probability, scaled per class by the moving
average of that class's mean probability over the largest class's; both start at ``1/C``, so
early on most pseudo-labels count and the bar rises as the model grows sure, faster for the
classes it predicts with more confidence. (FreeMatch's fairness loss is not included.)

With ``align`` > 0 the weak view's probabilities are distribution-aligned first (Berthelot et
al. 2020, "ReMixMatch", section 3.2): multiplied by ``prior`` (the labelled samples' class
frequencies; uniform when not given) over the moving average (momentum ``align``) of the
model's mean prediction on unlabelled batches, and renormalised, so that a class the model
under-predicts (Fashion-MNIST's shirts) gets more pseudo-labels and an over-predicted one fewer.

With ``soft`` > 0 the confident samples' targets are the weak view's probabilities sharpened
at that temperature (UDA, Xie et al. 2020: 0.4) instead of their argmax: a pseudo-label that
is nearly a tie between two classes says so.

With ``ema`` > 0 the model keeps an exponential moving average of itself (in eval mode), which
is the model the run exports, as FixMatch reports its EMA model; without it the trained model is
exported. With ``ema_teacher`` (the default) the average also gives the pseudo-labels (a
teacher, as in Mean Teacher, Tarvainen & Valpola 2017); without it the trained model does, as in
FixMatch, where the average is only evaluated. Either way the exported weights are a
classifier's (``encoder.*``, ``head.*``), so a self-trained run is a classifier run like any
other.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.objectives.base import Objective
from unlabeled.train import distributed as dist


def pseudo_labels(weak_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch's targets from the weak view's logits: the predicted classes and the mask of
    those whose probability reaches ``threshold`` (no gradient flows through either)."""
    probs = weak_logits.detach().float().softmax(-1)
    confidence, labels = probs.max(-1)
    return labels, confidence >= threshold


def sharpen(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities ``softmax(logits / temperature)`` (detached, fp32): UDA's sharpened soft
    pseudo-labels (Xie et al. 2020, "Unsupervised Data Augmentation for Consistency
    Training"); temperature 1 is the prediction itself, towards 0 its argmax."""
    return (logits.detach().float() / temperature).softmax(-1)


def cutout(x: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Every sample with one random box, ``fraction`` of each spatial axis (all axes after the
    channel axis), set to 0: the normalised mean. Padding (NaN, after a short series' end)
    stays padding: filled, it made the series look longer to the encoder. A new tensor; ``x``
    is left as it was."""
    if fraction <= 0:
        return x
    b, dev = x.shape[0], x.device
    mask = torch.ones((b, *x.shape[2:]), dtype=torch.bool, device=dev)
    for axis, size in enumerate(x.shape[2:]):
        width = max(1, round(fraction * size))
        start = torch.randint(0, size - width + 1, (b,), generator=generator, device=dev)
        idx = torch.arange(size, device=dev)
        inside = (idx[None] >= start[:, None]) & (idx[None] < start[:, None] + width)
        shape = [b] + [1] * (x.dim() - 2)
        shape[axis + 1] = size
        mask = mask & inside.view(shape)
    return x.masked_fill(mask.unsqueeze(1) & ~torch.isnan(x), 0.0)


class FixMatch(Objective):
    """A classifier (encoder + linear head) trained on labelled and unlabelled samples at once.
    The batch's labels say which is which: ``-1`` marks an unlabelled sample."""

    name = "fixmatch"
    uses_labels = True

    def __init__(
        self,
        encoder: nn.Module,
        modality: Any,
        classes: int,
        threshold: float = 0.95,
        unlabeled_weight: float = 1.0,
        ema: float = 0.0,
        cutout: float = 0.5,
        adaptive: float = 0.0,
        align: float = 0.0,
        prior: list[float] | None = None,
        soft: float = 0.0,
        ema_teacher: bool = True,
    ) -> None:
        super().__init__(encoder, modality)
        if classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {classes}")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if unlabeled_weight < 0:
            raise ValueError(f"unlabeled_weight must be at least 0, got {unlabeled_weight}")
        if not 0 <= ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {ema}")
        if not 0 <= cutout < 1:
            raise ValueError(f"cutout must be in [0, 1), got {cutout}")
        if not 0 <= adaptive < 1:
            raise ValueError(f"adaptive must be in [0, 1), got {adaptive}")
        if not 0 <= align < 1:
            raise ValueError(f"align must be in [0, 1), got {align}")
        if not 0 <= soft <= 1:
            raise ValueError(f"soft must be a temperature in (0, 1], or 0; got {soft}")
        if prior is not None and (len(prior) != classes or min(prior) <= 0):
            raise ValueError(f"prior needs {classes} positive class frequencies, got {prior}")
        self.classes, self.threshold = int(classes), float(threshold)
        self.unlabeled_weight, self.ema, self.cutout = float(unlabeled_weight), float(ema), float(cutout)
        self.adaptive, self.align, self.soft = float(adaptive), float(align), float(soft)
        self.ema_teacher = bool(ema_teacher)
        self._resized: bool | None = None  # strong views another size than weak ones (read on first use)
        self.prior = None if prior is None else [float(p) / sum(prior) for p in prior]
        self.head = nn.Linear(encoder.dim, self.classes)
        if self.align:  # the model's mean prediction, a buffer like FreeMatch's averages
            self.register_buffer("p_model", torch.full((self.classes,), 1.0 / self.classes))
            target = torch.tensor(self.prior) if self.prior else torch.full((self.classes,), 1.0 / self.classes)
            self.register_buffer("p_target", target, persistent=False)
        if self.adaptive:  # buffers: a resumed run thresholds exactly as an uninterrupted one
            self.register_buffer("tau", torch.full((), 1.0 / self.classes))
            self.register_buffer("class_tau", torch.full((self.classes,), 1.0 / self.classes))
        if self.ema:
            self.teacher_encoder = copy.deepcopy(encoder).requires_grad_(False)
            self.teacher_head = copy.deepcopy(self.head).requires_grad_(False)

    def hparams(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "threshold": self.threshold,
            "unlabeled_weight": self.unlabeled_weight,
            "ema": self.ema,
            "cutout": self.cutout,
            "adaptive": self.adaptive,
            "align": self.align,
            "prior": self.prior,
            "soft": self.soft,
            "ema_teacher": self.ema_teacher,
        }

    def load_encoder(self, weights: dict[str, torch.Tensor]) -> None:
        self.encoder.load_state_dict(weights)
        if self.ema:
            self.teacher_encoder.load_state_dict(weights)

    def train(self, mode: bool = True) -> FixMatch:
        super().train(mode)
        if self.ema:  # the teacher predicts with its averaged batch-norm statistics
            self.teacher_encoder.eval()
            self.teacher_head.eval()
        return self

    def aligned(self, probs: torch.Tensor) -> torch.Tensor:
        """``probs`` distribution-aligned (ReMixMatch): scaled by the target class frequencies
        over the model's running mean prediction, renormalised; as they are without ``align``."""
        if not self.align:
            return probs
        probs = probs * (self.p_target / self.p_model)
        return probs / probs.sum(-1, keepdim=True)

    @torch.no_grad()
    def pseudo_labels(self, guess: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The weak view's classes and which of them count (after distribution alignment with
        ``align``): the fixed threshold, or FreeMatch's self-adaptive one after this batch has
        moved its averages."""
        probs = guess.float().softmax(-1)
        count = probs.new_tensor([len(probs)])
        if self.align:  # every process's batch, summed (each calls it, an empty batch too)
            total = dist.summed(torch.cat([probs.sum(0), count]))
            if total[-1] > 0:
                self.p_model.mul_(self.align).add_((1 - self.align) * total[:-1] / total[-1])
            probs = self.aligned(probs)
        confidence, labels = probs.max(-1)
        if not self.adaptive:
            return labels, confidence >= self.threshold
        total = dist.summed(torch.cat([confidence.sum()[None], probs.sum(0), count]))
        if total[-1] > 0:
            m = self.adaptive
            self.tau.mul_(m).add_((1 - m) * total[0] / total[-1])
            self.class_tau.mul_(m).add_((1 - m) * total[1:-1] / total[-1])
        level = self.tau * self.class_tau / self.class_tau.max()
        return labels, confidence >= level[labels]

    def exported_state(self) -> dict[str, torch.Tensor]:
        if not self.ema:
            return self.state_dict()
        teacher = {f"encoder.{k}": v for k, v in self.teacher_encoder.state_dict().items()}
        return teacher | {f"head.{k}": v for k, v in self.teacher_head.state_dict().items()}

    def views(self, x: torch.Tensor, generator: torch.Generator, strong: bool) -> torch.Tensor:
        """Normalised views of a prepared batch: weak (geometric only) or strong (the full
        augmentation, then Cutout), in fp32 as ``Supervised.views``."""
        mod = self.modality
        with torch.autocast(x.device.type, enabled=False):
            if not strong:
                return mod.normalize(mod.weak(x, generator))
            return cutout(mod.normalize(mod.augment(x, generator)), self.cutout, generator)

    def _strong_resized(self, x: torch.Tensor) -> bool:
        """Whether strong views come out another size than weak ones (an encoder pretrained
        with a smaller ``view_size``), read once off one sample with a generator of its own, so
        that the training stream's random draws are the same with or without the check."""
        if self._resized is None:
            g = torch.Generator(device=x.device).manual_seed(0)
            one = x[:1]
            self._resized = self.views(one, g, True).shape[1:] != self.views(one, g, False).shape[1:]
        return self._resized

    def _logits(self, x: torch.Tensor, teacher: bool = False) -> torch.Tensor:
        if teacher:
            return self.teacher_head(self.teacher_encoder.embed(x))
        return self.head(self.encoder.embed(x))

    def loss(self, x: torch.Tensor, generator: torch.Generator, y: torch.Tensor):
        labelled = y >= 0
        xl, xu = x[labelled], x[~labelled]
        weak_l = self.views(xl, generator, False)
        with torch.no_grad():  # pseudo-labels carry no gradient: a forward pass alone
            guess = self._logits(self.views(xu, generator, False), teacher=bool(self.ema) and self.ema_teacher)
        targets, confident = self.pseudo_labels(guess)
        if self.soft:  # UDA's sharpened soft targets on the confident samples, aligned first as ReMixMatch does
            targets = sharpen(self.aligned(guess.float().softmax(-1)).log(), self.soft)
        # only the confident samples' strong views have a loss term, so only they are
        # augmented, run and back-propagated; the rest would add zeros at full cost (the loss
        # is the same, the mean still over every unlabelled sample; batch norm sees the
        # labelled and confident strong views together)
        # under torchrun with resized strong views every rank runs the second pass over all its
        # unlabelled samples, the unconfident ones' terms masked out: global batch norm gathers
        # statistics in each pass, so a rank that skipped it (no confident sample) left the others
        # waiting in a collective it never joined
        every = dist.is_distributed() and self._strong_resized(x)
        xs = xu if every else xu[confident]
        strong_u = self.views(xs, generator, True) if len(xs) else weak_l[:0]
        if strong_u.shape[1:] == weak_l.shape[1:]:
            logits = self._logits(torch.cat([weak_l, strong_u]))
            logits_l, logits_s = logits[: len(xl)], logits[len(xl) :]
        else:  # strong views resized (an encoder pretrained with a smaller ``view_size``): one pass each
            if len(xs) == 1 and not every:  # a batch of one: batch norm cannot normalise it (BatchNorm1d raised)
                confident, xs, strong_u = torch.zeros_like(confident), xs[:0], strong_u[:0]
            logits_l = self._logits(weak_l)
            logits_s = self._logits(strong_u) if len(xs) else logits_l[:0]
            logits = torch.cat([logits_l, logits_s])
            if every:
                logits_s = logits_s[confident]
        zero = logits.sum() * 0
        sup = F.cross_entropy(logits_l.float(), y[labelled]) if len(xl) else zero
        per_sample = F.cross_entropy(
            logits_s.float(), targets[confident], reduction="sum"
        )  # class ids or probabilities
        unsup = per_sample / len(xu) if len(xu) else zero
        loss = sup + self.unlabeled_weight * unsup
        logs = {"loss": loss.detach(), "sup": sup.detach(), "unsup": unsup.detach(), "mask": confident.float().mean()}
        if len(xl):
            logs["acc"] = (logits_l.argmax(1) == y[labelled]).float().mean()
        return loss, logs

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        if not self.ema:
            return
        for mine, theirs in ((self.encoder, self.teacher_encoder), (self.head, self.teacher_head)):
            for p, t in zip(mine.parameters(), theirs.parameters(), strict=True):
                t.lerp_(p.detach(), 1 - self.ema)
            for b, t in zip(mine.buffers(), theirs.buffers(), strict=True):
                t.copy_(b)
