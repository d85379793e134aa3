"""The ``ucr-small`` suite through ``unlabeled bench`` with two encoders (not run by CI).

Both encoders are pretrained without labels on the train series of the suite's six
classification sets, every channel on its own, resampled to 256 steps (as
benchmarks/ucr.py's pooled encoder): one with MAE, one with SimCLR. Then one ``bench`` call
scores both on the seven tasks (six classification sets and the Covid3Month regression set)
with frozen probes and full fine-tuning, against raw features, random-init and the same
transformer trained from scratch on the same labels, and writes bench.json and report.html.

    python benchmarks/suite.py --minutes 6
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import unlabeled as ul
from unlabeled.data.collection import CollectionWriter
from unlabeled.runtime import tune_process

sys.path.insert(0, str(Path(__file__).parent))
from _provenance import provenance  # noqa: E402
from ucr import POOLED_LENGTH, SETS, resample_channels  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def pooled_collection(work: Path) -> ul.Collection:
    path = work / "data" / "pooled"
    if (path / "collection.json").is_file():
        return ul.open_collection(path)
    w = CollectionWriter(path, "series", (1, POOLED_LENGTH), "float32", None, extra_meta={"name": "ucr-pooled"})
    for name in SETS:
        col = ul.import_source(f"ucr:{name}", work / "data" / name, overwrite=True).collection
        arr = resample_channels(col.get(col.indices("train")), POOLED_LENGTH)
        w.add(arr, [f"{name}/{i}" for i in range(len(arr))])
    return w.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=6, help="pretraining budget per encoder")
    ap.add_argument("--probes", default="linear,knn,nb,mlp,finetune")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--baselines", default="raw,random-init,supervised")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "suite")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ucr-small")
    args = ap.parse_args()
    print(provenance(), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    pooled = pooled_collection(args.work)
    runs = []
    for method in ("mae", "simclr"):
        run_dir = args.work / "runs" / f"pooled-{method}"
        if (run_dir / "state.pt").is_file() and ul.open_run(run_dir).finished:
            runs.append(ul.open_run(run_dir))
        else:
            runs.append(
                ul.pretrain(
                    pooled,
                    run_dir,
                    method=method,
                    encoder="transformer",
                    size="tiny",
                    minutes=args.minutes,
                    encoder_options={"patch": [1, 8]},
                    overwrite=True,
                )
            )
    t = time.perf_counter()
    result = ul.bench(
        runs,
        suite="ucr-small",
        fractions=[0.1, 1.0],
        shots=[5],
        seeds=args.seeds,
        probes=args.probes.split(","),
        baselines=args.baselines.split(","),
        out=args.out,
        data_dir=args.work / "tasks",
    )
    print(result.table())
    print(f"bench: {time.perf_counter() - t:.0f} s; {result.json_path}, {result.report_path}")


if __name__ == "__main__":
    tune_process()  # the CLI's process-wide settings, so the figures match `unlabeled` runs
    main()
