"""What curation buys a language model (issue 26; not run by CI), on the damaged pool of
``curate_pool.py`` and its curated collection:

1. ``raw`` against ``curated``: a ``clm`` model pretrained with the same compute (model,
   batch, step count, seed) on the raw pool and on the curated one; each scored by its bits
   per byte on clean held-out text (WordNet's test glosses) and by a linear probe on WordNet's
   45 categories (10% and 1% of the labels, 3 draws; the test split never trained on).
2. ``constant`` against ``upsampled``: the same compute on a mixture of the curated general
   text (the curated pool less every WordNet gloss) at 0.9 and the downstream task's domain
   (WordNet's training glosses) at 0.1, constant, against the same mixture with the domain at
   0.5 over the last 20% of the steps (Blakeney et al. 2024, "Does your data spark joy?");
   scored by the same probe.

``--seeds 0,1,2`` pretrains each arm once per seed (the same data and step count; seed 0's run
keeps the arm's name, the others are ``ARM-sN``) and prints every seed's row and the mean over
seeds: one pretraining per arm leaves the comparison at the mercy of that run's draw.

Held out of every pretraining set: WordNet's test glosses, the GCIDE entries that cite WordNet
(they hold WordNet glosses), and every injected copy or fragment of either. Nothing here is
chosen on a score: the model (transformer-tiny), batch, step count and the shares are set
before the first run, the same for every arm.

    python benchmarks/curate_lm.py --work benchmarks/work/curate --steps 1500
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from _provenance import provenance

import unlabeled as ul
from unlabeled.data.collection import derive_collection, weighted_positions
from unlabeled.data.corpora import load_gcide, load_wordnet
from unlabeled.runtime import tune_process

ROOT = Path(__file__).resolve().parent.parent


def held_out() -> tuple[set[str], set[str]]:
    """(ids never pretrained on: WordNet's test glosses and the GCIDE entries citing WordNet,
    every WordNet gloss's id)."""
    wn, gc = load_wordnet(), load_gcide()
    test = {str(i) for i, s in zip(wn.ids, wn.splits, strict=True) if s == "test"}
    cites = {str(i) for i, t in zip(gc.ids, gc.arrays, strict=True) if "WordNet" in t}
    return test | cites, {str(i) for i in wn.ids}


def derived(src: ul.Collection, drop: set[str], dest: Path, name: str) -> ul.Collection:
    """``src`` less the documents in ``drop`` (a collection reading ``src``'s shards)."""
    if (dest / "collection.json").exists():
        return ul.open_collection(dest)
    keep = np.flatnonzero([str(i) not in drop for i in src.ids])
    print(f"{name}: {len(keep):,} of {len(src):,} documents", flush=True)
    return derive_collection(src, keep, dest, {"name": name}, overwrite=True)


def pretrain(name: str, data: ul.Collection, args: argparse.Namespace, seed: int = 0, **mix) -> ul.Run:
    out = args.work / "lm" / name
    if (out / "config.json").exists() and ul.open_run(out).finished:
        return ul.open_run(out)
    # an epoch as the trainer counts it: every document its weight times (curate's rehydration)
    parts = [ul.open_collection(p) for p in mix["mix"]] if mix else [data]
    n = sum(len(weighted_positions(c, c.indices(exclude="test"))) for c in parts)
    epochs = args.steps / (n // args.batch)  # the same step count for every arm
    t = time.perf_counter()
    run = ul.pretrain(
        data, out, method="clm", size=args.size, epochs=epochs, batch_size=args.batch, seed=seed, overwrite=True, **mix
    )
    mod = run.modality()
    print(
        f"{name}: {run.step} steps of {args.batch} in {time.perf_counter() - t:.0f} s "
        f"(length {mod.length} tokens, vocabulary {mod.vocab})",
        flush=True,
    )
    return run


def seed_name(arm: str, seed: int) -> str:
    """An arm's run for one pretraining seed: seed 0 keeps the arm's name (the runs made before
    ``--seeds``), the others are ``ARM-sN``."""
    return arm if seed == 0 else f"{arm}-s{seed}"


def score(name: str, run: ul.Run, task: ul.Collection, args: argparse.Namespace) -> dict[str, float]:
    got = ul.perplexity(run, task)
    result = ul.bench(
        run, task, fractions=(0.01, 0.1), seeds=3, probes=("linear",), baselines=(), out=args.work / "bench" / name
    )
    row = {"bits_per_byte": got["bits_per_byte"]}
    for r in result.rows:  # no baselines: every row is the run's
        if r["probe"] == "linear" and r["fraction"] is not None:
            row[f"linear@{r['fraction']:g}"] = (r["mean"], r["std"])
    print(f"{name}: {row}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "curate")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--arms", default="raw,curated,constant,upsampled")
    ap.add_argument("--seeds", default="0", help="pretraining seeds, comma-separated")
    args = ap.parse_args()
    print(provenance("datatrove", "langid"), flush=True)
    print(vars(args), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    pool, curated = ul.open_collection(args.work / "pool"), ul.open_collection(args.work / "clean-w1")
    task_path = args.work / "wordnet"
    task = ul.open_collection(task_path) if task_path.exists() else ul.import_source("wordnet", task_path).collection
    test, wordnet = held_out()
    original = np.asarray(pool.column("original"), dtype=object)
    tainted = test | {str(i) for i, o in zip(pool.ids, original, strict=True) if o in test}
    of_wordnet = {str(i) for i, o in zip(pool.ids, original, strict=True) if o in wordnet} | wordnet
    data = {
        "raw": derived(pool, tainted, args.work / "lm-data" / "raw", "raw"),
        "curated": derived(curated, tainted, args.work / "lm-data" / "curated", "curated"),
    }
    general = derived(curated, tainted | of_wordnet, args.work / "lm-data" / "general", "general")
    mix = {general.path: 0.9, task.path: 0.1}
    arms = {
        "raw": lambda name, seed: pretrain(name, data["raw"], args, seed),
        "curated": lambda name, seed: pretrain(name, data["curated"], args, seed),
        "constant": lambda name, seed: pretrain(name, general, args, seed, mix=mix),
        "upsampled": lambda name, seed: pretrain(
            name, general, args, seed, mix=mix, upsample_last=(0.2, {task.path: 0.5})
        ),
    }
    seeds = [int(x) for x in args.seeds.split(",")]
    rows = {}
    for seed in seeds:  # seed by seed, so that a run stopped early has every arm at the seeds done
        for arm in args.arms.split(","):
            name = seed_name(arm, seed)
            rows[name] = score(name, arms[arm](name, seed), task, args)
    keys = ("bits_per_byte", "linear@0.01", "linear@0.1")
    print(f"\n{'arm':<14}{'bits/byte':>10}{'linear 1%':>20}{'linear 10%':>20}")
    for name, r in rows.items():
        cells = "".join(f"{r[k][0]:>12.4f} ± {r[k][1]:.4f}" for k in keys[1:])
        print(f"{name:<14}{r['bits_per_byte']:>10.4f}{cells}")
    if len(seeds) > 1:  # each seed's mean over its label draws, then their mean and std over seeds
        print(f"\nover {len(seeds)} pretraining seeds (mean ± std of the seeds' means)")
        for arm in args.arms.split(","):
            per = [rows[seed_name(arm, s)] for s in seeds]
            vals = [np.array([r[k] if k == keys[0] else r[k][0] for r in per]) for k in keys]
            print(f"{arm:<14}" + "".join(f"{v.mean():>12.4f} ± {v.std():.4f}" for v in vals))


if __name__ == "__main__":
    tune_process()
    main()
