"""``unlabeled demo``: the whole path on Fashion-MNIST, what ``make demo`` runs.

Import the built-in dataset, pretrain SimCLR on its 60,000 train images without labels,
then bench the encoder's frozen features with 1%, 10% and 100% of the train labels against
raw pixels and a random-init encoder. An interrupted demo picks up where it stopped."""

from __future__ import annotations

import time
from pathlib import Path

from unlabeled._console import console, info
from unlabeled.bench import BenchResult, bench
from unlabeled.data import import_source, open_collection
from unlabeled.data.collection import META_FILE
from unlabeled.runs import Run, embed
from unlabeled.train.pretrain import pretrain


def run_demo(out: str | Path = "demo", minutes: float = 11.0, seeds: int = 3, precision: str = "auto") -> BenchResult:
    """Import, pretrain for ``minutes`` (in ``precision``: ``fp32`` shows what a CPU without
    bf16 gets), bench, report into ``out``."""
    out = Path(out)
    t0 = time.perf_counter()
    data, run_dir = out / "data" / "fashion-mnist", out / "runs" / "simclr"
    if (data / META_FILE).exists():
        info(f"using the collection in {data}")
    else:
        console.print(import_source("fashion-mnist", data).summary())
    col = open_collection(data)
    if not (run_dir / "config.json").exists():
        run = pretrain(col, run_dir, method="simclr", minutes=minutes, precision=precision)
    elif Run(run_dir).finished:
        run = Run(run_dir)
        info(f"using the finished run in {run_dir}")
    else:
        run = pretrain(col, run_dir, resume=True)
    embed(run, col)
    # the supervised-from-scratch baseline trains a network per setting and seed: left out
    # here to keep the demo within its time (`unlabeled bench ... --baselines` adds it)
    result = bench(run, col, fractions=[0.01, 0.1, 1.0], seeds=seeds, baselines=("raw", "random-init"))
    console.print(result.table())
    headline = result.score(run.name, "linear", 0.01)
    raw = result.score("raw", "linear", 0.01)
    console.print(
        f"\n[bold]linear probe, 1% of the labels ({headline['n_labels']} images):[/] "
        f"{headline['mean']:.4f} ± {headline['std']:.4f} (raw pixels {raw['mean']:.4f})"
    )
    console.print(f"report: {result.report_path}   ({time.perf_counter() - t0:.0f} s in all)")
    return result
