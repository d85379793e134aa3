"""Embedding with batch norms folded into the convolutions, against the encoder as trained
(issue 28): images per second of ``encoder.embed`` in fp32 on one thread, the share of an
unfolded pass that torch's profiler puts in batch norm, the largest difference between the
two embeddings, and the FLOPs of one image's pass (torch's FLOP counter). Not run by CI.

    python benchmarks/embed_fold.py --run demo/runs/simclr --task demo/data/fashion-mnist
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _provenance import provenance
from torch.profiler import profile
from torch.utils.flop_counter import FlopCounterMode

from unlabeled.data import open_collection
from unlabeled.models.fold import fold_batch_norms
from unlabeled.runs import open_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    print(provenance(), flush=True)
    print(vars(args), flush=True)
    torch.set_num_threads(1)
    run, col = open_run(args.run), open_collection(args.task)
    mod = run.modality()
    x = mod.normalize(mod.prepare(col.get(np.arange(args.batch)), torch.device("cpu")))
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        run.encoder(False).eval().embed(x[:1])
    print(f"one image's embedding pass: {flops.get_total_flops() / 1e6:.1f} MFLOP", flush=True)
    for trained in (False, True):
        plain = run.encoder(trained).eval()
        folded = fold_batch_norms(plain)
        with torch.no_grad():
            diff = (plain.embed(x) - folded.embed(x)).abs().max().item()
            rates = {}
            for name, enc in (("as trained", plain), ("folded", folded), ("as trained, again", plain)):
                enc.embed(x)
                t0 = time.perf_counter()
                for _ in range(args.rounds):
                    enc.embed(x)
                rates[name] = args.batch * args.rounds / (time.perf_counter() - t0)
            with profile() as prof:
                for _ in range(3):
                    plain.embed(x)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        bn = sum(e.self_cpu_time_total for e in events if "batch_norm" in e.key)
        which = "trained" if trained else "random-init"
        print(
            f"{which}: "
            + ", ".join(f"{k} {v:.0f} images/s" for k, v in rates.items())
            + f"; batch norm {100 * bn / total:.1f}% of an unfolded pass; largest difference {diff:.2e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
