"""Scale-out on one machine (issue 28; not run by CI): the same SimCLR pretraining, a fixed number
of steps of one global batch, run as

- ``one``: one process with every core as a thread (what ``unlabeled pretrain`` does);
- ``torchrun``: ``torchrun --nproc_per_node=N``, one thread per process (gloo on CPU);
- ``nodes``: ``torchrun --nnodes=N --nproc_per_node=1`` launched N times, each launcher a
  "node" that meets the others through the c10d rendezvous on localhost, as separate machines
  would (the multi-node path, here without a network between them).

Each row: steps, seconds, samples/s, and whether every process ended with bit-identical
weights (the trainer checks it at the end of a multi-process run). ``--batch-size`` is per
process, so the data-parallel runs get the global batch divided among their processes: the
three train the same model, with the same steps, up to float rounding.

    python benchmarks/scale_out.py --processes 2 --epochs 0.3
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from _provenance import provenance

ROOT = Path(__file__).resolve().parent.parent
DONE = re.compile(r"done: (\d+) steps? in (\d+) s(?:, weights (\w+) on (\d+) processes)?")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pretrain_args(data: Path, out: Path, args: argparse.Namespace, per_process: int) -> list[str]:
    return [
        "-m",
        "unlabeled",
        "pretrain",
        str(data),
        "--out",
        str(out),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(per_process),
        "--precision",
        args.precision,
        "--overwrite",
    ]


def launch(arm: str, data: Path, out: Path, args: argparse.Namespace) -> list[subprocess.Popen]:
    """The processes of one arm (one launcher, or one per "node")."""
    n = args.processes
    env = {**os.environ, "OMP_NUM_THREADS": str(n if arm == "one" else 1)}
    env.pop("UNLABELED_QUIET", None)
    run = pretrain_args(data, out, args, args.batch if arm == "one" else args.batch // n)  # --batch-size is per process
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    if arm == "one":
        cmds = [[sys.executable, *run]]
    elif arm == "torchrun":
        cmds = [[*torchrun, f"--nproc_per_node={n}", f"--master_port={free_port()}", *run]]
    else:
        endpoint = f"127.0.0.1:{free_port()}"
        rdzv = ["--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", "--rdzv_id=scale-out"]
        cmds = [[*torchrun, f"--nnodes={n}", "--nproc_per_node=1", f"--node_rank={k}", *rdzv, *run] for k in range(n)]
    return [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in cmds]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "work" / "selftrain" / "fashion-mnist")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "scale-out")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--epochs", type=float, default=0.3)
    ap.add_argument("--batch", type=int, default=256, help="the global batch")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--arms", default="one,torchrun,nodes")
    args = ap.parse_args()
    print(provenance(), flush=True)
    print(vars(args), flush=True)
    if not args.data.exists():
        import unlabeled as ul

        print(ul.import_source("fashion-mnist", args.data).summary(), flush=True)
    print("| arm | processes x threads | steps | seconds | samples/s | weights identical on every process |")
    print("|---|---|---|---|---|---|")
    rates = {}
    for arm in args.arms.split(","):
        t = time.perf_counter()
        procs = launch(arm, args.data, args.work / arm, args)
        outputs = [p.communicate()[0] for p in procs]
        wall = time.perf_counter() - t
        text = "\n".join(outputs)
        if any(p.returncode for p in procs):
            print(text[-3000:])
            raise SystemExit(f"{arm}: exit codes {[p.returncode for p in procs]}")
        m = DONE.search(text)
        if m is None:
            raise SystemExit(f"{arm}: no 'done:' line in\n{text[-2000:]}")
        steps, seconds = int(m[1]), float(m[2])
        rates[arm] = steps * args.batch / seconds
        shape = f"1 x {args.processes}" if arm == "one" else f"{args.processes} x 1"
        same = "(one process)" if m[3] is None else f"{m[3]} ({m[4]} processes)"
        print(f"| {arm} | {shape} | {steps} | {seconds:.0f} | {rates[arm]:.0f} | {same} |", flush=True)
        print(f"  wall time with start-up: {wall:.0f} s", flush=True)
    if "one" in rates:
        for arm in (a for a in rates if a != "one"):
            print(f"{arm} / one: {rates[arm] / rates['one']:.2f}x samples/s")


if __name__ == "__main__":
    main()
