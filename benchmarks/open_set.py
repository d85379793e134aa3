"""Choosing what to pretrain on, measured (issue 6; not run by CI).

Open-set experiment: a pool that mixes Fashion-MNIST's train images (footwear and the other
seven classes), scikit-learn's digits upsampled to 28×28 and pure-noise images; a small
unlabeled target of 1,000 footwear train images (sandal, sneaker, ankle boot). An encoder
pretrained briefly on the whole pool embeds everything; SimCore and random selections of the
same budget are made; SimCLR then pretrains on the SimCore selection, on the random one, and
on the whole pool; a linear probe on the footwear task (3 classes, its train/test split,
1% and 10% of the labels, 3 seeds) scores each.

Dedup experiment: 10,000 Fashion-MNIST images plus 1,000 planted near-duplicates (copies
shifted by one pixel with light noise); SemDeDup with the pool encoder; precision and recall
of what it removes.

    python benchmarks/open_set.py --minutes 3 --pool-minutes 6
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import unlabeled as ul
from unlabeled.data.builtins import load_digits, load_fashion_mnist
from unlabeled.data.collection import CollectionWriter, derive_collection
from unlabeled.select import select

ROOT = Path(__file__).resolve().parent.parent
FOOTWEAR = [5, 7, 9]  # sandal, sneaker, ankle boot


def build_pool(work: Path) -> tuple[ul.Collection, ul.Collection, ul.Collection]:
    """(pool, target, footwear task) collections."""
    fm = load_fashion_mnist()
    splits = np.asarray(fm.splits)
    rng = np.random.default_rng(0)
    pool_path, task_path = work / "pool", work / "footwear"
    if not pool_path.exists():
        w = CollectionWriter(pool_path, "image", (1, 28, 28), "uint8", None, extra_meta={"name": "open-pool"})
        train = np.flatnonzero(splits == "train")
        w.add(fm.arrays[train], [f"fmnist/{fm.ids[i]}" for i in train])
        d = load_digits()
        up = np.stack([np.kron(a[0], np.ones((3, 3), np.uint8)) for a in d.arrays])  # 24x24
        up = np.pad(up, ((0, 0), (2, 2), (2, 2)))[:, None]
        w.add(up, [f"digits/{i}" for i in d.ids])
        noise = rng.integers(0, 256, (5000, 1, 28, 28), dtype=np.uint8)
        w.add(noise, [f"noise/{i:05d}" for i in range(5000)])
        w.close()
    if not task_path.exists():
        keep = np.flatnonzero(np.isin(fm.labels, FOOTWEAR))
        classes = [fm.classes[c] for c in FOOTWEAR]
        code = {c: i for i, c in enumerate(FOOTWEAR)}
        w = CollectionWriter(task_path, "image", (1, 28, 28), "uint8", classes, extra_meta={"name": "footwear"})
        w.add(fm.arrays[keep], [fm.ids[i] for i in keep], [code[int(c)] for c in fm.labels[keep]],
              splits[keep].tolist())  # fmt: skip
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
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "open_set")
    ap.add_argument("--dedup-only", action="store_true", help="only the dedup experiment (reuses the pool encoder)")
    args = ap.parse_args()
    os.environ.setdefault("UNLABELED_QUIET", "1")
    pool, target, task = build_pool(args.work)
    footwear_ids = set(task.ids.tolist())
    print(f"pool {len(pool)} (footwear {sum(i.removeprefix('fmnist/') in footwear_ids for i in pool.ids)}), "
          f"target {len(target)}, task {len(task)}", flush=True)  # fmt: skip

    enc_dir = args.work / "runs" / "pool-encoder"
    if not (enc_dir / "model.safetensors").exists():
        ul.pretrain(pool, enc_dir, minutes=args.encoder_minutes, overwrite=True)
    timing: dict[str, float] = {}
    if args.dedup_only:
        dedup_experiment(args, enc_dir)
        return
    sels = {}
    for method in ("simcore", "random"):
        t = time.perf_counter()
        sels[method] = select(pool, method=method, budget=args.budget, encoder=enc_dir, target=target,
                              out=args.work / "selections" / method, overwrite=True)  # fmt: skip
        timing[f"select {method}"] = round(time.perf_counter() - t, 1)
        share = np.mean([i.removeprefix("fmnist/") in footwear_ids for i in sels[method].ids])
        print(f"{method}: {len(sels[method])} selected, footwear share {share:.3f}", flush=True)

    runs = []
    for name, data, minutes in (("simcore", sels["simcore"], args.minutes), ("random", sels["random"], args.minutes),
                                ("whole-pool", pool, args.pool_minutes)):  # fmt: skip
        out = args.work / "runs" / name
        t = time.perf_counter()
        ul.pretrain(data, out, minutes=minutes, overwrite=True)
        timing[f"pretrain {name}"] = round(time.perf_counter() - t, 1)
        runs.append(ul.open_run(out))
    result = ul.bench(runs, task=task, fractions=[0.01, 0.1], seeds=3, probes=["linear"], out=args.work)
    print(result.table())

    rows = dedup_experiment(args, enc_dir)
    print(json.dumps(timing, indent=1))
    (args.work / "result.json").write_text(json.dumps({"bench": result.rows, "dedup": rows, "timing": timing},
                                                      indent=1, default=str))  # fmt: skip


def dedup_experiment(args: argparse.Namespace, enc_dir: Path) -> list[dict]:
    """SemDeDup on 10,000 real images plus 1,000 planted near-duplicates: precision and recall."""
    fm = load_fashion_mnist()
    rng = np.random.default_rng(1)
    base = fm.arrays[:10000]
    src = rng.choice(10000, 1000, replace=False)
    dup = np.roll(base[src], 1, axis=3).astype(np.int16) + rng.integers(-8, 9, (1000, 1, 28, 28))
    dup_path = args.work / "dedup-pool"
    w = CollectionWriter(dup_path, "image", (1, 28, 28), "uint8", None, extra_meta={"name": "dedup-pool"},
                         overwrite=True)  # fmt: skip
    w.add(base, [f"orig/{i}" for i in range(10000)])
    w.add(np.clip(dup, 0, 255).astype(np.uint8), [f"dup/{i}" for i in src])
    dpool = w.close()
    rows = []
    pixels = dpool.get(np.arange(len(dpool))).reshape(len(dpool), -1).astype(np.float32)
    for space, threshold in [(s, t) for s in ("encoder", "pixels") for t in (0.9, 0.95, 0.97, 0.99)]:
        t = time.perf_counter()
        vectors = {"pool_vectors": pixels} if space == "pixels" else {"encoder": enc_dir}
        kept = select(dpool, method="dedup", threshold=threshold, out=args.work / "selections" / f"dedup-{threshold}",
                      overwrite=True, **vectors)  # fmt: skip
        removed = set(dpool.ids.tolist()) - set(kept.ids.tolist())
        pair_hit = sum((f"dup/{i}" in removed) or (f"orig/{i}" in removed) for i in src)
        planted = {f"dup/{i}" for i in src} | {f"orig/{i}" for i in src}
        precision = len(removed & planted) / max(1, len(removed))
        rows.append({"space": space, "threshold": threshold, "removed": len(removed), "recall": pair_hit / len(src),
                     "precision": precision, "seconds": round(time.perf_counter() - t, 1)})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
