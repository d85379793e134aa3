"""The ``semi`` bench row (FixMatch on each label draw and the rest of the train split) beside
the frozen probes, on a data set other than Fashion-MNIST: the spoken keywords or a UCR set
(issue 23; not run by CI).

It imports the data, pretrains an encoder without labels for a fixed number of passes (a step
count, so that the encoder does not depend on the machine's load), then makes one ``bench``
call with the frozen probes, ``semi``, and the baselines (``supervised`` adds fine-tuning and
FixMatch from scratch: the rows that say whether pretraining still pays once the unlabelled
samples are used again). Every choice the probes make is on a validation carve-out of each
label draw; the test split is scored once per row and seed.

    python benchmarks/semi_rows.py --data espeak-keywords --method mae --batch 64 --epochs 155.4
    python benchmarks/semi_rows.py --data ucr:JapaneseVowels --method ts2vec --encoder tcn --batch 8 --epochs 5.93

The same pretrain-then-bench pipeline serves other tables with ``--minutes`` (a time budget
instead of a step count) and other probes and baselines, e.g. text (issue 25):

    python benchmarks/semi_rows.py --data wordnet --method mlm --batch 128 --minutes 15 \
        --fractions 0.01,0.1 --probes linear,knn --baselines raw --work benchmarks/work/text
    python benchmarks/semi_rows.py --data wordnet --method mlm --batch 128 --minutes 15 \
        --fractions 0.1 --probes finetune --baselines raw --work benchmarks/work/text
    python benchmarks/semi_rows.py --data fortunes --method mlm --batch 128 --minutes 15 \
        --fractions "" --shots 10 --probes linear,knn --baselines raw --work benchmarks/work/text

Each bench writes to ``WORK/DATA/bench-RUN`` (its score cache, ``bench.json`` and report).
``--init RUN`` continues from another run (the new run is ``METHOD-from-RUN``), ``--also``
benches finished runs beside it, and ``--split dev`` scores a development split instead of
the test split: a seeded 20% of the train split (``_dev.py``; the encoders pretrained on the
whole train split without labels, so they have seen its documents, never its labels):

    python benchmarks/semi_rows.py --data wordnet --method simcse --init mlm --also mlm --batch 128 \
        --minutes 15 --fractions 0.01,0.1 --probes linear --baselines raw --split dev --work benchmarks/work/text
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _dev import dev_collection
from _provenance import provenance

import unlabeled as ul
from unlabeled.cli import parse_settings
from unlabeled.runtime import tune_process

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a built-in name or ucr:NAME")
    ap.add_argument("--method", default="mae")
    ap.add_argument("--encoder", default=None)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=float, default=None, help="pretraining passes over the train split")
    ap.add_argument("--minutes", type=float, default=None, help="pretraining budget instead of --epochs")
    ap.add_argument("--fractions", default="0.1", help="label fractions, comma-separated (empty: none)")
    ap.add_argument("--shots", default="", help="labelled samples per class, comma-separated")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--probes", default="linear,ridge,knn,semi")
    ap.add_argument("--baselines", default="raw,supervised")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "semi")
    ap.add_argument("--init", default=None, help="continue from this run (a name under WORK/DATA, or a path)")
    ap.add_argument("--also", default="", help="other finished runs (names under WORK/DATA) benched beside it")
    ap.add_argument("--split", choices=("test", "dev"), default="test", help="dev: score a development split")
    ap.add_argument("--encoder-option", action="append", default=[], help="NAME=VALUE for the new run's encoder")
    ap.add_argument("--pools", default="", help="other pools of the same weights, benched beside it")
    args = ap.parse_args()
    if (args.epochs is None) == (args.minutes is None):
        ap.error("give --epochs or --minutes")
    print(provenance(), flush=True)
    print(vars(args), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    work = args.work / args.data.replace(":", "-")
    data = work / "data"
    if not data.exists():
        print(ul.import_source(args.data, data).summary(), flush=True)
    init = None if args.init is None else (work / args.init if (work / args.init).exists() else Path(args.init))
    options = parse_settings(args.encoder_option, "--encoder-option")  # numbers and true/false as the CLI reads them
    name = "-".join([args.method, *(f"{k}-{v}" for k, v in options.items())])
    name = name if init is None else f"{name}-from-{init.name}"
    out = work / name
    t = time.perf_counter()
    if (out / "config.json").exists() and ul.open_run(out).finished:
        run = ul.open_run(out)  # pretrained already (the same fixed step count): only the bench is redone
        print(f"pretrained already: {run.step} steps, {out}", flush=True)
    else:
        run = ul.pretrain(
            data,
            out,
            method=args.method,
            encoder=args.encoder,
            epochs=args.epochs,
            minutes=args.minutes,
            batch_size=args.batch,
            init=init,
            encoder_options=options or None,
            overwrite=True,
        )
        print(f"pretrained: {run.step} steps in {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    task = data
    if args.split == "dev":  # a seeded 20% of the train split scored instead of the test split
        col = ul.open_collection(data)
        dev_size = len(col.indices(exclude="test")) // 5
        task = dev_collection(col, work / "dev", dev_size, f"{col.name}-dev")
    others = [ul.open_run(work / n) for n in args.also.split(",") if n]
    others += [repooled(run, p) for p in args.pools.split(",") if p]
    result = ul.bench(
        [run, *others],
        task=task,
        fractions=[float(f) for f in args.fractions.split(",") if f],
        shots=[int(k) for k in args.shots.split(",") if k],
        seeds=args.seeds,
        probes=args.probes.split(","),
        baselines=args.baselines.split(","),
        out=work / (f"bench-{name}" + ("-dev" if args.split == "dev" else "")),
    )
    print(f"bench: {time.perf_counter() - t:.0f} s", flush=True)
    print(result.table())


def repooled(run: ul.Run, pool: str) -> ul.Run:
    """The run's weights under another embedding pool (``NAME-pool-POOL`` beside it: its files
    linked, its config with the pool changed), for choosing the pool on a development split
    without pretraining again; the pool is part of the run's digest, so the bench scores it anew."""
    out = run.path.parent / f"{run.path.name}-pool-{pool}"
    out.mkdir(exist_ok=True)
    for f in run.path.iterdir():
        if f.name != "config.json" and not (out / f.name).exists():
            (out / f.name).symlink_to(f.resolve())
    config = json.loads((run.path / "config.json").read_text())
    config["encoder"].setdefault("options", {})["pool"] = pool
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return ul.open_run(out)


if __name__ == "__main__":
    tune_process()  # the CLI's process-wide settings, so the figures match `unlabeled` runs
    main()
