"""Generated two-person conversations: LoCoMo's shape, and questions whose evidence holds the
answer without repeating the question's words."""

from __future__ import annotations

import json
import re
from itertools import pairwise
from typing import Any

import pytest

from pipelines.generate.dialogues import MULTI_HOP, SINGLE_HOP, TEMPORAL, dialogues
from pipelines.generate.episodes import AREAS, WHEN

Record = dict[str, Any]


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return dialogues(seed=3, count=3)


def sessions(record: Record) -> list[list[dict[str, str]]]:
    conversation, found, number = record["conversation"], [], 1
    while f"session_{number}" in conversation:
        found.append(conversation[f"session_{number}"])
        number += 1
    return found


def turns_by_id(record: Record) -> dict[str, dict[str, str]]:
    return {turn["dia_id"]: turn for session in sessions(record) for turn in session}


def evidence_text(record: Record, qa: Record) -> str:
    turns = turns_by_id(record)
    return " ".join(turns[dia_id]["text"] for dia_id in qa["evidence"]).lower()


def test_the_same_seed_gives_the_same_conversations(records: list[Record]) -> None:
    assert json.dumps(dialogues(seed=3, count=3)) == json.dumps(records)
    assert json.dumps(dialogues(seed=4, count=1)) != json.dumps(records[:1])


def test_two_people_take_turns_over_dated_sessions(records: list[Record]) -> None:
    for record in records:
        names = {record["conversation"]["speaker_a"], record["conversation"]["speaker_b"]}
        assert len(names) == 2
        for number, session in enumerate(sessions(record), start=1):
            speakers = [turn["speaker"] for turn in session]
            assert set(speakers) == names
            assert all(a != b for a, b in pairwise(speakers))
            assert [turn["dia_id"] for turn in session] == [
                f"D{number}:{i}" for i in range(1, len(session) + 1)
            ]
            date = record["conversation"][f"session_{number}_date_time"]
            assert re.fullmatch(r"\d{1,2}:\d\d [ap]m on \d{1,2} [A-Z][a-z]+, \d{4}", date)
        texts = [turn["text"] for session in sessions(record) for turn in session]
        assert len(set(texts)) > 0.8 * len(texts)  # small talk rarely repeats word for word


def test_every_question_has_evidence_that_holds_its_answer(records: list[Record]) -> None:
    for record in records:
        turns = turns_by_id(record)
        for qa in record["qa"]:
            assert qa["category"] in (1, 2, 3, 4) and qa["evidence"]
            assert all(dia_id in turns for dia_id in qa["evidence"])
            text = evidence_text(record, qa)
            if qa["category"] == SINGLE_HOP:
                assert qa["answer"].lower() in text
            elif qa["category"] == TEMPORAL:
                assert any(phrase.lower() in text for phrase, _ in WHEN)
                assert qa["answer"].split(" before ")[0].lower() in text
            elif qa["category"] == MULTI_HOP:
                assert all(part.lower() in text for part in qa["answer"].split(", "))


def test_the_hard_cases_are_planted(records: list[Record]) -> None:
    """Evidence the other person said, a time said a turn before the news, details and returns
    that no longer name the episode, areas the turns never name."""
    said_by_listener = time_apart = unnamed_detail = return_across_sessions = 0
    for record in records:
        turns = turns_by_id(record)
        for qa in record["qa"]:
            speakers = {turns[dia_id]["speaker"] for dia_id in qa["evidence"]}
            named = [n for n in speakers if qa["question"].startswith(f"When did {n} ")]
            said_by_listener += bool(named) and len(speakers) == 2
            time_apart += qa["category"] == TEMPORAL and len(qa["evidence"]) == 2
            if qa["category"] == SINGLE_HOP and len(qa["evidence"]) == 1:
                member = next(
                    (m for area in AREAS for m in area.members if m in qa["question"]), None
                )
                unnamed_detail += member is not None and member not in evidence_text(record, qa)
            if qa["category"] == MULTI_HOP and len(qa["evidence"]) == 2:
                first, second = (dia_id.split(":")[0] for dia_id in qa["evidence"])
                return_across_sessions += first != second
        every_text = " ".join(t["text"] for t in turns.values()).lower()
        assert "martial art" not in every_text and "instrument" not in every_text
    assert min(said_by_listener, time_apart, unnamed_detail, return_across_sessions) >= 3
