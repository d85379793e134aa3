"""SSD for causal language models (Foster, Schoepf and Brintrup 2024, "Fast Machine Unlearning
Without Retraining Through Selective Synaptic Dampening", AAAI): no training. The diagonal of
the Fisher information, the squared gradient of the loss, is measured for every weight on the
forget documents (``I_f``) and on retained ones (``I_r``); a weight far more important to the
forget set than to the rest, ``I_f > alpha * I_r``, is scaled by ``min(dampening * I_r / I_f, 1)``
and every other weight is kept. The cost is one backward pass over the forget documents and
``RETAINED`` retained ones (``--option retained=N`` measures the retain Fisher on more or fewer).
``--option repair=E`` then trains the dampened model for ``E`` passes over the forget set's
batches on retained documents alone (their cross-entropy, no forget term:
:class:`~unlabeled.forget.methods.lm.RetainRepairLM`), to give back some of what the dampening
took from the retained knowledge; 0 (the default) trains nothing (on the fictitious authors it
gave back at most 0.2 points of utility on three development splits: BENCHMARKS.md).
``--option retain_whole=1`` measures the retain Fisher on the retained documents' every token
(questions too) rather than their answers alone, both Fishers of summed rather than averaged
token losses, so that tokens common to all text weigh on the retain side (nearly all that SSD
dampens in a small language model is whole token-embedding rows; BENCHMARKS.md).

As in the paper's code the Fisher is accumulated from batch gradients (``BATCH`` documents a
batch, the same for both sets, so their ratio is unbiased by it). On question-answer documents
(``make-authors``) the loss scores the answers alone, as the trained methods' terms do
(:func:`~unlabeled.forget.methods.lm.answer_targets`). ``ALPHA`` was chosen on three disjoint
development splits of the fictitious-author benchmark (dev05, dev05-2, dev05-3: the only
setting tried with forget quality p >= 0.05 and 95% of the utility on all three), never on a
reported split's scores (BENCHMARKS.md); the dampening constant is the paper's. Classifiers
keep their own methods: SSD was tried there (issue 7, log ``forget-ssd-20261127-xeon.log``)
and no setting came within 4 points of retraining on a random 10% of Fashion-MNIST (SalUn comes
within 2.6).
"""

from __future__ import annotations

import numpy as np
import torch

from unlabeled._console import UnlabeledError, info, progress
from unlabeled.data.authors import ANSWER_MARKER
from unlabeled.forget.methods.base import Method, write_untrained
from unlabeled.forget.methods.lm import RetainRepairLM, answer_targets, answers_only, lm_batch, train_unlearner
from unlabeled.forget.request import ForgetRequest
from unlabeled.forget.unlearner import Stream
from unlabeled.modalities.text import PAD
from unlabeled.objectives.clm import next_token_logits, next_token_loss
from unlabeled.runs import Run, resolve_device
from unlabeled.train.pretrain import claim_run_dir

ALPHA = 12.5  # selection: I_f > ALPHA * I_r (the paper's 10; 12.5 chosen on three dev splits)
DAMPENING = 1.0  # the paper's lambda
RETAINED = 1000  # retained documents the retain Fisher is measured on, at most
REPAIR_LR = 1e-4  # the retain-only repair's rate (the trained methods' default)
BATCH = 8


def fisher_diagonal(
    encoder: torch.nn.Module,
    request: ForgetRequest,
    positions: np.ndarray,
    device: torch.device,
    what: str,
    answers: bool = True,
    summed: bool = False,
) -> list[torch.Tensor]:
    """The mean squared batch gradient of the language-model loss of the documents at
    ``positions`` (``what`` they are, for the progress bar), one tensor per parameter of
    ``encoder``; on question-answer documents the answers' tokens alone unless not ``answers``.
    The loss is the tokens' mean, or with ``summed`` their sum (so that more tokens scored add
    information rather than dilute it)."""
    task, mod = request.task, request.source.modality()
    qa = answers and {"question", "answer"} <= set(task.columns)
    marker = torch.tensor(mod.tokenizer.encode(ANSWER_MARKER, add_special_tokens=False).ids, device=device)
    params = [p for p in encoder.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    with progress() as bar:
        job = bar.add_task(f"ssd: Fisher information on {what}", total=len(positions))
        for start in range(0, len(positions), BATCH):
            x = mod.prepare(task.get(positions[start : start + BATCH]), device)
            target = answer_targets(x, marker) if qa else x[:, 1:]
            loss = next_token_loss(next_token_logits(encoder, x), x, target)
            if summed:
                loss = loss * (target != PAD).sum()
            for acc, grad in zip(total, torch.autograd.grad(loss, params, allow_unused=True), strict=True):
                if grad is not None:  # a weight the loss does not reach has no information
                    acc += grad.float() ** 2
            bar.advance(job, len(x))
    return [t / len(positions) for t in total]


def dampen(
    encoder: torch.nn.Module, forget: list[torch.Tensor], retain: list[torch.Tensor], alpha: float, dampening: float
) -> tuple[int, int]:
    """SSD's update in place: each weight with ``forget > alpha * retain`` scaled by
    ``min(dampening * retain / forget, 1)``. Returns (weights dampened, weights)."""
    changed = total = 0
    params = [p for p in encoder.parameters() if p.requires_grad]
    with torch.no_grad():
        for p, f, r in zip(params, forget, retain, strict=True):
            chosen = f > alpha * r
            scale = (dampening * r / f.clamp_min(torch.finfo(f.dtype).tiny)).clamp(max=1.0)
            p[chosen] *= scale[chosen].to(p.dtype)
            changed, total = changed + int(chosen.sum()), total + p.numel()
    return changed, total


class SSDMethod(Method):
    name = "ssd"
    classifiers = False
    language_models = True
    settings = ("alpha", "dampening", "retained", "repair", "retain_whole")
    lr = REPAIR_LR  # the repair's (--option repair=E): without one, --lr is said to do nothing

    def check_options(self, options: dict[str, float]) -> None:
        retained = options.get("retained", RETAINED)
        if retained < 1 or retained != int(retained):
            raise UnlabeledError(f"--option retained must be a whole number of documents, at least 1; got {retained:g}")
        for key in ("alpha", "dampening"):
            if options.get(key, 1.0) <= 0:
                raise UnlabeledError(f"--option {key} must be positive, got {options[key]:g}")
        if options.get("retain_whole", 0.0) not in (0.0, 1.0):
            raise UnlabeledError(f"--option retain_whole must be 0 or 1, got {options['retain_whole']:g}")
        if options.get("repair", 0.0) < 0:
            raise UnlabeledError(f"--option repair must be 0 or more passes, got {options['repair']:g}")

    def run(self, request: ForgetRequest) -> Run:
        src = request.source
        device = resolve_device(request.device)
        claim_run_dir(request.out, False, request.overwrite, resumable=False)
        alpha = float(request.options.get("alpha", ALPHA))
        dampening = float(request.options.get("dampening", DAMPENING))
        retained = int(request.options.get("retained", RETAINED))
        rng = np.random.default_rng(request.seed)
        kept = request.retain_pos
        if len(kept) > retained:
            kept = np.sort(rng.choice(kept, retained, replace=False))
        encoder = src.encoder().to(device).eval()
        whole = bool(request.options.get("retain_whole", 0.0))
        forget = fisher_diagonal(encoder, request, request.forget_pos, device, "the forget documents", summed=whole)
        retain = fisher_diagonal(encoder, request, kept, device, "retained documents", answers=not whole, summed=whole)
        changed, total = dampen(encoder, forget, retain, alpha, dampening)
        info(f"ssd: dampened {changed:,} of {total:,} weights")
        ssd = {"alpha": alpha, "dampening": dampening, "retained": len(kept), "dampened": changed}
        if whole:
            ssd["retain_whole"] = 1
        repair = float(request.options.get("repair", 0.0))
        if request.lr is not None and not repair:
            info("note: --lr ignored: ssd trains only to repair (--option repair=E)")
        if repair:  # retain-only descent from the dampened weights, the one Trainer
            ssd["repair"] = repair
            other = Stream(request.task, request.retain_pos, lm_batch(request))
            objective = RetainRepairLM(encoder.train(), src.modality(), other, answer_only=answers_only(request))
            return train_unlearner(request, objective, repair, REPAIR_LR, ssd)
        state = {f"encoder.{k}": v.detach().cpu() for k, v in encoder.state_dict().items()}
        return write_untrained(request, ssd, state)
