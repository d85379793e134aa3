"""Unlearning on Fashion-MNIST, SalUn-style (issue 7; not run by CI).

A cnn-tiny classifier trained from scratch on the 60k train images; two requests — a random
10% of the training samples, and one whole class — each served by every method; each result
verified against retraining without the forget set (forget / retain / test accuracy, MIA
efficacy, their gaps to retrain, the average gap, the time against retraining's).

    python benchmarks/forget.py --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

import unlabeled as ul
from unlabeled.forget import METHODS, forget, verify

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--forget-class", default="trouser")
    ap.add_argument("--methods", default=",".join(m for m in METHODS if m not in ("retrain", "sisa", "laf")))
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "forget")
    args = ap.parse_args()
    os.environ.setdefault("UNLABELED_QUIET", "1")
    data = args.work / "fashion-mnist"
    if not data.exists():
        ul.import_source("fashion-mnist", data)
    clf_dir = args.work / "clf"
    if not (clf_dir / "model.safetensors").exists():
        ul.finetune(None, data, clf_dir, epochs=args.epochs, overwrite=True)
    clf = ul.open_run(clf_dir)
    ids = clf.training_ids()
    rng = np.random.default_rng(0)
    requests = {"random 10%": {"ids": sorted(rng.choice(ids, len(ids) // 10, replace=False).tolist())},
                f"class {args.forget_class}": {"class_": args.forget_class}}  # fmt: skip
    results = {}
    for scenario, what in requests.items():
        key = scenario.replace(" ", "-").replace("%", "pct")
        for method in ["retrain", *args.methods.split(",")]:
            out = args.work / key / method
            if not (out / "config.json").exists() or not ul.open_run(out).config.get("forget", {}).get("finished"):
                forget(clf, method=method, out=out, overwrite=True, **what)
            ref = out / "reference"
            if method != "retrain" and not ref.exists():
                # every approximate method is compared with this scenario's one retrain
                ref.symlink_to((args.work / key / "retrain").resolve(), target_is_directory=True)
            table = verify(out)
            results[f"{scenario} / {method}"] = table
            r, g = table["rows"][method], table["gaps"]
            print(f"{scenario:<16}{method:<10}" + "".join(f"{r[m]:8.4f}" for m in
                  ("forget_acc", "retain_acc", "test_acc", "mia_efficacy"))
                  + f"  avg gap {g['average_gap']:.4f}  {table['seconds']:7.1f} s ({table['time_ratio']:.1%})",
                  flush=True)  # fmt: skip
    (args.work / "result.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
