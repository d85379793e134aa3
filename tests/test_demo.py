"""`unlabeled demo` end to end, on a small Fashion-MNIST written in the Debian package's IDX
format (so the built-in loader reads it exactly as it reads /usr/share/datasets)."""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from unlabeled.demo import FP32_VIEW_SIZE, TEMPERATURE, demo_recipe


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


@pytest.mark.slow
def test_demo_runs_the_whole_path_and_resumes(fmnist_arrays, tmp_path):
    src = tmp_path / "idx"
    src.mkdir()
    x, y = fmnist_arrays.arrays[:, 0], fmnist_arrays.labels
    _write_idx(src / "train-images-idx3-ubyte.gz", x[:1500])
    _write_idx(src / "train-labels-idx1-ubyte.gz", y[:1500])
    _write_idx(src / "t10k-images-idx3-ubyte.gz", x[60000:60500])
    _write_idx(src / "t10k-labels-idx1-ubyte.gz", y[60000:60500])
    env = {**os.environ, "UNLABELED_FASHION_MNIST": str(src), "UNLABELED_QUIET": "1"}
    cmd = [
        sys.executable,
        "-m",
        "unlabeled",
        "demo",
        "--out",
        str(tmp_path / "demo"),
        "--minutes",
        "0.1",
        "--seeds",
        "1",
    ]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "imported 2000 samples" in first.stderr and "linear probe, 1% of the labels" in first.stderr
    run = tmp_path / "demo" / "runs" / "simclr"
    assert {"report.html", "bench.json", "embeddings.parquet", "model.safetensors"} <= {p.name for p in run.iterdir()}
    config = json.loads((run / "config.json").read_text())
    recipe = demo_recipe("auto")  # this machine's recipe
    view, temperature = config["modality"]["augment"]["view_size"], config["method"]["temperature"]
    assert view == recipe.get("augment", {"view_size": 0})["view_size"]
    assert temperature == recipe.get("method_options", {"temperature": 0.5})["temperature"]
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "using the collection" in again.stderr and "using the finished run" in again.stderr


def test_the_demo_pretrains_on_small_views_in_fp32_and_full_size_with_bf16_both_at_a_lower_temperature():
    lower = {"method_options": {"temperature": TEMPERATURE}}
    assert demo_recipe("fp32") == {**lower, "augment": {"view_size": FP32_VIEW_SIZE}} and 0 < FP32_VIEW_SIZE < 28
    assert demo_recipe("bf16") == lower and TEMPERATURE < 0.5
