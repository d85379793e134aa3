"""UCR/UEA time series: self-supervised encoder + frozen-feature probes against MiniRocket,
with 10% and 100% of the train labels (not run by CI).

Rows per set:
- ``per-set``: an encoder pretrained without labels on that set's train series only (the
  test series never enter pretraining);
- ``pooled``: one encoder pretrained on the train series of all the sets together, as
  foundation models such as Tiny Time Mixers are. The sets differ in length and channels,
  so the pooled encoder sees every channel as its own univariate series resampled to one
  length (channel independence, as PatchTST and TTM do) and scaled by its set's train mean and
  deviation (``set_scale``); a multivariate sample's feature is its channels' embeddings side
  by side.
- ``per-set + pooled``: both encoders' features side by side, one probe on the two: each is
  strong where the other is weak (on the six default sets this row beats MiniRocket at 10% and
  matches it at 100%; on series far longer than the pooled length the pooled half costs
  accuracy at 100%, BENCHMARKS);
- ``adapted`` (with ``--adapt-steps``): the pooled encoder pretrained further on each set's
  train series, channel by channel (``pretrain --init``: domain-adaptive pretraining,
  Gururangan et al. 2020), then probed the same way.

Every row is a probe on frozen features (``--pool stats``, the default: the mean, max and
standard deviation of the encoder's tokens; ``mean`` for the token mean; more encoder settings
with ``--encoder-option``, e.g. ``diff=0`` or ``layers=1`` for the tcn) with the bench protocol
(stratified label subset per seed), once per probe in ``--probes``: ``linear`` (logistic
regression, its C chosen on a validation split of those labels) and ``ridge`` (MiniRocket's own
classifier, ridge with its penalty chosen by leave-one-out on all those labels), rows marked
"· ridge". MiniRocket (aeon, 10,000 kernels + ridge) is trained on exactly the same labelled
subsets. Variable-length series are forward-filled to the set's longest length for
MiniRocket, which needs equal lengths.

    python benchmarks/ucr.py --encoder tcn --method ts2vec --batch 8 --steps 200 --pooled-minutes 6 \
        --adapt-steps 200
    python benchmarks/ucr.py --minutes 1.5 --pooled-minutes 6      # MAE on the transformer

The pooled encoder trains for ``--pooled-minutes`` of wall time, so how many steps it takes
depends on the machine's speed and load (1,441 and 1,494 steps in two 6-minute runs on one
machine, BENCHMARKS); ``--pooled-steps N`` makes it a fixed number of steps instead.

The run ends with every row paired against MiniRocket (the same subsets, set by set and seed
by seed); ``--from-result WORK/result.json`` prints that comparison again for a saved run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from _provenance import provenance

import unlabeled as ul
from unlabeled.bench.benchmark import task_split
from unlabeled.bench.probes import probe_spec
from unlabeled.bench.protocol import evaluate
from unlabeled.cli import parse_settings
from unlabeled.data.collection import CollectionWriter
from unlabeled.data.splits import stratified_subset
from unlabeled.modalities.series import resample_valid
from unlabeled.runtime import tune_process

ROOT = Path(__file__).resolve().parent.parent
SETS = ["GunPoint", "ArrowHead", "OSULeaf", "ItalyPowerDemand", "BasicMotions", "JapaneseVowels"]
POOLED_LENGTH = 256


def set_scale(train: np.ndarray) -> tuple[float, float]:
    """The mean and standard deviation of a set's train series (N, C, T), every channel and
    step together: the pooled encoder reads each set on one common scale, and within a set the
    channels and samples keep their relative amplitudes."""
    return float(np.nanmean(train)), max(float(np.nanstd(train)), 1e-6)


def resample_channels(x: np.ndarray, length: int, scale: tuple[float, float]) -> np.ndarray:
    """(N, C, T) NaN-padded -> (N*C, 1, length): each channel on its own, its valid part
    resampled, standardised by its set's ``scale``. Without that, one set in raw units sets the
    pooled collection's scale for all: UnitTest's counts (up to 1,891) flattened every other
    set and took the pooled encoder's JapaneseVowels score from 0.88 to 0.60; scaling each
    series on its own instead loses the amplitudes JapaneseVowels is told apart by (BENCHMARKS)."""
    flat = resample_valid(np.asarray(x, np.float32).reshape(-1, 1, x.shape[2]), length)
    return (flat - scale[0]) / scale[1]


def channel_collection(path: Path, series: np.ndarray, scale: tuple[float, float]) -> ul.Collection:
    """``series`` (N, C, T) written as N*C univariate series of POOLED_LENGTH, as the pooled
    encoder sees them."""
    flat = resample_channels(series, POOLED_LENGTH, scale)
    w = CollectionWriter(path, "series", (1, POOLED_LENGTH), "float32", None, overwrite=True)
    w.add(flat, [str(i) for i in range(len(flat))])
    return w.close()


def budget(n: int, batch: int, steps: int | None = None, minutes: float | None = None) -> dict[str, float | int]:
    """``pretrain`` arguments for ``steps`` optimiser steps over ``n`` samples, or for
    ``minutes`` of wall time when ``steps`` is None; a batch of at most half the set."""
    batch = min(batch, n // 2)
    return {"batch_size": batch, **({"epochs": steps / (n // batch)} if steps else {"minutes": minutes})}


def forward_fill(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    for t in range(1, x.shape[2]):
        gap = np.isnan(x[:, :, t])
        x[:, :, t][gap] = x[:, :, t - 1][gap]
    return x


def probe_scores(
    X: np.ndarray, col: ul.Collection, seeds: int, fractions: list[float], probe: str = "linear"
) -> dict[float, list[float]]:
    train, test, _ = task_split(col)
    y = col.labels
    return {
        f: [evaluate(X[train], y[train], X[test], y[test], probe, f, s).value for s in range(seeds)] for f in fractions
    }


def row_name(row: str, probe: str) -> str:
    """``per-set`` for the linear probe, ``per-set · ridge`` for another."""
    return row if probe == "linear" else f"{row} · {probe}"


def probe_rows(
    X: np.ndarray, col: ul.Collection, row: str, args: argparse.Namespace, fractions: list[float]
) -> dict[str, dict[float, list[float]]]:
    """Scores of the features ``X`` under every probe of ``--probes``, one row each."""
    return {row_name(row, p): probe_scores(X, col, args.seeds, fractions, p) for p in args.probes}


def minirocket_scores(col: ul.Collection, seeds: int, fractions: list[float]) -> dict[float, list[float]]:
    from aeon.classification.convolution_based import MiniRocketClassifier

    train, test, _ = task_split(col)
    x = forward_fill(col.get(np.arange(len(col))).astype(np.float32))
    y = col.labels
    out = {}
    for f in fractions:
        scores = []
        for s in range(seeds):
            sub = train[stratified_subset(y[train], f, s)]
            clf = MiniRocketClassifier(random_state=s).fit(x[sub], y[sub])
            scores.append(float((clf.predict(x[test]) == y[test]).mean()))
        out[f] = scores
    return out


def paired_against_minirocket(results: dict[str, dict[str, dict]], rows: list[str], fractions: list) -> None:
    """Each row against MiniRocket on the same labelled subsets: the mean difference over
    sets and seeds in points, a 95% interval from resampling the seeds (the sets held fixed),
    and the (set, seed) cells won, tied and lost."""
    rng = np.random.default_rng(0)
    print("\n| row | labels | mean difference to MiniRocket | 95% interval (seeds resampled) | cells W / T / L |")
    print("|---|---|---|---|---|")
    for row in (r for r in rows if r != "minirocket"):
        for f in fractions:
            d = np.array([np.subtract(results[n][row][f], results[n]["minirocket"][f]) for n in results])
            boots = [d[:, rng.integers(0, d.shape[1], d.shape[1])].mean() for _ in range(2000)]
            lo, hi = np.percentile(boots, [2.5, 97.5]) * 100
            print(
                f"| {row} | {float(f):.0%} | {d.mean() * 100:+.2f} pt | {lo:+.2f} to {hi:+.2f} "
                f"| {(d > 0).sum()} / {(d == 0).sum()} / {(d < 0).sum()} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sets",
        default=None,
        help=f"comma-separated UCR/UEA sets bundled in aeon (default {','.join(SETS)}); "
        "with --from-result, the sets to compare over",
    )
    ap.add_argument("--method", default="mae", help="mae | jepa | simclr (transformer); ts2vec | simclr (tcn)")
    ap.add_argument("--encoder", default="transformer", help="transformer | tcn")
    ap.add_argument("--size", default=None, help="encoder size (default: from the amount of data, tiny here)")
    ap.add_argument("--batch", type=int, default=128, help="pretraining batch (at most half the train series)")
    ap.add_argument("--minutes", type=float, default=1.5, help="pretraining budget per set")
    ap.add_argument("--pooled-minutes", type=float, default=6)
    ap.add_argument(
        "--pooled-steps",
        type=int,
        default=None,
        help="the pooled encoder: this many optimiser steps instead of --pooled-minutes (the same run on any machine)",
    )
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="per set: this many optimiser steps instead of --minutes (TS2Vec trains 200 on small sets)",
    )
    ap.add_argument(
        "--adapt-steps",
        type=int,
        default=0,
        help="also pretrain the pooled encoder this many steps more on each set (the adapted row)",
    )
    ap.add_argument("--pool", default="stats", help="probe features: mean | stats (transformer), max | stats (tcn)")
    ap.add_argument(
        "--encoder-option",
        action="append",
        default=[],
        help="more encoder settings NAME=VALUE as `unlabeled pretrain` takes them (diff=0, layers=1)",
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "--probes",
        type=lambda v: v.split(","),
        default=["linear", "ridge"],
        help="frozen-feature probes, comma-separated (linear, ridge, ...)",
    )
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "ucr")
    ap.add_argument(
        "--from-result", type=Path, help="print the paired comparison of a saved result.json, and train nothing"
    )
    args = ap.parse_args()
    print(provenance(), flush=True)
    if args.from_result:
        saved = json.loads(args.from_result.read_text())["results"]
        if args.sets:
            missing = [n for n in args.sets.split(",") if n not in saved]
            if missing:
                raise SystemExit(f"{args.from_result} has no {', '.join(missing)}; it has {', '.join(saved)}")
            saved = {n: saved[n] for n in args.sets.split(",")}
        first = next(iter(saved.values()))
        paired_against_minirocket(saved, list(first), list(first["minirocket"]))
        return
    for probe in args.probes:  # before any training: a typo should not cost the first set's run
        probe_spec(probe)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    options = {"pool": args.pool, **parse_settings(args.encoder_option, "--encoder-option")}
    sets, fractions = (args.sets or ",".join(SETS)).split(","), [0.1, 1.0]
    cols = {}
    for name in sets:
        path = args.work / "data" / name
        if not path.exists():
            ul.import_source(f"ucr:{name}", path)
        cols[name] = ul.open_collection(path)

    results: dict[str, dict[str, dict[float, list[float]]]] = {}
    own: dict[str, np.ndarray] = {}  # each set's per-set features, for the combined row
    for name, col in cols.items():
        t = time.perf_counter()
        n_train = len(col.indices("train"))
        run = ul.pretrain(
            col,
            args.work / "runs" / name,
            method=args.method,
            **budget(n_train, args.batch, args.steps, args.minutes),
            encoder=args.encoder,
            size=args.size,
            encoder_options=options,
            overwrite=True,
        )
        X = own[name] = run.encode(col, device="cpu")
        results[name] = {
            **probe_rows(X, col, "per-set", args, fractions),
            "minirocket": minirocket_scores(col, args.seeds, fractions),
        }
        print(
            f"{name}: {time.perf_counter() - t:.0f} s",
            {k: {f: round(float(np.mean(v)), 4) for f, v in r.items()} for k, r in results[name].items()},
            flush=True,
        )

    # one encoder on every set's train series, channel by channel, resampled to one length
    pooled_path = args.work / "data" / "pooled"
    w = CollectionWriter(
        pooled_path, "series", (1, POOLED_LENGTH), "float32", None, extra_meta={"name": "ucr-pooled"}, overwrite=True
    )
    scales = {}
    for name, col in cols.items():
        train = col.get(col.indices("train"))
        scales[name] = set_scale(train)
        arr = resample_channels(train, POOLED_LENGTH, scales[name])
        w.add(arr, [f"{name}/{i}" for i in range(len(arr))])
    pooled = w.close()
    run = ul.pretrain(
        pooled,
        args.work / "runs" / "pooled",
        method=args.method,
        **budget(len(pooled), args.batch, args.pooled_steps, args.pooled_minutes),
        encoder=args.encoder,
        size=args.size,
        encoder_options=options,
        overwrite=True,
    )
    rows = [row_name(r, p) for r in ("per-set", "pooled", "per-set + pooled") for p in args.probes] + ["minirocket"]
    rows += [row_name("adapted", p) for p in args.probes] if args.adapt_steps else []
    for name, col in cols.items():
        channels = channel_collection(
            args.work / "data" / f"{name}-channels", col.get(np.arange(len(col))), scales[name]
        )
        X = run.encode(channels, device="cpu").reshape(len(col), -1)
        results[name].update(probe_rows(X, col, "pooled", args, fractions))
        results[name].update(probe_rows(np.concatenate([own[name], X], 1), col, "per-set + pooled", args, fractions))
        if args.adapt_steps:
            # further pretraining sees the set's train series only, as the per-set row does
            train_channels = channel_collection(
                args.work / "data" / f"{name}-train-channels", col.get(col.indices("train")), scales[name]
            )
            adapted = ul.pretrain(
                train_channels,
                args.work / "runs" / f"adapted-{name}",
                method=args.method,
                init=run,
                **budget(len(train_channels), args.batch, args.adapt_steps),
                encoder_options=options,
                overwrite=True,
            )
            X = adapted.encode(channels, device="cpu").reshape(len(col), -1)
            results[name].update(probe_rows(X, col, "adapted", args, fractions))
            print(
                name,
                {
                    k: {f: round(float(np.mean(v)), 4) for f, v in r.items()}
                    for k, r in results[name].items()
                    if k.startswith("adapted")
                },
                flush=True,
            )

    print("\n| set | channels x length | train / test | row | 10% labels | 100% labels |\n|---|---|---|---|---|---|")
    for name, col in cols.items():
        tr, te, _ = task_split(col)
        for row in rows:
            cells = " | ".join(f"{np.mean(v):.3f} ± {np.std(v):.3f}" for v in results[name][row].values())
            shape = "x".join(map(str, col.sample_shape))
            print(f"| {name} | {shape} | {len(tr)} / {len(te)} | {row} | {cells} |")
    means = {row: {f: float(np.mean([np.mean(results[n][row][f]) for n in cols])) for f in fractions} for row in rows}
    for row, m in means.items():
        print(f"| mean over sets | | | {row} | {m[0.1]:.3f} | {m[1.0]:.3f} |")
    summary = {
        "method": args.method,
        "encoder": args.encoder,
        "batch": args.batch,
        "minutes": args.minutes,
        "steps": args.steps,
        "pooled_minutes": args.pooled_minutes,
        "pooled_steps": args.pooled_steps,
        "adapt_steps": args.adapt_steps,
        "pool": args.pool,
        "probes": args.probes,
        "results": results,
        "means": means,
    }
    (args.work / "result.json").write_text(json.dumps(summary, indent=1))
    paired_against_minirocket(results, rows, fractions)


if __name__ == "__main__":
    tune_process()  # the CLI's process-wide settings, so the figures match `unlabeled` runs
    main()
