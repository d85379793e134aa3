"""Benchmarking with few labels: probes, the label-fraction protocol, baselines, report."""

from unlabeled.bench.benchmark import bench
from unlabeled.bench.probes import PROBES, KNNProbe, make_probe
from unlabeled.bench.result import BenchResult

__all__ = ["PROBES", "BenchResult", "KNNProbe", "bench", "make_probe"]
