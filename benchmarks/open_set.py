"""Choosing what to pretrain on, measured (issue 6; not run by CI).

Open-set experiment: a pool that mixes Fashion-MNIST's train images (footwear and the other
seven classes), scikit-learn's digits upsampled to 28×28 and pure-noise images; a small
unlabeled target of 1,000 footwear train images (sandal, sneaker, ankle boot). An encoder
pretrained briefly on the whole pool embeds everything; SimCore and random selections of the
same budget are made; SimCLR then pretrains on the SimCore selection, on the random one, and
on the whole pool; a linear probe on the footwear task (3 classes, its train/test split,
1% and 10% of the labels, 3 seeds) scores each.

Dedup experiment: 10,000 Fashion-MNIST images plus 1,000 planted near-duplicates (copies
re-exposed with light noise); SemDeDup with the pool encoder and on raw pixels; precision and
recall of what it removes, against the planted pairs and against planted pairs plus the data
set's own near-identical twins.

    python benchmarks/open_set.py --minutes 3 --pool-minutes 6

A harder target: Fashion-MNIST's four upper-body classes (T-shirt, pullover, coat, shirt, the
most confused ones), with only a quarter of their train images left in the pool, so the
target is a small corner of the open set (as in SimCore's setting); kcenter and target-shift
selections as further rows:

    python benchmarks/open_set.py --target-classes 0,2,4,6 --target-share 0.25 --budget 10000 \
        --methods simcore,random,kcenter,target-shift --work benchmarks/work/open_set_tops
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
from unlabeled.data.builtins import load_digits, load_fashion_mnist
from unlabeled.data.collection import CollectionWriter, derive_collection
from unlabeled.runtime import tune_process
from unlabeled.select import select

ROOT = Path(__file__).resolve().parent.parent
FOOTWEAR = [5, 7, 9]  # sandal, sneaker, ankle boot


def build_pool(
    work: Path,
    classes: list[int] = FOOTWEAR,
    share: float = 1.0,
) -> tuple[ul.Collection, ul.Collection, ul.Collection]:
    """(pool, target, task) collections: the task is Fashion-MNIST's ``classes``; the pool
    holds the other classes' train images and ``share`` of the task classes' ones."""
    fm = load_fashion_mnist()
    splits = np.asarray(fm.splits)
    rng = np.random.default_rng(0)
    pool_path, task_path = work / "pool", work / "task"
    if not pool_path.exists():
        w = CollectionWriter(pool_path, "image", (1, 28, 28), "uint8", None, extra_meta={"name": "open-pool"})
        train = np.flatnonzero(splits == "train")
        inside = np.isin(fm.labels[train], classes)
        # drawn only for a share below 1, so the default pool is the one measured before
        drop = rng.random(len(train)) >= share if share < 1 else np.zeros(len(train), dtype=bool)
        train = train[~(inside & drop)]
        w.add(fm.arrays[train], [f"fmnist/{fm.ids[i]}" for i in train])
        d = load_digits()
        up = np.stack([np.kron(a[0], np.ones((3, 3), np.uint8)) for a in d.arrays])  # 24x24
        up = np.pad(up, ((0, 0), (2, 2), (2, 2)))[:, None]
        w.add(up, [f"digits/{i}" for i in d.ids])
        noise = rng.integers(0, 256, (5000, 1, 28, 28), dtype=np.uint8)
        w.add(noise, [f"noise/{i:05d}" for i in range(5000)])
        w.close()
    if not task_path.exists():
        keep = np.flatnonzero(np.isin(fm.labels, classes))
        code = {c: i for i, c in enumerate(classes)}
        w = CollectionWriter(
            task_path, "image", (1, 28, 28), "uint8", [fm.classes[c] for c in classes], extra_meta={"name": "task"}
        )
        w.add(
            fm.arrays[keep], [fm.ids[i] for i in keep], [code[int(c)] for c in fm.labels[keep]], splits[keep].tolist()
        )
        w.close()
    pool, task = ul.open_collection(pool_path), ul.open_collection(task_path)
    target_path = work / "target"
    if not target_path.exists():
        tr = task.indices("train")
        derive_collection(task, np.sort(rng.choice(tr, 1000, replace=False)), target_path, {"name": "target"})
    return pool, ul.open_collection(target_path), task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3, help="pretraining budget on each selection")
    ap.add_argument("--pool-minutes", type=float, default=6, help="pretraining budget on the whole pool")
    ap.add_argument("--encoder-minutes", type=float, default=2, help="the encoder that embeds the pool")
    ap.add_argument("--budget", type=int, default=20000)
    ap.add_argument("--target-classes", default="5,7,9", help="Fashion-MNIST classes of the target task")
    ap.add_argument("--target-share", type=float, default=1.0, help="share of their train images in the pool")
    ap.add_argument("--methods", default="simcore,random", help="selections to pretrain on (and the whole pool)")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "open_set")
    ap.add_argument("--dedup-only", action="store_true", help="only the dedup experiment (reuses the pool encoder)")
    args = ap.parse_args()
    print(provenance(), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    pool, target, task = build_pool(args.work, [int(c) for c in args.target_classes.split(",")], args.target_share)
    task_ids = set(task.ids.tolist())
    print(
        f"pool {len(pool)} (task classes {sum(i.removeprefix('fmnist/') in task_ids for i in pool.ids)}), "
        f"target {len(target)}, task {len(task)}",
        flush=True,
    )

    enc_dir = args.work / "runs" / "pool-encoder"
    if not (enc_dir / "model.safetensors").exists():
        ul.pretrain(pool, enc_dir, minutes=args.encoder_minutes, overwrite=True)
    timing: dict[str, float] = {}
    if args.dedup_only:
        dedup_experiment(args, enc_dir)
        return
    sels = {}
    methods = args.methods.split(",")
    for method in methods:
        t = time.perf_counter()
        sels[method] = select(
            pool,
            method=method,
            budget=args.budget,
            encoder=enc_dir,
            target=target,
            out=args.work / "selections" / method,
            overwrite=True,
        )
        timing[f"select {method}"] = round(time.perf_counter() - t, 1)
        share = np.mean([i.removeprefix("fmnist/") in task_ids for i in sels[method].ids])
        print(
            f"{method}: {len(sels[method])} selected in {timing[f'select {method}']} s, task-class share {share:.3f}",
            flush=True,
        )

    runs = []
    plan = [*((m, sels[m], args.minutes) for m in methods), ("whole-pool", pool, args.pool_minutes)]
    for name, data, minutes in plan:
        out = args.work / "runs" / name
        t = time.perf_counter()
        ul.pretrain(data, out, minutes=minutes, overwrite=True)
        timing[f"pretrain {name}"] = round(time.perf_counter() - t, 1)
        runs.append(ul.open_run(out))
    result = ul.bench(
        runs,
        task=task,
        fractions=[0.01, 0.1],
        seeds=3,
        probes=["linear"],
        out=args.work,
        baselines=["raw", "random-init"],
    )
    print(result.table())

    rows = dedup_experiment(args, enc_dir)
    print(json.dumps(timing, indent=1))
    (args.work / "result.json").write_text(
        json.dumps({"bench": result.rows, "dedup": rows, "timing": timing}, indent=1, default=str)
    )


def near_duplicate_pairs(x: np.ndarray, threshold: float, chunk: int = 2048) -> set[tuple[int, int]]:
    """Every pair (i < j) of rows of ``x`` whose cosine similarity is at least ``threshold``."""
    import torch

    t = torch.nn.functional.normalize(torch.from_numpy(x.astype(np.float32)), dim=1)
    pairs: set[tuple[int, int]] = set()
    for s in range(0, len(t), chunk):
        sims = t[s : s + chunk] @ t.T
        for a, b in torch.nonzero(sims >= threshold).tolist():
            if s + a < b:
                pairs.add((s + a, b))
    return pairs


def dedup_experiment(args: argparse.Namespace, enc_dir: Path) -> list[dict]:
    """SemDeDup on 10,000 Fashion-MNIST images plus 1,000 planted near-duplicates, each a
    copy re-exposed (brightness x0.95-1.05) with ±4 grey levels of noise: what a re-saved or
    re-scanned copy looks like. Two ground truths: the planted pairs only, and the planted
    pairs plus the data set's own near-identical twins (raw-pixel cosine >= 0.995, the
    planted pairs' own lower tail). Recall: true pairs with a member removed; precision:
    removed samples that belong to a true pair."""
    fm = load_fashion_mnist()
    rng = np.random.default_rng(1)
    base = fm.arrays[:10000]
    src = rng.choice(10000, 1000, replace=False)
    gain = rng.uniform(0.95, 1.05, (1000, 1, 1, 1))
    dup = base[src].astype(np.float64) * gain + rng.integers(-4, 5, (1000, 1, 28, 28))
    dup_path = args.work / "dedup-pool"
    w = CollectionWriter(
        dup_path, "image", (1, 28, 28), "uint8", None, extra_meta={"name": "dedup-pool"}, overwrite=True
    )
    w.add(base, [f"orig/{i}" for i in range(10000)])
    w.add(np.clip(np.rint(dup), 0, 255).astype(np.uint8), [f"dup/{i}" for i in src])
    dpool = w.close()
    ids = dpool.ids.tolist()
    pixels = dpool.get(np.arange(len(dpool))).reshape(len(dpool), -1).astype(np.float32)
    planted = {(int(i), 10000 + k) for k, i in enumerate(src)}
    natural = near_duplicate_pairs(pixels[:10000], 0.995)
    truths = {"planted": planted, "planted + natural twins": planted | natural}
    print(
        f"{len(natural)} natural near-identical pairs (raw-pixel cosine >= 0.995) among the 10,000 originals",
        flush=True,
    )
    rows = []
    for space, threshold in [(s, t) for s in ("encoder", "pixels") for t in (0.95, 0.98, 0.99, 0.995)]:
        t = time.perf_counter()
        vectors = {"pool_vectors": pixels} if space == "pixels" else {"encoder": enc_dir}
        kept = select(
            dpool,
            method="dedup",
            threshold=threshold,
            out=args.work / "selections" / f"dedup-{threshold}",
            overwrite=True,
            **vectors,
        )
        seconds = round(time.perf_counter() - t, 1)
        removed = {ids.index(i) for i in set(ids) - set(kept.ids.tolist())}
        for truth, pairs in truths.items():
            members = {m for p in pairs for m in p}
            rows.append(
                {
                    "space": space,
                    "threshold": threshold,
                    "truth": truth,
                    "removed": len(removed),
                    "recall": sum(a in removed or b in removed for a, b in pairs) / len(pairs),
                    "precision": len(removed & members) / max(1, len(removed)),
                    "seconds": seconds,
                }
            )
            print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    tune_process()  # the CLI's process-wide settings, so the figures match `unlabeled` runs
    main()
