"""What the language-model forgetting flow costs on this CPU (issue 27's times; not run by CI):
fine-tuning a ``clm`` run on the fictitious authors for one pass (what the fine-tuned model and
every retrained reference do ten times), and SSD forgetting a development split (its two Fisher
passes). Reuses ``forget_lm.py``'s work folder (the authors and the fine-tuned model).

    python benchmarks/lm_cost.py --base benchmarks/work/curate/lm/curated --work benchmarks/work/forget-lm-v2

Run it at two commits, one after the other on an idle machine, to compare them: it prints the
seconds of each part and the fine-tuning's last loss (the same training, whatever the code's
speed, should end at the same loss).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _provenance import provenance
from forget_lm import dev_split

import unlabeled as ul
from unlabeled.runtime import tune_process


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="the clm run the authors' model was fine-tuned from")
    ap.add_argument("--work", type=Path, required=True, help="forget_lm.py's work folder")
    ap.add_argument("--split", default="dev05", help="the development split SSD forgets")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print(provenance(), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    tune_process()
    authors = ul.open_collection(args.work / "authors")
    ft = ul.open_run(args.work / "lm-authors")
    values = dev_split(authors, args.split)
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            run = ul.pretrain(authors, Path(tmp) / "ft", method="clm", init=args.base, epochs=1, batch_size=32)
            fit = time.perf_counter() - t
            last = json.loads((run.path / "metrics.jsonl").read_text().splitlines()[-1])
            t = time.perf_counter()
            ul.forget(ft, out=Path(tmp) / "ssd", method="ssd", group="author", values=values)
            ssd = time.perf_counter() - t
        print(
            f"round {r}: fine-tune 1 pass {last['step']} steps {fit:.1f} s (last loss {last['loss']}); ssd {ssd:.1f} s"
        )


if __name__ == "__main__":
    main()
