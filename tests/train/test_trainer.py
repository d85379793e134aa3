import json
import os
import platform
import signal
import subprocess
import sys
import time

import pytest
import torch

import unlabeled as ul
from unlabeled.modalities.image import ImageModality
from unlabeled.models import build_encoder
from unlabeled.objectives import SimCLR, build_objective
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.trainer import TrainConfig, Trainer, compile_encoder, lr_at

FAST = dict(epochs=0.4, batch_size=64, precision="fp32")  # 12 steps on 2,000 images


def test_schedule_warms_up_then_decays_to_zero():
    lrs = [lr_at(s, 100, 1.0, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] < 0.01


def test_batches_cover_the_data_once_per_epoch(fmnist_small, tmp_path):
    mod = ImageModality.fit(fmnist_small)
    obj = build_objective("simclr", build_encoder("cnn", "tiny", (1, 28, 28)), mod)
    t = Trainer(obj, fmnist_small, fmnist_small.indices(exclude="test"), TrainConfig(batch_size=64), tmp_path)
    seen = [p for s in range(t.steps_per_epoch) for p in t.batch_positions(s)]
    assert len(seen) == len(set(seen)) == t.steps_per_epoch * 64 == 31 * 64
    assert not set(seen) & set(fmnist_small.indices("test").tolist())
    assert (t.batch_positions(0) != t.batch_positions(t.steps_per_epoch)).any()  # reshuffled


def test_run_directory(fmnist_small, tmp_path):
    run = ul.pretrain(fmnist_small, tmp_path / "r", **FAST)
    names = {p.name for p in run.path.iterdir()}
    assert {"config.json", "model.safetensors", "state.pt", "metrics.jsonl"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    cfg = run.config
    assert cfg["train"]["total_steps"] == 12 and cfg["method"]["name"] == "simclr"
    assert cfg["data"]["exclude_split"] == "test" and cfg["data"]["samples"] == 2000
    assert run.step == 12 and [m["step"] for m in run.metrics()] == [12]
    assert run.encoder().embed(torch.rand(2, 1, 28, 28)).shape == (2, 256)
    with pytest.raises(ul.UnlabeledError, match="already holds a run"):
        ul.pretrain(fmnist_small, tmp_path / "r", **FAST)


def test_resume_after_a_crash_is_exact(fmnist_small, tmp_path, monkeypatch):
    straight = ul.pretrain(fmnist_small, tmp_path / "a", checkpoint_steps=5, **FAST)
    real_step = Trainer._step

    def crash_after_7(self, model, opt, step, total):
        if step == 7:
            raise RuntimeError("simulated crash")
        return real_step(self, model, opt, step, total)

    monkeypatch.setattr(Trainer, "_step", crash_after_7)
    with pytest.raises(RuntimeError, match="simulated"):
        ul.pretrain(fmnist_small, tmp_path / "b", checkpoint_steps=5, **FAST)
    assert ckpt.load_state(tmp_path / "b" / "state.pt")["step"] == 5
    monkeypatch.setattr(Trainer, "_step", real_step)
    resumed = ul.pretrain(fmnist_small, tmp_path / "b", resume=True)
    a, b = ckpt.load_weights(straight.path / "model.safetensors"), ckpt.load_weights(resumed.path / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_minutes_budget_is_fixed_before_training(fmnist_small, tmp_path):
    run = ul.pretrain(fmnist_small, tmp_path / "r", minutes=0.15, batch_size=64, precision="fp32")
    total = run.config["train"]["total_steps"]
    assert total >= 1 and run.step == total
    assert run.metrics()[-1]["elapsed_s"] < 0.15 * 60 * 2


def test_sigkill_then_resume_from_the_cli(fmnist_small, tmp_path):
    out = tmp_path / "r"
    cmd = [
        sys.executable,
        "-m",
        "unlabeled",
        "pretrain",
        str(fmnist_small.path),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--checkpoint-steps",
        "10",
        "--precision",
        "fp32",
    ]
    env = {**os.environ, "UNLABELED_QUIET": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = out / "state.pt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and ckpt.load_state(state)["step"] >= 20:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = ckpt.load_state(state)["step"]
    total = json.loads((out / "config.json").read_text())["train"]["total_steps"]
    assert 20 <= killed_at < total == 62
    ul.open_run(out).encoder()  # the checkpoint left by the killed process loads
    done = subprocess.run([*cmd[:7], "--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run = ul.open_run(out)
    assert run.step == total and ckpt.load_state(state)["step"] == total
    steps = [m["step"] for m in run.metrics()]
    assert steps == sorted(set(steps)) and steps[-1] == total
    run.encoder()


def test_snapshots_keep_weights_along_the_way(fmnist_small, tmp_path):
    run = ul.pretrain(fmnist_small, tmp_path / "r", snapshot_seconds=1e-6, **FAST)
    snaps = sorted((run.path / "snapshots").iterdir())
    assert [s.name for s in snaps] == [f"step-{i:07d}.safetensors" for i in range(1, 13)]
    w = ckpt.load_weights(snaps[0])
    assert set(w) == set(ckpt.load_weights(run.path / "model.safetensors"))


def test_compile_option_trains_the_same_model(digits, tmp_path):
    kw = dict(epochs=1, batch_size=128, precision="fp32")
    eager = ul.pretrain(digits, tmp_path / "eager", **kw)
    compiled = ul.pretrain(digits, tmp_path / "compiled", compile=True, **kw)
    a, b = ckpt.load_weights(eager.path / "model.safetensors"), ckpt.load_weights(compiled.path / "model.safetensors")
    assert a.keys() == b.keys()
    params = [k for k in a if "running" not in k and "num_batches" not in k]
    # equal up to rounding, which AdamW's sign-like first steps turn into differences of ~lr
    assert max((a[k] - b[k]).abs().max().item() for k in params) < 5e-2
    assert compiled.metrics()[-1]["loss"] == pytest.approx(eager.metrics()[-1]["loss"], rel=0.02)
    assert compiled.config["train"]["compile"] is True


def test_compile_covers_what_masked_objectives_call():
    enc = build_encoder("transformer", "tiny", (1, 28, 28))
    compile_encoder(enc)  # MAE and JEPA call run() on a subset of the tokens, not forward()
    for name in ("forward", "embed", "run"):
        assert getattr(getattr(enc, name), "_torchdynamo_orig_callable", None) is not None, name
    cnn = build_encoder("cnn", "tiny", (1, 28, 28))
    compile_encoder(cnn)
    assert not hasattr(cnn, "run") and hasattr(cnn.embed, "_torchdynamo_orig_callable")


def test_a_nan_loss_stops_the_run_before_it_is_saved(fmnist_small, tmp_path, monkeypatch):
    real_loss, calls = SimCLR.loss, []

    def loss(self, x, generator):
        calls.append(1)
        value, logs = real_loss(self, x, generator)
        return (value * float("nan") if len(calls) > 5 else value), logs

    monkeypatch.setattr(SimCLR, "loss", loss)
    with pytest.raises(ul.UnlabeledError, match="loss became nan at step 5"):
        ul.pretrain(fmnist_small, tmp_path / "r", **FAST)
    assert not (tmp_path / "r" / ckpt.MODEL_FILE).exists()


_FAULTS = """
import resource, sys, torch
from unlabeled.runtime import keep_freed_memory
tuned = keep_freed_memory()
counts = []
for _ in range(8):  # a training step's worth of large activations, allocated and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(64 * 2**20 // 4).fill_(1.0)
    del x
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(int(tuned), sum(counts[4:]))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning is glibc's mallopt; other libcs keep theirs")
def test_keep_freed_memory_reuses_pages_across_steps():
    def run(malloc: str) -> tuple[int, int]:
        env = {**os.environ, "UNLABELED_MALLOC": malloc}
        out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True)
        tuned, faults = out.stdout.split()
        return int(tuned), int(faults)

    system_tuned, system_faults = run("system")
    tuned, faults = run("")
    assert (system_tuned, tuned) == (0, 1)
    # glibc's default maps and unmaps a 64 MiB block every time; kept, its pages are reused
    assert system_faults > 0
    assert faults < system_faults / 4


@pytest.mark.parametrize("early, late", [(1.0, 0.5), (0.5, 1.0), (0.8, 0.8)])
def test_a_time_budget_is_used_to_within_five_percent_when_the_speed_changes(early, late):
    """A simulated clock: steps take ``early`` seconds for the first 15% of the budget, then
    ``late``; the loop runs to the count the budget last gave (no real time is measured)."""
    from unlabeled.train.trainer import _Budget

    budget, seconds = _Budget(100.0, fixed=False), 100.0
    total, step, now = 1_000_000, 0, 0.0
    while step < total:
        now += early if now < 0.15 * seconds else late
        step += 1
        new = budget.refit(step, now, now)
        total = total if new is None else new
    assert budget.fixed
    assert 0.95 * seconds <= now <= 1.05 * seconds, now
