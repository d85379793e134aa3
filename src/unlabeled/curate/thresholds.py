"""The quality filters' settings for each language, from that language's own documents, as
FineWeb2 does (Penedo et al. 2025, "FineWeb2: One pipeline to scale them all"): Gopher's stop
words (a document must hold at least two of them) become the language's most widespread words
instead of English ones, and Gopher's bounds on the average word length (3 to 10 characters,
set on English) are scaled by the ratio of the language's median average word length to
English's, so that German's longer words or Chinese's one-character words are not filtered for
being a language.

Every other threshold is set on the language's own distribution of the statistic it bounds
(FineWeb2 sets each at a quantile of the language's reference distribution): datatrove's
default, which Gopher and FineWeb set on English web pages, is kept where it removes at most
``TAIL`` of the language's sampled documents by itself, and is otherwise relaxed to the
``TAIL`` quantile, so that dictionary glosses of twelve words are not "pages without enough
words" or "a repeated 2-gram" for what they are. A threshold is only ever relaxed, never
tightened; a setting the user gives (``--option gopher_quality.min_doc_words=5``) is kept as
given, for every language."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError, info
from unlabeled._settings import check_kind

# Gopher's bounds (Rae et al. 2021) were set on English web text. The English reference the
# bounds scale from: the median of documents' average word length (words holding a letter, by
# datatrove's word tokenizer) measured here was 4.92 on 5,000 WordNet glosses, 4.50 on 3,000
# English fortunes and 5.33 on 3,000 GCIDE entries; 4.7 lies between them
ENGLISH_WORD_LENGTH = 4.7
GOPHER_WORD_LENGTH = (3.0, 10.0)
GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")  # datatrove's default list
STOP_WORDS = 8  # as many as Gopher's English list ("the", "be", "to", "of", "and", "that", "have", "with")
MIN_DOCUMENTS = 50  # fewer documents of a language than this: datatrove's (English) defaults
# the share of a language's documents one threshold may remove by itself before it is relaxed;
# set before any measurement (FineWeb2's filters each remove a few percent of a language)
TAIL = 0.02
# languages written without spaces between words: datatrove's word tokenizers here split them
# on white space (its "zh" is a Latin-script entry), so a "word" is a clause, and bounds on its
# length removed ordinary documents (6.8% of the Chinese fortunes): left unbounded
SPACELESS = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo"})


def word_tokenizer_language(language: str) -> str:
    """The language datatrove's word tokenizer is asked for: the language itself where its
    tokenizer loads here (spaCy's rule-based ones need no download), else ``und``."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    try:
        load_word_tokenizer(language).word_tokenize("a b")
        return language
    except Exception:  # a language whose tokenizer needs a package or model that is not here
        return "und"


def _words(text: str, tokenizer: Any) -> list[str]:
    return [w.lower() for w in tokenizer.word_tokenize(text) if any(c.isalpha() for c in w)]


def language_statistics(texts: Sequence[str], language: str) -> dict[str, Any]:
    """Median average word length and the most widespread words of ``texts``."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    tokenizer = load_word_tokenizer(word_tokenizer_language(language))
    lengths, spread = [], Counter()
    for text in texts:
        words = _words(text, tokenizer)
        if words:
            lengths.append(float(np.mean([len(w) for w in words])))
            spread.update(set(words))
    return {
        "documents": len(texts),
        "median_word_length": round(float(np.median(lengths)), 3) if lengths else None,
        "stop_words": [w for w, _ in spread.most_common(STOP_WORDS)],
    }


def _fractions(parts: list[str]) -> tuple[float, int]:
    """(share of ``parts`` that repeat an earlier one, characters in the repeats), by datatrove's count."""
    from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates

    repeats, chars = find_duplicates(parts)
    return repeats / max(len(parts), 1), chars


def document_statistics(text: str, language: str, stop_words: set[str]) -> dict[str, float]:
    """What each of datatrove's quality settings compares with its threshold, for one document
    (``FILTER.SETTING``, or ``FILTER.SETTING.N`` for an n-gram size), computed as the filters
    compute them (datatrove's own n-gram helpers and word splitting)."""
    import re

    from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, find_top_duplicate
    from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION, split_into_words

    size = max(len(text), 1)
    words = split_into_words(text, language)
    n_words = max(len(words), 1)
    paragraphs, lines = re.split(r"\n{2,}", text.strip()), re.split("\n+", text)
    out: dict[str, float] = {}
    out["gopher_repetition.dup_para_frac"], chars = _fractions(paragraphs)
    out["gopher_repetition.dup_para_char_frac"] = chars / size
    out["gopher_repetition.dup_line_frac"], chars = _fractions(lines)
    out["gopher_repetition.dup_line_char_frac"] = chars / size
    for n in range(2, 11):
        grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        if n <= 4 and grams:
            out[f"gopher_repetition.top_n_grams.{n}"] = find_top_duplicate(grams) / size
        if n >= 5:
            out[f"gopher_repetition.dup_n_grams.{n}"] = find_all_duplicate(words, n) / size
    full = [line for line in text.split("\n") if line.strip()] or [""]
    out["fineweb_quality.line_punct_thr"] = sum(line.endswith(tuple(TERMINAL_PUNCTUATION)) for line in full) / len(full)
    out["fineweb_quality.short_line_thr"] = sum(len(line) <= 30 for line in full) / len(full)
    out["fineweb_quality.char_duplicates_ratio"] = _fractions(full)[1] / max(len(text.replace("\n", "")), 1)
    out["fineweb_quality.new_line_ratio"] = text.count("\n") / n_words
    plain = [w for w in words if any(c not in PUNCTUATION_SET for c in w)]
    out["gopher_quality.min_doc_words"] = out["gopher_quality.max_doc_words"] = len(plain)
    marks = max(text.count("#"), text.count("...") + text.count("\u2026"))
    out["gopher_quality.max_symbol_word_ratio"] = marks / n_words
    split = text.splitlines() or [""]
    bullets = sum(s.lstrip().startswith(("\u2022", "-")) for s in split)
    out["gopher_quality.max_bullet_lines_ratio"] = bullets / len(split)
    ellipses = sum(s.rstrip().endswith(("...", "\u2026")) for s in split)
    out["gopher_quality.max_ellipsis_lines_ratio"] = ellipses / len(split)
    out["gopher_quality.max_non_alpha_words_ratio"] = sum(any(c.isalpha() for c in w) for w in words) / n_words
    out["gopher_quality.min_stop_words"] = len(stop_words.intersection(words))
    return out


SCALED = {"min_avg_word_length", "max_avg_word_length"}  # scaled by the median word length instead

# settings that bound a statistic from below (a document is removed below the threshold);
# every other one bounds it from above
LOWER_BOUNDS = {
    "fineweb_quality.line_punct_thr",
    "gopher_quality.min_doc_words",
    "gopher_quality.max_non_alpha_words_ratio",  # datatrove's name; it is the least share of words with a letter
    "gopher_quality.min_stop_words",
}


def relaxed_thresholds(
    texts: Sequence[str], language: str, stop_words: Sequence[str], given: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each quality setting the user did not give, relaxed from datatrove's default to the
    ``TAIL`` quantile of ``texts``' statistic where the default alone would remove more than
    ``TAIL`` of them (``{filter: {setting: value}}``, only the settings that changed)."""
    import inspect

    from unlabeled.curate.steps import FILTERS

    rows = [document_statistics(t, language, set(stop_words)) for t in texts]
    out: dict[str, dict[str, Any]] = {}
    for name, cls in FILTERS.items():
        for setting, param in inspect.signature(cls).parameters.items():
            default = param.default
            if setting in given.get(name, {}) or setting in SCALED or default is None or isinstance(default, bool):
                continue
            pairs = default if isinstance(default, tuple) else ((None, default),)
            if not all(isinstance(p, tuple) for p in pairs) or not isinstance(pairs[0][1], (int, float)):
                continue
            new = tuple((n, _relax(rows, f"{name}.{setting}" + (f".{n}" if n else ""), t)) for n, t in pairs)
            if new != tuple(pairs):
                out.setdefault(name, {})[setting] = new if isinstance(default, tuple) else new[0][1]
    return out


def _relax(rows: list[dict[str, float]], key: str, default: float) -> float:
    """``default``, or the ``TAIL`` quantile of the statistic ``key`` where ``default`` removes more."""
    values = np.array([r[key] for r in rows if key in r], dtype=np.float64)
    if not len(values):
        return default
    if key in LOWER_BOUNDS:  # removed below the threshold
        if (values < default).mean() <= TAIL:
            return default
        q = float(np.quantile(values, TAIL, method="lower"))
        # rounded down (4 places): a lower bound rounded up removed the documents at it
        return type(default)(math.floor(q)) if isinstance(default, int) else math.floor(q * 1e4) / 1e4
    if (values > default).mean() <= TAIL:
        return default
    q = float(np.quantile(values, 1 - TAIL, method="higher"))
    return type(default)(math.ceil(q)) if isinstance(default, int) else math.ceil(q * 1e4) / 1e4


def parse_options(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"gopher_quality.min_doc_words": 5}`` -> ``{"gopher_quality": {"min_doc_words": 5}}``,
    each filter and setting checked against datatrove's constructors."""
    import inspect

    from unlabeled.curate.steps import FILTERS

    out: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        name, _, setting = key.partition(".")
        if name not in FILTERS:
            raise UnlabeledError(f"--option {key}: the filters are {', '.join(FILTERS)} (FILTER.SETTING=VALUE)")
        params = inspect.signature(FILTERS[name]).parameters
        allowed = set(params) - {"exclusion_writer", "language"}
        if setting not in allowed:
            raise UnlabeledError(
                f"--option {key}: {name} has no setting {setting!r}; it has {', '.join(sorted(allowed))}"
            )
        check_kind(f"--option {key}", value, params[setting].default)
        out.setdefault(name, {})[setting] = value
    return out


def language_settings(
    samples: dict[str, Sequence[str]], options: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Settings for :class:`~unlabeled.curate.steps.QualityFilters` (per language, plus
    ``default``) and the statistics they came from, from a sample of each language's documents.

    A language with fewer than ``MIN_DOCUMENTS`` sampled documents has its word-length bounds
    scaled by its own documents all the same (a median of a few is still a median), its other
    thresholds fitted to the pooled sample of every language (statistics of a document's shape:
    length, repetition, line endings), and no stop-word check unless it is English: too few
    documents to find its stop words, and English ones removed every document of another
    language. The pool takes at most ``MIN_DOCUMENTS`` of each language, evenly spaced in its
    sample: 3,000 English documents beside 30 Spanish ones made the Spanish 1% of it, under the
    2% tail a threshold is relaxed for, so a bound only they failed removed all of them."""
    settings: dict[str, dict[str, Any]] = {"default": {"tokenizer": "en", **options}}
    stats: dict[str, dict[str, Any]] = {}
    pool = [t for texts in samples.values() for t in _spaced(texts, MIN_DOCUMENTS)]
    for language, texts in samples.items():
        tokenizer = word_tokenizer_language(language)
        s = stats[language] = language_statistics(texts, language)
        quality: dict[str, Any] = {}
        if language in SPACELESS:
            quality["min_avg_word_length"] = quality["max_avg_word_length"] = None
            s["word_length"] = "not bounded: written without spaces, which the word tokenizer splits on"
        elif s["median_word_length"]:
            scale = s["median_word_length"] / ENGLISH_WORD_LENGTH
            quality["min_avg_word_length"] = round(GOPHER_WORD_LENGTH[0] * scale, 2)
            quality["max_avg_word_length"] = round(GOPHER_WORD_LENGTH[1] * scale, 2)
        reference = texts
        if len(texts) < MIN_DOCUMENTS:
            s["stop_words"] = list(GOPHER_STOP_WORDS) if language == "en" else []
            if language != "en":
                quality["min_stop_words"] = 0
            reference = pool if len(pool) >= MIN_DOCUMENTS else []
            s["fitted_to"] = "every language's documents" if reference else "datatrove's defaults"
            info(
                f"note: curate: {language} has {len(texts)} documents, fewer than the {MIN_DOCUMENTS} its "
                + (
                    f"thresholds are fitted to; they are fitted to {len(pool)} documents, at most "
                    f"{MIN_DOCUMENTS} of each language"
                    if reference
                    else "thresholds are fitted to; datatrove's defaults (set for English web text) apply to it"
                )
                + ("" if language == "en" else ", with no stop-word check (too few documents to find its stop words)")
            )
        elif len(s["stop_words"]) == STOP_WORDS:
            quality["stop_words"] = s["stop_words"]
        stop = quality.get("stop_words") or GOPHER_STOP_WORDS
        relaxed = relaxed_thresholds(reference, tokenizer, stop, options) if reference else {}
        if reference is not texts:  # the pool's stop words are not this language's
            relaxed.get("gopher_quality", {}).pop("min_stop_words", None)
        s["relaxed"] = {f"{f}.{k}": v for f, kv in relaxed.items() for k, v in kv.items()}
        merged = {name: {**relaxed.get(name, {}), **options.get(name, {})} for name in {*relaxed, *options}}
        quality.update(merged.pop("gopher_quality", {}))
        settings[language] = {"tokenizer": tokenizer, **merged, "gopher_quality": quality}
    return settings, stats


def _spaced(texts: Sequence[str], most: int) -> list[str]:
    """At most ``most`` of ``texts``, evenly spaced (all of them where there are no more)."""
    if len(texts) <= most:
        return list(texts)
    return [texts[i] for i in np.linspace(0, len(texts) - 1, most).round().astype(int)]
