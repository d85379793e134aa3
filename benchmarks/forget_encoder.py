"""Unlearning from a self-supervised encoder on Fashion-MNIST, without labels (issue 7; not
run by CI).

A SimCLR cnn-tiny encoder pretrained on the 60k train images for a fixed number of steps;
two requests, a random 10% of its training samples and every image of one class, each
served by ``laf`` and verified against an encoder pretrained again on the retain set for as
many steps (kNN accuracy on the forget and test sets with the retain labels as memory, the
view-alignment membership attack, linear CKA to the retrained encoder, their gaps, and the
time against retraining's). Labels are used only to verify.

    python benchmarks/forget_encoder.py --steps 1000

``--sisa S`` instead times SISA for encoders: the same recipe pretrained in S shards
(``pretrain --shards S``), a one-sample request served by ``sisa`` (exact by construction: the
shard that held the sample is retrained without it) against retraining the single encoder.

    python benchmarks/forget_encoder.py --steps 600 --sisa 5
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from _provenance import provenance

import unlabeled as ul
from unlabeled.forget import forget, verify

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000, help="pretraining steps (batch 128)")
    ap.add_argument("--forget-class", default="trouser")
    ap.add_argument("--sisa", type=int, default=0, help="time SISA with this many shards instead")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "forget_encoder")
    args = ap.parse_args()
    print(provenance(), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    data = args.work / "fashion-mnist"
    if not data.exists():
        ul.import_source("fashion-mnist", data)
    col = ul.open_collection(data)
    enc_dir = args.work / "simclr"
    if not (enc_dir / "state.pt").exists() or not ul.open_run(enc_dir).finished:
        n_train = len(col.indices(exclude="test"))
        ul.pretrain(col, enc_dir, method="simclr", epochs=args.steps / (n_train // 128), batch_size=128, overwrite=True)
    enc = ul.open_run(enc_dir)
    train_ids = enc.training_ids()
    if args.sisa > 1:
        sisa(args, col, enc)
        return
    rng = np.random.default_rng(0)
    requests = {
        "random 10%": {"ids": sorted(rng.choice(train_ids, len(train_ids) // 10, replace=False).tolist())},
        f"class {args.forget_class}": {"class_": args.forget_class},
    }
    results = {}
    for name, what in requests.items():
        out = args.work / name.replace(" ", "-").replace("%", "pct") / "laf"
        forget(enc, method="laf", out=out, overwrite=True, **what)
        table = verify(out)
        results[name] = table
        print(
            f"\n{name}: {table['forgotten']} samples; laf {table['seconds']:.0f} s, retrain "
            f"{table['retrain_seconds']:.0f} s ({table['time_ratio']:.1%})"
        )
        metrics = ["forget_knn_acc", "test_knn_acc", "mia_efficacy", "forget_cka", "retain_cka"]
        print("| model | " + " | ".join(metrics) + " |\n" + "|---" * (len(metrics) + 1) + "|")
        for model, row in table["rows"].items():
            print(f"| {model} | " + " | ".join(f"{row[m]:.4f}" for m in metrics) + " |")
        print("gaps:", {k: round(v, 4) for k, v in table["gaps"].items()})
    (args.work / "result.json").write_text(json.dumps(results, indent=1, default=str))


def sisa(args: argparse.Namespace, col: ul.Collection, enc: ul.Run) -> None:
    """Pretrain the same recipe in ``args.sisa`` shards, forget one sample from it and from the
    single encoder (by retraining), and print both times."""
    sharded_dir = args.work / f"simclr-sisa{args.sisa}"
    if not (sharded_dir / "config.json").exists() or "sisa" not in ul.open_run(sharded_dir).config:
        n_train = len(col.indices(exclude="test"))
        ul.pretrain(
            col,
            sharded_dir,
            method="simclr",
            epochs=args.steps / (n_train // 128),
            batch_size=128,
            shards=args.sisa,
            overwrite=True,
        )
    sharded = ul.open_run(sharded_dir)
    one = [str(np.random.default_rng(1).choice(enc.training_ids()))]
    times = {}
    for name, src, method in (("retrain", enc, "retrain"), ("sisa", sharded, "sisa")):
        out = args.work / "one-sample" / name
        forget(src, method=method, ids=one, out=out, overwrite=True)
        times[name] = ul.open_run(out).config["forget"]["seconds"]
    shards = ul.open_run(args.work / "one-sample" / "sisa").config["sisa"]["retrained_shards"]
    print(
        f"single encoder pretrained in {enc.config.get('seconds', float('nan'))} s; "
        f"{args.sisa} shards in {sharded.config['seconds']} s"
    )
    print(
        f"one sample ({one[0]}): retrain {times['retrain']:.1f} s; sisa retrained shards {shards} in "
        f"{times['sisa']:.1f} s = {times['sisa'] / times['retrain']:.1%} of retrain (1/S = {1 / args.sisa:.0%})"
    )
    result = dict(times, shards=args.sisa, retrained_shards=shards, sample=one[0])
    (args.work / f"sisa{args.sisa}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
