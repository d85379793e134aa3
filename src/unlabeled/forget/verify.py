"""Verification of a forget request against retraining, the field's protocol (SalUn, Fan et
al. 2024; SCRUB): accuracy on the forget, retain and test sets, and membership-inference
efficacy on the forget set, each as the gap to a model retrained without the forget set.

MIA efficacy: a confidence-based attack (Yeom et al. 2018; SalUn's "MIA-Efficacy") — a
logistic regression on (log-probability of the true label, entropy, top probability),
trained to tell retain samples (members) from test samples (non-members), then asked about
the forget set; efficacy is the fraction of the forget set it calls non-members. A model
that truly forgot looks at its forget set as at unseen data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from unlabeled._console import UnlabeledError
from unlabeled.bench.probes import KNNProbe
from unlabeled.data.collection import Collection
from unlabeled.runs import encode, resolve_device
from unlabeled.train.trainer import bf16_available


@dataclass(frozen=True, eq=False)
class Parts:
    """The positions a verification scores: the forget set, the retain set (members) and the
    test split (non-members)."""

    forget: np.ndarray
    retain: np.ndarray
    test: np.ndarray


@torch.no_grad()
def predict(
    classifier: torch.nn.Module,
    modality: Any,
    collection: Collection,
    positions: np.ndarray,
    device: str = "auto",
    batch_size: int = 1024,
) -> np.ndarray:
    """Class probabilities (n, classes) of the samples at ``positions``."""
    dev = resolve_device(device)
    classifier = classifier.to(dev).eval()
    out = []
    for start in range(0, len(positions), batch_size):
        x = modality.normalize(modality.prepare(collection.get(positions[start : start + batch_size]), dev))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16_available(dev)):
            logits = classifier(x)
        out.append(logits.float().softmax(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def attack_features(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    p_true = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1)
    entropy = -(probs * np.log(np.clip(probs, 1e-12, 1))).sum(1)
    return np.stack([np.log(p_true), entropy, probs.max(1)], 1)


def mia_efficacy(
    retain: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    forget: tuple[np.ndarray, np.ndarray],
    seed: int = 0,
) -> float:
    """Fraction of the forget set that an attack trained on retain (members) vs test
    (non-members) predicts to be non-members. Each argument is (probabilities, labels)."""
    rng = np.random.default_rng(seed)
    n = min(len(retain[1]), len(test[1]))
    r = rng.choice(len(retain[1]), n, replace=False)
    t = rng.choice(len(test[1]), n, replace=False)
    X = np.concatenate([attack_features(retain[0][r], retain[1][r]), attack_features(test[0][t], test[1][t])])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    attack = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    return float((attack.predict(attack_features(*forget)) == 0).mean())


def scores(
    classifier: torch.nn.Module,
    modality: Any,
    task: Collection,
    parts: Parts,
    device: str = "auto",
    max_eval: int = 10_000,
    seed: int = 0,
) -> dict[str, float]:
    """Forget / retain / test accuracy and MIA efficacy (retain and test subsampled to
    ``max_eval`` each, the same subsample for every model compared)."""
    forget, retain, test = parts.forget, parts.retain, parts.test
    test = test[task.labels[test] >= 0]  # an unlabelled test sample counted as a miss, and as a non-member
    if not len(test):
        raise UnlabeledError(f"{task.path}'s test split has no labelled sample to verify a classifier on")
    rng = np.random.default_rng(seed)
    retain = np.sort(rng.choice(retain, min(max_eval, len(retain)), replace=False))
    test = np.sort(rng.choice(test, min(max_eval, len(test)), replace=False))
    y = task.labels
    parts = {
        name: (predict(classifier, modality, task, pos, device), y[pos])
        for name, pos in (("forget", forget), ("retain", retain), ("test", test))
    }
    out = {f"{name}_acc": float((p.argmax(1) == labels).mean()) for name, (p, labels) in parts.items()}
    out["mia_efficacy"] = mia_efficacy(parts["retain"], parts["test"], parts["forget"], seed)
    return out


METRICS = ("forget_acc", "retain_acc", "test_acc", "mia_efficacy")


def gaps(result: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """Absolute gap to the retrained reference per metric, and their average."""
    g = {f"{m}_gap": abs(result[m] - reference[m]) for m in METRICS}
    g["average_gap"] = float(np.mean(list(g.values())))
    return g


# -- encoders (no head, no labels needed) ------------------------------------------------------
ENCODER_METRICS = ("forget_knn_acc", "test_knn_acc", "mia_efficacy", "forget_cka")


@torch.no_grad()
def view_alignment(
    encoder: torch.nn.Module,
    modality: Any,
    collection: Collection,
    positions: np.ndarray,
    device: str = "auto",
    batch_size: int = 512,
    seed: int = 0,
) -> np.ndarray:
    """Cosine similarity between the embeddings of two augmented views of each sample: a
    self-supervised encoder aligns the views of its training samples more closely than those
    of unseen ones, the signal of encoder membership inference (Liu et al. 2021, "EncoderMI")."""
    dev = resolve_device(device)
    encoder = encoder.to(dev).eval()
    g = torch.Generator(device=dev).manual_seed(seed)
    out = []
    for start in range(0, len(positions), batch_size):
        x = modality.prepare(collection.get(positions[start : start + batch_size]), dev)
        with torch.autocast(dev.type, enabled=False):
            a, b = (modality.normalize(modality.augment(x, g)) for _ in range(2))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16_available(dev)):
            za, zb = encoder.embed(a).float(), encoder.embed(b).float()
        out.append(torch.nn.functional.cosine_similarity(za, zb, dim=1).cpu().numpy())
    return np.concatenate(out)


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) of two representations of the
    same samples: 1 when they agree up to rotation and scale, whatever their dimensions; nan
    where it is undefined (fewer than two samples, or one side the same for every sample: the
    centred representation is zero)."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    scale = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    if len(a) < 2 or scale <= 0:
        return float("nan")
    return float(np.linalg.norm(a.T @ b) ** 2 / scale)


def encoder_scores(
    encoders: dict[str, tuple[torch.nn.Module, Any]],
    reference: str,
    data: Collection,
    parts: Parts,
    device: str = "auto",
    max_eval: int = 5_000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Per encoder: kNN accuracy (k=20, cosine; the retain set's labels as memory, used only
    to verify) on the forget and test sets, MIA efficacy of a view-alignment attack trained
    on retain vs test, and the linear CKA of its forget-set representations to those of the
    ``reference`` (retrained) encoder. Removal moves the forget set's representations
    toward the retrained encoder's; suppression only moves them away from the original's."""
    forget, retain, test = parts.forget, parts.retain, parts.test
    rng = np.random.default_rng(seed)
    retain = np.sort(rng.choice(retain, min(max_eval, len(retain)), replace=False))
    test = np.sort(rng.choice(test, min(max_eval, len(test)), replace=False))
    forget = np.sort(rng.choice(forget, min(max_eval, len(forget)), replace=False))
    feats = {
        name: {
            part: encode(enc, mod, data, pos, device=device, description=f"verify {name} {part}")
            for part, pos in (("forget", forget), ("retain", retain), ("test", test))
        }
        for name, (enc, mod) in encoders.items()
    }
    rows: dict[str, dict[str, float]] = {}
    for name, (enc, mod) in encoders.items():
        f = feats[name]
        row: dict[str, float] = {}
        if data.has_labels() and (data.labels[retain] >= 0).any():  # labelled samples alone: -1 is no class
            known = data.labels[retain] >= 0
            knn = KNNProbe(k=20).fit(f["retain"][known], data.labels[retain][known])
            for part, pos in (("forget", forget), ("test", test)):
                m = data.labels[pos] >= 0
                hits = knn.predict(f[part][m]) == data.labels[pos][m] if m.any() else np.array([np.nan])
                row[f"{part}_knn_acc"] = float(hits.mean())
        align = {
            part: view_alignment(enc, mod, data, pos, device, seed=seed)[:, None]
            for part, pos in (("forget", forget), ("retain", retain), ("test", test))
        }
        # as many of each as the smaller holds, drawn at random: the first n of the sorted
        # positions were the collection's first classes or sources alone
        n = min(len(retain), len(test))
        pick = np.random.default_rng(seed)
        members, others = (pick.choice(len(align[p]), n, replace=False) for p in ("retain", "test"))
        X = np.concatenate([align["retain"][members], align["test"][others]])
        y = np.concatenate([np.ones(n), np.zeros(n)])
        attack = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
        row["mia_efficacy"] = float((attack.predict(align["forget"]) == 0).mean())
        row["forget_cka"] = linear_cka(f["forget"], feats[reference]["forget"])
        row["retain_cka"] = linear_cka(f["retain"], feats[reference]["retain"])
        rows[name] = row
    return rows


def encoder_gaps(result: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """Absolute gap to the retrained encoder per metric present (CKA: 1 - CKA), and their average."""
    g = {f"{m}_gap": abs(result[m] - reference[m]) for m in ENCODER_METRICS if m in result and m != "forget_cka"}
    g["forget_cka_gap"] = 1.0 - result["forget_cka"]  # nan where CKA is (one forgotten sample)
    g["average_gap"] = float(np.mean([v for v in g.values() if np.isfinite(v)]))
    return g
