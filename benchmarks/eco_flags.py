"""How often an ECO run's prompt guard flags text that is not about the forgotten target
(issue 27): the share of a make-authors benchmark's held-out general documents
(``general.jsonl``, the first 200, as ``general_perplexity`` reads them) whose windows the
guard's classifier puts on the forgotten side, and so corrupts. Not run by CI.

    python benchmarks/eco_flags.py --run benchmarks/work/forget-lm/forget05/eco --task benchmarks/work/forget-lm/authors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _provenance import provenance

import unlabeled as ul
from unlabeled.forget.lm_metrics import SAMPLE
from unlabeled.objectives.clm import document_windows
from unlabeled.runtime import tune_process


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a run made by forget --method eco")
    ap.add_argument("--task", type=Path, required=True, help="the make-authors benchmark it forgot from")
    args = ap.parse_args()
    print(provenance(), flush=True)
    print(vars(args), flush=True)
    run = ul.open_run(args.run)
    enc, mod = run.encoder().eval(), run.modality()
    if not hasattr(enc, "flagged"):
        raise SystemExit(f"{args.run} is not an ECO run (its model has no prompt guard)")
    lines = (args.task / "general.jsonl").read_text().splitlines()[:SAMPLE]
    windows = [w for line in lines for w in document_windows(mod, json.loads(line)["text"])]
    x = torch.zeros(len(windows), mod.length, dtype=torch.int64)
    for i, w in enumerate(windows):
        x[i, : len(w)] = torch.tensor(w)
    with torch.no_grad():
        flagged = int(enc.flagged(x, enc.prompt(x)).sum())
    print(f"{len(lines)} general documents, {len(windows)} windows: {flagged} flagged ({flagged / len(windows):.1%})")


if __name__ == "__main__":
    tune_process()
    main()
