"""`unlabeled demo` end to end, on a small Fashion-MNIST written in the Debian package's IDX
format (so the built-in loader reads it exactly as it reads /usr/share/datasets)."""

import gzip
import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from unlabeled.cli import demo as demo_
from unlabeled.demo import LR, MINUTES, TEMPERATURE, VIEW_SIZE, demo_recipe
from unlabeled.train.trainer import TrainConfig


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _small_fashion_mnist(fmnist_arrays, src):
    """1,500 train and 500 test images of the real set, as the Debian package's IDX files."""
    src.mkdir()
    x, y = fmnist_arrays.arrays[:, 0], fmnist_arrays.labels
    _write_idx(src / "train-images-idx3-ubyte.gz", x[:1500])
    _write_idx(src / "train-labels-idx1-ubyte.gz", y[:1500])
    _write_idx(src / "t10k-images-idx3-ubyte.gz", x[60000:60500])
    _write_idx(src / "t10k-labels-idx1-ubyte.gz", y[60000:60500])
    return src


@pytest.mark.slow
def test_demo_runs_the_whole_path_and_resumes(fmnist_arrays, tmp_path):
    src = _small_fashion_mnist(fmnist_arrays, tmp_path / "idx")
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
    recipe = demo_recipe()
    view, temperature = config["modality"]["augment"]["view_size"], config["method"]["temperature"]
    assert view == recipe.get("augment", {"view_size": 0})["view_size"]
    assert temperature == recipe.get("method_options", {"temperature": 0.5})["temperature"]
    assert config["train"]["lr"] == recipe["lr"]
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "using the collection" in again.stderr and "using the finished run" in again.stderr


def test_the_demo_pretrains_on_small_views_at_a_lower_temperature_and_a_higher_rate_whatever_the_precision():
    assert demo_recipe() == {
        "method_options": {"temperature": TEMPERATURE},
        "lr": LR,
        "augment": {"view_size": VIEW_SIZE},
    }
    assert 0 < VIEW_SIZE < 28 and TEMPERATURE < 0.5 and TrainConfig.lr < LR  # none is the library's default
    assert inspect.signature(demo_).parameters["minutes"].default == MINUTES  # the CLI's default is the API's


@pytest.mark.slow
def test_demo_with_semi_puts_finetuning_and_fixmatch_from_the_run_and_from_scratch_beside_the_probe(
    fmnist_arrays, tmp_path, monkeypatch, capsys
):
    """The issue's `unlabeled demo`: frozen probe, fine-tuning and the semi-supervised pipeline
    side by side (the demo showed the frozen probes alone)."""
    from unlabeled.bench import semi
    from unlabeled.demo import run_demo

    monkeypatch.setenv("UNLABELED_FASHION_MNIST", str(_small_fashion_mnist(fmnist_arrays, tmp_path / "idx")))
    monkeypatch.setattr(semi, "MAX_STEPS", 10)  # a few steps a FixMatch fit: the rows, not their accuracy
    run_demo(tmp_path / "demo", minutes=0.1, seeds=1, semi=True)
    rows = json.loads((tmp_path / "demo" / "semi" / "bench.json").read_text())["rows"]
    cells = {(r["model"], r["probe"], r["fraction"]) for r in rows}
    assert {("simclr", "linear"), ("simclr", "finetune"), ("simclr", "semi"), ("supervised", "semi")} <= {
        c[:2] for c in cells
    }, cells
    assert {c[2] for c in cells} == {0.01}
    assert (tmp_path / "demo" / "runs" / "simclr" / "bench.json").exists()  # the frozen probes' report is kept
    assert "FixMatch from the run, 1% of the labels" in capsys.readouterr().err
