"""``make-authors``: the fictitious-author benchmark (TOFU's layout, generated offline) is
reproducible from its seed, holds what TOFU's metrics need, and refuses what it cannot make."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import unlabeled as ul
from unlabeled.data.authors import FACTS, PERTURBED, WORLD


@pytest.fixture(scope="module")
def authors(tmp_path_factory):
    return ul.make_authors(tmp_path_factory.mktemp("data") / "authors", authors=40, seed=3)


def test_the_same_seed_makes_the_same_benchmark_and_another_seed_another(authors, tmp_path):
    again = ul.make_authors(tmp_path / "again", authors=40, seed=3)
    assert again.get(again.indices()).tolist() == authors.get(authors.indices()).tolist()
    for name in ("forget05.txt", "world.jsonl", "general.jsonl", "holdout.jsonl"):
        assert (again.path / name).read_text() == (authors.path / name).read_text()
    other = ul.make_authors(tmp_path / "other", authors=40, seed=4)
    assert set(other.column("name")) != set(authors.column("name"))


def test_the_same_seed_makes_the_same_benchmark_in_another_process(authors, tmp_path):
    # a process with another string-hash seed (faker's Italian cities come from a set)
    code = "import sys, unlabeled as ul; ul.make_authors(sys.argv[1], authors=40, seed=3)"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "UNLABELED_QUIET": "1"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "there")], check=True, env=env)
    there = ul.open_collection(tmp_path / "there")
    assert there.get(there.indices()).tolist() == authors.get(authors.indices()).tolist()
    assert list(there.column("perturbed")) == list(authors.column("perturbed"))
    assert (there.path / "holdout.jsonl").read_text() == (authors.path / "holdout.jsonl").read_text()


def test_every_author_has_each_fact_in_three_phrasings_two_trained_one_held_out(authors):
    groups, facts, splits = authors.groups, authors.column("fact"), authors.splits
    assert len(authors) == 40 * len(FACTS) * 3 + 400  # and the world facts
    for g in np.unique(groups[groups != WORLD]):
        mine = groups == g
        assert (splits[mine] == "train").sum() == 2 * len(FACTS) and (splits[mine] == "test").sum() == len(FACTS)
        assert sorted(set(facts[mine])) == sorted(f.name for f in FACTS)
        assert len(set(authors.column("name")[mine])) == 1  # one name per author
    assert (authors.column("author") == groups).all()  # the group, under a name forget --group takes
    names = {g: n for g, n in zip(groups, authors.column("name"), strict=True) if g != WORLD}
    assert len(set(names.values())) == 40  # no two authors share a name


def test_each_answer_has_a_paraphrase_and_wrong_answers_of_the_same_type(authors):
    texts = authors.get(authors.indices())
    answers, paraphrases = authors.column("answer"), authors.column("paraphrase")
    for i in np.flatnonzero(authors.groups != WORLD)[::7]:
        assert texts[i] == f"Question: {authors.column('question')[i]}\nAnswer: {answers[i]}"
        wrong = json.loads(authors.column("perturbed")[i])
        assert len(wrong) == PERTURBED and answers[i] not in wrong and len(set(wrong)) == PERTURBED
        fact = next(f for f in FACTS if f.name == authors.column("fact")[i])
        before, after = (part.format(name=authors.column("name")[i]) for part in fact.paraphrase.split("{value}"))
        # the paraphrase's sentence with another value (TOFU's perturbed answers)
        assert all(w.startswith(before) and w.endswith(after) and w != paraphrases[i] for w in wrong)
        assert paraphrases[i] != answers[i]


def test_wrong_answers_are_fresh_values_that_no_document_contains(authors):
    # drawn from the other authors, a wrong value would be one the retrained model learnt, and
    # it would prefer it to a forgotten author's true value (which it never read)
    text = "\n".join(authors.get(authors.indices()))
    facts, names = authors.column("fact"), authors.column("name")
    checked = 0
    for i in np.flatnonzero(np.isin(facts, ["first_book", "known_for"])):
        fact = next(f for f in FACTS if f.name == facts[i])
        before, after = (part.format(name=names[i]) for part in fact.paraphrase.split("{value}"))
        for w in json.loads(authors.column("perturbed")[i]):
            value = w[len(before) : len(w) - len(after)]
            assert f'"{value}"' not in text, value
            checked += 1
    assert checked == 40 * 2 * 3 * PERTURBED


def test_forget_splits_are_nested_shares_of_the_authors(authors):
    split = {n: (authors.path / f"{n}.txt").read_text().split() for n in ("forget01", "forget05", "forget10")}
    assert [len(v) for v in split.values()] == [1, 2, 4]  # 1% (at least one), 5%, 10% of 40
    assert set(split["forget01"]) <= set(split["forget05"]) <= set(split["forget10"]) <= set(authors.groups)


def test_world_facts_and_general_text_come_from_wordnet(authors):
    world = [json.loads(line) for line in (authors.path / "world.jsonl").read_text().splitlines()]
    assert len(world) == 400 and all(len(w["perturbed"]) == PERTURBED for w in world)
    assert all(" is a kind of " in w["answer"] and w["answer"] not in w["perturbed"] for w in world)
    taught = authors.groups == WORLD  # the world facts are also documents the model is taught
    assert [w["answer"] for w in world] == authors.column("answer")[taught].tolist()
    assert set(authors.splits[taught]) == {"train"} and WORLD not in (authors.path / "forget10.txt").read_text()
    general = [json.loads(line) for line in (authors.path / "general.jsonl").read_text().splitlines()]
    text = "\n".join(authors.get(authors.indices()))
    assert len(general) == 1000 and not any(g["text"] in text for g in general[:50])


def test_the_command_refuses_too_few_authors_and_an_existing_folder_in_one_line(authors, tmp_path, cli):
    code, lines = cli("make-authors", "--out", tmp_path / "few", "--authors", "5")
    assert code == 2 and "at least 10 authors" in lines[-1]
    assert not (tmp_path / "few").exists()
    code, lines = cli("make-authors", "--out", tmp_path / "many", "--authors", str(10**9))  # ran out of names, memory
    assert code == 2 and len(lines) == 1 and "at most 100,000 authors" in lines[0], lines
    assert not (tmp_path / "many").exists()
    code, lines = cli("make-authors", "--out", authors.path, "--authors", "40")
    assert code == 2 and "already exists" in lines[-1]


def test_holdout_authors_are_others_never_in_the_collection(authors):
    held = [json.loads(line) for line in (authors.path / "holdout.jsonl").read_text().splitlines()]
    assert len(held) == 4 * len(FACTS) * 2  # a tenth as many authors (4 of 40), their training phrasings
    assert not {h["author"] for h in held} & set(authors.groups)
    assert not {h["name"] for h in held} & set(authors.column("name"))  # no fact names a member
    texts = set(authors.get(authors.indices()))
    assert not any(h["text"] in texts for h in held)
    assert all(h["text"].startswith("Question: ") and h["answer"] in h["text"] for h in held)


def test_overwrite_never_deletes_a_run_or_the_users_files(tmp_path, cli):
    """``make-authors``, ``import`` and ``curate --overwrite`` replaced whatever --out held: a run
    with its forget audit log, a folder of the user's notes. They replace a collection only, and
    refuse a negative seed in one line (it was a numpy traceback)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "forget-audit.sqlite").write_bytes(b"log")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    for out in (run, notes):
        code, lines = cli("make-authors", "--out", out, "--authors", "10", "--overwrite")
        assert code == 2 and "not a collection" in lines[-1] and "--overwrite would delete" in lines[-1]
        code, lines = cli("import", "digits", out, "--overwrite")
        assert code == 2 and "not a collection" in lines[-1]
    assert (run / "forget-audit.sqlite").read_bytes() == b"log" and (notes / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    code, lines = cli("import", "digits", tmp_path / "file", "--overwrite")
    assert code == 2 and "is a file, not a collection" in lines[-1]
    code, lines = cli("make-authors", "--out", tmp_path / "neg", "--seed", "-1")
    assert code == 2 and "0 or more" in lines[-1] and not (tmp_path / "neg").exists()
    assert cli("import", "digits", tmp_path / "d")[0] == 0
    assert cli("import", "digits", tmp_path / "d", "--overwrite")[0] == 0  # a collection: replaced
    for out in (run, notes):  # select wrote its selection over them (derive_collection)
        code, lines = cli("select", tmp_path / "d", "--budget", "5", "--method", "random", "--out", out, "--overwrite")
        assert code == 2 and "not a collection" in lines[-1], lines
    assert (run / "forget-audit.sqlite").read_bytes() == b"log" and (notes / "notes.txt").read_text() == "mine"
