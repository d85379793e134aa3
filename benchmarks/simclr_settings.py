"""Which SimCLR settings learn the best Fashion-MNIST features in a fixed CPU budget.

Each setting pretrains for the same wall time on the 60,000 train images, then its frozen
features are scored with the bench protocol (linear probe at 1% labels over 3 seeds, kNN at
1%, linear at 10%). Not run by CI; results go to BENCHMARKS.md.

    python benchmarks/simclr_settings.py --minutes 4 --out /tmp/settings
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
from _provenance import provenance

import unlabeled as ul
from unlabeled.bench.benchmark import task_split
from unlabeled.bench.protocol import evaluate
from unlabeled.runtime import tune_process

SETTINGS = {
    "default": {},
    "batch 256": {"batch_size": 256},
    "temperature 0.2": {"method_options": {"temperature": 0.2}},
    "blur + crops from 20%": {"augment": {"blur_p": 0.5, "crop_scale": [0.2, 1.0]}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/unlabeled-settings"))
    ap.add_argument("--only", nargs="*", help="names of settings to run")
    args = ap.parse_args()
    print(provenance(), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    data = args.out / "fashion-mnist"
    if not data.exists():
        ul.import_source("fashion-mnist", data)
    col = ul.open_collection(data)
    train, test, _ = task_split(col)
    both, n = np.concatenate([train, test]), len(train)
    print("| setting | steps | linear 1% (3 seeds) | kNN 1% | linear 10% |")
    print("|---|---|---|---|---|")
    for name, kw in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        out = args.out / name.replace(" ", "_")
        shutil.rmtree(out, ignore_errors=True)
        run = ul.pretrain(col, out, minutes=args.minutes, **kw)
        X = run.encode(col, both)
        Xtr, ytr, Xte, yte = X[:n], col.labels[train], X[n:], col.labels[test]
        lin = [evaluate(Xtr, ytr, Xte, yte, "linear", 0.01, s).value for s in range(3)]
        knn = evaluate(Xtr, ytr, Xte, yte, "knn", 0.01, 0).value
        lin10 = evaluate(Xtr, ytr, Xte, yte, "linear", 0.1, 0).value
        print(
            f"| {name} `{json.dumps(kw)}` | {run.step} | {np.mean(lin):.4f} ± {np.std(lin):.4f} "
            f"| {knn:.4f} | {lin10:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    tune_process()  # the CLI's process-wide settings, so the figures match `unlabeled` runs
    main()
