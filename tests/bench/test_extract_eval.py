"""Scoring extracted facts against planted ones, whoever extracts them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.chat_stub import ChatStub, rule_answers, truth_answers
from bench.extract_eval import content_words, score_extraction
from core.settings import Settings
from memory.extract import RuleExtractor, TextSignal
from memory.ingest import text_signal_batches
from memory.llm_extract import LLMConfig, LLMExtractor
from memory.records import Memory
from pipelines import duck, event_store
from pipelines.batch import run_ingest
from pipelines.generate import Fact, GenerateConfig, load_truth, write_dataset

T = datetime(2026, 5, 13, tzinfo=UTC)


@dataclass(frozen=True)
class F:
    user_id: str
    kind: str
    text: str
    slot: str | None = None
    value: str | None = None
    valid_from: datetime | None = T


def test_content_words_drop_function_words_and_plurals() -> None:
    assert content_words("Likes hiking boots") == {"hiking", "boot"}
    assert content_words("Has a dog named Max") == {"dog", "max"}


def test_perfect_extraction_scores_one() -> None:
    truth = [
        F("u1", "preference", "Likes hiking"),
        F("u1", "attribute", "Is vegan", "diet", "vegan"),
    ]
    scores = score_extraction(truth, truth)
    assert scores["all"]["precision"] == scores["all"]["recall"] == 1.0
    assert scores["preference"]["tp"] == 1 and scores["attribute"]["tp"] == 1


def test_slot_and_value_match_across_wordings_but_other_values_do_not() -> None:
    truth = [F("u1", "life_event", "Moved to Seattle", "location", "Seattle")]
    same = [F("u1", "life_event", "Relocated to Seattle, WA", "location", "seattle")]
    other = [F("u1", "life_event", "Moved to Denver", "location", "Denver")]
    assert score_extraction(same, truth)["life_event"]["tp"] == 1
    scores = score_extraction(other, truth)["life_event"]
    assert (scores["tp"], scores["fp"], scores["fn"]) == (0, 1, 1)


def test_user_and_kind_must_agree() -> None:
    truth = [F("u1", "preference", "Likes jazz")]
    assert score_extraction([F("u2", "preference", "Likes jazz")], truth)["all"]["tp"] == 0
    assert score_extraction([F("u1", "dislike", "Dislikes jazz")], truth)["all"]["tp"] == 0


def test_near_wordings_match_and_unrelated_ones_do_not() -> None:
    truth = [F("u1", "preference", "Likes hiking"), F("u1", "relationship", "Has a dog named Max")]
    guesses = [
        F("u1", "preference", "Likes hiking and camping"),
        F("u1", "relationship", "Has a cat named Max"),
    ]
    scores = score_extraction(guesses, truth)
    assert scores["preference"]["tp"] == 1
    assert scores["relationship"]["tp"] == 0


def test_matching_is_one_to_one_and_repeats_count_once() -> None:
    truth = [F("u1", "preference", "Likes tea")]
    guesses = [
        F("u1", "preference", "Likes tea"),
        F("u1", "preference", "likes tea"),
        F("u1", "preference", "Likes green tea"),
    ]
    scores = score_extraction(guesses, truth)["preference"]
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 1, 0)
    assert scores["precision"] == 0.5 and scores["recall"] == 1.0


def test_episodes_are_not_scored_and_empty_kinds_score_one() -> None:
    scores = score_extraction([F("u1", "episode", "hello")], [])
    assert scores["all"]["tp"] + scores["all"]["fp"] + scores["all"]["fn"] == 0
    assert scores["intent"]["precision"] == scores["intent"]["recall"] == 1.0


def test_valid_from_is_checked_on_matched_facts() -> None:
    truth = [F("u1", "life_event", "Had a baby", valid_from=T - timedelta(days=2))]
    close = [F("u1", "life_event", "Had a baby", valid_from=T - timedelta(days=3))]
    far = [F("u1", "life_event", "Had a baby", valid_from=T)]
    assert score_extraction(close, truth)["life_event"]["time_ok"] == 1
    strict = score_extraction(far, truth, time_tolerance=timedelta(days=1))
    assert strict["life_event"]["time_ok"] == 0


# --- the model's path, scored with the same truth as the rules ----------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[TextSignal], list[Fact]]:
    """The small generated set's text signals as ingest stores them, and the facts planted in
    messages and reviews (what an extractor reads; search bursts are memory.behaviour's)."""
    directory: Path = tmp_path_factory.mktemp("extraction")
    paths = write_dataset(directory / "data", GenerateConfig.small())
    settings = Settings(engram_home=directory / "home", milvus_uri=None, redis_url=None)
    run_ingest(settings, paths.signals)
    con = duck.connect(settings)
    signals = [s for batch in text_signal_batches(event_store.scan(con, settings)) for s in batch]
    con.close()
    stated = [f for f in load_truth(paths.truth).facts if f.source in ("message", "review")]
    return signals, stated


def facts(memories: list[Memory]) -> list[Memory]:
    return [memory for memory in memories if memory.kind != "episode"]


def test_a_model_that_answers_the_truth_scores_one(
    generated: tuple[list[TextSignal], list[Fact]],
) -> None:
    signals, stated = generated
    with ChatStub(truth_answers(signals, stated)) as stub:
        model = LLMExtractor(LLMConfig(base_url=stub.url, model="truth", concurrency=4))
        memories, report = model.extract_reported(signals)
    assert report.by_rules == 0 and report.by_model == len(stub.requests) > 100
    scores = score_extraction(facts(memories), stated)["all"]
    assert scores["tp"] == len(stated) > 50
    assert scores["precision"] == scores["recall"] == 1.0
    assert scores["time_ok"] == scores["time_checked"]


def test_a_model_that_answers_the_rules_facts_scores_as_the_rules(
    generated: tuple[list[TextSignal], list[Fact]],
) -> None:
    signals, stated = generated
    rules = score_extraction(facts(RuleExtractor().extract(signals)), stated)
    with ChatStub(rule_answers()) as stub:
        model = LLMExtractor(LLMConfig(base_url=stub.url, model="rules", concurrency=4))
        through_model = score_extraction(facts(model.extract(signals)), stated)
    for kind, bucket in rules.items():
        for measure in ("tp", "fp", "fn", "precision", "recall"):
            assert through_model[kind][measure] == bucket[measure], (kind, measure)
