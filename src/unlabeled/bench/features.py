"""What the probes of a bench task are fitted on: the models compared (the runs and the
baselines) with their features of the task's train and test samples, or, for the fine-tuning
probes, the samples as each run's encoder takes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from unlabeled._console import UnlabeledError
from unlabeled.bench.baselines import BASELINES, MINIROCKET, RANDOM_INIT, RAW, SUPERVISED
from unlabeled.bench.request import BenchRequest
from unlabeled.bench.tasks import Task
from unlabeled.data.collection import Collection
from unlabeled.modalities import fit_modality
from unlabeled.runs import Run, features, open_run


@dataclass(frozen=True)
class Model:
    """One model of a bench task: a run or a baseline."""

    name: str
    baseline: bool
    features: np.ndarray | None  # train rows then test rows, for the frozen-feature probes
    context: dict[str, Any] | None  # what the raw-input probes are given: run, trained, device


def raw_features(col: Collection, positions: np.ndarray, fit_on: np.ndarray | None = None) -> np.ndarray:
    """The raw-input baseline: what the encoder would be given (normalised pixels, series,
    log-mel spectrograms, voxels), flattened to vectors; padding becomes 0. The
    normalisation is fitted on ``fit_on`` (the train split). For text: :func:`tfidf_features`."""
    if col.is_text:
        return tfidf_features(col, positions, fit_on)
    mod = fit_modality(col, fit_on)
    out: np.ndarray | None = None  # filled in place: chunks, their concatenation and a cast held 3x
    for start in range(0, len(positions), 1024):
        x = torch.nan_to_num(mod.normalize(mod.prepare(col.get(positions[start : start + 1024])))).flatten(1)
        if out is None:
            out = np.empty((len(positions), x.shape[1]), dtype=np.float32)
        out[start : start + len(x)] = x.numpy()
    return out if out is not None else np.empty((0, 0), dtype=np.float32)


def tfidf_features(col: Collection, positions: np.ndarray, fit_on: np.ndarray | None = None) -> sp.csr_matrix:
    """The raw baseline for text, what a practitioner would try first: TF-IDF of word 1-2 grams
    and of character 2-5 grams within words (scikit-learn; sublinear term frequency, n-grams
    seen in at least 2 documents), each part's rows unit length, side by side (rows of unit
    length again). Vocabularies and IDF weights are fitted on ``fit_on`` (the train split)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    fit_on = col.indices() if fit_on is None else fit_on
    texts = col.get(fit_on)
    kinds = ({"analyzer": "word", "ngram_range": (1, 2)}, {"analyzer": "char_wb", "ngram_range": (2, 5)})
    parts = []
    # a part with no n-gram in two documents is left out: text without spaces between words
    # (Chinese, Japanese) has no word seen twice; a handful of documents may have neither,
    # and then every n-gram counts
    for min_df in (2, 1):
        for kw in kinds:
            try:
                vec = TfidfVectorizer(sublinear_tf=True, min_df=min_df, dtype=np.float32, **kw).fit(texts)
            except ValueError:  # scikit-learn's "empty vocabulary" / "no terms remain"
                continue
            parts.append(vec.transform(col.get(positions)))
        if parts:
            break
    if not parts:
        raise UnlabeledError(f"{col.path}: the training documents have no words or characters to count (TF-IDF)")
    return (sp.hstack(parts, format="csr") * np.float32(len(parts) ** -0.5)).astype(np.float32)


def minirocket_features(col: Collection, positions: np.ndarray, fit_on: np.ndarray, seed: int = 0) -> np.ndarray:
    """The MiniRocket baseline for series (Dempster et al. 2021, "MiniRocket: A Very Fast
    (Almost) Deterministic Transform for Time Series Classification"): aeon's transform, its
    biases fitted on the series at ``fit_on`` (the train split; no labels), applied to those at
    ``positions``; padding (NaN) becomes 0. The probes then see these features as any run's."""
    from aeon.transformations.collection.convolution_based import MiniRocket

    def series(pos: np.ndarray) -> np.ndarray:
        return np.nan_to_num(col.get(pos).astype(np.float32, copy=False))

    transform = MiniRocket(random_state=seed).fit(series(fit_on))
    out = [transform.transform(series(positions[i : i + 1024])) for i in range(0, len(positions), 1024)]
    return np.concatenate(out).astype(np.float32)


def task_models(task: Task, request: BenchRequest, with_features: bool) -> list[Model]:
    """The runs and the requested baselines, in report order, with their features of the
    task's train then test samples when ``with_features`` (a frozen-feature probe is asked
    for). Random-init and supervised baselines come once per architecture among the runs."""
    col, device = task.collection, request.device
    both = np.concatenate([task.train, task.test])
    models = []
    if RAW in request.baselines and with_features:
        models.append(Model(RAW, True, raw_features(col, both, fit_on=task.train), None))
    # MiniRocket's kernels are 9 steps long: shorter series have no MiniRocket row
    if MINIROCKET in request.baselines and with_features and col.modality == "series" and col.sample_shape[-1] >= 9:
        models.append(Model(MINIROCKET, True, minirocket_features(col, both, task.train), None))
    archs: dict[str, Run] = {}
    for run, name in zip(request.runs, _model_names(request.runs), strict=True):
        # an adapted task's statistics from its train split alone, as the fine-tuning probes' are
        feats = features(run, col, both, device=device, fit_on=task.train) if with_features else None
        models.append(Model(name, False, feats, {"run": str(run.path), "trained": True, "device": device}))
        archs.setdefault(_arch(run), run)
    for i, (arch, run) in enumerate(archs.items()):
        suffix = "" if i == 0 else f":{arch}"
        if RANDOM_INIT in request.baselines and with_features:
            feats = run.encode(col, both, trained=False, device=device, fit_on=task.train)
            models.append(Model(RANDOM_INIT + suffix, True, feats, None))
        if SUPERVISED in request.baselines:
            ctx = {"run": str(run.path), "trained": False, "device": device}
            models.append(Model(SUPERVISED + suffix, True, None, ctx))
    return models


def raw_samples(run: Run, task: Task, positions: np.ndarray) -> np.ndarray | None:
    """The task's samples as the run's encoder takes them, or None when one sample becomes
    several (channel-independent series), which the fine-tuning probes do not handle."""
    mod, col = run.modality(), task.collection
    source = fit_modality(col, task.train)
    if mod.adapt_factor(source) != 1:
        return None
    return mod.adapt(col.get(positions), source)


def identity(model: Model, runs: tuple[Run, ...]) -> list[Any]:
    """What a model's scores depend on besides the task, by content rather than by path: a
    run's digest (its weights, architecture, seed and modality); for the supervised
    baseline, which trains that architecture from scratch, and the random-init one, the
    digest without the weights. Raw and MiniRocket features depend on the task alone."""
    if model.context is not None:
        trained = bool(model.context["trained"])
        return ["run" if trained else SUPERVISED, open_run(model.context["run"]).digest(trained)]
    if model.name in (RAW, MINIROCKET):
        return [model.name]
    arch_run = next((r for r in runs if model.name == RANDOM_INIT or model.name.endswith(_arch(r))), runs[0])
    return [RANDOM_INIT, arch_run.digest(trained=False)]


def _model_names(runs: tuple[Run, ...]) -> list[str]:
    """Each run's name in the tables: its folder's, with its parent's before it where two runs
    share one or it is a baseline's (a run in ``raw/`` took the raw baseline's row)."""
    names = [r.name for r in runs]

    def taken(name: str) -> bool:
        return names.count(name) > 1 or name.split(":")[0] in BASELINES

    out = [f"{r.path.parent.name}/{r.name}" if taken(r.name) else r.name for r in runs]
    # runs/a/exp/run and runs/b/exp/run: more of their paths until the rows are told apart
    # (one name's rows, cells and unified score took the other's)
    parts = [r.path.resolve().parts for r in runs]
    for depth in range(3, max(map(len, parts)) + 1):
        twice = {n for n in out if out.count(n) > 1}
        if not twice:
            break
        out = ["/".join(p[-depth:]).lstrip("/") if n in twice else n for n, p in zip(out, parts, strict=True)]
    return out


def _arch(run: Run) -> str:
    return f"{run.config['encoder']['name']}-{run.config['encoder']['size']}"
