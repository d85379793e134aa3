"""Selection speed on a large pool (issue 6): ``kcenter`` choosing 1,000 of 1,000,000 128-d
embeddings, and ``simcore`` on the same pool, each timed in its own process with its memory
peak (not run by CI).

    python benchmarks/select_speed.py                   # 1,000,000 x 128, budget 1,000
    python benchmarks/select_speed.py --pool 100000     # a quick look
    python benchmarks/select_speed.py --embeddings E.npy --methods kcenter,kcenter-plain
                                                        # any embeddings, against the unpruned traversal

The pool's embeddings are synthetic (a mixture of 2,000 clusters on the unit sphere, the
shape an encoder's embeddings of a large unlabeled pool take); nothing else here is: each
method is the code ``unlabeled select`` runs, called the way ``select`` calls it. The pool is
written once as a ``.npy`` and read the way ``select`` reads a pool's cached embeddings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _provenance import provenance

ROOT = Path(__file__).resolve().parent.parent


def make_pool(path: Path, n: int, dim: int, clusters: int, seed: int = 0) -> None:
    """``n`` unit vectors around ``clusters`` random centres, written chunk by chunk."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32, shape=(n, dim))
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        x = centres[rng.integers(clusters, size=m)] + 0.07 * rng.standard_normal((m, dim)).astype(np.float32)
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()
    del out
    os.replace(path.with_suffix(".tmp.npy"), path)


def kcenter_plain(x: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """The textbook traversal, one full distance pass per pick (numpy BLAS): the "before"."""
    from unlabeled.select.index import normalized

    xn = normalized(x)
    chosen = [int(np.random.default_rng(seed).integers(len(xn)))]
    near = 1.0 - xn @ xn[chosen[0]]
    for _ in range(budget - 1):
        near[chosen[-1]] = -1.0
        chosen.append(int(near.argmax()))
        np.minimum(near, 1.0 - xn @ xn[chosen[-1]], out=near)
    return np.sort(np.asarray(chosen))


def child(method: str, pool: Path, budget: int, target_size: int, seed: int) -> None:
    """Runs one method in this (fresh) process and prints a JSON line with its time and peak."""
    os.environ.setdefault("UNLABELED_QUIET", "1")
    import torch

    from unlabeled.select import methods
    from unlabeled.select.index import EmbeddingIndex

    torch.set_num_threads(os.cpu_count() or 1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    x = np.asarray(np.load(pool, mmap_mode="r"))  # as select() holds the candidates' vectors
    load = time.perf_counter() - t0
    extra: dict = {}
    t0 = time.perf_counter()
    if method == "kcenter":
        chosen = methods.kcenter(x, budget, seed)
    elif method == "kcenter-plain":
        chosen = kcenter_plain(x, budget, seed)
    else:
        # the target: samples of a few of the pool's clusters, as a fine-grained target is a
        # small corner of an open set (taken from the pool's own neighbourhoods)
        rng = np.random.default_rng(seed + 1)
        anchors = x[rng.choice(len(x), 5, replace=False)]
        near = np.argsort(-(x[:200_000] @ anchors.T).max(1))[: 4 * target_size]
        target = x[rng.choice(near, target_size, replace=False)]
        k = min(100, max(1, round(np.sqrt(len(target)))))
        t1 = time.perf_counter()
        index = EmbeddingIndex(x, seed=seed, queries=k)  # as select() builds it
        extra["index_seconds"] = round(time.perf_counter() - t1, 2)
        chosen, info = methods.simcore(index, target, budget, k, seed)
        extra.update(info, index=index.kind)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "method": method,
                "selected": len(chosen),
                "unique": len(np.unique(chosen)),
                "seconds": round(seconds, 2),
                "load_seconds": round(load, 2),
                "peak_rss_mib": round(peak / 1024),
                "rss_before_mib": round(base / 1024),
                "pool_mib": round(x.nbytes / 2**20),
                **extra,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--target", type=int, default=1000, help="target embeddings for simcore")
    ap.add_argument("--methods", default="kcenter,simcore", help="kcenter, kcenter-plain, simcore")
    ap.add_argument("--embeddings", type=Path, help="an .npy of embeddings to use instead of the synthetic pool")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "select_speed")
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "POOL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.budget, args.target, 0)
        return
    print(provenance(), flush=True)  # not in a child: its memory is measured from its start
    args.work.mkdir(parents=True, exist_ok=True)
    pool = args.embeddings or args.work / f"pool-{args.pool}x{args.dim}.npy"
    if not pool.exists():
        t0 = time.perf_counter()
        make_pool(pool, args.pool, args.dim, clusters=2000)
        print(f"wrote {pool} in {time.perf_counter() - t0:.1f} s")
    shape = np.load(pool, mmap_mode="r").shape
    print(
        f"pool {pool.name}: {shape[0]:,} x {shape[1]}, budget {args.budget:,}, {os.cpu_count()} CPU cores", flush=True
    )
    for method in args.methods.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            method,
            str(pool),
            "--budget",
            str(args.budget),
            "--target",
            str(args.target),
        ]
        line = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
        print(line)


if __name__ == "__main__":
    main()
