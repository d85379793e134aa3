"""Fashion-MNIST: MAE and JEPA with the patch transformer against SimCLR with the CNN, each
pretrained for the same wall time on this machine, then a linear probe at 1% labels (and
10%), 3 seeds, with the raw-pixel and random-init baselines (not run by CI).

    python benchmarks/fmnist_methods.py --minutes 8
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _provenance import provenance

import unlabeled as ul
from unlabeled.runtime import tune_process

ROOT = Path(__file__).resolve().parent.parent
RUNS = {  # name: (method, encoder)
    "simclr-cnn": ("simclr", "cnn"),
    "mae-transformer": ("mae", "transformer"),
    "jepa-transformer": ("jepa", "transformer"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=8)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "fmnist_methods")
    ap.add_argument("--only", default=",".join(RUNS), help="comma-separated subset of " + ",".join(RUNS))
    args = ap.parse_args()
    print(provenance(), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    data = args.work / "fashion-mnist"
    if not data.exists():
        ul.import_source("fashion-mnist", data)
    runs, timing = [], {}
    for name in args.only.split(","):
        method, encoder = RUNS[name]
        out = args.work / name
        if (out / "model.safetensors").exists() and ul.open_run(out).config["train"]["minutes"] == args.minutes:
            print(f"{name}: reusing {out}", flush=True)
        else:
            t = time.perf_counter()
            ul.pretrain(data, out, method=method, encoder=encoder, minutes=args.minutes, overwrite=True)
            print(f"{name}: {time.perf_counter() - t:.0f} s", flush=True)
        run = ul.open_run(out)
        last = run.metrics()[-1]
        timing[name] = {"steps": last["step"], "samples_per_s": round(last["step"] * 128 / last["elapsed_s"], 1)}
        runs.append(run)
    result = ul.bench(runs, task=data, fractions=[0.01, 0.1], seeds=3, probes=["linear"], out=args.work / "bench")
    print(result.table())
    print(json.dumps(timing, indent=1))


if __name__ == "__main__":
    tune_process()  # the CLI's process-wide settings, so the figures match `unlabeled` runs
    main()
