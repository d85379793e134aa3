"""Model growth's bar (text issue): ``tiny`` -> ``small`` by ``grow`` (bert2BERT's FPI), then
MLM pretraining, against ``small`` pretrained from scratch with the same recipe: at what step
does the grown model first reach the MLM loss the scratch model ends at? The bar is at most
70% of the scratch model's steps (bert2BERT reports about 45% of the compute saved).

The tiny source is ``benchmarks/semi_rows.py``'s WordNet MLM run (15 minutes; pass another
with ``--tiny``). Both arms train for ``--epochs`` passes (the same number of steps, so the
two loss curves share an axis, whatever else the CPU is doing). Losses are the training loop's logged means
(every 20 steps) smoothed over ``--window`` logged points; both arms draw the same batches
(same seed). The tiny model's own pretraining time is reported beside, since growth reuses
it rather than making it free.

    python benchmarks/grow.py --epochs 1
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

import unlabeled as ul
from unlabeled.runtime import tune_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance  # noqa: E402  (the sibling module)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work" / "text"


def losses(run: ul.Run) -> tuple[np.ndarray, np.ndarray, float]:
    """Logged steps, losses and the run's seconds."""
    rows = [r for r in run.metrics() if "loss" in r]
    return np.array([r["step"] for r in rows]), np.array([r["loss"] for r in rows]), float(rows[-1]["elapsed_s"])


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` points (fewer at the start)."""
    c = np.cumsum(np.insert(y, 0, 0.0))
    lo = np.maximum(np.arange(1, len(y) + 1) - window, 0)
    return (c[1:] - c[lo]) / (np.arange(1, len(y) + 1) - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=1.0, help="each arm's passes over the training split")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--window", type=int, default=10, help="logged points (of 20 steps) to smooth over")
    ap.add_argument("--tiny", type=Path, default=WORK / "wordnet" / "mlm")
    ap.add_argument("--data", type=Path, default=WORK / "wordnet" / "data")
    ap.add_argument("--work", type=Path, default=WORK / "grow")
    args = ap.parse_args()
    print(provenance(), flush=True)
    print(vars(args), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    tiny = ul.open_run(args.tiny)
    scratch_out, grown_out = args.work / "small-scratch", args.work / "small-grown"
    if (scratch_out / "config.json").exists() and ul.open_run(scratch_out).finished:
        scratch = ul.open_run(scratch_out)
    else:
        scratch = ul.pretrain(
            args.data, scratch_out, method="mlm", size="small", epochs=args.epochs, batch_size=args.batch,
            overwrite=True,
        )  # fmt: skip
    grown_start = ul.grow(tiny, "small", args.work / "grown-init", overwrite=True)
    if (grown_out / "config.json").exists() and ul.open_run(grown_out).finished:
        grown = ul.open_run(grown_out)
    else:
        grown = ul.pretrain(
            args.data, grown_out, method="mlm", init=grown_start, epochs=args.epochs,
            batch_size=args.batch, overwrite=True,
        )  # fmt: skip
    s_steps, s_loss, s_time = losses(scratch)
    g_steps, g_loss, g_time = losses(grown)
    _, t_loss, t_time = losses(tiny)
    target = smooth(s_loss, args.window)[-1]
    g_smooth = smooth(g_loss, args.window)
    reached = g_steps[np.argmax(g_smooth <= target)] if (g_smooth <= target).any() else None
    print(f"\nsmall from scratch: {s_steps[-1]} steps in {s_time:.0f} s, final MLM loss {target:.4f} (smoothed)")
    print(f"tiny (the source): {tiny.step} steps in {t_time:.0f} s, final logged MLM loss {t_loss[-1]:.4f}")
    print(f"small grown from tiny ({tiny.step} steps, {t_time:.0f} s): {g_steps[-1]} steps in {g_time:.0f} s")
    print(f"  its first logged loss {g_loss[0]:.4f} (step {g_steps[0]}), final {g_smooth[-1]:.4f} (smoothed)")
    if reached is None:
        print("  it never reached the scratch model's final loss")
    else:
        share = reached / s_steps[-1]
        sec = g_time * reached / g_steps[-1]
        print(f"  reached {target:.4f} at step {reached}: {share:.1%} of the scratch model's steps")
        print(f"  counting the tiny model's pretraining too: {(sec + t_time) / s_time:.1%} of the scratch model's time")


if __name__ == "__main__":
    tune_process()
    main()
