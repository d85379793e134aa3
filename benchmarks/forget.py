"""Unlearning on Fashion-MNIST, SalUn-style (issue 7; not run by CI).

A cnn-tiny classifier trained from scratch on a random 10k of the 60k train images, long
enough to memorise them, without augmentation (train accuracy above test accuracy, so
forgetting has something to remove); three requests — a random 10% of its training samples,
one whole class, and a single sample — each served by every method; each result verified against retraining without the
forget set (forget / retain / test accuracy, MIA efficacy, their gaps to retrain, the
average gap, the time against retraining's). ``sisa`` forgets from a second classifier
trained with the same recipe in S shards; it is exact by construction (the affected shards
are retrained without the samples), so its row is its time against the request's retrain.
The "original" row is the unchanged model: the gap a method has to beat.

    python benchmarks/forget.py --train-samples 10000 --epochs 15 --shards 5
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from _provenance import provenance

import unlabeled as ul
from unlabeled.forget import METHODS, forget, verify
from unlabeled.forget.verify import predict

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("forget_acc", "retain_acc", "test_acc", "mia_efficacy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-samples", type=int, default=10_000)
    ap.add_argument("--epochs", type=float, default=15)
    ap.add_argument("--shards", type=int, default=5)
    ap.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="train the classifier with light augmentation (it then barely memorises)",
    )
    ap.add_argument("--forget-class", default="trouser")
    ap.add_argument("--methods", default=",".join(m for m in METHODS if m not in ("retrain", "laf")))
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "forget10k")
    args = ap.parse_args()
    print(provenance(), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    data = args.work / "fashion-mnist"
    if not (data / "collection.json").exists():
        ul.import_source("fashion-mnist", data)
    col = ul.open_collection(data)
    train = np.sort(np.random.default_rng(0).choice(col.indices("train"), args.train_samples, replace=False))
    classifiers = {}
    for name, shards in (("clf", 1), ("clf-sisa", args.shards)):
        path = args.work / name
        if not (path / "config.json").exists() or "seconds" not in json.loads((path / "config.json").read_text()):
            ul.finetune(
                None,
                data,
                path,
                positions=train,
                epochs=args.epochs,
                shards=shards,
                augment=args.augment,
                overwrite=True,
            )
        classifiers[name] = clf = ul.open_run(path)
        accs = {
            part: float((predict(clf.classifier(), clf.modality(), col, pos).argmax(1) == col.labels[pos]).mean())
            for part, pos in (("train", col.positions(clf.training_ids())), ("test", col.indices("test")))
        }
        print(
            f"{name}: trained in {clf.config['seconds']:.1f} s, train accuracy {accs['train']:.4f}, "
            f"test accuracy {accs['test']:.4f}",
            flush=True,
        )
    ids = classifiers["clf"].training_ids()
    rng = np.random.default_rng(0)
    requests = {
        "random 10%": {"ids": sorted(rng.choice(ids, len(ids) // 10, replace=False).tolist())},
        f"class {args.forget_class}": {"class_": args.forget_class},
        "one sample": {"ids": [str(rng.choice(ids))]},
    }
    results = {}
    for scenario, what in requests.items():
        key = scenario.replace(" ", "-").replace("%", "pct")
        methods = ["retrain", *args.methods.split(",")] if scenario != "one sample" else ["retrain", "sisa"]
        methods = [m for m in dict.fromkeys(methods) if m != "sisa" or args.shards > 1]
        for method in methods:
            src = classifiers["clf-sisa" if method == "sisa" else "clf"]
            out = args.work / key / method
            if not (out / "config.json").exists() or not ul.open_run(out).config.get("forget", {}).get("finished"):
                forget(src, method=method, out=out, overwrite=True, **what)
            if method == "sisa":  # exact by construction: its cost against this request's retrain
                retrain_s = ul.open_run(args.work / key / "retrain").config["forget"]["seconds"]
                done = ul.open_run(out).config
                results[f"{scenario} / sisa"] = {
                    "seconds": done["forget"]["seconds"],
                    "retrain_seconds": retrain_s,
                    "retrained_shards": done["sisa"]["retrained_shards"],
                }
                print(
                    f"{scenario:<16}sisa      shards retrained {len(done['sisa']['retrained_shards'])}/{args.shards}"
                    f"  {done['forget']['seconds']:7.1f} s ({done['forget']['seconds'] / retrain_s:.1%})",
                    flush=True,
                )
                continue
            ref = out / "reference"
            if method != "retrain" and not ref.exists():
                # every approximate method is compared with this scenario's one retrain
                ref.symlink_to((args.work / key / "retrain").resolve(), target_is_directory=True)
            table = verify(out)
            results[f"{scenario} / {method}"] = table
            rows = [("original", table["rows"]["original"])] if method == "retrain" else []
            for label, r in [*rows, (method, table["rows"][method])]:
                gap = np.mean([abs(r[m] - table["rows"]["retrain"][m]) for m in METRICS])
                extra = f"  {table['seconds']:7.1f} s ({table['time_ratio']:.1%})" if label == method else ""
                print(
                    f"{scenario:<16}{label:<10}"
                    + "".join(f"{r[m]:8.4f}" for m in METRICS)
                    + f"  avg gap {gap:.4f}"
                    + extra,
                    flush=True,
                )
    (args.work / "result.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
