"""The LoCoMo benchmark's reading of the data and its measure, on a two-session toy."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from bench.memory_locomo import (
    Scores,
    first_distinct,
    load_locomo,
    read_records,
    rrf,
    write_signals,
)
from pipelines.generate.dialogues import dialogues

TOY = [
    {
        "sample_id": "conv-1",
        "conversation": {
            "speaker_a": "Ann",
            "speaker_b": "Bo",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ann", "dia_id": "D1:1", "text": "I painted a sunrise."},
                {
                    "speaker": "Bo",
                    "dia_id": "D1:2",
                    "text": "Lovely!",
                    "blip_caption": "a photo of a lake",
                },
            ],
            "session_2_date_time": "10:00 am on 9 June, 2023",
            "session_2": [{"speaker": "Bo", "dia_id": "D2:1", "text": "Back from camping."}],
        },
        "qa": [
            {
                "question": "When did Ann paint?",
                "answer": "May",
                "evidence": ["D1:1"],
                "category": 2,
            },
            {"question": "What?", "answer": "x", "evidence": ["D1:2; D2:1"], "category": 1},
            {"question": "Unanswerable", "evidence": ["D1:1"], "category": 5},
            {"question": "No evidence", "answer": "y", "evidence": [], "category": 4},
        ],
    }
]


def test_turns_become_the_readmes_signals(tmp_path: Path) -> None:
    (tmp_path / "locomo-dev.json").write_text(json.dumps(TOY))
    turns, questions = load_locomo(tmp_path)
    [first, second, third] = turns["conv-1"]
    assert first.event_id == "conv-1:D1:1" and first.text == "Ann: I painted a sunrise."
    # The README's form, whatever the caption starts with.
    assert second.text == "Bo: Lovely! [shares a photo of a photo of a lake]"
    assert first.ts == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert (second.ts - first.ts).total_seconds() == 30
    assert third.ts == datetime(2023, 6, 9, 10, 0, tzinfo=UTC)
    # Categories 1-4 with evidence; two ids in one string are two turns.
    assert [(q.category, sorted(q.evidence)) for q in questions] == [
        (2, ["conv-1:D1:1"]),
        (1, ["conv-1:D1:2", "conv-1:D2:1"]),
    ]
    write_signals(turns, tmp_path / "signals.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "signals.jsonl").open()]
    assert lines[0] == {
        "event_id": "conv-1:D1:1",
        "user_id": "conv-1",
        "ts": "2023-05-08T13:56:00Z",
        "type": "message",
        "text": "Ann: I painted a sunrise.",
    }
    assert all("context" not in line for line in lines)  # no speaker: both are the owner's


def test_the_measure_counts_distinct_turns(tmp_path: Path) -> None:
    (tmp_path / "locomo-dev.json").write_text(json.dumps(TOY))
    _, [when, what] = load_locomo(tmp_path)
    assert first_distinct(["a", "a", "b", "a", "c"], 2) == ["a", "b"]
    scores = Scores()
    scores.add(when, ["conv-1:D2:1", "conv-1:D2:1", "conv-1:D2:1", "conv-1:D1:1"])
    scores.add(what, ["conv-1:D1:2", "x", "y", "z", "w", "conv-1:D2:1"])
    summary = scores.summary()
    assert summary["any@5"] == 1.0 and summary["all@5"] == 0.5
    assert summary["all@10"] == 1.0
    assert summary["any@10_by_category"]["temporal"] == 1.0
    assert summary["any@10_by_category"]["open-domain"] is None  # no question of it


def test_rrf_rewards_agreement() -> None:
    assert rrf([[0, 1, 2], [1, 2, 0]])[0] == 1  # near the top of both beats first and last
    assert rrf([[0, 1, 2], [1, 0, 2]])[:2] == [0, 1]


def test_generated_conversations_read_as_locomo() -> None:
    turns, questions = read_records(dialogues(seed=1, count=2))
    assert sorted(turns) == ["gen-1-0", "gen-1-1"]
    ids = {turn.event_id for mine in turns.values() for turn in mine}
    assert questions and all(question.evidence <= ids for question in questions)
    assert {question.category for question in questions} == {1, 2, 3, 4}
