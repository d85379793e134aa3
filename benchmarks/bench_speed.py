"""Where the demo's bench spends its time (issue 28), and whether a faster probe keeps its
accuracy: one seed of every frozen-feature probe at every fraction, for the raw pixels and a
run's features, each fit single-threaded and timed alone (not run by CI).

    python benchmarks/bench_speed.py --run demo/runs/simclr --task demo/data/fashion-mnist
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _provenance import provenance
from threadpoolctl import threadpool_limits

from unlabeled.bench.features import raw_features
from unlabeled.bench.protocol import ProbeData, fit_and_score
from unlabeled.bench.tasks import make_task
from unlabeled.data import open_collection
from unlabeled.runs import features, open_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--probes", default="linear,knn,nb")
    ap.add_argument("--fractions", default="0.01,0.1,1")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--models", default="raw,run")
    args = ap.parse_args()
    print(provenance(), flush=True)
    print(vars(args), flush=True)
    task = make_task(open_collection(args.task))
    both, n = np.concatenate([task.train, task.test]), len(task.train)
    feats_of = {}
    if "raw" in args.models:
        feats_of["raw"] = raw_features(task.collection, both, fit_on=task.train)
    if "run" in args.models:
        feats_of["run"] = features(open_run(args.run), task.collection, both)
    total = 0.0
    for name, feats in feats_of.items():
        data = ProbeData(feats[:n], task.y_train, feats[n:], task.y_test, task.kind, task.metric)
        for probe in args.probes.split(","):
            for fraction in map(float, args.fractions.split(",")):
                for seed in range(args.seeds):
                    t0 = time.perf_counter()
                    with threadpool_limits(1):
                        s = fit_and_score(data, probe, fraction, seed)
                    dt = time.perf_counter() - t0
                    total += dt
                    print(
                        f"{name:4s} {probe:6s} {fraction:5g} seed {seed}: {s.value:.4f} (chose {s.param}) {dt:7.2f} s",
                        flush=True,
                    )
    print(f"total {total:.1f} s single-threaded", flush=True)


if __name__ == "__main__":
    main()
