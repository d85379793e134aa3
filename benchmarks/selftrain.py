"""Few labels, all the unlabeled data: Fashion-MNIST with 1% of the labels, each arm a whole
pipeline a user runs (not run by CI).

Arms (any subset, in this order):
- ``linear``: pretrain (SimCLR) without labels, frozen linear probe (the bench protocol);
- ``finetune``: pretrain, then ``finetune --fraction``;
- ``supervised``: ``finetune --fraction`` from scratch;
- ``fixmatch-scratch``: ``selftrain --fraction`` from scratch;
- ``fixmatch``: pretrain, then ``selftrain --fraction`` from the pretrained encoder;
- ``distil``: pretrain, ``finetune --fraction``, then ``distil`` on every unlabeled image;
- ``fixmatch-distil``: pretrain, ``selftrain`` for ``--minutes`` less ``--distil-minutes``, then
  ``distil`` the self-trained classifier into a student from the pretrained encoder on every
  unlabeled image for ``--distil-minutes`` (SimCLRv2's last step after FixMatch); the
  self-trained teacher's accuracy is printed too.

``--split dev`` scores a development split instead of the test split: 10,000 train images
held out (from the labels, the unlabeled pool and pretraining alike), for choosing recipes;
``--split test`` (the default) reports. Pretraining is done once and shared by the arms and
label draws (it sees no labels); its minutes count in each arm's pipeline time.

    python benchmarks/selftrain.py --split dev --arms fixmatch-scratch,fixmatch --precision fp32
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import unlabeled as ul
from unlabeled.bench.protocol import evaluate
from unlabeled.runtime import tune_process
from unlabeled.train import checkpoint as ckpt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _dev import dev_collection  # noqa: E402  (the sibling modules)
from _provenance import provenance  # noqa: E402
from distil import accuracy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("linear", "finetune", "supervised", "fixmatch-scratch", "fixmatch", "distil", "fixmatch-distil")
PRETRAINED = ("linear", "finetune", "fixmatch", "distil", "fixmatch-distil")
DEV = 10_000


def fashion_mnist(work: Path, split: str) -> ul.Collection:
    """Fashion-MNIST imported once into ``work``: whole (``split="test"``), or the train split
    alone with its development split marked as test (``"dev"``, :func:`dev_collection`)."""
    full = work / "fashion-mnist"
    if not full.exists():
        print(ul.import_source("fashion-mnist", full).summary())
    col = ul.open_collection(full)
    return dev_collection(col, work / "fashion-mnist-dev", DEV, "fashion-mnist-dev") if split == "dev" else col


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--split", choices=("dev", "test"), default="test")
    ap.add_argument("--fraction", type=float, default=0.01)
    ap.add_argument("--draws", type=int, default=1)
    ap.add_argument("--first-draw", type=int, default=0, help="the first draw's seed (draws are seeds from here on)")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--pretrain-minutes", type=float, default=10)
    ap.add_argument("--pretrain-size", default="tiny")
    ap.add_argument("--pretrain-augment", default="{}", help='pretraining augmentation, JSON ({"view_size": 16})')
    ap.add_argument(
        "--pretrain-encoder", default="{}", help='the pretrained encoder\'s options, JSON ({"strided_stem": true})'
    )
    ap.add_argument(
        "--pretrain-options", default="{}", help='the pretraining objective\'s options, JSON ({"temperature": 0.2})'
    )
    ap.add_argument("--pretrain-steps", type=int, default=0, help="pretrain for this many steps (0: by the minutes)")
    ap.add_argument(
        "--minutes", type=float, default=15, help="self-training budget (0: the epochs in --selftrain instead)"
    )
    ap.add_argument(
        "--distil-minutes", type=float, default=6, help="fixmatch-distil: the distillation's share of --minutes"
    )
    ap.add_argument("--size", default="tiny", help="from-scratch arms' encoder size")
    ap.add_argument("--finetune-epochs", type=float, default=30)
    ap.add_argument("--selftrain", default="{}", help="JSON of more selftrain options (threshold, ratio, ema, lr)")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "selftrain")
    args = ap.parse_args()
    os.environ.setdefault("UNLABELED_QUIET", "1")
    print(provenance(), flush=True)
    print(vars(args), flush=True)
    arms = [a for a in args.arms.split(",") if a]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    col = fashion_mnist(args.work, args.split)
    scored = col.indices("test")
    print(f"scored on the {args.split} split: {len(scored)} images", flush=True)
    work = args.work / args.split
    pre, pre_s = None, 0.0
    if any(a in arms for a in PRETRAINED):
        augment = json.loads(args.pretrain_augment) or None
        views = f"-view{augment['view_size']}" if augment and "view_size" in augment else ""
        enc_options = json.loads(args.pretrain_encoder)
        views += "".join(f"-{k}={v}" for k, v in sorted(enc_options.items()))
        method_options = json.loads(args.pretrain_options)
        views += "".join(f"-{k}={v}" for k, v in sorted(method_options.items()))
        budget = f"{args.pretrain_steps}steps" if args.pretrain_steps else f"{args.pretrain_minutes:g}min"
        path = work / f"simclr-{args.pretrain_size}-{budget}-{args.precision}{views}"
        t = time.perf_counter()
        if (path / "config.json").exists() and ul.open_run(path).finished:
            pre = ul.open_run(path)
            pre_s = float(pre.config.get("seconds", args.pretrain_minutes * 60))
        else:
            pre = ul.pretrain(
                col,
                path,
                size=args.pretrain_size,
                minutes=None if args.pretrain_steps else args.pretrain_minutes,
                epochs=args.pretrain_steps / (len(col.indices(exclude="test")) // 128) if args.pretrain_steps else None,
                precision=args.precision,
                augment=augment,
                encoder_options=enc_options,
                method_options=method_options or None,
                overwrite=True,
            )
            pre_s = time.perf_counter() - t
        print(f"pretrained: {pre.step} steps, {pre_s:.0f} s", flush=True)
    extra = json.loads(args.selftrain)
    results: dict[str, list[tuple[float, float]]] = {a: [] for a in arms}
    for seed in range(args.first_draw, args.first_draw + args.draws):
        for arm in arms:
            t = time.perf_counter()
            acc = run_arm(arm, args, col, pre, work / f"{arm}-{seed}", seed, extra)
            secs = time.perf_counter() - t + (pre_s if arm in PRETRAINED else 0)
            results[arm].append((acc, secs))
            print(f"draw {seed} {arm:<17} {args.split} accuracy {acc:.4f}  pipeline {secs:.0f} s", flush=True)
    print(f"\nmean of {args.draws} draws, {args.split} accuracy with {args.fraction:.0%} of the labels:")
    for arm, rows in results.items():
        a = np.array(rows)
        print(f"  {arm:<17} {a[:, 0].mean():.4f} ± {a[:, 0].std():.4f}   pipeline {a[:, 1].mean():.0f} s")


def live_accuracy(run: ul.Run, col: ul.Collection, pos: np.ndarray) -> float:
    """The accuracy of the model a run with ``--ema`` trained (its checkpoint's ``encoder.*`` and
    ``head.*``), where :func:`accuracy` scores the average the run exports."""
    model = ckpt.load_state(run.path / ckpt.STATE_FILE)["model"]
    clf = run.classifier()
    clf.load_state_dict({k: v for k, v in model.items() if k.split(".")[0] in ("encoder", "head")})
    return accuracy(run, col, pos, clf)


def run_arm(
    arm: str, args: argparse.Namespace, col: ul.Collection, pre: ul.Run | None, out: Path, seed: int, extra: dict
) -> float:
    """The ``split`` accuracy of one arm's pipeline on one label draw."""
    test = col.indices("test")
    common = {"fraction": args.fraction, "seed": seed, "overwrite": True}
    if arm == "linear":
        X, train = pre.encode(col), col.indices(exclude="test")
        return evaluate(X[train], col.labels[train], X[test], col.labels[test], "linear", args.fraction, seed).value
    if arm in ("finetune", "supervised", "distil"):
        start = None if arm == "supervised" else pre
        clf = ul.finetune(
            start,
            col,
            out,
            epochs=args.finetune_epochs,
            batch_size=64,
            size=args.size,
            precision=args.precision,
            **common,
        )
        if arm != "distil":
            return accuracy(clf, col, test)
        student = ul.distil(
            clf.path,
            col,
            out.with_name(out.name + "-student"),
            minutes=args.minutes,
            seed=seed,
            precision=args.precision,
            overwrite=True,
        )
        return accuracy(student, col, test)
    start = None if arm == "fixmatch-scratch" else pre
    minutes = args.minutes - (args.distil_minutes if arm == "fixmatch-distil" else 0)
    run = ul.selftrain(
        start, col, out, minutes=minutes or None, size=args.size, precision=args.precision, **common, **extra
    )
    if arm != "fixmatch-distil":
        if extra.get("ema"):  # the run exports the average; the trained model it averaged, paired
            print(f"draw {seed} {arm} trained model (not its EMA) accuracy {live_accuracy(run, col, test):.4f}")
        return accuracy(run, col, test)
    print(
        f"draw {seed} fixmatch-distil's teacher ({minutes:g} min) accuracy {accuracy(run, col, test):.4f}", flush=True
    )
    student = ul.distil(
        run.path,
        col,
        out.with_name(out.name + "-student"),
        init=pre,
        minutes=args.distil_minutes,
        seed=seed,
        precision=args.precision,
        overwrite=True,
    )
    return accuracy(student, col, test)


if __name__ == "__main__":
    tune_process()  # the CLI's process-wide settings, so the figures match `unlabeled` runs
    main()
