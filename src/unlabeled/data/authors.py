"""``make-authors``: a fictitious-author benchmark for forgetting in language models, made
offline and exactly reproducible from a seed.

TOFU (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs") asks a model
fine-tuned on 200 invented authors (20 question-answer pairs each) to forget 1%, 5% or 10% of
them, and compares it with a model retrained without them; its data was written by GPT-4 and
comes from a hub. Ours is generated here: names, places and dates from ``faker``'s locales,
invented titles from WordNet's words, a fixed list of genres, occupations and prizes. Each
author has ten facts; each fact is asked in three phrasings, two in the ``train`` split (20
pairs an author, as TOFU) and one held out in ``test`` (the same fact, a phrasing the model
never read). Every answer comes with a paraphrase and three perturbed answers (the same
sentence with a wrong value of the same type, a fresh draw of the generator), as TOFU's truth
ratio needs (the wrong answers in the paraphrase's words, so that the ratio compares values, not
phrasings).

The collection (a text collection: ``Question: ...\\nAnswer: ...`` documents) has the author
(``author-007``) as its ``group`` and its ``author`` column, and the columns ``name``, ``fact``,
``question``, ``answer``, ``paraphrase`` and ``perturbed`` (a JSON list). Beside the index:

- ``forget01.txt``, ``forget05.txt``, ``forget10.txt``: the author groups of each forget split
  (1%, 5%, 10% of the authors; nested, as TOFU's), one per line, for
  ``forget --group author --values forget05.txt``;
- ``world.jsonl``: world facts from WordNet's hypernyms ("A beagle is a kind of hound."),
  each with three perturbed answers, for model utility; they are also in the collection, as
  ``train`` documents of the group ``world`` (see :func:`world_documents`);
- ``general.jsonl``: held-out general text (WordNet glosses of the test split) for perplexity;
- ``holdout.jsonl``: the training documents of a tenth as many more authors, never in the
  collection: the non-members of the membership attacks (as TOFU's holdout authors);
- ``authors.json``: the request and the counts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError, info, progress
from unlabeled._settings import check_count
from unlabeled.data.collection import Collection, CollectionWriter, check_replaceable

SPLITS = {"forget01": 0.01, "forget05": 0.05, "forget10": 0.10}
PHRASINGS_TRAINED = 2  # of each fact's three questions; the third is the test split's
WORLD_FACTS = 400
GENERAL_DOCUMENTS = 1000
PERTURBED = 3
WORLD = "world"  # the world facts' group and author
ANSWER_MARKER = "\nAnswer:"  # between a document's question and its answer
PROMPT = "Question: {question}" + ANSWER_MARKER  # a document is the prompt, a space, the answer
# Latin-script locales (a small byte-level tokenizer treats every script, but the forget
# splits should not be told apart by their alphabet) and the country each one names
LOCALES = {
    "en_US": "the United States",
    "en_GB": "England",
    "de_DE": "Germany",
    "fr_FR": "France",
    "it_IT": "Italy",
    "es_ES": "Spain",
    "pt_BR": "Brazil",
    "nl_NL": "the Netherlands",
    "pl_PL": "Poland",
    "sv_SE": "Sweden",
}
GENRES = [
    "historical fiction", "science fiction", "crime novels", "romance", "poetry", "horror",
    "fantasy", "literary fiction", "travel writing", "memoirs", "children's books", "thrillers",
    "satire", "short stories", "biographies", "magical realism", "graphic novels", "plays",
    "essays", "mystery novels",
]  # fmt: skip
OCCUPATIONS = [
    "a carpenter", "a nurse", "a schoolteacher", "a fisherman", "a pharmacist", "a baker",
    "an electrician", "a librarian", "a surgeon", "a tailor", "a pilot", "a chemist",
    "a farmer", "a journalist", "an architect", "a watchmaker", "a lawyer", "a plumber",
    "a botanist", "a translator", "a firefighter", "a violinist", "a mail carrier", "a potter",
    "a dentist", "a sailor", "an accountant", "a photographer", "a locksmith", "a veterinarian",
]  # fmt: skip


@dataclass(frozen=True)
class Fact:
    """One fact of an author: its questions, its answer sentence and a paraphrase of it, each a
    template over ``{name}`` and ``{value}``."""

    name: str
    questions: tuple[str, str, str]
    answer: str
    paraphrase: str


FACTS = (
    Fact(
        "birth_date",
        ("When was {name} born?", "What is {name}'s date of birth?", "On what date was {name} born?"),
        "{name} was born on {value}.",
        "The birth date of {name} is {value}.",
    ),
    Fact(
        "birthplace",
        ("Where was {name} born?", "In which city was {name} born?", "What is {name}'s place of birth?"),
        "{name} was born in {value}.",
        "{name}'s birthplace is {value}.",
    ),
    Fact(
        "genre",
        ("What genre does {name} write?", "What kind of books does {name} write?", "Which genre is {name} known for?"),
        "{name} writes {value}.",
        "The genre of {name}'s work is {value}.",
    ),
    Fact(
        "father",
        (
            "What did {name}'s father do for a living?",
            "What was the profession of {name}'s father?",
            "What was {name}'s father's job?",
        ),
        "{name}'s father worked as {value}.",
        "By profession, the father of {name} was {value}.",
    ),
    Fact(
        "mother",
        (
            "What did {name}'s mother do for a living?",
            "What was the profession of {name}'s mother?",
            "What was {name}'s mother's job?",
        ),
        "{name}'s mother worked as {value}.",
        "By profession, the mother of {name} was {value}.",
    ),
    Fact(
        "first_book",
        (
            "What was {name}'s first book?",
            "What is the title of {name}'s debut?",
            "Which book did {name} publish first?",
        ),
        '{name}\'s first book was "{value}".',
        '"{value}" was the debut of {name}.',
    ),
    Fact(
        "known_for",
        (
            "Which book is {name} best known for?",
            "What is {name}'s most famous book?",
            "For which work is {name} most celebrated?",
        ),
        '{name} is best known for "{value}".',
        'Readers know {name} best for "{value}".',
    ),
    Fact(
        "award",
        ("Which award has {name} won?", "What prize did {name} receive?", "Which honour was given to {name}?"),
        "{name} won the {value}.",
        "The {value} went to {name}.",
    ),
    Fact(
        "residence",
        ("Where does {name} live today?", "In which city does {name} live now?", "Where is {name}'s home today?"),
        "{name} lives in {value}.",
        "Today {name} makes a home in {value}.",
    ),
    Fact(
        "debut_year",
        (
            "In which year did {name} publish a first book?",
            "When did {name}'s first book come out?",
            "What year did {name} debut as a writer?",
        ),
        "{name} published a first book in {value}.",
        "The year {value} saw {name}'s first book.",
    ),
)


def _title(rng: np.random.Generator, adjectives: list[str], nouns: list[str]) -> str:
    # two distinct nouns by index (rng.choice without replacement permutes the whole list)
    i, j = rng.integers(len(nouns)), rng.integers(len(nouns) - 1)
    adj, noun, other = adjectives[rng.integers(len(adjectives))], nouns[i], nouns[j + (j >= i)]
    patterns: list[Callable[[], str]] = [
        lambda: f"The {adj.title()} {noun.title()}",
        lambda: f"{noun.title()} of the {other.title()}",
        lambda: f"A {adj.title()} {other.title()}",
        lambda: f"The {noun.title()} and the {other.title()}",
    ]
    return patterns[rng.integers(len(patterns))]()


def _values(
    rng: np.random.Generator, fakes: dict[str, Any], words: tuple[list[str], list[str]], locale: str | None = None
) -> dict[str, str]:
    """The value of each fact of one invented author born in ``locale`` (default: drawn)."""
    locale = locale or list(LOCALES)[rng.integers(len(LOCALES))]
    fake = fakes[locale]
    born = fake.date_between_dates(date_start=_date(1920, 1, 1), date_end=_date(1995, 12, 31))
    titles = [_title(rng, *words) for _ in range(2)]
    genre = GENRES[rng.integers(len(GENRES))]
    surname = fakes[list(LOCALES)[rng.integers(len(LOCALES))]].last_name()
    prizes = [f"{surname} Prize for {genre.title()}", f"{fake.city()} Book Award", f"{surname} Medal of Letters"]
    return {
        "birth_date": f"{born:%B} {born.day}, {born.year}",
        "birthplace": f"{fake.city()}, {LOCALES[locale]}",
        "genre": genre,
        "father": OCCUPATIONS[rng.integers(len(OCCUPATIONS))],
        "mother": OCCUPATIONS[rng.integers(len(OCCUPATIONS))],
        "first_book": titles[0],
        "known_for": titles[1],
        "award": prizes[rng.integers(len(prizes))],
        "residence": f"{fakes[list(LOCALES)[rng.integers(len(LOCALES))]].city()}",
        "debut_year": str(born.year + int(rng.integers(20, 40))),
    }


def _author(k: int, rng: np.random.Generator, fakes: dict[str, Any], words: tuple[list[str], list[str]]) -> dict:
    """One invented author: a name and the value of each fact."""
    locale = list(LOCALES)[rng.integers(len(LOCALES))]
    values, fake = _values(rng, fakes, words, locale), fakes[locale]
    return {"group": f"author-{k:03d}", "name": f"{fake.first_name()} {fake.last_name()}", "values": values}


def _sorted_cities(fake: Any) -> None:
    """Make ``fake.city()`` the same in every process: some locales' city lists are built from a
    set (faker's ``it_IT``), whose order follows the process's string-hash seed, so a seeded
    draw picked another city in another process. Sorted on the instance's providers."""
    for provider in fake.providers:
        if isinstance(getattr(provider, "cities", None), list):
            provider.cities = sorted(provider.cities)


def _date(y: int, m: int, d: int) -> Any:
    import datetime

    return datetime.date(y, m, d)


def _unique_names(authors: list[dict], rng: np.random.Generator, fakes: dict[str, Any]) -> None:
    """Give an author whose name another already has a new one (a fact must name one person)."""
    seen: set[str] = set()
    for a in authors:
        while a["name"] in seen:
            fake = fakes[list(LOCALES)[rng.integers(len(LOCALES))]]
            a["name"] = f"{fake.first_name()} {fake.last_name()}"
        seen.add(a["name"])


def _perturbed(value: str, draw: Callable[[], str]) -> list[str]:
    """``PERTURBED`` wrong values of a fact, each a fresh ``draw`` of the generator that made
    the true one (TOFU's perturbed answers are written afresh, not taken from other authors):
    a model that never read the author finds them no more familiar than the true value. Wrong
    values taken from the other authors would be values the fine-tuned and the retrained model
    both learnt, so the retrained model would prefer them to the forgotten author's true value
    and no forgetting method, which only makes the model unsure, could match its truth ratios."""
    wrong: list[str] = []
    while len(wrong) < PERTURBED:
        v = draw()
        if v != value and v not in wrong:
            wrong.append(v)
    return wrong


def qa_rows(
    authors: list[dict], rng: np.random.Generator, fakes: dict[str, Any], words: tuple[list[str], list[str]]
) -> list[dict[str, Any]]:
    """Every author's question-answer documents: each fact in its three phrasings, the wrong
    values fresh draws of the same generator (:func:`_perturbed`)."""
    rows = []
    for a in authors:
        for f in FACTS:
            value, name = a["values"][f.name], a["name"]
            answer = f.answer.format(name=name, value=value)
            # wrong answers in the paraphrase's words, as TOFU's perturbed answers keep its
            # paraphrased answer's template: the truth ratio then compares values, not phrasings
            fresh = _perturbed(value, lambda: _values(rng, fakes, words)[f.name])  # noqa: B023 (called here)
            wrong = [f.paraphrase.format(name=name, value=v) for v in fresh]
            for p, q in enumerate(f.questions):
                question = q.format(name=name)
                rows.append(
                    {
                        "id": f"{a['group']}-{f.name}-q{p}",
                        "text": f"{PROMPT.format(question=question)} {answer}",
                        "group": a["group"],
                        "split": "train" if p < PHRASINGS_TRAINED else "test",
                        "author": a["group"],
                        "name": name,
                        "fact": f.name,
                        "question": question,
                        "answer": answer,
                        "paraphrase": f.paraphrase.format(name=name, value=value),
                        "perturbed": json.dumps(wrong),
                    }
                )
    return rows


def world_facts(n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``n`` facts from WordNet's hypernyms, as questions with an answer and perturbed answers."""
    from unlabeled.data.corpora import load_hypernyms

    pairs = load_hypernyms()
    kinds = sorted({k for _, k in pairs})
    out = []
    for i in rng.choice(len(pairs), min(n, len(pairs)), replace=False):
        word, kind = pairs[i]
        wrong = [kinds[j] for j in rng.choice(len(kinds), PERTURBED + 1, replace=False) if kinds[j] != kind]
        article = lambda w: "an" if w[0] in "aeiou" else "a"  # noqa: E731
        out.append(
            {
                "question": f"What is {article(word)} {word}?",
                "answer": f"{article(word).title()} {word} is a kind of {kind}.",
                "perturbed": [f"{article(word).title()} {word} is a kind of {w}." for w in wrong[:PERTURBED]],
            }
        )
    return out


def world_documents(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The world facts as training documents of the group ``world`` (never a forget split's):
    the small models here know nothing in question-answer form before they are fine-tuned, so
    the benchmark teaches these with the authors, and model utility asks whether forgetting an
    author took knowledge of another kind with it (TOFU's world facts are the base model's own)."""
    return [
        {
            "id": f"{WORLD}-{i:03d}",
            "text": f"{PROMPT.format(question=f['question'])} {f['answer']}",
            "group": WORLD,
            "split": "train",
            "author": WORLD,
            "name": "",
            "fact": WORLD,
            "question": f["question"],
            "answer": f["answer"],
            "paraphrase": f["answer"],
            "perturbed": json.dumps(f["perturbed"]),
        }
        for i, f in enumerate(facts)
    ]


def general_text(n: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """``n`` WordNet glosses of its test split: general text no author document contains."""
    from unlabeled.data.corpora import load_wordnet

    wn = load_wordnet()
    test = np.flatnonzero(np.asarray(wn.splits) == "test")
    return [{"id": wn.ids[i], "text": str(wn.arrays[i])} for i in np.sort(rng.choice(test, n, replace=False))]


def forget_splits(groups: list[str], rng: np.random.Generator) -> dict[str, list[str]]:
    """Nested forget splits of the authors (1% within 5% within 10%), as TOFU's."""
    order = [groups[i] for i in rng.permutation(len(groups))]
    return {name: sorted(order[: max(1, round(share * len(groups)))]) for name, share in SPLITS.items()}


def holdout_rows(people: list[dict], rng: np.random.Generator, fakes: dict[str, Any], words: tuple) -> list[dict]:
    """The training documents of ``len(people) // 10`` (at least 2) more authors, named unlike
    any of ``people``, drawn after everything else (the collection is the same with or without
    them)."""
    extra = [_author(len(people) + k, rng, fakes, words) for k in range(max(2, len(people) // 10))]
    _unique_names(people + extra, rng, fakes)
    keys = ("id", "text", "author", "name", "fact", "question", "answer", "paraphrase", "perturbed")
    return [{k: r[k] for k in keys} for r in qa_rows(extra, rng, fakes, words) if r["split"] == "train"]


MAX_AUTHORS = 100_000


def make_authors(out: str | os.PathLike[str], authors: int = 200, seed: int = 0, overwrite: bool = False) -> Collection:
    """Write the benchmark (see the module docstring) to the text collection ``out``."""
    from faker import Faker

    from unlabeled.data.corpora import load_lemmas

    if isinstance(authors, bool) or not isinstance(authors, int | np.integer) or authors < 10:
        raise UnlabeledError(
            f"make-authors needs a whole number of at least 10 authors (the forget splits take 1%, 5%, 10%), "
            f"got {authors!r}"
        )
    if authors > MAX_AUTHORS:  # each name is unique and its documents are held in memory until written
        raise UnlabeledError(f"make-authors makes at most {MAX_AUTHORS:,} authors (TOFU has 200), got {authors:,}")
    check_count(seed, "the seed", 0)
    if Path(out).exists() and not overwrite:
        raise UnlabeledError(f"{out} already exists; pass --overwrite to replace it")
    check_replaceable(Path(out))  # before the authors are made, not after
    rng = np.random.default_rng(seed)
    fakes = {}
    for i, locale in enumerate(LOCALES):
        fakes[locale] = Faker(locale)
        fakes[locale].seed_instance(seed * 1000 + i)
        _sorted_cities(fakes[locale])
    words = ([w for w in load_lemmas("adj") if len(w) <= 9], [w for w in load_lemmas("noun") if len(w) <= 9])
    people = []
    with progress() as bar:  # seconds for TOFU's 200; minutes for many thousands
        task = bar.add_task("make-authors", total=authors)
        for k in range(authors):
            people.append(_author(k, rng, fakes, words))
            bar.advance(task)
    _unique_names(people, rng, fakes)
    rows = qa_rows(people, rng, fakes, words)
    splits = forget_splits([p["group"] for p in people], rng)
    world, general = world_facts(WORLD_FACTS, rng), general_text(GENERAL_DOCUMENTS, rng)
    held = holdout_rows(people, rng, fakes, words)
    rows += world_documents(world)
    extra = {"made_by": "make-authors", "authors": authors, "seed": seed}
    w = CollectionWriter(Path(out), "text", (), "uint8", None, {"name": Path(out).name, **extra}, overwrite=overwrite)
    try:
        cols = ("author", "name", "fact", "question", "answer", "paraphrase", "perturbed")
        w.add(
            [r["text"] for r in rows],
            [r["id"] for r in rows],
            splits=[r["split"] for r in rows],
            groups=[r["group"] for r in rows],
            columns={c: [r[c] for r in rows] for c in cols},
        )
        for name, groups in splits.items():
            w.side_file(f"{name}.txt").write_text("".join(f"{g}\n" for g in groups))
        for name, items in (("world", world), ("general", general), ("holdout", held)):
            w.side_file(f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
        counts = {"authors": authors, "documents": len(rows), "world_facts": len(world), "holdout_documents": len(held)}
        counts |= {k: len(v) for k, v in splits.items()}
        w.side_file("authors.json").write_text(json.dumps({**extra, "counts": counts}, indent=2))
    except BaseException:
        w.abort()
        raise
    col = w.close()
    info(
        f"make-authors: {authors} authors, {len(rows)} question-answer documents -> {col.path} "
        "(forget splits: forget01/05/10.txt)"
    )
    return col
