"""ECO for causal language models (Liu et al. 2024, "Large Language Model Unlearning via
Embedding-Corrupted Prompts"): the weights are not changed. A prompt classifier learns to tell
the forget documents' prompts from the retained ones', and the run it writes is the source's
weights behind :class:`~unlabeled.models.eco.CorruptedPrompts`, which corrupts the embeddings of
every prompt the classifier flags before the model reads it. ``Run.encoder()`` builds the
guarded model from the run's config, so ``generate``, ``perplexity`` and ``forget --verify`` see
what a user of the run sees. The paper tunes the corruption's strength per task by zeroth-order
search against a retained model's scores; here it is fixed (``SIGMA``, set before any run).
"""

from __future__ import annotations

import numpy as np
import torch

from unlabeled.data.authors import ANSWER_MARKER, PROMPT
from unlabeled.forget.methods.base import Method, write_untrained
from unlabeled.forget.request import ForgetRequest
from unlabeled.modalities.text import BOS
from unlabeled.runs import Run
from unlabeled.train.pretrain import claim_run_dir

SIGMA = 1.0  # the noise's scale, in root-mean-squares of the prompt's embeddings
NEGATIVES = 20_000  # retained prompts the classifier learns from, at most


def prompts(request: ForgetRequest, positions: np.ndarray) -> list[str]:
    """The text a prompt holds for each document: its question as the model reads it, or the
    whole document where there are no questions."""
    task = request.task
    if "question" in task.columns:
        return [PROMPT.format(question=q) for q in task.column("question")[positions]]
    return [str(t) for t in task.get(positions)]


def fit_classifier(request: ForgetRequest, tokenizer, vocab: int) -> tuple[np.ndarray, float, dict[str, float]]:
    """A logistic regression over each prompt's bag of token ids (the tokens the guard sees,
    ``[BOS]`` first): forget prompts against (up to ``NEGATIVES``) retained ones, classes
    balanced. Returns its weights, bias and its recall / false-positive rate on what it saw."""
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(request.seed)
    keep = request.retain_pos
    if len(keep) > NEGATIVES:
        keep = np.sort(rng.choice(keep, NEGATIVES, replace=False))
    texts = prompts(request, request.forget_pos) + prompts(request, keep)
    y = np.r_[np.ones(len(request.forget_pos)), np.zeros(len(keep))]
    rows = [sorted({BOS, *e.ids}) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    indptr = np.cumsum([0, *map(len, rows)])
    X = csr_matrix((np.ones(indptr[-1]), np.concatenate(rows), indptr), shape=(len(rows), vocab))
    clf = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000).fit(X, y)
    said = clf.decision_function(X) > 0
    fit = {"forget_recall": float(said[y == 1].mean()), "retain_flagged": float(said[y == 0].mean())}
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0]), fit


class ECOMethod(Method):
    name = "eco"
    classifiers = False
    language_models = True

    def run(self, request: ForgetRequest) -> Run:
        src = request.source
        mod = src.modality()
        claim_run_dir(request.out, False, request.overwrite, resumable=False)
        weight, bias, fit = fit_classifier(request, mod.tokenizer, mod.vocab)
        marker = (
            mod.tokenizer.encode(ANSWER_MARKER, add_special_tokens=False).ids
            if "question" in request.task.columns
            else []
        )
        state = {f"encoder.{k}": v for k, v in src.weights("encoder").items()}
        state |= {
            "eco.weight": torch.from_numpy(weight),
            "eco.bias": torch.tensor([bias]),
            "eco.marker": torch.tensor(marker, dtype=torch.long),
        }
        return write_untrained(request, {}, state, eco={"sigma": SIGMA, "classifier": fit})
