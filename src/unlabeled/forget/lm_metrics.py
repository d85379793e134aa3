"""What a forget request did to a causal language model, as TOFU measures it (Maini et al.
2024, "TOFU: A Task of Fictitious Unlearning for LLMs"), on a ``make-authors`` benchmark:

- the **probability** of the answer given the question, ``P(a|q)^(1/|a|)`` (per-token);
- the **truth ratio** ``R = mean_j P(â_j|q)^(1/|â_j|) / P(ã|q)^(1/|ã|)`` of the perturbed (wrong)
  answers against the paraphrased one: a model that knows the fact finds the paraphrase far
  likelier (``R`` small);
- **ROUGE-L recall** of the greedy answer against the true one;
- **forget quality**: the p-value of the two-sample Kolmogorov-Smirnov test between the forget
  set's truth ratios under the unlearned model and under the model retrained without it
  (high: indistinguishable from retraining);
- **membership inference** (``holdout.jsonl`` beside the benchmark): the AUC of telling the
  forget set's documents from authors never read by the answer's loss, zlib ratio and min-k%
  probability (0.5 for a model that never read either, as the retrained one);
- **model utility**: the harmonic mean of the probability, ROUGE-L and ``max(0, 1 - R)`` on the
  retained authors and on the world facts (TOFU also uses real authors; we have none offline);
  on the forget set the truth ratio is shown as TOFU shows it, ``min(R, 1/R)``;
- **general perplexity**: the per-token perplexity of held-out general text (``general.jsonl``,
  WordNet glosses no document contains), what a model lost beyond the benchmark's own facts.
  Shown beside the table, out of the average gap (its scale is not a probability's).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np
import torch
from torch import nn

from unlabeled._console import UnlabeledError, warn
from unlabeled.data.authors import PROMPT, WORLD
from unlabeled.data.collection import Collection
from unlabeled.modalities.text import BOS, EOS, PAD, TextModality
from unlabeled.objectives.clm import documents_nll


def _ids(mod: TextModality, text: str) -> list[int]:
    return mod.tokenizer.encode(text, add_special_tokens=False).ids


@torch.no_grad()
def answer_token_logprobs(
    encoder: nn.Module, mod: TextModality, prompts: list[str], answers: list[str], batch: int = 64
) -> list[np.ndarray]:
    """The log-probability of each answer token, and of its ``[EOS]``, after its prompt. The
    prompt is tokenized alone and the answer after it (with its leading space), as the
    documents were written: ``Question: q\\nAnswer: a``. Where the two pass the model's
    context, the prompt gives up its first tokens (after ``[BOS]``) and then the answer its
    last, so that every answer is scored on one token at least."""
    out: list[np.ndarray] = []
    dev = next(encoder.parameters()).device
    for start in range(0, len(prompts), batch):
        rows, spans = [], []
        for p, a in zip(prompts[start : start + batch], answers[start : start + batch], strict=True):
            head, tail = [BOS, *_ids(mod, p)], [*_ids(mod, " " + a), EOS]
            tail = tail[: mod.length - 1]
            keep = mod.length - len(tail)  # the prompt's tokens that still fit, [BOS] among them
            head = head[:1] + head[len(head) - keep + 1 :] if len(head) > keep else head
            rows.append(head + tail)
            spans.append((len(head), len(head) + len(tail)))
        x = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.int64)
        for i, r in enumerate(rows):
            x[i, : len(r)] = torch.tensor(r)
        x = x.to(dev)
        lp = (encoder(x) @ encoder.token_embed.weight.t()).float().log_softmax(-1)
        for i, (lo, hi) in enumerate(spans):
            out.append(lp[i, lo - 1 : hi - 1].gather(-1, x[i, lo:hi, None]).squeeze(-1).cpu().numpy())
    return out


def answer_logprob(
    encoder: nn.Module, mod: TextModality, prompts: list[str], answers: list[str], batch: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(log-probability of each answer's tokens and its ``[EOS]`` after its prompt; how many
    tokens that is)."""
    tokens = answer_token_logprobs(encoder, mod, prompts, answers, batch)
    return np.array([float(t.sum()) for t in tokens]), np.array([len(t) for t in tokens], dtype=np.int64)


def normalised(logp: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``P(a|q)^(1/|a|)``: the per-token geometric mean probability."""
    return np.exp(logp / np.maximum(counts, 1))


def truth_ratios(encoder: nn.Module, mod: TextModality, rows: list[dict[str, Any]]) -> np.ndarray:
    """TOFU's truth ratio of each question: perturbed answers against the paraphrase."""
    prompts = [PROMPT.format(question=r["question"]) for r in rows]
    para = normalised(*answer_logprob(encoder, mod, prompts, [r["paraphrase"] for r in rows]))
    wrong = [json.loads(r["perturbed"]) if isinstance(r["perturbed"], str) else r["perturbed"] for r in rows]
    if any(not ws for ws in wrong):
        raise UnlabeledError("a question has no perturbed answers: its truth ratio needs one at least")
    # each question its own count of perturbed answers (a reshape by the first's misaligned them)
    flat = normalised(
        *answer_logprob(encoder, mod, [p for p, ws in zip(prompts, wrong, strict=True) for _ in ws], sum(wrong, []))
    )
    means = [part.mean() for part in np.split(flat, np.cumsum([len(ws) for ws in wrong])[:-1])]
    return np.asarray(means) / np.maximum(para, 1e-30)


def rouge_l_recall(prediction: str, reference: str) -> float:
    """The longest common subsequence of words over the reference's length (ROUGE-L recall)."""
    p, r = prediction.lower().split(), reference.lower().split()
    if not r:
        return 0.0
    prev = [0] * (len(p) + 1)
    for word in r:
        cur = [0]
        for j, other in enumerate(p):
            cur.append(prev[j] + 1 if word == other else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1] / len(r)


def greedy_answer(encoder: nn.Module, mod: TextModality, prompt: str, max_tokens: int = 40) -> str:
    """The most likely continuation of ``prompt``, token by token, to ``[EOS]``. A prompt
    that leaves no room for ``max_tokens`` in the model's context gives up its first tokens
    (after ``[BOS]``), as :func:`answer_token_logprobs` does: cut to its first ones, it lost
    the ``Answer:`` it ends with, and one as long as the context left no room for any token."""
    from unlabeled.lm import continue_ids

    head = [BOS, *_ids(mod, prompt)]
    keep = mod.length - min(max_tokens, mod.length - 2)  # [BOS] and one prompt token at least
    head = head[:1] + head[len(head) - keep + 1 :] if len(head) > keep else head
    new = continue_ids(encoder, mod, head, max_tokens)
    return mod.tokenizer.decode(new, skip_special_tokens=True).strip()


def qa_rows(task: Collection, positions: np.ndarray) -> list[dict[str, Any]]:
    """The question, answer, paraphrase and perturbed answers of the documents at ``positions``."""
    cols = {c: task.column(c)[positions] for c in ("question", "answer", "paraphrase", "perturbed")}
    return [{c: str(v[i]) for c, v in cols.items()} for i in range(len(positions))]


def answer_probability(encoder: nn.Module, mod: TextModality, rows: list[dict[str, Any]]) -> np.ndarray:
    """Each row's ``P(answer | question)^(1/|answer|)``."""
    prompts = [PROMPT.format(question=r["question"]) for r in rows]
    return normalised(*answer_logprob(encoder, mod, prompts, [r["answer"] for r in rows]))


def qa_scores(encoder: nn.Module, mod: TextModality, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Probability, truth ratios and ROUGE-L recall of a model on question-answer rows."""
    prompts = [PROMPT.format(question=r["question"]) for r in rows]
    prob = answer_probability(encoder, mod, rows)
    ratios = truth_ratios(encoder, mod, rows)
    rouge = [rouge_l_recall(greedy_answer(encoder, mod, p), r["answer"]) for p, r in zip(prompts, rows, strict=True)]
    return {"probability": float(prob.mean()), "ratios": ratios, "rouge": float(np.mean(rouge))}


def utility(parts: list[dict[str, Any]]) -> float:
    """TOFU's model utility: the harmonic mean of probability, ROUGE-L and the mean of
    ``max(0, 1 - R)`` over the questions (``R`` their truth ratios), over every set in ``parts``."""
    values = [v for p in parts for v in (p["probability"], p["rouge"], float(np.maximum(0, 1 - p["ratios"]).mean()))]
    return 0.0 if min(values) <= 0 else len(values) / sum(1 / v for v in values)


MIN_K = 0.2  # min-k% probability's share of tokens (Shi et al. 2024 found 20% best)


def membership_scores(encoder: nn.Module, mod: TextModality, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Three membership-inference scores of each question-answer row (higher: more likely a
    training member), each computed on the answer given its question:

    - ``loss``: the answer's mean token log-probability (Yeom et al. 2018);
    - ``zlib``: its total negative log-probability over the answer's zlib-compressed length,
      negated (Carlini et al. 2021, "Extracting Training Data from Large Language Models");
    - ``min_k``: the mean of its lowest ``MIN_K`` token log-probabilities (Shi et al. 2024,
      "Detecting Pretraining Data from Large Language Models")."""
    prompts = [PROMPT.format(question=r["question"]) for r in rows]
    tokens = answer_token_logprobs(encoder, mod, prompts, [r["answer"] for r in rows])
    zlib_bytes = np.array([len(zlib.compress(r["answer"].encode())) for r in rows], dtype=np.float64)
    lowest = [np.sort(t)[: max(1, int(np.ceil(MIN_K * len(t))))] for t in tokens]
    return {
        "loss": np.array([t.mean() for t in tokens]),
        "zlib": np.array([t.sum() for t in tokens]) / zlib_bytes,
        "min_k": np.array([low.mean() for low in lowest]),
    }


def membership_auc(members: np.ndarray, others: np.ndarray) -> float:
    """The AUC of telling ``members``' scores from ``others``' (0.5: indistinguishable; above:
    the members score higher, as a model that still knows them makes them)."""
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.ones(len(members)), np.zeros(len(others))]
    return float(roc_auc_score(labels, np.r_[members, others]))


MIN_KS = 5  # answers a side: with 3 or fewer the KS test's p-value cannot fall below 0.05


def forget_quality(ratios: np.ndarray, reference: np.ndarray) -> float:
    """The KS test's p-value between the forget set's truth ratios and the retrained model's;
    NaN, said, under ``MIN_KS`` answers a side, where even disjoint ratios pass as forgotten
    (p is 1.0 for one answer, 0.1 for three)."""
    from scipy.stats import ks_2samp

    if min(len(ratios), len(reference)) < MIN_KS:
        warn(f"forget quality needs {MIN_KS} or more forget-set answers to mean anything, not {len(ratios)}: left out")
        return float("nan")
    return float(ks_2samp(ratios, reference).pvalue)


LM_METRICS = (
    "forget_probability",
    "forget_rouge",
    "forget_truth_ratio",
    "retain_probability",
    "retain_rouge",
    "utility",
    "mia_loss",
    "mia_zlib",
    "mia_min_k",
)
SAMPLE = 200  # retained documents and world facts scored (greedy decoding costs a pass per token)


def world_rows(task: Collection) -> list[dict[str, Any]]:
    """The benchmark's world facts (``world.jsonl``), the true answer as the paraphrase."""
    path = task.path / "world.jsonl"
    if not path.exists():
        return []
    facts = [json.loads(line) for line in path.read_text().splitlines()[:SAMPLE]]
    return [
        {"question": f["question"], "answer": f["answer"], "paraphrase": f["answer"], "perturbed": f["perturbed"]}
        for f in facts
    ]


def general_perplexity(encoder: nn.Module, mod: TextModality, task: Collection, batch: int = 32) -> float:
    """Per-token perplexity of the benchmark's first ``SAMPLE`` general documents
    (``general.jsonl``); NaN where the benchmark has none."""
    path = task.path / "general.jsonl"
    if not path.exists():
        return float("nan")
    docs = [json.loads(line)["text"] for line in path.read_text().splitlines()[:SAMPLE]]
    nll, tokens = 0.0, 0
    for start in range(0, len(docs), batch):
        got = documents_nll(encoder, mod, docs[start : start + batch])
        nll, tokens = nll + got[0], tokens + got[1]
    return float(np.exp(nll / tokens)) if tokens else float("nan")


def holdout_rows(task: Collection) -> list[dict[str, Any]]:
    """The training documents of the authors the model never read (``holdout.jsonl``)."""
    path = task.path / "holdout.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def lm_rows(
    encoders: dict[str, tuple[nn.Module, TextModality]],
    reference: str,
    task: Collection,
    forget: np.ndarray,
    retain: np.ndarray,
) -> dict[str, dict[str, float]]:
    """Each model's row: forget and retain probability, ROUGE-L and truth ratio, utility, the
    membership AUCs, general perplexity, and forget quality against the ``reference`` model's forget truth ratios."""
    retain = retain[task.column("author")[retain] != WORLD]  # the world facts are scored on their own
    keep = np.sort(np.random.default_rng(0).choice(retain, min(SAMPLE, len(retain)), replace=False))
    sets = {"forget": qa_rows(task, forget), "retain": qa_rows(task, keep), "world": world_rows(task)}
    held = holdout_rows(task)
    raw, mia = {}, {}
    for name, (enc, mod) in encoders.items():
        enc.eval()
        raw[name] = {k: qa_scores(enc, mod, rows) for k, rows in sets.items() if rows}
        if held:  # the forget set's members against authors never read
            ins, outs = membership_scores(enc, mod, sets["forget"]), membership_scores(enc, mod, held)
            mia[name] = {f"mia_{k}": membership_auc(ins[k], outs[k]) for k in ins}
    rows = {}
    for name, s in raw.items():
        rows[name] = {
            "forget_probability": s["forget"]["probability"],
            "forget_rouge": s["forget"]["rouge"],
            # TOFU's forget-set statistic: min(R, 1/R), 1 where true and wrong answers are alike
            "forget_truth_ratio": float(np.minimum(s["forget"]["ratios"], 1 / s["forget"]["ratios"]).mean()),
            "retain_probability": s["retain"]["probability"],
            "retain_rouge": s["retain"]["rouge"],
            "utility": utility([v for k, v in s.items() if k != "forget"]),
            **mia.get(name, dict.fromkeys(("mia_loss", "mia_zlib", "mia_min_k"), float("nan"))),
            "general_perplexity": general_perplexity(encoders[name][0], encoders[name][1], task),
            "forget_quality": forget_quality(s["forget"]["ratios"], raw[reference]["forget"]["ratios"]),
        }
    return rows


def lm_gaps(result: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """Absolute gap to the retrained model per metric, and their average (a metric the
    benchmark cannot give, such as MIA without ``holdout.jsonl``, left out)."""
    g = {f"{m}_gap": abs(result[m] - reference[m]) for m in LM_METRICS if np.isfinite(result[m] - reference[m])}
    g["average_gap"] = float(np.mean(list(g.values())))
    return g
