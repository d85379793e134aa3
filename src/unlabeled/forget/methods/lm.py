"""Forgetting in causal language models (a run pretrained or continued with ``--method clm``):
each method an objective the one Trainer runs from the model's weights on the forget set's
documents, drawing retain documents itself where it keeps them (as open-unlearning's trainers
do for TOFU, Maini et al. 2024). A sequence's log-probability is the sum over its tokens after
the first (its ``[EOS]`` included, padding left out), as ``clm`` trains on them.

- ``ga``: gradient ascent on the forget documents' token cross-entropy (Jang et al. 2023,
  "Knowledge Unlearning for Mitigating Privacy Risks in Language Models");
- ``graddiff``: ascent on the forget documents, descent on retain ones (Liu et al. 2022,
  "Continual Learning and Private Unlearning"; TOFU's "gradient difference");
- ``npo``: Negative Preference Optimization (Zhang et al. 2024), ``(2/β) log(1 + (π_θ/π_ref)^β)``
  over forget sequences against the frozen original, plus the retain cross-entropy (NPO+RT);
- ``simnpo``: SimNPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference
  Optimization for LLM Unlearning"): NPO without the reference, on the length-normalised
  log-probability with a margin ``γ``, plus the retain cross-entropy;
- ``rmu``: RMU (Li et al. 2024, WMDP): the forget documents' hidden states at a middle layer
  steered to a scaled random direction (:class:`RMULM`), plus the retain cross-entropy;
- ``whp``: Who's Harry Potter (Eldan and Russinovich 2023): fine-tuned toward generic
  predictions from the original and a model reinforced on the forget set (:class:`WHPLM`).

On question-answer documents (``make-authors``: a ``question`` and an ``answer`` column) every
term scores the answer's tokens alone, as TOFU's and open-unlearning's trainers do (their
labels mask the question): the questions are templates shared by every author, and ascending
on them would unlearn how to read any question, the retained authors' included.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.data.authors import ANSWER_MARKER
from unlabeled.forget.methods.base import Method, train_config, unlearn, unlearning_config
from unlabeled.forget.methods.npo import npo_loss
from unlabeled.forget.recipe import origin_training
from unlabeled.forget.request import ForgetRequest
from unlabeled.forget.unlearner import Stream
from unlabeled.modalities.text import PAD, after_marker
from unlabeled.objectives.base import Objective, require_text
from unlabeled.objectives.clm import next_token_logits, next_token_loss
from unlabeled.runs import Run
from unlabeled.train.pretrain import claim_run_dir


def sequence_logp(
    encoder: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probability of each sequence's tokens after the first, how many tokens that is);
    ``target`` as :func:`~unlabeled.objectives.clm.next_token_loss`'s."""
    logits = next_token_logits(encoder, x)[:, :-1].float()
    target = x[:, 1:] if target is None else target
    real = target != PAD
    target = target.masked_fill(~real, 0)  # any index: the padded positions are multiplied out
    lp = logits.log_softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return (lp * real).sum(1), real.sum(1).clamp(min=1)


def answer_targets(x: torch.Tensor, marker: torch.Tensor) -> torch.Tensor:
    """``x``'s next-token targets (``x[:, 1:]``) with every token up to the end of the first
    ``marker`` (the tokens of ``"\\nAnswer:"``) set to ``PAD``, so that only the answer and its
    ``[EOS]`` are scored; a row without the marker keeps every token."""
    found, start = after_marker(x, marker)  # start: the first answer token's index in x
    position = torch.arange(1, x.shape[1], device=x.device)  # each target's index in x
    question = found[:, None] & (position[None] < start[:, None])
    return x[:, 1:].masked_fill(question, PAD)


class LMUnlearner(Objective):
    """The shared parts: the causal encoder (its weights load as the run's ``encoder``), retain
    documents drawn with the step's generator, and the frozen original for NPO's reference
    (kept outside the state: it is the source run's weights, loaded again on a rerun)."""

    name = "lm-unlearn"
    kind: ClassVar[str] = ""
    needs_original: ClassVar[bool] = False  # a frozen copy of the source (npo, rmu, whp)

    def __init__(
        self,
        encoder: nn.Module,
        modality: Any,
        other: Stream | None = None,
        beta: float = 0.1,
        gamma: float = 0.0,
        retain_weight: float = 1.0,
        answer_only: bool = False,
    ) -> None:
        super().__init__(encoder, modality)
        require_text(encoder, "forgetting in a language model", causal=True)
        self.other, self.beta, self.gamma, self.retain_weight = other, beta, gamma, retain_weight
        self.answer_only = answer_only
        marker = modality.tokenizer.encode(ANSWER_MARKER, add_special_tokens=False).ids if answer_only else []
        self.register_buffer("marker", torch.tensor(marker, dtype=torch.long), persistent=False)
        self._reference: list[nn.Module] = []

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """The tokens each term scores: the answers' alone on question-answer documents."""
        return answer_targets(x, self.marker) if self.answer_only else x[:, 1:]

    def keep_original(self) -> None:
        self._reference = [copy.deepcopy(self.encoder).requires_grad_(False).eval()]

    def hparams(self) -> dict[str, Any]:
        return {
            "beta": self.beta,
            "gamma": self.gamma,
            "retain_weight": self.retain_weight,
            "answer_only": self.answer_only,
        }

    def exported_state(self) -> dict[str, torch.Tensor]:
        return {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}

    def forget_term(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, logs = self.forget_term(x)
        if self.other is not None and self.retain_weight:
            xr, _ = self.other.draw(self.modality, generator, x.device)
            retain = next_token_loss(next_token_logits(self.encoder, xr), xr, self.targets(xr))
            loss = loss + self.retain_weight * retain
            logs["retain_nll"] = retain.detach()
        logs["loss"] = loss.detach()
        return loss, logs


class GradientAscentLM(LMUnlearner):
    kind = "ga"

    def forget_term(self, x):
        nll = next_token_loss(next_token_logits(self.encoder, x), x, self.targets(x))
        return -nll, {"forget_nll": nll.detach()}


class NPOLM(LMUnlearner):
    kind = "npo"
    needs_original = True

    def forget_term(self, x):
        target = self.targets(x)
        logp, _ = sequence_logp(self.encoder, x, target)
        with torch.no_grad():
            ref, _ = sequence_logp(self._reference[0], x, target)
        loss = npo_loss(logp, ref, self.beta)
        return loss, {"npo": loss.detach(), "forget_logp": logp.mean().detach()}


class SimNPOLM(LMUnlearner):
    kind = "simnpo"

    def forget_term(self, x):
        logp, n = sequence_logp(self.encoder, x, self.targets(x))
        loss = -(2.0 / self.beta) * F.logsigmoid(-self.beta * logp / n - self.gamma).mean()
        return loss, {"simnpo": loss.detach(), "forget_logp": (logp / n).mean().detach()}


def residual_stream(encoder: nn.Module, x: torch.Tensor, layer: int) -> torch.Tensor:
    """(B, L, width): the residual stream entering block ``layer`` of the causal transformer."""
    states: list[torch.Tensor] = []
    tokens, pad = encoder.tokenize(x)
    encoder.run(tokens, pad, states)
    return states[layer]


class RMULM(LMUnlearner):
    """RMU (Li et al. 2024, "The WMDP Benchmark: Measuring and Reducing Malicious Use with
    Unlearning", section 5): the forget documents' residual stream at a middle layer is pushed to
    ``c * u``, a fixed random unit vector ``u`` scaled ``STEER`` times the original model's mean
    norm there (measured on the first batch, kept in the state so a resumed run steers the same),
    so that later layers read noise on the forgotten topic. The paper keeps the retained
    documents' activations equal to the frozen model's; here the retain term is the language-model
    loss the other methods use."""

    kind = "rmu"
    needs_original = True
    STEER = 4.0

    def keep_original(self) -> None:
        super().keep_original()
        width = self.encoder.token_embed.weight.shape[1]
        g = torch.Generator().manual_seed(0)
        self.register_buffer("direction", F.normalize(torch.randn(width, generator=g), dim=0), persistent=False)
        self.register_buffer("scale", torch.zeros(()))

    @property
    def layer(self) -> int:
        return len(self.encoder.trunk.blocks) // 2

    def forget_term(self, x):
        h = residual_stream(self.encoder, x, self.layer).float()
        scored = self.targets(x) != PAD  # the tokens whose next token is scored ...
        scored = F.pad(scored, (0, 1), value=False)  # ... as positions of x: the prefixes that predict them
        if not bool(self.scale):
            with torch.no_grad():
                ref = residual_stream(self._reference[0], x, self.layer).float()
                self.scale.fill_(self.STEER * float(ref[scored].norm(dim=-1).mean()))
        gap = (h - self.scale * self.direction).pow(2).mean(-1)
        loss = (gap * scored).sum() / scored.sum().clamp(min=1)
        return loss, {"rmu": loss.detach()}


class WHPLM(LMUnlearner):
    """Who's Harry Potter (Eldan and Russinovich 2023, section 3): a *reinforced* model, the
    original trained further on the forget documents, shows which next tokens the forgotten
    knowledge makes likelier; the generic prediction lowers them,

        v_generic = v_original - ALPHA * relu(v_reinforced - v_original),

    and the model is fine-tuned on the forget documents toward ``argmax v_generic`` (a plain
    cross-entropy, not an ascent, so it stays fluent), plus the retain cross-entropy. The
    paper's anchored-term translation (named entities mapped to generic ones) needs an LLM to
    list them and is left out. Both frozen models live outside the state."""

    kind = "whp"
    needs_original = True
    ALPHA = 5.0

    def keep_reinforced(self, reinforced: nn.Module) -> None:
        self._reference.append(reinforced.requires_grad_(False).eval())

    def forget_term(self, x):
        target = self.targets(x)
        with torch.no_grad():
            base = next_token_logits(self._reference[0], x).float()
            boost = next_token_logits(self._reference[1], x).float() - base
            generic = (base - self.ALPHA * boost.relu()).argmax(-1)[:, :-1]
        target = generic.masked_fill(target == PAD, PAD)
        loss = next_token_loss(next_token_logits(self.encoder, x), x, target)
        return loss, {"whp": loss.detach()}


# each setting's range, checked before a request is logged (beta 0 divides by zero)
LM_LIMITS: dict[str, tuple[Any, str]] = {
    "beta": (lambda v: v > 0, "positive"),
    "gamma": (lambda v: v >= 0, "0 or more"),
    "retain_weight": (lambda v: v >= 0, "0 or more"),
}


class LMMethod(Method):
    """An approximate unlearner for a causal language model: ``objective`` trained from the
    model's weights on the forget documents, ``epochs`` passes over them."""

    classifiers = False
    language_models = True
    objective: ClassVar[type[LMUnlearner]]
    retain: ClassVar[bool] = True  # draws retain documents (graddiff, npo, simnpo)
    limits = LM_LIMITS
    epochs = 5.0
    lr = 1e-4

    def run(self, request: ForgetRequest) -> Run:
        src = request.source
        batch = lm_batch(request)
        other = Stream(request.task, request.retain_pos, batch) if self.retain else None
        objective = self.objective(
            src.encoder().train(), src.modality(), other, answer_only=answers_only(request), **request.options
        )
        if objective.needs_original:
            objective.keep_original()
        claim_run_dir(request.out, False, request.overwrite, resumable=False)
        if isinstance(objective, WHPLM):
            objective.keep_reinforced(reinforce(request).encoder())
        return train_unlearner(request, objective, request.epochs or self.epochs, self.lr)


def lm_batch(request: ForgetRequest) -> int:
    """The documents a step of an unlearner takes: the source's batch, at most the forget set."""
    return min(int(origin_training(request.source)["batch_size"]), len(request.forget_pos))


def answers_only(request: ForgetRequest) -> bool:
    """Whether the task's documents are question-answer pairs (``make-authors``), whose terms
    score the answers alone."""
    return {"question", "answer"} <= set(request.task.columns)


def train_unlearner(
    request: ForgetRequest, objective: LMUnlearner, epochs: float, lr: float, record: dict[str, Any] | None = None
) -> Run:
    """Train ``objective`` from its encoder's weights for ``epochs`` passes over the forget
    documents at ``lr`` (the request's ``--lr`` first), recording ``record`` in the run's
    method entry beside the objective's settings."""
    cfg = train_config(request, lm_batch(request), epochs, lr)
    config = {**unlearning_config(request, objective, cfg), "source_run": request.source.config.get("source_run")}
    config["method"] |= record or {}
    config.pop("seconds", None)
    return unlearn(request, objective, request.forget_pos, cfg, config)


class RetainRepairLM(LMUnlearner):
    """No forget term: the retain documents' cross-entropy alone, a few steps after a method
    that edits the weights without training (SSD's ``repair``) to give back some of what the
    edit took from the retained knowledge."""

    kind = "repair"

    def forget_term(self, x):
        return x.new_zeros((), dtype=torch.float32), {}


REINFORCED = "reinforced"  # WHP's reinforced model, inside the unlearned run while it trains
FORGET_DOCUMENTS = ".forget-documents"  # the forget documents it trains on, beside it


def reinforce(request: ForgetRequest) -> Run:
    """WHP's reinforced model: the source trained further on the forget documents (the one
    Trainer, as continued pretraining; ``REINFORCE_EPOCHS`` passes at the source's rate)."""
    from unlabeled.data.collection import derive_collection
    from unlabeled.train.pretrain import pretrain

    src, out = request.source, request.out / REINFORCED
    docs = derive_collection(request.task, request.forget_pos, out.with_name(FORGET_DOCUMENTS), {}, overwrite=True)
    train = origin_training(src)
    batch, lr = max(2, min(int(train["batch_size"]), len(request.forget_pos))), float(train["lr"])
    return pretrain(docs, out, method="clm", init=src, epochs=REINFORCE_EPOCHS, batch_size=batch, lr=lr, overwrite=True)


REINFORCE_EPOCHS = 5.0


class GALMMethod(LMMethod):
    name = "ga"
    objective = GradientAscentLM
    retain = False


class GradDiffMethod(LMMethod):
    name = "graddiff"
    objective = GradientAscentLM  # with retain documents: ascent on forget, descent on retain
    settings = ("retain_weight",)


class NPOLMMethod(LMMethod):
    name = "npo"
    objective = NPOLM
    settings = ("beta", "retain_weight")


class SimNPOMethod(LMMethod):
    name = "simnpo"
    objective = SimNPOLM
    settings = ("beta", "gamma", "retain_weight")


class RMUMethod(LMMethod):
    name = "rmu"
    objective = RMULM
    lr = 1e-3  # a hidden state moves slowly at the others' 1e-4: Adam steps are lr-sized whatever the loss's scale
    settings = ("retain_weight",)


class WHPMethod(LMMethod):
    name = "whp"
    objective = WHPLM
    settings = ("retain_weight",)
    min_forget = 2  # its reinforced model pretrains on the forget documents, batches of two


def is_language_model(run: Run) -> bool:
    """Whether ``run`` is a causal language model (``clm``, pretrained or continued)."""
    return run.kind != "classifier" and run.config["method"]["name"] == "clm" and "sisa" not in run.config
