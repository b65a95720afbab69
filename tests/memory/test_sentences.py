"""Splitting chat text into statement clauses, with dropped subjects and pronouns restored."""

from __future__ import annotations

import pytest

from memory.phrases import gerund, taste_objects
from memory.sentences import sentences, with_subject


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("Been really into jazz for years", "I've been really into jazz for years"),
        ("oh btw, thinking about getting a tent", "I'm thinking about getting a tent"),
        ("Honestly never liked opera", "I never liked opera"),
        ("wlel, kayaking makes me happy", "kayaking makes me happy"),
        ("Anna, my sister, says hi", "Anna, my sister, says hi"),
        ("I love tea", "I love tea"),
        ("the weather is nice", "the weather is nice"),
    ],
)
def test_a_dropped_i_is_restored_after_fillers(clause: str, expected: str) -> None:
    assert with_subject(clause) == expected


def test_a_question_keeps_only_the_statements_before_it() -> None:
    [sentence] = sentences("Looking for a desk lamp, any recommendations?")
    assert sentence.question and sentence.clauses == ("I'm looking for a desk lamp",)
    [only_question] = sentences("Should I move to Denver?")
    assert only_question.clauses == ()


def test_clauses_split_at_conjunctions_and_new_subjects() -> None:
    [sentence] = sentences("Love climbing but hate running, I guess we all have our limits")
    assert sentence.clauses == (
        "I love climbing",
        "I hate running",
        "I guess we all have our limits",
    )


def test_quoted_speech_is_not_the_users() -> None:
    [sentence] = sentences('My aunt said "I moved to Rome" yesterday')
    assert "Rome" not in sentence.text


def test_a_pronoun_takes_the_bare_noun_phrase_before_it() -> None:
    _, second = sentences("Horror movies? Can't stand them.")
    assert second.clauses == ("I can't stand horror movies.",)
    [dislocated] = sentences("Board games, we love them")
    assert dislocated.clauses[-1] == "we love board games"


def test_gerunds_follow_english_spelling() -> None:
    assert [gerund(verb) for verb in ("hike", "run", "play", "swim", "tie", "see", "visit")] == [
        "hiking",
        "running",
        "playing",
        "swimming",
        "tying",
        "seeing",
        "visiting",
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hiking, camping, and fishing, my dog loves it too", ["hiking", "camping", "fishing"]),
        ("indie rock, anyway", ["indie rock"]),
        ("mac and cheese", ["mac and cheese"]),
        ("to swim in the sea every morning", ["swimming"]),
        ("it when you do that", []),
        ("the idea", []),
        ("the mountains", ["the mountains"]),
    ],
)
def test_taste_objects_are_cut_to_the_things_named(raw: str, expected: list[str]) -> None:
    assert taste_objects(raw) == expected
