"""A spoken-keyword dataset synthesised with Debian's espeak-ng, offline.

Every word is spoken by every speaker (an espeak-ng accent with a voice variant, e.g.
``en-gb-scotland+f2``) at several speeds and pitches, and written as 16-bit WAV under
``OUT/{train,test}/WORD/SPEAKER-sSPEED-pPITCH.wav``. Speakers are split between train and
test, so the test split holds voices never heard in training (as speaker-disjoint keyword
benchmarks do). ``unlabeled import espeak-keywords DEST`` makes the default set and imports
it with each clip's speaker as its group; ``scripts/make_keywords.py`` writes the WAV folder.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from unlabeled._console import UnlabeledError

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one"]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
VARIANTS = ["m1", "f2", "m3", "f4"]
SPEAKER_PATTERN = r"([^/]+)-s\d+-p\d+\.wav$"  # the speaker in a clip's file name


def speakers(n: int) -> list[str]:
    """``n`` accent+variant voices that sound different, alternating accents first so that
    even a few speakers differ in accent and gender. Some names are one voice under two
    names (espeak-ng ignores the variant of ``en-gb``: ``en-gb+m1`` and ``en-gb+f2`` give the
    same bytes), which would put one speaker on both sides of the speaker-disjoint split; so
    each candidate says a probe word and a voice whose audio repeats an earlier one is skipped."""
    pairs = [f"{a}+{v}" for v, a in itertools.product(VARIANTS, ACCENTS)]
    chosen: list[str] = []
    seen: set[bytes] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for voice in pairs:
            if len(chosen) == n:
                break
            wav = Path(tmp) / "probe.wav"
            synthesise("keyword", voice, 160, 50, wav)
            digest = hashlib.blake2b(wav.read_bytes(), digest_size=16).digest()
            if digest not in seen:
                seen.add(digest)
                chosen.append(voice)
    if len(chosen) < n:
        raise UnlabeledError(f"at most {len(chosen)} distinct speakers are available")
    return chosen


def _check_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        raise UnlabeledError("espeak-ng is not installed (Debian package espeak-ng; scripts/setup.sh installs it)")


def synthesise(word: str, voice: str, speed: int, pitch: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.wav")
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(tmp), word]
    subprocess.run(cmd, check=True, capture_output=True)
    tmp.replace(path)  # a clip is either whole or absent


def make_keywords(
    out: str | Path,
    words: int = len(WORDS),
    n_speakers: int = 20,
    test_speakers: int | None = None,
    speeds: tuple[int, ...] = (120, 160, 200),
    pitches: tuple[int, ...] = (30, 50, 70),
) -> tuple[int, int, int]:
    """Write the clips under ``out`` (existing clips are kept: an interrupted run resumes);
    returns (clips, clips written now, test speakers)."""
    _check_espeak()
    if not 1 <= words <= len(WORDS):
        raise UnlabeledError(f"words must be 1..{len(WORDS)}")
    voices = speakers(n_speakers)
    n_test = test_speakers if test_speakers is not None else max(1, len(voices) // 4)
    if not 0 < n_test < len(voices):
        raise UnlabeledError("need at least one train and one test speaker")
    test = set(voices[len(voices) - n_test :])
    jobs = []
    for word, voice, speed, pitch in itertools.product(WORDS[:words], voices, speeds, pitches):
        split = "test" if voice in test else "train"
        path = Path(out) / split / word / f"{voice.replace('+', '_')}-s{speed}-p{pitch}.wav"
        if not path.exists():
            jobs.append((word, voice, speed, pitch, path))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda j: synthesise(*j), jobs))
    return words * len(voices) * len(speeds) * len(pitches), len(jobs), n_test
