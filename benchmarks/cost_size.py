"""How cost grows with the data (issue 28; not run by CI): Fashion-MNIST subsets of 600, 6,000
and 60,000 training images (and a sixth as many test images), each through the whole path in
one process, timed with ``time.perf_counter``:

- ``import``: the subset written as PNG files in class folders, then ``import_source`` of the
  folder: files per second;
- ``pretrain``: SimCLR for ``--minutes`` (the cnn, batch 128 or the set if smaller): the
  samples per second of its last logged steps;
- ``embed``: every image of the subset through the trained encoder: samples per second;
- ``bench``: the demo's bench (raw, the run, random-init × linear, kNN, NB × 1/10/100% × 3
  seeds, every core): seconds;
- ``select``: ``kcenter`` choosing 10% of the training images from the run's embeddings:
  seconds.

    python benchmarks/cost_size.py --sizes 600,6000,60000 | tee benchmarks/results/cost-size-DATE.log

Nothing is chosen here; made for an idle CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
from _provenance import provenance
from PIL import Image

import unlabeled as ul
from unlabeled.data.collection import derive_collection
from unlabeled.runtime import tune_process

ROOT = Path(__file__).resolve().parent.parent


def subset(base: ul.Collection, n: int, work: Path) -> ul.Collection:
    """The first ``n`` training images and the first ``n // 6`` test images of ``base``."""
    splits = np.asarray(base.splits)
    pos = np.concatenate([np.flatnonzero(splits == "train")[:n], np.flatnonzero(splits == "test")[: n // 6]])
    return derive_collection(base, pos, work / f"fmnist-{n}", {"name": f"fashion-mnist-{n}"}, overwrite=True)


def timed_import(col: ul.Collection, work: Path) -> float:
    """Files per second of ``import_source`` on the collection's images written as PNGs."""
    folder, dest = work / "png", work / "imported"
    shutil.rmtree(folder, ignore_errors=True)
    labels = np.asarray(col.labels)
    for i in range(0, len(col), 4096):
        for j, img in enumerate(col.get(np.arange(i, min(i + 4096, len(col))))):
            (folder / str(labels[i + j])).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[0]).save(folder / str(labels[i + j]) / f"{i + j}.png")
    t = time.perf_counter()
    ul.import_source(folder, dest, overwrite=True)
    seconds = time.perf_counter() - t
    shutil.rmtree(folder)
    return len(col) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="600,6000,60000")
    ap.add_argument("--minutes", type=float, default=1.0, help="pretraining budget per size")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "cost-size")
    args = ap.parse_args()
    print(provenance(), flush=True)
    print(vars(args), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    base_path = args.work / "fashion-mnist"
    base = (
        ul.open_collection(base_path) if base_path.exists() else ul.import_source("fashion-mnist", base_path).collection
    )
    print(
        f"{'train images':>12} {'import files/s':>15} {'pretrain samples/s':>19} {'embed samples/s':>16} "
        f"{'bench s':>8} {'select s':>9}",
        flush=True,
    )
    for n in map(int, args.sizes.split(",")):
        work = args.work / str(n)
        col = subset(base, n, work)
        files_s = timed_import(col, work)
        run = ul.pretrain(col, work / "run", method="simclr", minutes=args.minutes, overwrite=True)
        last = json.loads((run.path / "metrics.jsonl").read_text().splitlines()[-1])
        t = time.perf_counter()
        ul.embed(run, col)
        embed_s = len(col) / (time.perf_counter() - t)
        t = time.perf_counter()
        ul.bench(run, col, fractions=[0.01, 0.1, 1.0], seeds=3, baselines=("raw", "random-init"), out=work / "bench")
        bench_s = time.perf_counter() - t
        t = time.perf_counter()
        ul.select(col, method="kcenter", out=work / "select", budget=0.1, encoder=run, overwrite=True)
        select_s = time.perf_counter() - t
        print(
            f"{n:>12,} {files_s:>15,.0f} {last['samples_per_s']:>19,.0f} {embed_s:>16,.0f} {bench_s:>8.1f} "
            f"{select_s:>9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    tune_process()
    main()
