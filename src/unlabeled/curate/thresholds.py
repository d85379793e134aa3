"""The quality filters' settings for each language, from that language's own documents, as
FineWeb2 does (Penedo et al. 2025, "FineWeb2: One pipeline to scale them all"): Gopher's stop
words (a document must hold at least two of them) become the language's most widespread words
instead of English ones, and Gopher's bounds on the average word length (3 to 10 characters,
set on English) are scaled by the ratio of the language's median average word length to
English's, so that German's longer words or Chinese's one-character words are not filtered for
being a language. Every other threshold keeps datatrove's default unless the user sets it
(``--option gopher_quality.min_doc_words=5``), which applies to every language."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError

# Gopher's bounds (Rae et al. 2021) were set on English web text. The English reference the
# bounds scale from: the median of documents' average word length (words holding a letter, by
# datatrove's word tokenizer) measured here was 4.92 on 5,000 WordNet glosses, 4.50 on 3,000
# English fortunes and 5.33 on 3,000 GCIDE entries; 4.7 lies between them
ENGLISH_WORD_LENGTH = 4.7
GOPHER_WORD_LENGTH = (3.0, 10.0)
STOP_WORDS = 8  # as many as Gopher's English list ("the", "be", "to", "of", "and", "that", "have", "with")
MIN_DOCUMENTS = 50  # fewer documents of a language than this: datatrove's (English) defaults


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
        allowed = set(inspect.signature(FILTERS[name]).parameters) - {"exclusion_writer", "language"}
        if setting not in allowed:
            raise UnlabeledError(
                f"--option {key}: {name} has no setting {setting!r}; it has {', '.join(sorted(allowed))}"
            )
        out.setdefault(name, {})[setting] = value
    return out


def language_settings(
    samples: dict[str, Sequence[str]], options: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Settings for :class:`~unlabeled.curate.steps.QualityFilters` (per language, plus
    ``default``) and the statistics they came from, from a sample of each language's documents."""
    settings: dict[str, dict[str, Any]] = {"default": {"tokenizer": "en", **options}}
    stats: dict[str, dict[str, Any]] = {}
    for language, texts in samples.items():
        tokenizer = word_tokenizer_language(language)
        if len(texts) < MIN_DOCUMENTS:
            settings[language] = {"tokenizer": tokenizer, **options}
            continue
        s = stats[language] = language_statistics(texts, language)
        quality: dict[str, Any] = {}
        if s["median_word_length"]:
            scale = s["median_word_length"] / ENGLISH_WORD_LENGTH
            quality["min_avg_word_length"] = round(GOPHER_WORD_LENGTH[0] * scale, 2)
            quality["max_avg_word_length"] = round(GOPHER_WORD_LENGTH[1] * scale, 2)
        if len(s["stop_words"]) == STOP_WORDS:
            quality["stop_words"] = s["stop_words"]
        quality.update(options.get("gopher_quality", {}))
        settings[language] = {"tokenizer": tokenizer, **options, "gopher_quality": quality}
    return settings, stats
