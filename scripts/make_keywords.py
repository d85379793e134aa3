#!/usr/bin/env python3
"""Synthesise a spoken-keyword dataset with Debian's espeak-ng: the audio benchmark.

Every word is spoken by every speaker (an espeak-ng accent with a voice variant) at several
speeds and pitches, written as 16-bit WAV under ``OUT/{train,test}/WORD/SPEAKER-sSPEED-pPITCH.wav``;
test speakers are never heard in training. The synthesis lives in
``unlabeled.data.keywords``; ``unlabeled import espeak-keywords DEST`` makes and imports the
default set in one step. Import a folder made here with
``unlabeled import OUT data/keywords --group-pattern '([^/]+)-s\\d+-p\\d+\\.wav$'``.

    python scripts/make_keywords.py --out data/keywords-wav                  # 2,160 clips
    python scripts/make_keywords.py --out /tmp/kw --speakers 4 --speeds 150 --pitches 50   # tiny
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unlabeled._console import UnlabeledError
from unlabeled.data.keywords import WORDS, make_keywords


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--words", type=int, default=len(WORDS), help=f"how many of {len(WORDS)} words (at least 10)")
    ap.add_argument("--speakers", type=int, default=20)
    ap.add_argument("--test-speakers", type=int, default=None, help="default: a quarter of the speakers")
    ap.add_argument("--speeds", default="120,160,200", help="words per minute, comma-separated")
    ap.add_argument("--pitches", default="30,50,70", help="0-99, comma-separated")
    args = ap.parse_args(argv)
    try:
        total, new, n_test = make_keywords(
            args.out,
            args.words,
            args.speakers,
            args.test_speakers,
            tuple(int(v) for v in args.speeds.split(",")),
            tuple(int(v) for v in args.pitches.split(",")),
        )
    except UnlabeledError as e:
        print(e, file=sys.stderr)
        return 1
    print(
        f"{args.out}: {total} clips ({new} new), {args.words} words, {args.speakers} speakers "
        f"({n_test} held out for test), speeds {args.speeds}, pitches {args.pitches}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
