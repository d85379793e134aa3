"""Which pretraining recipe buys the most per CPU-minute (issue 23: the demo on CPUs without
bf16): SimCLR on Fashion-MNIST for a fixed wall-time budget, then the frozen linear probe at
1% of the labels, each candidate recipe scored on the **development split** only (10,000
train images held out of pretraining and the labels, as `selftrain.py --split dev` holds
them out; the test split is never read). Not run by CI.

    python benchmarks/pretrain_recipe.py --minutes 8 --precision fp32 --recipes base,view20,view16
    python benchmarks/pretrain_recipe.py --epochs 6.4 --precision bf16 --recipes base,batch256,temp02
    python benchmarks/pretrain_recipe.py --epochs 16.5 --precision fp32 --recipes view12,view12-temp02,view12-crop50
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/pretrain_recipe.py ...   # AVX2-only kernels

With ``--epochs`` every recipe sees the same number of images (a batch of 256 takes half the
steps of 128), so the comparison is the same compute and does not depend on the CPU's load.

A recipe is `pretrain` options by name (RECIPES); its pretraining is kept in --work and
reused when run again.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import unlabeled as ul
from unlabeled.bench.protocol import evaluate
from unlabeled.runtime import tune_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance  # noqa: E402  (the sibling modules)
from selftrain import fashion_mnist  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPES: dict[str, dict[str, Any]] = {
    "base": {},  # the demo's: cnn-tiny, batch 128, 28x28 views
    "view20": {"augment": {"view_size": 20}},
    "view16": {"augment": {"view_size": 16}},
    "view12": {"augment": {"view_size": 12}},  # the demo's where it runs fp32
    "view12-temp02": {"augment": {"view_size": 12}, "method_options": {"temperature": 0.2}},
    "view12-crop50": {"augment": {"view_size": 12, "crop_scale": (0.5, 1.0)}},
    # below 12 px (2026-12-06): more, cheaper steps in the same minutes
    "view10-temp02": {"augment": {"view_size": 10}, "method_options": {"temperature": 0.2}},
    "view8-temp02": {"augment": {"view_size": 8}, "method_options": {"temperature": 0.2}},
    # the learning rate, never chosen on the development split (AdamW's 2e-3, cosine)
    "view12-temp02-lr4e-3": {"augment": {"view_size": 12}, "method_options": {"temperature": 0.2}, "lr": 4e-3},
    "view12-temp02-lr8e-3": {"augment": {"view_size": 12}, "method_options": {"temperature": 0.2}, "lr": 8e-3},
    "view12-temp02-lr4e-3-local2x8": {
        "augment": {"view_size": 12, "local_views": 2, "local_size": 8},
        "method_options": {"temperature": 0.2},
        "lr": 4e-3,
    },
    "view12-temp02-lr1e-3": {"augment": {"view_size": 12}, "method_options": {"temperature": 0.2}, "lr": 1e-3},
    # multi-crop (SwAV's): small views beside the two, each compared with the two alone
    "view12-temp02-local2x8": {
        "augment": {"view_size": 12, "local_views": 2, "local_size": 8},
        "method_options": {"temperature": 0.2},
    },
    "view12-temp02-local4x8": {
        "augment": {"view_size": 12, "local_views": 4, "local_size": 8},
        "method_options": {"temperature": 0.2},
    },
    "view12-temp02-local4x6": {
        "augment": {"view_size": 12, "local_views": 4, "local_size": 6},
        "method_options": {"temperature": 0.2},
    },
    # the encoder's design: the stem's second convolution strided in place of the first pool (no
    # full-resolution stage, as the strided ResNet that full resolution was chosen over); fewer
    # FLOPs a step, so compare it at the same wall time (more --epochs), not the same epochs
    "view12-temp02-strided": {
        "augment": {"view_size": 12},
        "method_options": {"temperature": 0.2},
        "encoder_options": {"strided_stem": True},
    },
    "view16-batch256": {"augment": {"view_size": 16}, "batch_size": 256},
    "view16-temp02": {"augment": {"view_size": 16}, "method_options": {"temperature": 0.2}},
    "batch256": {"batch_size": 256},
    "crop50": {"augment": {"crop_scale": (0.5, 1.0)}},
    "temp02": {"method_options": {"temperature": 0.2}},
    # the rows of "How the defaults were chosen" (BENCHMARKS.md), then scored on the test split
    "crop25-blur": {"augment": {"crop_scale": (0.25, 1.0), "blur_p": 0.5, "noise_p": 0.5}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--minutes", type=float, default=8)
    ap.add_argument("--epochs", type=float, default=None, help="passes for every recipe, not --minutes")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--fraction", type=float, default=0.01)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "pretrain_recipe")
    args = ap.parse_args()
    os.environ.setdefault("UNLABELED_QUIET", "1")
    print(provenance(), flush=True)
    print(vars(args), {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ})
    names = [r for r in args.recipes.split(",") if r]
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        raise SystemExit(f"unknown recipes {unknown}; choose from {', '.join(RECIPES)}")
    col = fashion_mnist(args.work, "dev")
    dev, train = col.indices("test"), col.indices(exclude="test")
    print(f"scored on the dev split: {len(dev)} images; pretrained on {len(train)}", flush=True)
    budget = {"epochs": args.epochs} if args.epochs else {"minutes": args.minutes}
    for name in names:
        out = args.work / f"{name}-{f'{args.epochs:g}ep' if args.epochs else f'{args.minutes:g}min'}-{args.precision}"
        t = time.perf_counter()
        if (out / "config.json").exists() and ul.open_run(out).finished:
            run = ul.open_run(out)
        else:
            run = ul.pretrain(col, out, **budget, precision=args.precision, overwrite=True, **RECIPES[name])
        secs = time.perf_counter() - t
        X = run.encode(col)
        scores = [
            evaluate(X[train], col.labels[train], X[dev], col.labels[dev], "linear", args.fraction, s).value
            for s in range(args.draws)
        ]
        print(
            f"{name:<10} {run.step:>5} steps  linear {args.fraction:.0%} dev accuracy "
            f"{np.mean(scores):.4f} ± {np.std(scores):.4f}  ({' / '.join(f'{v:.4f}' for v in scores)})  "
            f"pretraining {secs:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    tune_process()  # the CLI's process-wide settings, so the figures match `unlabeled` runs
    main()
