"""Built-in text corpora, read from Debian packages that ``scripts/setup.sh`` installs (nothing
is downloaded): WordNet glosses labelled by lexicographer category (``wordnet-base``), fortune
cookies in 12 languages labelled by language (``fortunes``, ``fortunes-*``) and the entries of
the GNU Collaborative International Dictionary of English (``dict-gcide``).

None of them ships a train/test split, so each gets a fixed one from a hash of every id
(:func:`hash_splits`): the same document is in the same split on every machine and in every
version, and adding documents moves none of the others. An exact copy of an earlier document
follows that one's split, so no text is in both.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from unlabeled._console import UnlabeledError
from unlabeled.data.loaded import Loaded

TEST_FRACTION = 0.2

# lexnames(5WN): the lexicographer file of every synset, by number
WORDNET_CATEGORIES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]

# fortunes: where each language's files are (the English ones are the top-level files the
# others do not claim); `off/` folders hold the offensive sets, which are left out
FORTUNE_LANGUAGES = {
    "bg": "bg",
    "cs": "cs",
    "de": "de",
    "eo": "eo",
    "es": "es",
    "ga": "ga",
    "it": "it",
    "pl": "pl",
    "ru": "ru",
}
FORTUNE_TOP_LEVEL = {"brasil": "pt", "chinese": "zh", "song100": "zh", "tang300": "zh"}


def _root(env: str, default: str, package: str) -> Path:
    root = Path(os.environ.get(env, default))
    if not root.exists():
        raise UnlabeledError(
            f"{root} not found: install the Debian package {package} (scripts/setup.sh does), or set {env}"
        )
    return root


def hash_splits(
    ids: Sequence[str], test_fraction: float = TEST_FRACTION, texts: Sequence[str] | None = None
) -> list[str]:
    """``test`` for the ids whose hash falls in the first ``test_fraction`` of the range, else
    ``train``: a split that depends on nothing but each id. With ``texts``, a document whose
    text is an exact copy of an earlier one's takes that one's split, so that no copy sits on
    both sides (the fortunes hold the same cookie in several files: 238 copies straddled the
    split, and a kNN probe found their twins in the train split)."""
    cut = int(test_fraction * 2**32)
    splits = [
        "test" if int.from_bytes(hashlib.blake2b(i.encode(), digest_size=4).digest(), "big") < cut else "train"
        for i in ids
    ]
    if texts is not None:
        first: dict[str, str] = {}
        splits = [first.setdefault(t, s) for t, s in zip(texts, splits, strict=True)]
    return splits


def _loaded(texts: list[str], ids: list[str], labels, classes, source: str) -> Loaded:
    return Loaded(
        arrays=np.asarray(texts, dtype=object),
        ids=ids,
        labels=None if labels is None else np.asarray(labels, dtype=np.int64),
        splits=hash_splits(ids, texts=texts),
        classes=classes,
        modality="text",
        source=source,
    )


def load_wordnet() -> Loaded:
    """Every synset's gloss (definition and examples), labelled by its lexicographer category
    (45 classes); the id is the synset type and offset, as WordNet writes synset keys
    (``n00005930``; ``s`` for a satellite adjective, ``r`` for an adverb)."""
    root = _root("UNLABELED_WORDNET_DIR", "/usr/share/wordnet", "wordnet-base")
    texts, ids, labels = [], [], []
    for pos in ("noun", "verb", "adj", "adv"):
        with open(root / f"data.{pos}", encoding="utf-8") as f:
            for line in f:
                if line.startswith("  "):  # the licence at the top of the file
                    continue
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                gloss = gloss.strip()
                if len(fields) < 3 or not gloss:
                    continue
                ids.append(f"{fields[2]}{fields[0]}")
                labels.append(int(fields[1]))
                texts.append(gloss)
    return _loaded(texts, ids, labels, list(WORDNET_CATEGORIES), str(root))


def _synsets(pos: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """(offset, words, hypernym offsets) of every synset in WordNet's ``data.POS`` file."""
    root = _root("UNLABELED_WORDNET_DIR", "/usr/share/wordnet", "wordnet-base")
    with open(root / f"data.{pos}", encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # the licence at the top of the file
                continue
            fields = line.partition(" | ")[0].split()
            n = int(fields[3], 16)
            words = fields[4 : 4 + 2 * n : 2]
            rest = fields[4 + 2 * n :]
            pointers = [rest[1 + 4 * k : 5 + 4 * k] for k in range(int(rest[0]))]
            yield fields[0], words, [p[1] for p in pointers if p[0] == "@" and p[2] == "n"]


def _plain(word: str) -> bool:
    return word.isalpha() and word.islower()


def load_hypernyms() -> list[tuple[str, str]]:
    """(noun, the noun it is a kind of) from WordNet's hypernym links, for every noun synset
    whose first word and whose first hypernym's first word are single lowercase words
    (``("beagle", "hound")``): world facts a language model can be asked about."""
    synsets = list(_synsets("noun"))
    first = {offset: words[0] for offset, words, _ in synsets}
    return [
        (words[0], first[up[0]])
        for _, words, up in synsets
        if up and _plain(words[0]) and _plain(first.get(up[0], "-")) and words[0] != first[up[0]]
    ]


def load_lemmas(pos: str) -> list[str]:
    """WordNet's single-word lowercase lemmas of a part of speech (``noun``, ``adj``), sorted."""
    return sorted({w for _, words, _ in _synsets(pos) for w in words if _plain(w)})


def _fortune_files(root: Path) -> list[tuple[Path, str]]:
    """(file, language) for every fortune file: data files only (no ``.dat`` index, no ``.u8``
    copy of a file that exists as is, no link, nothing under ``off/``)."""
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or path.is_symlink() or path.suffix == ".dat" or "off" in rel.parts[:-1]:
            continue
        if path.suffix == ".u8" and path.with_suffix("").exists():
            continue
        if len(rel.parts) == 1:
            out.append((path, FORTUNE_TOP_LEVEL.get(rel.name, "en")))
        elif rel.parts[0] in FORTUNE_LANGUAGES:
            out.append((path, FORTUNE_LANGUAGES[rel.parts[0]]))
    return out


def _without_separators(entry: str) -> str:
    """A fortune without the ``%`` separator lines a file may start or end with: stripping
    every ``%`` off its ends took a percent sign of the text too ("... 98%" became "... 98")."""
    lines = entry.strip("\n").split("\n")
    if lines and lines[0].strip() == "%":
        lines = lines[1:]
    if lines and lines[-1].strip() == "%":
        lines = lines[:-1]
    return "\n".join(lines).strip()


def load_fortunes() -> Loaded:
    """Every fortune cookie (entries separated by ``%`` lines), labelled by language (12); the
    file it came from is its group. The files are UTF-8 (a byte that is not would be replaced
    by U+FFFD, not dropped)."""
    root = _root("UNLABELED_FORTUNES_DIR", "/usr/share/games/fortunes", "fortunes and fortunes-*")
    files = _fortune_files(root)
    languages = sorted({lang for _, lang in files})
    texts, ids, labels, groups = [], [], [], []
    for path, lang in files:
        rel = path.relative_to(root).as_posix()
        raw = path.read_bytes().decode("utf-8", errors="replace")
        for n, entry in enumerate(raw.replace("\r\n", "\n").split("\n%\n")):
            entry = _without_separators(entry)
            if entry:
                texts.append(entry)
                ids.append(f"{rel}:{n}")
                labels.append(languages.index(lang))
                groups.append(rel)
    loaded = _loaded(texts, ids, labels, languages, str(root))
    loaded.groups = groups
    return loaded


_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _dictd_number(text: str) -> int:
    """A dictd index number (base 64, most significant digit first)."""
    n = 0
    for c in text:
        n = n * 64 + _B64[c]
    return n


def load_gcide() -> Loaded:
    """Every entry of the Collaborative International Dictionary of English (unlabelled; an
    entry reached from several headwords is read once), id ``gcide:HEADWORD`` (numbered when
    a headword has several entries)."""
    root = _root("UNLABELED_GCIDE_DIR", "/usr/share/dictd", "dict-gcide")
    with gzip.open(root / "gcide.dict.dz") as f:  # dictzip is gzip with an index of chunks
        data = f.read()
    seen, texts, ids = set(), [], []
    counts: dict[str, int] = {}
    for line in (root / "gcide.index").read_text(encoding="utf-8").splitlines():
        word, start, length = line.rsplit("\t", 2)
        key = (_dictd_number(start), _dictd_number(length))
        if word.startswith("00-") or key in seen:
            continue
        seen.add(key)
        text = data[key[0] : key[0] + key[1]].decode("utf-8", errors="replace").strip()
        if text:
            counts[word] = counts.get(word, 0) + 1
            ids.append(f"gcide:{word}" + (f"#{counts[word]}" if counts[word] > 1 else ""))
            texts.append(text)
    return _loaded(texts, ids, None, None, str(root))
