"""Exact resume for every objective: a run killed with SIGKILL at a random step, resumed,
killed again at a later random step and resumed to the end finishes with the weights of the
run that was never interrupted, bit for bit (SimCLR, MAE, JEPA, TS2Vec, MLM, causal LM,
SimCSE, supervised fine-tuning, distillation, self-training; a forgetting request by every
method, which is redone when run again; and SimCLR under torchrun with two processes, killed
once).

Each run is the ``unlabeled`` command a user types. The killed copy runs under
``pause_at_step.py``, which checkpoints every 3 steps (what ``--checkpoint-steps`` does) and
blocks before the chosen step until it is killed: the kill lands mid-run, 0-2 steps after a
checkpoint, with no race."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import unlabeled as ul
from tests.train import pause_at_step
from tests.train.test_distributed import _descendants, _free_port
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.finetune import finetune

pytestmark = pytest.mark.slow
ENV = {**os.environ, "UNLABELED_QUIET": "1", "UNLABELED_TEST_CHECKPOINT_STEPS": "3", "OMP_NUM_THREADS": "1"}


def _run(args: list[str], out: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "unlabeled", *args, "--out", str(out)], env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def _kill_at(step: int, args: list[str], out: Path, log: Path, launcher: list[str] | None = None) -> None:
    """Run the command under pause_at_step and SIGKILL it (and its children) before ``step``."""
    cmd = [*(launcher or [sys.executable]), pause_at_step.SCRIPT, str(step), *args, "--out", str(out)]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            pause_at_step.wait_until_paused(proc, log)
        finally:
            if proc.poll() is None:  # the process and, under torchrun, its workers (in sessions of their own)
                for pid in [proc.pid, *_descendants(proc.pid)]:
                    os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=60)


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = ckpt.load_weights(a / ckpt.MODEL_FILE), ckpt.load_weights(b / ckpt.MODEL_FILE)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)


def _kill_resume_equals_straight(
    args: list[str], tmp_path: Path, seed: int, resume: list[str] | None = None, first: int = 4
) -> list[int]:
    """The command run straight, and killed twice at random steps (``first`` or later; the
    second kill lands in the resumed run) then resumed to the end: the same weights. Returns
    the steps it was killed at."""
    _run(args, tmp_path / "straight")
    total = ul.open_run(tmp_path / "straight").step
    again = [*args, *(["--resume"] if resume is None else resume)]
    rng = random.Random(seed)
    steps = [rng.randint(first, total - 1)]
    if steps[0] + 3 < total:  # room for a checkpoint after the first kill's: kill the resumed run too
        steps.append(rng.randint(steps[0] + 3, total - 1))
    for i, step in enumerate(steps):
        _kill_at(step, args if i == 0 else again, tmp_path / "killed", tmp_path / f"stderr-{i}.txt")
        saved = ckpt.load_state(tmp_path / "killed" / ckpt.STATE_FILE)["step"]
        assert step - 3 < saved <= step  # mid-run: killed 0-2 steps after a checkpoint
    _run(again, tmp_path / "killed")
    assert ul.open_run(tmp_path / "killed").step == total
    _same_weights(tmp_path / "straight", tmp_path / "killed")
    return steps


@pytest.mark.parametrize(
    "method, data, extra",
    [
        ("simclr", "fmnist_small", ["--epochs", "0.4", "--batch-size", "32"]),
        ("mae", "gunpoint", ["--epochs", "8", "--batch-size", "16"]),
        ("jepa", "fmnist_small", ["--encoder", "transformer", "--epochs", "0.4", "--batch-size", "32"]),
        ("ts2vec", "gunpoint", ["--epochs", "8", "--batch-size", "16"]),
        ("mlm", "wordnet_small", ["--epochs", "0.3", "--batch-size", "32"]),
        ("clm", "wordnet_small", ["--epochs", "0.3", "--batch-size", "32"]),
        ("simcse", "wordnet_small", ["--epochs", "0.3", "--batch-size", "32"]),
    ],
)
def test_pretraining_killed_and_resumed_ends_bit_for_bit_as_uninterrupted(request, tmp_path, method, data, extra):
    col = request.getfixturevalue(data)
    args = ["pretrain", str(col.path), "--method", method, "--precision", "fp32", *extra]
    _kill_resume_equals_straight(args, tmp_path, seed=len(method))


def test_fine_tuning_killed_and_resumed_ends_bit_for_bit_as_uninterrupted(fmnist_small, tmp_path):
    args = [
        "finetune",
        "--task",
        str(fmnist_small.path),
        "--epochs",
        "0.4",
        "--batch-size",
        "32",
        "--precision",
        "fp32",
    ]
    _kill_resume_equals_straight(args, tmp_path, seed=1)


def test_self_training_killed_and_resumed_ends_bit_for_bit_as_uninterrupted(fmnist_small, tmp_path):
    args = [
        "selftrain",
        "--task",
        str(fmnist_small.path),
        "--fraction",
        "0.05",
        "--epochs",
        "0.15",
        "--batch-size",
        "8",
        "--ratio",
        "2",
        "--adaptive",
        "0.9",
        "--align",
        "0.9",
        "--ema",
        "0.9",
        "--precision",
        "fp32",
    ]
    _kill_resume_equals_straight(args, tmp_path, seed=2)


def test_distillation_killed_and_resumed_ends_bit_for_bit_as_uninterrupted(fmnist_small, tmp_path):
    teacher = finetune(None, fmnist_small, tmp_path / "teacher", epochs=0.5, precision="fp32")
    args = ["distil", str(teacher.path), "--unlabeled", str(fmnist_small.path), "--size", "tiny"]
    args += ["--epochs", "0.25", "--batch-size", "32", "--select", "llkd", "--precision", "fp32"]
    _kill_resume_equals_straight(args, tmp_path, seed=3)


@pytest.mark.parametrize("command", ["finetune", "selftrain", "pretrain", "distil"])
def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_weights_it_starts_from(
    fmnist_small, tmp_path, command
):
    """With no checkpoint saved the resumed run starts again at step 0, from the pretrained
    weights it was told to start from (it trained from random weights, and its config still
    named the start), and its log of steps holds each step once."""
    start = ul.pretrain(fmnist_small, tmp_path / "start", epochs=0.2, batch_size=32, precision="fp32")
    train = ["--epochs", "0.15", "--batch-size", "16", "--precision", "fp32"]
    args = {
        "finetune": ["finetune", str(start.path), "--task", str(fmnist_small.path), *train],
        "selftrain": ["selftrain", str(start.path), "--task", str(fmnist_small.path), "--fraction", "0.05", *train],
        "pretrain": ["pretrain", str(fmnist_small.path), "--init", str(start.path), *train],
        "distil": ["distil", "TEACHER", "--unlabeled", str(fmnist_small.path), "--init", str(start.path), *train],
    }[command]
    if command == "distil":
        teacher = finetune(start, fmnist_small, tmp_path / "teacher", epochs=0.2, precision="fp32")
        args[1] = str(teacher.path)
    _run(args, tmp_path / "straight")
    _kill_at(2, args, tmp_path / "killed", tmp_path / "stderr.txt")  # checkpoints come every 3 steps
    assert (tmp_path / "killed" / "config.json").exists() and not (tmp_path / "killed" / ckpt.STATE_FILE).exists()
    _run([*args, "--resume"], tmp_path / "killed")
    _same_weights(tmp_path / "straight", tmp_path / "killed")
    logged = ul.open_run(tmp_path / "killed").metrics()
    steps = [m["step"] for m in logged]
    assert steps and len(steps) == len(set(steps))


@pytest.fixture(scope="module")
def forget_source(fmnist_small, tmp_path_factory) -> tuple[Path, Path]:
    """A classifier and the ids of 60 of its training samples, shared by the forgetting cases."""
    where = tmp_path_factory.mktemp("forget-source")
    clf = finetune(None, fmnist_small, where / "clf", epochs=0.5, precision="fp32")
    ids = where / "ids.txt"
    ids.write_text("\n".join(clf.training_ids()[:60]) + "\n")
    return clf.path, ids


# epochs over the method's stream: 8 passes over the 60 forgotten samples (one batch each), or
# half a pass over the retain set (about 15 batches); retrain redoes the classifier's own steps
FORGET_CASES = [("npo", "8"), ("ga", "8"), ("salun", "0.5"), ("scrub", "0.5"), ("finetune", "0.5"), ("retrain", None)]


@pytest.mark.parametrize("method, epochs", FORGET_CASES, ids=[m for m, _ in FORGET_CASES])
def test_a_forget_request_killed_and_run_again_ends_bit_for_bit_as_uninterrupted(
    forget_source, tmp_path, method, epochs
):
    """An interrupted request is redone by the same command (`--overwrite` not needed)."""
    clf, ids = forget_source
    args = ["forget", str(clf), "--ids", str(ids), "--method", method]
    args += [] if epochs is None else ["--epochs", epochs]
    _kill_resume_equals_straight(args, tmp_path, seed=4, resume=[])
    assert ul.open_run(tmp_path / "killed").config["forget"]["finished"]


def test_laf_killed_during_the_encoder_update_and_run_again_ends_bit_for_bit(gunpoint, tmp_path):
    """LAF fits its two VAEs (10 steps each, by the same Trainer) before the encoder update's
    30 steps; the kill lands in the update, after a checkpoint, and the rerun redoes it all."""
    encoder = ul.pretrain(gunpoint, tmp_path / "encoder", method="mae", epochs=2, batch_size=16, precision="fp32")
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(encoder.training_ids()[:10]) + "\n")
    args = ["forget", str(encoder.path), "--ids", str(ids), "--method", "laf", "--epochs", "30"]
    assert min(_kill_resume_equals_straight(args, tmp_path, seed=6, resume=[], first=12)) >= 12
    assert ul.open_run(tmp_path / "killed").config["forget"]["finished"]


def test_sisa_killed_while_retraining_a_shard_and_run_again_ends_bit_for_bit(fmnist_small, tmp_path):
    """The kill lands mid-way through the retraining of the one shard that held the ids; the
    same command again gives every shard the weights of the uninterrupted request."""
    train = fmnist_small.indices("train")[:600]
    sharded = finetune(
        None, fmnist_small, tmp_path / "sharded", positions=train, epochs=0.6, batch_size=16, shards=2, precision="fp32"
    )
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(ul.open_run(sharded.path / "shards" / "01").training_ids()[:5]) + "\n")
    args = ["forget", str(sharded.path), "--ids", str(ids), "--method", "sisa"]
    _run(args, tmp_path / "straight")
    retrained = tmp_path / "straight" / "shards" / "01"
    step = random.Random(7).randint(4, ul.open_run(retrained).step - 1)
    _kill_at(step, args, tmp_path / "killed", tmp_path / "stderr.txt")
    saved = ckpt.load_state(tmp_path / "killed" / "shards" / "01" / ckpt.STATE_FILE)["step"]
    assert step - 3 < saved <= step  # killed inside the shard's retraining, 0-2 steps after a checkpoint
    _run(args, tmp_path / "killed")
    assert ul.open_run(tmp_path / "killed").config["sisa"]["retrained_shards"] == ["01"]
    for shard in ("00", "01"):
        _same_weights(tmp_path / "straight" / "shards" / shard, tmp_path / "killed" / "shards" / shard)


def test_torchrun_with_two_processes_killed_and_resumed_ends_bit_for_bit(fmnist_small, tmp_path):
    def launcher() -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]

    args = ["pretrain", str(fmnist_small.path), "--epochs", "0.5", "--batch-size", "16", "--precision", "fp32"]

    def run(extra: list[str], out: Path) -> None:
        done = subprocess.run(
            [*launcher(), "-m", "unlabeled", *args, *extra, "--out", str(out)], env=ENV, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr

    run([], tmp_path / "straight")
    total = ul.open_run(tmp_path / "straight").step
    step = random.Random(5).randint(4, total - 1)
    _kill_at(step, args, tmp_path / "killed", tmp_path / "stderr.txt", launcher=launcher())
    assert step - 3 < ckpt.load_state(tmp_path / "killed" / ckpt.STATE_FILE)["step"] <= step
    run(["--resume"], tmp_path / "killed")
    assert ul.open_run(tmp_path / "killed").config["environment"]["world_size"] == 2
    _same_weights(tmp_path / "straight", tmp_path / "killed")
