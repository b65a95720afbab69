"""Memories from behaviour: lasting category tastes and bursts of searches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from memory.behaviour import AffinityThresholds, affinity_memories, search_burst_intents
from memory.extract import TextSignal

AS_OF = datetime(2026, 10, 31, tzinfo=UTC)
FIRST = AS_OF - timedelta(days=60)
LAST = AS_OF - timedelta(days=1)


def likes(**overrides: object) -> list[str]:
    arguments: dict[str, object] = {
        "events_all": 80,
        "first_event_ts": FIRST,
        "last_event_ts": LAST,
        "as_of": AS_OF,
    }
    arguments.update(overrides)
    memories = affinity_memories(
        "u1",
        ["outdoor", "cooking", "books"],
        [0.52, 0.36, 0.08],
        **arguments,  # type: ignore[arg-type]
    )
    return [memory.text for memory in memories]


def test_strong_lasting_categories_become_preferences() -> None:
    assert likes() == ["Likes outdoor", "Likes cooking"]


def test_a_preference_from_behaviour_is_well_formed() -> None:
    [memory, _] = affinity_memories(
        "u1",
        ["outdoor", "cooking"],
        [0.5, 0.4],
        events_all=80,
        first_event_ts=FIRST,
        last_event_ts=LAST,
        as_of=AS_OF,
    )
    assert memory.kind == "preference" and memory.slot is None
    assert memory.valid_from == FIRST and memory.created_at == AS_OF
    assert 0.5 < memory.confidence <= 0.95


def test_short_or_thin_or_stale_histories_are_not_tastes() -> None:
    assert likes(first_event_ts=LAST - timedelta(days=13)) == []
    assert likes(events_all=19) == []
    assert likes(as_of=LAST + timedelta(days=91)) == []


def test_a_taste_must_have_been_strong_before_too_when_that_is_known() -> None:
    assert likes(previous_shares={"outdoor": 0.4, "cooking": 0.1}) == ["Likes outdoor"]


def test_thresholds_can_be_tuned() -> None:
    assert likes(thresholds=AffinityThresholds(min_share=0.5)) == ["Likes outdoor"]


def test_the_same_taste_keeps_its_id_from_run_to_run() -> None:
    def ids(as_of: datetime) -> list[str]:
        memories = affinity_memories(
            "u1",
            ["outdoor"],
            [0.6],
            events_all=50,
            first_event_ts=FIRST,
            last_event_ts=LAST,
            as_of=as_of,
        )
        return [memory.memory_id for memory in memories]

    assert ids(AS_OF) == ids(AS_OF + timedelta(days=1))


START = datetime(2026, 5, 1, 18, 0, tzinfo=UTC)


def search(
    event_id: str, minutes: float, text: str, user: str = "u1", speaker: str | None = None
) -> TextSignal:
    return TextSignal(event_id, user, START + timedelta(minutes=minutes), "search", text, speaker)


def test_three_related_searches_within_two_hours_are_an_intent_that_expires() -> None:
    searches = [
        search("s1", 0, "waterproof tent"),
        search("s2", 20, "tent footprint"),
        search("s3", 50, "2 person tents"),
        search("s4", 60 * 24, "tent"),
    ]
    [intent] = search_burst_intents(searches)
    assert intent.kind == "intent"
    assert intent.text == "Wants to buy a tent"
    assert intent.source_event_ids == ("s1", "s2", "s3")
    assert intent.valid_from == searches[0].ts
    assert intent.expires_at == searches[2].ts + timedelta(days=10)


def test_the_phrase_most_searches_share_names_the_burst() -> None:
    searches = [
        search("s1", 0, "road bike carbon"),
        search("s2", 5, "endurance road bike"),
        search("s3", 9, "road bike"),
        search("s4", 12, "bike size guide"),
    ]
    [intent] = search_burst_intents(searches)
    assert intent.text == "Wants to buy a bike"
    shoes = [
        search("s1", 0, "running shoes"),
        search("s2", 5, "trail running shoes"),
        search("s3", 9, "shoes size 10"),
    ]
    assert [m.text for m in search_burst_intents(shoes)] == ["Wants to buy shoes"]


def test_unrelated_searches_close_together_are_no_intent() -> None:
    searches = [search("s1", 0, "tent"), search("s2", 20, "novels"), search("s3", 50, "blender")]
    assert search_burst_intents(searches) == []


def test_scattered_or_few_searches_are_no_burst() -> None:
    assert search_burst_intents([search("s1", 0, "tent"), search("s2", 30, "stove")]) == []
    spread = [search(f"s{i}", i * 90, "tent") for i in range(5)]
    assert search_burst_intents(spread) == []


def test_one_short_query_repeated_is_a_burst_and_a_long_one_is_not() -> None:
    [intent] = search_burst_intents([search(f"s{i}", i * 10, "Tent") for i in range(3)])
    assert intent.text == "Wants to buy a tent"
    rambling = "cheap light waterproof tent for two"
    assert search_burst_intents([search(f"s{i}", i * 10, rambling) for i in range(3)]) == []


def test_bursts_are_per_user_and_only_the_users_own_searches() -> None:
    searches = [
        search("a1", 0, "tent", "u1"),
        search("b1", 1, "tent", "u2"),
        search("a2", 2, "tent poles", "u1"),
        search("b2", 3, "tent poles", "u2"),
        search("a3", 4, "tent pegs", "u1"),
        search("b3", 5, "tent", "u2", "assistant"),
    ]
    [intent] = search_burst_intents(searches)
    assert intent.user_id == "u1"


def test_a_topic_lookup_splits_and_names_bursts() -> None:
    topics = {"tent": "outdoor", "tarp": "outdoor", "rope": "outdoor", "novel": "books"}
    searches = [
        search("s1", 0, "tent"),
        search("s2", 1, "novel"),
        search("s3", 2, "tarp"),
        search("s4", 3, "rope"),
        search("s5", 4, "xyz"),
    ]
    [intent] = search_burst_intents(searches, topic_of=topics.get)
    assert intent.text == "Is shopping for outdoor: tent, tarp, rope"
    assert intent.source_event_ids == ("s1", "s3", "s4")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=600), max_size=30))
def test_bursts_hold_enough_searches_within_the_window_and_never_share_one(
    minutes: list[int],
) -> None:
    searches = [search(f"s{i}", m, f"query {i % 4}") for i, m in enumerate(minutes)]
    # Every query shares "query", so bursts are decided by time alone here.
    by_id = {signal.event_id: signal for signal in searches}
    seen: set[str] = set()
    for intent in search_burst_intents(searches, window=timedelta(hours=1), min_searches=3):
        members = [by_id[event_id] for event_id in intent.source_event_ids]
        assert len(members) >= 3
        assert max(s.ts for s in members) - min(s.ts for s in members) <= timedelta(hours=1)
        assert seen.isdisjoint(intent.source_event_ids)
        seen.update(intent.source_event_ids)
    # Brute force: if any hour holds 3 searches, at least one burst was found.
    times = sorted(minutes)
    dense = any(times[i + 2] - times[i] <= 60 for i in range(len(times) - 2))
    assert bool(seen) == dense
