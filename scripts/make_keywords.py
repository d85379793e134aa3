#!/usr/bin/env python3
"""Synthesise a spoken-keyword dataset with Debian's espeak-ng: the audio benchmark.

Every word is spoken by every speaker (an espeak-ng accent with a voice variant, e.g.
``en-gb-scotland+f2``) at several speeds and pitches, and written as 16-bit WAV under
``OUT/{train,test}/WORD/SPEAKER-sSPEED-pPITCH.wav``. Speakers are split between train and
test, so the test split holds voices never heard in training (as speaker-disjoint keyword
benchmarks do). Import the folder with ``unlabeled import OUT data/keywords``.

    python scripts/make_keywords.py --out data/keywords-wav                  # 2,160 clips
    python scripts/make_keywords.py --out /tmp/kw --speakers 4 --speeds 150 --pitches 50   # tiny
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one"]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
VARIANTS = ["m1", "f2", "m3", "f4"]


def speakers(n: int) -> list[str]:
    """``n`` distinct accent+variant voices, alternating accents first so that even a few
    speakers differ in accent and gender."""
    pairs = [f"{a}+{v}" for v, a in itertools.product(VARIANTS, ACCENTS)]
    if n > len(pairs):
        raise SystemExit(f"at most {len(pairs)} speakers are available")
    return pairs[:n]


def synthesise(word: str, voice: str, speed: int, pitch: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.wav")
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(tmp), word]
    subprocess.run(cmd, check=True, capture_output=True)
    tmp.replace(path)  # a clip is either whole or absent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--words", type=int, default=len(WORDS), help=f"how many of {len(WORDS)} words (at least 10)")
    ap.add_argument("--speakers", type=int, default=20)
    ap.add_argument("--test-speakers", type=int, default=None, help="default: a quarter of the speakers")
    ap.add_argument("--speeds", default="120,160,200", help="words per minute, comma-separated")
    ap.add_argument("--pitches", default="30,50,70", help="0-99, comma-separated")
    args = ap.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed (Debian package espeak-ng; scripts/setup.sh installs it)", file=sys.stderr)
        return 1
    if not 1 <= args.words <= len(WORDS):
        raise SystemExit(f"--words must be 1..{len(WORDS)}")
    voices = speakers(args.speakers)
    n_test = args.test_speakers if args.test_speakers is not None else max(1, len(voices) // 4)
    if not 0 < n_test < len(voices):
        raise SystemExit("need at least one train and one test speaker")
    test = set(voices[len(voices) - n_test :])
    speeds = [int(v) for v in args.speeds.split(",")]
    pitches = [int(v) for v in args.pitches.split(",")]
    jobs = []
    for word, voice, speed, pitch in itertools.product(WORDS[: args.words], voices, speeds, pitches):
        split = "test" if voice in test else "train"
        path = args.out / split / word / f"{voice.replace('+', '_')}-s{speed}-p{pitch}.wav"
        if not path.exists():
            jobs.append((word, voice, speed, pitch, path))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda j: synthesise(*j), jobs))
    total = args.words * len(voices) * len(speeds) * len(pitches)
    print(f"{args.out}: {total} clips ({len(jobs)} new), {args.words} words, {len(voices)} speakers "
          f"({n_test} held out for test), speeds {speeds}, pitches {pitches}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
