"""SimCLRv2's pipeline on Fashion-MNIST with 1% of the labels: pretrain without labels, fine-tune
a teacher on the few labels (``finetune --fraction``), distil it into a student on every
unlabeled train image (``distil``), and score both on the test split, beside the frozen
linear probe on the same labels (not run by CI).

The settings are the commands' defaults or given here; none was chosen on the test split,
which is scored once per run for the report.

    python benchmarks/distil.py --minutes 8 --size small --student tiny --draws 3
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import provenance

import unlabeled as ul
from unlabeled.bench.protocol import evaluate
from unlabeled.runtime import tune_process

ROOT = Path(__file__).resolve().parent.parent


def accuracy(run: ul.Run, col: ul.Collection, pos: np.ndarray, clf: torch.nn.Module | None = None) -> float:
    """The accuracy on ``pos`` of ``run``'s classifier (or of ``clf``, with ``run``'s inputs)."""
    clf, mod = run.classifier() if clf is None else clf, run.modality()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(pos), 1024):
            chunk = pos[start : start + 1024]
            pred = clf(mod.normalize(mod.prepare(col.get(chunk)))).argmax(1).numpy()
            correct += int((pred == col.labels[chunk]).sum())
    return correct / len(pos)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=8, help="pretraining budget")
    ap.add_argument("--size", default="small", help="the pretrained encoder and teacher")
    ap.add_argument("--student", default="tiny", help="the student's size")
    ap.add_argument("--fraction", type=float, default=0.01)
    ap.add_argument("--teacher-epochs", type=float, default=30)
    ap.add_argument("--student-epochs", type=float, default=3)
    ap.add_argument("--draws", type=int, default=3, help="label draws (seeds)")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "distil")
    args = ap.parse_args()
    os.environ.setdefault("UNLABELED_QUIET", "1")
    print(provenance(), flush=True)
    print(vars(args))
    t0 = time.perf_counter()
    data = args.work / "fashion-mnist"
    if not data.exists():
        print(ul.import_source("fashion-mnist", data).summary())
    col = ul.open_collection(data)
    pre = args.work / f"simclr-{args.size}"
    if (pre / "config.json").exists() and ul.open_run(pre).finished:
        run = ul.open_run(pre)
    else:
        run = ul.pretrain(col, pre, size=args.size, minutes=args.minutes, overwrite=True)
    print(f"pretrained: {run.step} steps, {time.perf_counter() - t0:.0f} s so far")
    train, test = col.indices(exclude="test"), col.indices("test")
    X = run.encode(col)
    rows = []
    for seed in range(args.draws):
        t = time.perf_counter()
        teacher = ul.finetune(
            run,
            col,
            args.work / f"teacher-{seed}",
            fraction=args.fraction,
            epochs=args.teacher_epochs,
            batch_size=64,
            seed=seed,
            overwrite=True,
        )
        t_teacher = time.perf_counter() - t
        student = ul.distil(
            teacher.path,
            col,
            args.work / f"student-{seed}",
            size=args.student,
            epochs=args.student_epochs,
            seed=seed,
            overwrite=True,
        )
        t_student = time.perf_counter() - t - t_teacher
        linear = evaluate(X[train], col.labels[train], X[test], col.labels[test], "linear", args.fraction, seed).value
        row = (seed, len(teacher.training_ids()), linear, accuracy(teacher, col, test), accuracy(student, col, test))
        rows.append(row)
        print(
            f"draw {seed}: {row[1]} labels; linear probe {row[2]:.4f}, teacher (fine-tuned {args.size}) {row[3]:.4f} "
            f"in {t_teacher:.0f} s, student ({args.student}) {row[4]:.4f} in {t_student:.0f} s"
        )
    a = np.array([r[2:] for r in rows])
    m, s = a.mean(0), a.std(0)
    print(f"\nmean of {args.draws} draws, test accuracy with {args.fraction:.0%} of the labels:")
    for name, i in (
        ("linear probe (frozen)", 0),
        (f"teacher: fine-tuned {args.size}", 1),
        (f"student: {args.student}", 2),
    ):
        print(f"  {name:<28} {m[i]:.4f} ± {s[i]:.4f}")
    print(f"student - teacher: {m[2] - m[1]:+.4f}; whole run {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    tune_process()  # the CLI's process-wide settings, so the figures match `unlabeled` runs
    main()
