"""The causal language model's bar (text issue): a ``clm`` model pretrained for at most 15
minutes on WordNet's training glosses and the GCIDE dictionary, its bits per byte on WordNet's
held-out glosses against ``xz -9e`` and ``zstd -19`` on the same bytes and a byte-level
6-gram model (Witten-Bell) counted on the same training text.

The corpus: WordNet's train split (its hash split: 20% of the synsets are test) and every
GCIDE entry that does not cite WordNet (GCIDE took about 10,000 definitions from WordNet 1.5
and marks them ``[WordNet 1.5]``; those would put held-out glosses in the training text). The
test split is WordNet's test glosses alone. Nothing is chosen on the test split: the recipe is
the project's defaults for ``clm`` (the transformer, its size by the data's: ``small`` for
these 212k documents; batch 128, the default schedule).

    python benchmarks/text_lm.py --minutes 15
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import unlabeled as ul
from unlabeled.data.collection import CollectionWriter
from unlabeled.data.corpora import load_gcide, load_wordnet
from unlabeled.lm import compressor_bits_per_byte, ngram_bits_per_byte
from unlabeled.runtime import tune_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance  # noqa: E402  (the sibling module)

ROOT = Path(__file__).resolve().parent.parent


def corpus(dest: Path) -> ul.Collection:
    """WordNet train + GCIDE (entries citing WordNet left out) as train, WordNet test as test."""
    if dest.exists():
        return ul.open_collection(dest)
    wn, gc = load_wordnet(), load_gcide()
    keep = [i for i, t in enumerate(gc.arrays) if "WordNet" not in t]
    print(f"GCIDE: {len(gc.arrays) - len(keep)} of {len(gc.arrays)} entries cite WordNet and are left out", flush=True)
    w = CollectionWriter(dest, "text", (), "object", extra_meta={"name": "wordnet+gcide"})
    w.add(list(wn.arrays), wn.ids, splits=wn.splits)
    w.add([gc.arrays[i] for i in keep], [gc.ids[i] for i in keep], splits=["train"] * len(keep))
    return w.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--order", type=int, default=6, help="the byte n-gram's order")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "text-lm")
    args = ap.parse_args()
    print(provenance(), flush=True)
    print(vars(args), flush=True)
    os.environ.setdefault("UNLABELED_QUIET", "1")
    col = corpus(args.work / "corpus")
    train, test = col.indices("train"), col.indices("test")
    print(f"corpus: {len(train)} training documents, {len(test)} held-out WordNet glosses", flush=True)
    out = args.work / "clm"
    t = time.perf_counter()
    if (out / "config.json").exists() and ul.open_run(out).finished:
        run = ul.open_run(out)
        print(f"pretrained already: {run.step} steps", flush=True)
    else:
        run = ul.pretrain(col, out, method="clm", minutes=args.minutes, batch_size=args.batch, overwrite=True)
        print(f"pretrained: {run.step} steps in {time.perf_counter() - t:.0f} s", flush=True)
    got = ul.perplexity(run, col)
    test_texts = [str(s) for s in col.get(test)]
    anchors = compressor_bits_per_byte(test_texts)
    t = time.perf_counter()
    ngram = ngram_bits_per_byte([str(s) for s in col.get(train)], test_texts, order=args.order)
    print(f"byte {args.order}-gram counted and scored in {time.perf_counter() - t:.0f} s", flush=True)
    print(f"\nheld-out WordNet glosses: {len(test)} documents, {anchors['bytes']:.0f} bytes")
    print(f"{'model':<36}{'bits per byte':>14}")
    rows = [
        (f"clm transformer-{run.config['encoder']['size']}, {run.step} steps", got["bits_per_byte"]),
        (f"byte {args.order}-gram (Witten-Bell), same text", ngram),
        ("xz -9e", anchors["xz -9e"]),
        ("zstd -19", anchors["zstd -19"]),
    ]
    for name, bpb in rows:
        print(f"{name:<36}{bpb:>14.4f}")
    print(f"clm perplexity {got['perplexity']:.2f} per token ({got['tokens']:.0f} tokens)")


if __name__ == "__main__":
    tune_process()
    main()
