"""The synthetic dataset generator: what it writes is what its truth says it wrote.

The contract checks here are a small reference validator written from core/contract.py, not
the pipeline's normalizer, so the generator and the normalizer are checked independently.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.contract import (
    CATALOG_SCHEMA,
    EPOCH_MAX_SECONDS,
    EPOCH_MIN_SECONDS,
    ID_PATTERN,
    ITEM_TYPES,
    RATING_MAX,
    RATING_MIN,
    SIGNAL_TYPES,
    SPEAKERS,
    TEXT_MAX_CHARS,
    TEXT_TYPES,
)
from core.errors import InvalidInputError
from pipelines.generate import (
    MALFORMED_FIELDS,
    MALFORMED_KINDS,
    DatasetPaths,
    GenerateConfig,
    Truth,
    load_truth,
    write_dataset,
)
from pipelines.generate.lexicon import CATEGORIES
from pipelines.generate.pii import card_number, passes_luhn

UTC_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
# Words that date something; only the statements of dated facts may hold them.
TIME_WORDS = re.compile(
    r"\b(yesterday|tomorrow|today|tonight|ago|weekend|(last|next|this) (week|month|year|spring|"
    r"summer|autumn|fall|winter)|january|february|march|april|june|july|august|september|"
    r"october|november|december|monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
    re.IGNORECASE,
)


def parse_ts(value: object) -> datetime | None:
    """A contract timestamp as a UTC instant, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not EPOCH_MIN_SECONDS <= value <= EPOCH_MAX_SECONDS:
            return None
        return UTC_EPOCH + timedelta(seconds=value)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def defects(line: str) -> set[str]:
    """Fields of one JSONL line that break contract v1 ("$": the line as a whole)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return {"$"}
    if not isinstance(record, dict):
        return {"$"}
    bad = {
        key
        for key in ("event_id", "user_id")
        if not (isinstance(record.get(key), str) and re.fullmatch(ID_PATTERN, record[key]))
    }
    if parse_ts(record.get("ts")) is None:
        bad.add("ts")
    kind = record.get("type")
    if kind not in SIGNAL_TYPES:
        bad.add("type")
    item = record.get("item_id")
    if kind in ITEM_TYPES and not (isinstance(item, str) and re.fullmatch(ID_PATTERN, item)):
        bad.add("item_id")
    if "value" in record:
        value = record["value"]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (number and RATING_MIN <= value <= RATING_MAX):
            bad.add("value")
    text = record.get("text")
    if kind in TEXT_TYPES and not (isinstance(text, str) and 0 < len(text) <= TEXT_MAX_CHARS):
        bad.add("text")
    context = record.get("context")
    if "context" in record and not (
        isinstance(context, dict) and context.get("speaker", "user") in SPEAKERS
    ):
        bad.add("context")
    return bad


class Generated:
    """One generated dataset, read back."""

    def __init__(self, paths: DatasetPaths) -> None:
        self.paths = paths
        self.truth: Truth = load_truth(paths.truth)
        self.raw = paths.signals.read_bytes() if paths.signals.suffix == ".jsonl" else b""
        self.lines = self.raw.decode().split("\n")[:-1]
        malformed = {entry.position for entry in self.truth.malformed}
        self.events: dict[str, dict[str, Any]] = {}
        for position, line in enumerate(self.lines):
            if position not in malformed:
                record = json.loads(line)
                self.events.setdefault(record["event_id"], record)
        self.queries = [json.loads(line) for line in paths.queries.read_text().splitlines()]
        self.catalog = [json.loads(line) for line in paths.catalog.read_text().splitlines()]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """The small preset, JSONL."""
    return Generated(write_dataset(tmp_path_factory.mktemp("small"), GenerateConfig.small()))


def test_the_same_seed_writes_the_same_bytes(small: Generated, tmp_path: Path) -> None:
    again = write_dataset(tmp_path / "again", GenerateConfig.small())
    for name in ("signals", "catalog", "truth", "queries"):
        assert getattr(again, name).read_bytes() == getattr(small.paths, name).read_bytes(), name


def test_another_seed_writes_other_events(small: Generated, tmp_path: Path) -> None:
    other = write_dataset(tmp_path / "other", GenerateConfig.small().replace(seed=8))
    assert other.signals.read_bytes() != small.raw
    other_ids = set(re.findall(r'"event_id":"([^"]+)"', other.signals.read_text()))
    assert not other_ids & set(small.events), "event ids carry the seed"


def test_writing_in_chunks_gives_the_same_file(tmp_path: Path) -> None:
    config = GenerateConfig.small().replace(users=30)
    whole = write_dataset(tmp_path / "whole", config)
    chunked = write_dataset(tmp_path / "chunked", config.replace(chunk_rows=500))
    assert chunked.signals.read_bytes() == whole.signals.read_bytes()


def test_every_line_but_the_malformed_ones_keeps_the_contract(small: Generated) -> None:
    malformed = {entry.position: entry for entry in small.truth.malformed}
    for position, line in enumerate(small.lines):
        expected = {malformed[position].field} if position in malformed else set()
        assert defects(line) == expected, (position, line[:200])


def test_every_malformed_kind_is_planted_with_its_field(small: Generated) -> None:
    planted = {(entry.kind, entry.field) for entry in small.truth.malformed}
    assert planted == set(MALFORMED_FIELDS.items())
    assert set(MALFORMED_KINDS) == set(small.truth.counts.malformed)


def test_malformed_records_look_like_the_intended_defect(small: Generated) -> None:
    for entry in small.truth.malformed:
        line = small.lines[entry.position]
        if entry.kind == "ts_without_offset":
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", json.loads(line)["ts"])
        elif entry.kind == "ts_milliseconds":
            assert json.loads(line)["ts"] > EPOCH_MAX_SECONDS
        elif entry.kind == "text_too_long":
            assert len(json.loads(line)["text"]) > TEXT_MAX_CHARS
        elif entry.kind == "bad_context":
            assert isinstance(json.loads(line)["context"], str)
        elif entry.kind == "not_an_object":
            assert not isinstance(json.loads(line), dict)


def test_counts_are_what_the_file_holds(small: Generated) -> None:
    counts = small.truth.counts
    assert counts.lines == len(small.lines)
    assert counts.valid_unique == len(small.events) == GenerateConfig.small().total_events
    by_type = Counter(event["type"] for event in small.events.values())
    assert counts.by_type == {name: by_type[name] for name in SIGNAL_TYPES}
    assert sum(counts.malformed.values()) == len(small.truth.malformed)
    assert counts.malformed == dict(Counter(entry.kind for entry in small.truth.malformed))
    valid_lines = len(small.lines) - len(small.truth.malformed)
    assert counts.duplicates == len(small.truth.duplicates) == valid_lines - len(small.events)
    assert counts.duplicates > 0


def test_duplicates_repeat_an_earlier_line_verbatim(small: Generated) -> None:
    for duplicate in small.truth.duplicates:
        assert duplicate.original_position < duplicate.position
        assert small.lines[duplicate.position] == small.lines[duplicate.original_position]
        assert json.loads(small.lines[duplicate.position])["event_id"] == duplicate.event_id


def test_timestamps_mix_formats_and_stay_inside_the_window(small: Generated) -> None:
    shapes: Counter[str] = Counter()
    for event in small.events.values():
        ts = event["ts"]
        if isinstance(ts, int):
            shapes["epoch_int"] += 1
        elif isinstance(ts, float):
            shapes["epoch_float"] += 1
        elif ts.endswith("Z"):
            shapes["z"] += 1
        else:
            shapes[ts[-6]] += 1  # "+" or "-"
        moment = parse_ts(ts)
        assert moment is not None and small.truth.start <= moment < small.truth.end
    assert set(shapes) == {"epoch_int", "epoch_float", "z", "+", "-"}


def test_events_carry_their_context(small: Generated) -> None:
    owners: dict[str, str] = {}
    for event in small.events.values():
        if event["type"] == "message":
            context = event["context"]
            assert context["speaker"] in ("user", "assistant")
            assert context["session_id"].startswith("chat-")
            assert owners.setdefault(context["session_id"], event["user_id"]) == event["user_id"]


def test_facts_are_stated_by_their_user(small: Generated) -> None:
    kinds = Counter(fact.kind for fact in small.truth.facts)
    assert set(kinds) == {
        "preference",
        "dislike",
        "attribute",
        "relationship",
        "life_event",
        "intent",
    }
    for fact in small.truth.facts:
        assert fact.stated_event_ids
        stated = [small.events[event_id] for event_id in fact.stated_event_ids]
        for event in stated:
            assert event["user_id"] == fact.user_id
            assert event["type"] in ("message", "search", "review")
            if event["type"] == "message":
                assert event["context"]["speaker"] == "user"
        assert parse_ts(stated[0]["ts"]) == fact.stated_at
        assert fact.speaker == "user"


def test_assistant_distractors_and_user_non_facts(small: Generated) -> None:
    assert small.truth.distractors and small.truth.non_facts
    for mention in small.truth.distractors:
        event = small.events[mention.event_id]
        assert event["context"]["speaker"] == "assistant" and event["text"] == mention.text
    for mention in small.truth.non_facts:
        event = small.events[mention.event_id]
        assert event["context"]["speaker"] == "user" and event["text"] == mention.text
        assert mention.reason in ("hypothetical", "third_party", "question")
    stated = {fact.text for fact in small.truth.facts}
    for mention in small.truth.distractors:
        user_facts = {fact.text for fact in small.truth.facts_of(mention.user_id)}
        assert not set(mention.mentions) & user_facts, "a distractor never names the user's fact"
    assert stated


def test_relative_times_resolve_on_the_right_side_of_the_statement(small: Generated) -> None:
    dated = [fact for fact in small.truth.facts if fact.time_phrase is not None]
    assert {fact.time_direction for fact in dated} == {"past", "future"}
    for fact in dated:
        first = small.events[fact.stated_event_ids[0]]
        assert fact.time_phrase is not None and fact.time_phrase.lower() in first["text"].lower()
        if fact.time_direction == "past":
            assert fact.valid_from < fact.stated_at
        else:
            assert fact.valid_from > fact.stated_at
        assert fact.valid_from_tolerance_days >= 1


def test_only_dated_statements_mention_a_time(small: Generated) -> None:
    dated = {fact.stated_event_ids[0] for fact in small.truth.facts if fact.time_phrase}
    for event_id, event in small.events.items():
        if event["type"] == "message" and event_id not in dated:
            assert not TIME_WORDS.search(event["text"]), event["text"]


def test_later_facts_of_a_slot_supersede_earlier_ones(small: Generated) -> None:
    by_id = {fact.fact_id: fact for fact in small.truth.facts}
    superseded = [fact for fact in small.truth.facts if fact.superseded_by]
    assert any(fact.slot == "location" for fact in superseded)
    for fact in superseded:
        later = by_id[fact.superseded_by]  # type: ignore[index]
        assert (later.user_id, later.slot) == (fact.user_id, fact.slot)
        assert fact.valid_to == later.valid_from
        assert fact.valid_to > max(fact.valid_from, fact.stated_at)
    for fact in small.truth.facts:
        if fact.slot is None:
            assert fact.valid_to is None


def test_intents_expire_within_two_weeks(small: Generated) -> None:
    intents = [fact for fact in small.truth.facts if fact.kind == "intent"]
    assert {fact.source for fact in intents} == {"message", "search"}
    for fact in intents:
        last = parse_ts(small.events[fact.stated_event_ids[-1]]["ts"])
        assert last is not None and fact.expires_at is not None
        assert timedelta(days=7) <= fact.expires_at - last <= timedelta(days=14)
    assert all(fact.expires_at is None for fact in small.truth.facts if fact.kind != "intent")


def test_pii_is_planted_verbatim(small: Generated) -> None:
    kinds = {entry.kind for entry in small.truth.pii}
    assert kinds == {"email", "phone", "card"}
    for entry in small.truth.pii:
        assert entry.value in small.events[entry.event_id]["text"]
        assert entry.value.encode() in small.raw
        if entry.kind == "card":
            assert passes_luhn(entry.value)
            assert re.fullmatch(r"[\d -]+", entry.value)


def test_one_query_per_fact_worded_apart_from_it(small: Generated) -> None:
    facts = {fact.fact_id: fact for fact in small.truth.facts}
    assert sorted(query["fact_id"] for query in small.queries) == sorted(facts)
    for query in small.queries:
        fact = facts[query["fact_id"]]
        assert query["user_id"] == fact.user_id and query["k"] == 10
        assert query["relevant_event_ids"] == list(fact.stated_event_ids)
        if fact.value is not None:
            assert fact.value.lower() not in query["query"].lower()
        as_of = datetime.fromisoformat(query["as_of"])
        assert as_of >= fact.stated_at and as_of >= fact.valid_from
        assert fact.valid_to is None or as_of < fact.valid_to
        assert fact.expires_at is None or as_of < fact.expires_at


def test_behaviour_follows_the_planted_tastes(small: Generated) -> None:
    category = {item["item_id"]: item["category"] for item in small.catalog}
    users = {user.user_id: user for user in small.truth.users}
    for user in users.values():
        assert 2 <= len(user.tastes) <= 4 and 1 <= len(user.dislikes) <= 2
        assert sum(user.tastes.values()) == pytest.approx(1.0, abs=1e-3)
        assert not set(user.tastes) & set(user.dislikes)
    in_taste = total = 0
    ratings: dict[str, list[float]] = {"liked": [], "disliked": []}
    for event in small.events.values():
        if event["type"] in ("view", "click", "add_to_cart", "purchase", "rate"):
            user, item_category = users[event["user_id"]], category[event["item_id"]]
            total += 1
            in_taste += item_category in user.tastes
            if event["type"] == "rate":
                if item_category in user.tastes:
                    ratings["liked"].append(event["value"])
                elif item_category in user.dislikes:
                    ratings["disliked"].append(event["value"])
    assert in_taste / total > 0.75
    liked = sum(ratings["liked"]) / len(ratings["liked"])
    assert liked > 3.5 and all(value in [x / 2 for x in range(1, 11)] for value in ratings["liked"])
    if ratings["disliked"]:
        assert sum(ratings["disliked"]) / len(ratings["disliked"]) < liked - 1.0


def test_the_catalog_covers_every_item_and_category(small: Generated) -> None:
    assert [set(item) for item in small.catalog[:1]] == [set(CATALOG_SCHEMA.names)]
    item_ids = {item["item_id"] for item in small.catalog}
    assert len(item_ids) == len(small.catalog)
    assert 16 <= len({item["category"] for item in small.catalog}) <= 20
    for event in small.events.values():
        assert event.get("item_id") is None or event["item_id"] in item_ids


def test_preference_values_name_one_category() -> None:
    likes = [like for category in CATEGORIES for like in category.likes]
    assert len(likes) == len(set(likes))


def test_parquet_holds_the_same_valid_records(small: Generated, tmp_path: Path) -> None:
    paths = write_dataset(tmp_path, GenerateConfig.small().replace(format="parquet"))
    truth = load_truth(paths.truth)
    table = pq.read_table(paths.signals)
    assert table.num_rows == truth.counts.lines == len(small.lines) - len(small.truth.malformed)
    assert truth.malformed == () and truth.counts.malformed == {}
    assert truth.facts == small.truth.facts
    rows = table.to_pylist()
    assert [row["event_id"] for row in rows] == [
        json.loads(line)["event_id"]
        for position, line in enumerate(small.lines)
        if position not in {entry.position for entry in small.truth.malformed}
    ]
    for row in rows[:500]:
        event = small.events[row["event_id"]]
        assert row["ts"] == parse_ts(event["ts"])
        assert row["item_id"] == event.get("item_id") and row["text"] == event.get("text")
        assert row["value"] == event.get("value")
        context = event.get("context")
        assert (json.loads(row["context"]) if row["context"] else None) == context


def test_bench_preset_scales_with_the_events_asked_for(tmp_path: Path) -> None:
    config = GenerateConfig.bench(events=20_000)
    assert config.users * config.events_per_user == 20_000
    truth = load_truth(write_dataset(tmp_path, config).truth)
    assert truth.counts.valid_unique == 20_000
    assert truth.counts.by_type["message"] < 2_000


def test_config_rejects_impossible_values() -> None:
    with pytest.raises(InvalidInputError) as error:
        GenerateConfig(users=0)
    assert error.value.field == "users"
    with pytest.raises(InvalidInputError):
        GenerateConfig.small().replace(malformed_rate=0.9)
    with pytest.raises(InvalidInputError):
        GenerateConfig.small().replace(format="csv")


def test_card_numbers_pass_luhn_in_every_grouping() -> None:
    import random

    rng = random.Random(3)
    for _ in range(200):
        assert passes_luhn(card_number(rng))
    assert passes_luhn("4111 1111 1111 1111") and not passes_luhn("4111-1111-1111-1112")
    assert passes_luhn("79927398713")


@given(st.text(alphabet="0123456789", min_size=1, max_size=18))
def test_exactly_one_check_digit_completes_a_number(body: str) -> None:
    assert sum(passes_luhn(body + str(digit)) for digit in range(10)) == 1
