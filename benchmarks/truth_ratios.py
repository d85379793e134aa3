"""What forget quality compares (issue 27): the forget set's truth ratios, as log R, under the
fine-tuned model, the retrained one and each method's result of a ``forget_lm.py`` split,
with the Kolmogorov-Smirnov p-value of each against the retrained model's. Not run by CI.

    python benchmarks/truth_ratios.py --work benchmarks/work/forget-lm-v2 --split dev05

``R`` is the mean per-token probability of the three perturbed answers over the paraphrased
answer's (``forget/lm_metrics.truth_ratios``): log R < 0 where the model prefers the true
value, near 0 where it cannot tell, > 0 where it prefers the wrong ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _provenance import provenance
from scipy.stats import ks_2samp

import unlabeled as ul
from unlabeled.forget.lm_metrics import qa_rows, truth_ratios
from unlabeled.runs import read_ids
from unlabeled.runtime import tune_process

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "forget-lm")
    ap.add_argument("--split", default="forget05")
    args = ap.parse_args()
    print(provenance(), flush=True)
    print(vars(args), flush=True)
    split = args.work / args.split
    results = sorted(p.parent.name for p in split.glob("*/forgotten-ids.txt") if p.parent.name != "retrain")
    if not results:
        raise SystemExit(f"no forget results in {split}: run benchmarks/forget_lm.py --splits {args.split} first")
    task = ul.open_collection(args.work / "authors")
    forgotten = set(read_ids(split / results[0] / "forgotten-ids.txt"))
    rows = qa_rows(task, np.flatnonzero(np.isin(np.asarray(task.ids), list(forgotten))))
    models = {"original": args.work / "lm-authors", "retrain": split / "retrain"} | {m: split / m for m in results}
    logs = {}
    for name, path in models.items():
        run = ul.open_run(path)
        logs[name] = np.log(truth_ratios(run.encoder().eval(), run.modality(), rows))
    print(f"{len(rows)} forget questions; log R quantiles 10/25/50/75/90%, share preferring a wrong value")
    for name, lr in logs.items():
        q = " ".join(f"{v:+.3f}" for v in np.percentile(lr, [10, 25, 50, 75, 90]))
        p = ks_2samp(lr, logs["retrain"]).pvalue
        print(f"{name:<10} mean {lr.mean():+.3f}  quantiles {q}  R > 1: {np.mean(lr > 0):.2f}  KS p {p:.4f}")


if __name__ == "__main__":
    tune_process()
    main()
