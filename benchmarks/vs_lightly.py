"""Pretraining speed and time-to-accuracy against LightlySSL, one after the other on this
machine, in one invocation (not run by CI).

Both sides train SimCLR with our cnn-tiny encoder on the same 60,000 Fashion-MNIST train
images at batch 256 for the same wall time, with the same optimiser, schedule, temperature
and augmentation strengths. Ours: ``unlabeled pretrain`` (batched tensor augmentation, bf16
autocast where the CPU has it, channels-last). LightlySSL: its ``SimCLRTransform`` per sample
in DataLoader workers, fp32 (benchmarks/_lightly_simclr.py, run in its own virtual
environment, created here when missing, with the very torch build this project runs, the CPU
one from PyPI by default, and the torchvision release made for it: the same kernels on both
sides, and no several-GB CUDA download on a machine without a GPU).

Every ``--snapshot-seconds`` both keep their weights; afterwards each snapshot's frozen
features are scored by the bench protocol (linear probe, 1% of the labels, 3 seeds), which
gives accuracy against wall time and the time to reach 0.80. Peak memory is the largest sum of
resident memory over each side's process tree, sampled every 0.2 s.

    python benchmarks/vs_lightly.py --minutes 15 --snapshot-seconds 90

A snapshot in the middle of a long run is not what a run of that length reaches (measured on
Fashion-MNIST: a complete 1-minute run scores below the 1.6-minute snapshot of a 15-minute
run, BENCHMARKS.md). ``--budgets-ours`` / ``--budgets-lightly`` measure time to accuracy as
DAWNBench does instead: one complete run (warm-up and cosine decay
within its budget) per listed budget, each scored on its final weights; a system's time to
the target is the wall time of its shortest run that reaches it. Throughput and peak memory
come from the same runs.

    python benchmarks/vs_lightly.py --budgets-ours 1,1.5,2,3 --budgets-lightly 3,4,5,6,8

``--steps`` gives both systems complete runs of the same number of optimiser steps (and the
same step schedule), and ``--seeds`` repeats every budget: a budget's accuracy is the mean
over its seeds. Near the plateau one run moves by about ±0.4 points from seed to seed, so a
crossing read off single runs is mostly noise (BENCHMARKS.md).

    python benchmarks/vs_lightly.py --steps 800 --seeds 2

``--view-size 12`` resizes both systems' crops to 12 pixels a side (ours: ``--augment
view_size=12``; LightlySSL: ``SimCLRTransform(input_size=12)``), the recipe ``unlabeled demo``
pretrains with where PyTorch runs in fp32; the probe still reads whole 28-pixel images.

On a GPU (``--device cuda``, benchmarks/gpu.sh) both train there: ours augments on the GPU,
LightlySSL in ``--lightly-workers`` loader processes on the CPU; the peak of each side's GPU
memory (PyTorch's allocator) is reported beside its process tree's resident memory.
``--lightly-python`` names an interpreter that already imports ``lightly`` and ``unlabeled``
(the GPU machine's own) instead of the virtual environment made here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import provenance

import unlabeled as ul
from unlabeled.bench.benchmark import task_split
from unlabeled.bench.protocol import evaluate
from unlabeled.data.splits import stratified_subset
from unlabeled.modalities.image import ImageModality
from unlabeled.models import build_encoder
from unlabeled.runs import encode, resolve_device
from unlabeled.runtime import tune_process
from unlabeled.train import checkpoint as ckpt

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "benchmarks" / ".lightly-venv"


def ensure_lightly() -> Path:
    """The LightlySSL environment's python, made or remade when it is missing or holds another
    torch than this process (pip picks the torchvision release that requires that torch)."""
    python = VENV / "bin" / "python"
    check = f"import lightly, unlabeled, torch; assert torch.__version__ == {torch.__version__!r}"
    if python.exists() and subprocess.run([python, "-c", check]).returncode == 0:
        return python
    print(f"installing LightlySSL with torch {torch.__version__} into", VENV, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
    pip = [python, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"torch=={torch.__version__}", "torchvision", "lightly"], check=True)
    subprocess.run([*pip, "-e", ROOT], check=True)  # for our encoder
    return python


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(stat[1])
            rss[int(entry)] = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += [c for c, pp in parents.items() if pp == p]
    return total


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak tree RSS in bytes, stdout) of a command."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    done.set()
    th.join()
    if proc.returncode:
        raise SystemExit(f"{cmd[:4]} failed with exit code {proc.returncode}")
    return time.perf_counter() - t, peak, out


def score_weights(paths: list[Path], col: ul.Collection, mod: ImageModality) -> list[tuple[float, float]]:
    """(mean, std) of the 1%-label linear probe (3 seeds) on the frozen encoder in each weights file."""
    train, test, _ = task_split(col)
    y = col.labels
    subsets = [train[stratified_subset(y[train], 0.01, s)] for s in range(3)]
    need = np.unique(np.concatenate([*subsets, test]))  # only what the probe will see
    where = {p: i for i, p in enumerate(need)}
    out = []
    for path in paths:
        weights = ckpt.load_weights(path)
        enc = build_encoder("cnn", "tiny", (1, 28, 28))
        enc.load_state_dict({k[8:]: v for k, v in weights.items() if k.startswith("encoder.")})
        X = encode(enc, mod, col, need)
        Xte = X[[where[p] for p in test]]
        scores = []
        for seed in range(3):
            # evaluate() draws the same 1% subset from the train split for this seed
            Xtr = np.zeros((len(train), X.shape[1]), np.float32)
            rows = stratified_subset(y[train], 0.01, seed)
            Xtr[rows] = X[[where[p] for p in train[rows]]]
            scores.append(evaluate(Xtr, y[train], Xte, y[test], "linear", 0.01, seed).value)
        out.append((float(np.mean(scores)), float(np.std(scores))))
    return out


def score_snapshots(folder: Path, col: ul.Collection, mod: ImageModality) -> list[tuple[float, float, float]]:
    """(elapsed seconds, mean, std) of the 1%-label linear probe for every snapshot."""
    from safetensors import safe_open

    paths = sorted(folder.glob("step-*.safetensors"))
    out = []
    for path, (mean, std) in zip(paths, score_weights(paths, col, mod), strict=True):
        with safe_open(str(path), "pt") as f:
            elapsed = float(f.metadata()["elapsed_s"])
        out.append((elapsed, mean, std))
        print(f"  {folder.parent.name} {path.name} t={elapsed:.0f}s linear1%={mean:.4f}", flush=True)
    return out


def train_ours(
    data: Path,
    out: Path,
    minutes: float | None,
    snapshot_seconds: float,
    env: dict[str, str],
    steps: int | None = None,
    seed: int = 0,
    device: str = "auto",
    view_size: int = 28,
) -> dict:
    # a step count as the fraction of an epoch (234 steps of 256) that the trainer rounds back to it
    budget = ["--minutes", str(minutes)] if steps is None else ["--epochs", repr(steps / (60_000 // 256))]
    wall, peak, _ = run_measured(
        [
            sys.executable,
            "-m",
            "unlabeled",
            "pretrain",
            str(data),
            "--out",
            str(out),
            "--overwrite",
            "--batch-size",
            "256",
            *budget,
            "--seed",
            str(seed),
            "--snapshot-seconds",
            str(snapshot_seconds),
            "--device",
            device,
            *(["--augment", f"view_size={view_size}"] if view_size != 28 else []),
        ],
        env,
    )
    last = ul.open_run(out).metrics()[-1]
    return {
        "wall_s": wall,
        "peak_bytes": peak,
        "elapsed_s": last["elapsed_s"],
        "steps": last["step"],
        "samples_per_s": last["step"] * 256 / last["elapsed_s"],
        "weights": str(out / ckpt.MODEL_FILE),
        "gpu_peak_bytes": last.get("gpu_peak_gib", 0) * 2**30,
    }


def train_lightly(
    python: Path,
    data: Path,
    out: Path,
    minutes: float | None,
    snapshot_seconds: float,
    mod: ImageModality,
    env: dict[str, str],
    steps: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    workers: int = 2,
    view_size: int = 28,
) -> dict:
    budget = ["--minutes", str(minutes)] if steps is None else ["--steps", str(steps)]
    wall, peak, stdout = run_measured(
        [
            str(python),
            str(ROOT / "benchmarks" / "_lightly_simclr.py"),
            "--data",
            str(data),
            "--out",
            str(out),
            *budget,
            "--seed",
            str(seed),
            "--snapshot-seconds",
            str(snapshot_seconds),
            "--mean",
            str(mod.mean[0]),
            "--std",
            str(mod.std[0]),
            "--device",
            device,
            "--workers",
            str(workers),
            "--view-size",
            str(view_size),
        ],
        env,
    )
    res = json.loads(stdout.strip().splitlines()[-1])
    return {
        "wall_s": wall,
        "peak_bytes": peak,
        "elapsed_s": res["seconds"],
        "steps": res["steps"],
        "samples_per_s": res["samples_per_s"],
        "gpu_peak_bytes": res.get("gpu_peak_bytes", 0),
        "weights": str(out / "snapshots" / f"step-{res['steps']:07d}.safetensors"),
    }


def sweep(
    args: argparse.Namespace, python: Path, data: Path, col: ul.Collection, mod: ImageModality, env: dict[str, str]
) -> None:
    """Complete runs, each scored on its final weights: one per minute budget of each system
    (``--budgets-*``) and one per step count (``--steps``, the same counts for both), every
    one repeated for ``--seeds`` seeds. A budget's accuracy is the mean over its seeds."""
    plan = [("ours", "min", b) for b in args.budgets_ours] + [("lightly", "min", b) for b in args.budgets_lightly]
    plan += [(system, "steps", n) for n in args.steps for system in ("ours", "lightly")]
    runs: list[dict] = []
    for system, unit, budget in plan:
        for seed in range(args.seeds):
            label = f"{budget:g} min" if unit == "min" else f"{budget} steps"
            out = args.work / "sweep" / f"{system}-{budget:g}{'' if unit == 'min' else 'steps'}-{seed}"
            print(f"{system}: a complete run of {label}, seed {seed} ...", flush=True)
            minutes, steps = (budget, None) if unit == "min" else (None, int(budget))
            if system == "ours":
                r = train_ours(
                    data, out, minutes, 0, env, steps=steps, seed=seed, device=args.device, view_size=args.view_size
                )
            else:  # only the final weights
                r = train_lightly(
                    python,
                    data,
                    out,
                    minutes,
                    1e9,
                    mod,
                    env,
                    steps=steps,
                    seed=seed,
                    device=args.device,
                    workers=args.lightly_workers,
                    view_size=args.view_size,
                )
            ((r["mean"], r["std"]),) = score_weights([Path(r["weights"])], col, mod)
            runs.append({"system": system, "budget": label, "seed": seed, **r})
            print(
                f"  trained {r['elapsed_s']:.0f} s, {r['samples_per_s']:.0f} samples/s, "
                f"linear 1% {r['mean']:.4f} ± {r['std']:.4f}",
                flush=True,
            )

    gpu = args.device.startswith("cuda")
    print(
        "\n| system | budget | seed | trained for | steps | samples/s | linear 1% | peak memory |"
        + (" peak GPU memory |" if gpu else "")
    )
    print("|---|---|---|---|---|---|---|---|" + ("---|" if gpu else ""))
    for r in runs:
        print(
            f"| {r['system']} | {r['budget']} | {r['seed']} | {r['elapsed_s']:.0f} s | {r['steps']} "
            f"| {r['samples_per_s']:.0f} | {r['mean']:.4f} ± {r['std']:.4f} | {r['peak_bytes'] / 2**30:.2f} GiB |"
            + (f" {r['gpu_peak_bytes'] / 2**30:.2f} GiB |" if gpu else "")
        )
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["system"], r["budget"]), []).append(r)
    budgets = [
        {
            "system": k[0],
            "budget": k[1],
            "seeds": len(rs),
            "elapsed_s": float(np.mean([r["elapsed_s"] for r in rs])),
            "mean": float(np.mean([r["mean"] for r in rs])),
            "runs": [r["mean"] for r in rs],
        }
        for k, rs in groups.items()
    ]
    if args.seeds > 1:
        print("\n| system | budget | trained for (mean) | linear 1%, mean over seeds | per seed |")
        print("|---|---|---|---|---|")
        for b in budgets:
            print(
                f"| {b['system']} | {b['budget']} | {b['elapsed_s']:.0f} s | {b['mean']:.4f} "
                f"| {' / '.join(f'{m:.4f}' for m in b['runs'])} |"
            )
    rate = {}
    for k in ("ours", "lightly"):
        mine = [r for r in runs if r["system"] == k]
        if mine:
            rate[k] = sum(r["steps"] * 256 for r in mine) / sum(r["elapsed_s"] for r in mine)
    if len(rate) == 2:
        print(
            f"\nsamples/s over all runs: ours {rate['ours']:.0f}, LightlySSL {rate['lightly']:.0f}, "
            f"ratio {rate['ours'] / rate['lightly']:.2f}x"
        )
    reach, below = {}, {}
    for k in rate:
        mine = [b for b in budgets if b["system"] == k]
        reach[k] = min((b["elapsed_s"] for b in mine if b["mean"] >= args.target), default=None)
        below[k] = max(
            (
                b["elapsed_s"]
                for b in mine
                if b["mean"] < args.target and (reach[k] is None or b["elapsed_s"] < reach[k])
            ),
            default=None,
        )
        print(
            f"{k}: shortest budget reaching {args.target}: {'none' if reach[k] is None else f'{reach[k]:.0f} s'}; "
            f"longest below it: {'none' if below[k] is None else f'{below[k]:.0f} s'}"
        )
    if reach.get("ours") and reach.get("lightly"):
        print(
            f"time to {args.target}: ratio {reach['lightly'] / reach['ours']:.2f}x"
            + (
                f" (at least {below['lightly'] / reach['ours']:.2f}x: LightlySSL's longest budget below the target)"
                if below["lightly"]
                else ""
            )
        )
    result = {"target": args.target, "runs": runs, "budgets": budgets}
    (args.work / "sweep.json").write_text(json.dumps(result, indent=2))


def first_reaching(curve: list[tuple[float, float, float]], target: float) -> float | None:
    return next((t for t, m, _ in curve if m >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--snapshot-seconds", type=float, default=90)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "vs_lightly")
    ap.add_argument("--target", type=float, default=0.80)
    ap.add_argument(
        "--budgets-ours",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[],
        help="minutes, comma-separated: one complete run each (time to accuracy, DAWNBench-style)",
    )
    ap.add_argument("--budgets-lightly", type=lambda v: [float(x) for x in v.split(",")], default=[])
    ap.add_argument(
        "--steps",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[],
        help="optimiser steps, comma-separated: one complete run of each count for both systems",
    )
    ap.add_argument("--seeds", type=int, default=1, help="seeds per budget in a sweep")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N], for both systems")
    ap.add_argument("--lightly-workers", type=int, default=2, help="LightlySSL's DataLoader worker processes")
    ap.add_argument("--lightly-python", type=Path, help="an interpreter that imports lightly and unlabeled")
    ap.add_argument(
        "--view-size",
        type=int,
        default=28,
        help="pixels a side of both systems' crops (12: the demo's recipe where PyTorch trains in fp32)",
    )
    args = ap.parse_args()
    print(provenance(), flush=True)
    args.device = str(resolve_device(args.device))
    os.environ.setdefault("UNLABELED_QUIET", "1")
    python = args.lightly_python or ensure_lightly()
    side = [str(python), str(ROOT / "benchmarks" / "_provenance.py"), "lightly"]
    print("LightlySSL's interpreter:", subprocess.run(side, capture_output=True, text=True).stdout.strip(), flush=True)
    if args.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name(torch.device(args.device))}, torch {torch.__version__}")
    data = args.work / "fashion-mnist"
    if not data.exists():
        ul.import_source("fashion-mnist", data)
    col = ul.open_collection(data)
    mod = ImageModality.fit(col, col.indices(exclude="test"))
    env = {**os.environ, "UNLABELED_QUIET": "1"}

    if args.budgets_ours or args.budgets_lightly or args.steps:
        sweep(args, python, data, col, mod, env)
        return
    ours_dir, lightly_dir = args.work / "ours", args.work / "lightly"
    print(f"ours: {args.minutes} min ...", flush=True)
    ours = train_ours(
        data, ours_dir, args.minutes, args.snapshot_seconds, env, device=args.device, view_size=args.view_size
    )
    print(f"LightlySSL: {args.minutes} min ...", flush=True)
    lightly = train_lightly(
        python,
        data,
        lightly_dir,
        args.minutes,
        args.snapshot_seconds,
        mod,
        env,
        device=args.device,
        workers=args.lightly_workers,
        view_size=args.view_size,
    )
    print("scoring snapshots ...", flush=True)
    ours_curve = score_snapshots(ours_dir / "snapshots", col, mod)
    lightly_curve = score_snapshots(lightly_dir / "snapshots", col, mod)

    t_ours, t_lightly = first_reaching(ours_curve, args.target), first_reaching(lightly_curve, args.target)
    print("\n| | ours | LightlySSL | ratio |\n|---|---|---|---|")
    print(
        f"| samples/s (2 views each), whole run | {ours['samples_per_s']:,.0f} | {lightly['samples_per_s']:,.0f} "
        f"| {ours['samples_per_s'] / lightly['samples_per_s']:.2f}x |"
    )
    print(
        f"| linear 1% after {args.minutes:g} min | {ours_curve[-1][1]:.4f} ± {ours_curve[-1][2]:.4f} "
        f"| {lightly_curve[-1][1]:.4f} ± {lightly_curve[-1][2]:.4f} | |"
    )
    fmt = lambda t: f"{t / 60:.1f} min" if t is not None else f"not within {args.minutes:g} min"  # noqa: E731
    ratio = f"{t_lightly / t_ours:.2f}x" if t_ours and t_lightly else "-"
    print(f"| time to {args.target} linear 1% | {fmt(t_ours)} | {fmt(t_lightly)} | {ratio} |")
    print(
        f"| peak memory (process tree) | {ours['peak_bytes'] / 2**30:.2f} GiB "
        f"| {lightly['peak_bytes'] / 2**30:.2f} GiB | |"
    )
    print(f"| wall time of the command | {ours['wall_s']:.0f} s | {lightly['wall_s']:.0f} s | |")
    print("\naccuracy against time (minutes: ours | LightlySSL):")
    for (t1, m1, _), (t2, m2, _) in zip(ours_curve, lightly_curve, strict=False):
        print(f"  {t1 / 60:5.1f}: {m1:.4f}   |   {t2 / 60:5.1f}: {m2:.4f}")
    (args.work / "result.json").write_text(
        json.dumps(
            {
                "ours": {**ours, "curve": ours_curve},
                "lightly": {**lightly, "curve": lightly_curve},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    tune_process()  # the CLI's process-wide settings, so the figures match `unlabeled` runs
    main()
