"""The report's embedding map: a 2-D t-SNE of each model's test-split features per task (van
der Maaten & Hinton, 2008), computed before the report is rendered."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from unlabeled.bench.result import Embeddings

TSNE_POINT_BUDGET = 20_000  # all panels together: about a minute of t-SNE on one core
TSNE_MIN_POINTS = 300  # a panel is never subsampled below this when the budget is shared

Maps = dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]  # task -> model -> (2-D coordinates, labels)


def map_features(features: Any, seed: int = 0) -> np.ndarray:
    """Features a map can be drawn from: dense ones as they are; sparse ones (the text
    baseline's TF-IDF) as their 50 leading singular directions (LSA)."""
    if not sp.issparse(features):
        return np.asarray(features)
    k = max(1, min(50, features.shape[0] - 1, features.shape[1] - 1))
    return TruncatedSVD(k, random_state=seed).fit_transform(features).astype(np.float32)


def tsne_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE map of ``features`` (n, d): van der Maaten & Hinton, "Visualizing Data using
    t-SNE", JMLR 2008. PCA initialisation, perplexity min(30, (n - 1) / 3), fixed random state;
    features wider than 50 are first reduced to 50 principal components, as the paper does; 500
    iterations (the first 250 with early exaggeration), which is where the map of a few thousand
    points stops changing visibly."""
    x = np.nan_to_num(np.asarray(features, dtype=np.float32).reshape(len(features), -1))
    n = len(x)
    if x.shape[1] < 2:
        x = np.pad(x, ((0, 0), (0, 2 - x.shape[1])))
    if n < 5 or np.ptp(x, axis=0).max() == 0:
        return np.asarray(x[:, :2], dtype=np.float32)  # nothing for t-SNE to arrange
    tsne = TSNE(2, perplexity=min(30.0, (n - 1) / 3), init="pca", max_iter=500, random_state=seed)
    # one thread: the Barnes-Hut gradient's OpenMP threads spin-wait, and on a machine busy with
    # anything else (probe workers, a second job) that made it 20 times slower, not faster; the
    # PCA too, so that a map is the same wherever it is made (a bench worker or the report's
    # process): t-SNE magnifies the last bits of a product summed in another order
    with threadpool_limits(1):
        if x.shape[1] > 50 and n > 50:  # PCA cannot give more components than samples
            x = PCA(50, random_state=seed).fit_transform(x).astype(np.float32)
        out = tsne.fit_transform(x)
    return np.asarray(out if np.isfinite(out).all() else x[:, :2], dtype=np.float32)


def embedding_panels(
    embeddings: Embeddings, tasks: list[str], models: list[str], budget: int = TSNE_POINT_BUDGET
) -> Maps:
    """task -> model -> (features, labels), tasks and models in ``tasks``/``models`` order
    (others after), subsampled so that all panels together stay within ``budget`` points."""
    pairs = [k for k in embeddings if isinstance(k, tuple) and len(k) == 2]
    if not pairs:
        return {}
    task_order = tasks + [t for t in dict.fromkeys(t for t, _ in pairs) if t not in tasks]
    model_order = models + [m for m in dict.fromkeys(m for _, m in pairs) if m not in models]
    total = sum(len(embeddings[k][0]) for k in pairs)
    cap = None if total <= budget else max(TSNE_MIN_POINTS, budget // len(pairs))
    rng = np.random.default_rng(0)
    panels: Maps = {}
    for task in task_order:
        for model in model_order:
            if (task, model) not in embeddings:
                continue
            x, y = (np.asarray(a) for a in embeddings[(task, model)])
            if cap is not None and len(x) > cap:
                keep = np.sort(rng.choice(len(x), cap, replace=False))
                x, y = x[keep], y[keep]
            if len(x):
                panels.setdefault(task, {})[model] = (x, y)
    return panels


def embedding_maps(embeddings: Embeddings, tasks: list[str], models: list[str], seed: int = 0) -> Maps:
    """task -> model -> (2-D t-SNE coordinates, labels) of :func:`embedding_panels`."""
    return {
        task: {model: (tsne_2d(x, seed=seed), y) for model, (x, y) in panel.items()}
        for task, panel in embedding_panels(embeddings, tasks, models).items()
    }
