"""Forgetting in a language model, TOFU's way (issue 27; not run by CI): a fictitious-author
benchmark from ``make-authors``, a causal LM fine-tuned on it (continued pretraining from a
general ``clm`` run), each forget split forgotten by every approximate method and verified
against the model retrained without it.

    python benchmarks/forget_lm.py --base benchmarks/work/curate/lm/curated --splits forget05

``--splits dev05`` forgets a development split instead: 5% of the authors drawn from those
outside ``forget10`` (and so outside every reported split), for choosing settings; ``dev05-2``,
``dev05-3`` are further, disjoint draws.

The retrained reference of a split is made once (``forget --method retrain``) and copied into
each result's ``reference`` folder, where ``--verify`` looks for it: retraining is
deterministic for a seed, so a second retrain would be the same model, bit for bit. The
methods' settings are their defaults (the trained ones: 5 passes over the forget documents at
1e-4, set before any run; SSD's selection threshold chosen on dev05 by ``forget_lm_dev.sh``);
nothing is chosen on a reported split's scores.
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

import unlabeled as ul
from unlabeled.forget.verification import REFERENCE
from unlabeled.runtime import tune_process

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("ga", "graddiff", "npo", "simnpo", "rmu", "whp", "eco", "ssd")
COLUMNS = (
    "forget_quality",
    "utility",
    "forget_probability",
    "forget_rouge",
    "retain_rouge",
    "forget_truth_ratio",
    "mia_loss",
    "mia_zlib",
    "mia_min_k",
    "relearn_recovery",
    "general_perplexity",
)
DEV_SEED = 12345


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="a clm run to fine-tune on the authors")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "forget-lm")
    ap.add_argument("--authors", type=int, default=200)
    ap.add_argument("--epochs", type=float, default=10.0, help="fine-tuning passes over the authors")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--splits", default="forget01,forget05,forget10")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--option", default="{}", help='JSON of forget options for every method ({"epochs": 10})')
    args = ap.parse_args()
    print(provenance(), flush=True)
    print(vars(args), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    data = args.work / "authors"
    authors = ul.open_collection(data) if data.exists() else ul.make_authors(data, args.authors, seed=0)
    ft_path = args.work / "lm-authors"
    t = time.perf_counter()
    if (ft_path / "config.json").exists() and ul.open_run(ft_path).finished:
        ft = ul.open_run(ft_path)
    else:
        ft = ul.pretrain(
            authors, ft_path, method="clm", init=args.base, epochs=args.epochs, batch_size=args.batch, overwrite=True
        )
        print(f"fine-tuned on the authors: {ft.step} steps in {time.perf_counter() - t:.0f} s", flush=True)
    options = json.loads(args.option)
    for split in args.splits.split(","):
        values = dev_split(authors, split) if split.startswith("dev") else (data / f"{split}.txt").read_text().split()
        ref = args.work / split / "retrain"
        if not ((ref / "config.json").exists() and ul.open_run(ref).config.get("forget", {}).get("finished")):
            ul.forget(ft, out=ref, method="retrain", group="author", values=values, overwrite=True)
        print(f"\n{split}: {len(values)} authors; retrain {ul.open_run(ref).config['forget']['seconds']:.1f} s")
        print(f"{'method':<10}" + "".join(f"{c:>20}" for c in COLUMNS) + f"{'time / retrain':>16}")
        for method in args.methods.split(","):
            out = args.work / split / method
            res = ul.forget(ft, out=out, method=method, group="author", values=values, overwrite=True, **options)
            shutil.rmtree(res.path / REFERENCE, ignore_errors=True)
            shutil.copytree(ref, res.path / REFERENCE)
            table = ul.verify(res, retrain=False)
            row = table["rows"][method]
            cells = "".join(f"{row[c]:>20.4f}" for c in COLUMNS)
            print(f"{method:<10}{cells}{table['time_ratio']:>16.1%}", flush=True)
        for name in ("original", "retrain"):
            row = table["rows"][name]
            print(f"{name:<10}" + "".join(f"{row[c]:>20.4f}" for c in COLUMNS), flush=True)


def dev_split(authors: ul.Collection, split: str) -> list[str]:
    """A development forget split for choosing settings: ``dev05`` is 5% of the authors drawn
    (seeded) from those no reported split forgets, so a choice made on it never saw them;
    ``dev05-2``, ``dev05-3``, ... are further draws of the same size, each disjoint from the
    ones before it (``dev05`` stays the draw it always was)."""
    reported = set((authors.path / "forget10.txt").read_text().split())  # forget01 and forget05 lie inside
    name, _, index = split.partition("-")
    share = int(name.removeprefix("dev")) / 100
    size = round(share * len(set(authors.groups)))
    taken: set[str] = set()
    for i in range(int(index or 1)):
        pool = sorted(set(authors.groups) - reported - taken)
        pick = sorted(pool[j] for j in np.random.default_rng(DEV_SEED + i).choice(len(pool), size, replace=False))
        taken |= set(pick)
    return pick


if __name__ == "__main__":
    tune_process()
    main()
