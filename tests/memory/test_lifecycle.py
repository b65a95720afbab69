"""Lifecycle decisions: merging, supersession, expiry and decay, on plain records and vectors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from memory.lifecycle import (
    CONFIDENCE_CAP,
    FACT_NEAR_DUPLICATE,
    LIVE_FLOOR,
    WEAK_HALF_LIFE,
    Plan,
    Vectored,
    effective_confidence,
    is_live,
    plan,
    unseen,
)
from memory.records import Memory, MemoryKind

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIM = 8


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def vector(angle: float = 0.0, axis: int = 1) -> np.ndarray:
    """A unit vector at `angle` radians from e0 towards e_axis: cosine to e0 is cos(angle)."""
    out = np.zeros(DIM, dtype=np.float32)
    out[0], out[axis] = np.cos(angle), np.sin(angle)
    return out


def memory(
    memory_id: str,
    text: str,
    *,
    kind: MemoryKind = "preference",
    at: float = 0,
    valid_from: float | None = None,
    sources: Sequence[str] | None = None,
    confidence: float = 0.8,
    slot: str | None = None,
    value: str | None = None,
    expires: float | None = None,
    user: str = "u1",
) -> Memory:
    return Memory(
        memory_id=memory_id,
        user_id=user,
        kind=kind,
        text=text,
        confidence=confidence,
        valid_from=day(at if valid_from is None else valid_from),
        created_at=day(at),
        updated_at=day(at),
        source_event_ids=tuple(sources if sources is not None else [f"e-{memory_id}"]),
        slot=slot,
        value=value,
        expires_at=None if expires is None else day(expires),
    )


def v(item: Memory, vec: np.ndarray | None = None) -> Vectored:
    return Vectored(item, vector() if vec is None else vec)


def apply(stored: list[Vectored], changes: Plan) -> list[Vectored]:
    """The stored set after writing a plan, as the store would hold it."""
    kept = {item.memory.memory_id: item for item in stored}
    for memory_id in changes.replacing:
        del kept[memory_id]
    for item in changes.writes:
        kept[item.memory.memory_id] = item
    return list(kept.values())


def by_id(items: Sequence[Vectored]) -> dict[str, Memory]:
    return {item.memory.memory_id: item.memory for item in items}


# --- merging -------------------------------------------------------------------------------------


def test_a_fact_stated_again_merges_unions_provenance_and_raises_confidence() -> None:
    first = memory("m1", "Likes jazz", at=0, confidence=0.8)
    again = memory("m2", "likes  JAZZ", at=5, confidence=0.7)
    changes = plan([v(again)], [v(first)])
    assert (changes.inserted, changes.merged) == (0, 1)
    assert changes.replacing == ["m1"]
    [written] = [item.memory for item in changes.writes]
    assert written.memory_id == "m1" and written.text == "Likes jazz"
    assert written.source_event_ids == ("e-m1", "e-m2")
    assert written.confidence == round(1 - 0.2 * 0.3, 6)  # noisy-OR of 0.8 and 0.7
    assert (written.valid_from, written.created_at, written.updated_at) == (day(0), day(0), day(5))


def test_confidence_is_capped_and_never_lowered() -> None:
    sure = memory("m1", "Likes jazz", confidence=0.98)
    again = memory("m2", "Likes jazz", at=1, confidence=0.98)
    [written] = plan([v(again)], [v(sure)]).writes
    assert written.memory.confidence == CONFIDENCE_CAP
    episode = memory("m3", "hi", kind="episode", confidence=1.0)
    [written] = plan([v(memory("m4", "hi", kind="episode", at=1))], [v(episode)]).writes
    assert written.memory.confidence == 1.0


def test_replaying_the_same_evidence_changes_nothing() -> None:
    stored = memory("m1", "Likes jazz", sources=["e1"])
    replay = memory("m1", "Likes jazz", sources=["e1"])
    assert unseen([replay], [stored]) == []
    changes = plan([v(replay)], [v(stored)])
    assert (changes.writes, changes.unchanged) == ([], 1)
    # Another fact of the same event, already merged into a slot fact, is known too.
    diet = memory("m2", "Is no longer vegan", kind="attribute", slot="diet", value="omnivore")
    same_event = memory(
        "m3", "Eats meat", kind="attribute", slot="diet", value="omnivore", sources=["e-m2"]
    )
    assert unseen([same_event], [diet]) == []


def test_near_duplicate_facts_merge_above_the_threshold_only() -> None:
    close = np.arccos(FACT_NEAR_DUPLICATE + 0.01)
    apart = np.arccos(FACT_NEAR_DUPLICATE - 0.05)
    stored = v(memory("m1", "Wants to buy a stroller", kind="intent", expires=30))
    near = v(
        memory("m2", "Wants to get a stroller", kind="intent", at=1, expires=31), vector(close)
    )
    changes = plan([near], [stored])
    assert changes.merged == 1 and changes.writes[0].memory.expires_at == day(31)
    other = v(memory("m3", "Sister is Leo", kind="relationship", at=1), vector(apart))
    brother = v(memory("m4", "Brother is Leo", kind="relationship"))
    assert plan([other], [brother]).inserted == 1
    # Same text but another kind is another memory.
    dislike = v(memory("m5", "Likes jazz", kind="dislike", at=1))
    assert plan([dislike], [v(memory("m6", "Likes jazz"))]).inserted == 1


def test_episodes_merge_on_identical_text_only() -> None:
    stored = v(memory("m1", "thanks, bye!", kind="episode"))
    same = v(memory("m2", "Thanks,  bye!", kind="episode", at=2))
    similar = v(memory("m3", "thanks, bye :)", kind="episode", at=2), vector(0.01))
    changes = plan([same, similar], [stored])
    assert (changes.merged, changes.inserted) == (1, 1)
    assert by_id(changes.writes)["m1"].source_event_ids == ("e-m1", "e-m2")


def test_an_expired_intent_does_not_absorb_a_new_one() -> None:
    lapsed = v(memory("m1", "Wants to buy a tent", kind="intent", at=0, expires=14))
    later = v(memory("m2", "Wants to buy a tent", kind="intent", at=40, expires=54))
    changes = plan([later], [lapsed])
    assert changes.inserted == 1 and changes.replacing == []


def test_memories_of_other_users_never_merge() -> None:
    mine = v(memory("m1", "Likes jazz", user="u1"))
    theirs = v(memory("m2", "Likes jazz", user="u2", at=1))
    assert plan([theirs], [mine]).inserted == 1


def test_a_scope_is_a_space_of_its_own_and_placements_are_reported() -> None:
    mine = v(memory("m1", "Likes jazz"))
    scoped = v(memory("m2", "Likes jazz", at=1).evolve(scope="agent-1"))
    changes = plan([scoped], [mine])
    assert changes.inserted == 1 and changes.placed == {"m2": "m2"}
    again = v(memory("m3", "likes jazz", at=2).evolve(scope="agent-1"))
    changes = plan([again], [mine, scoped])
    assert changes.merged == 1 and changes.placed == {"m3": "m2"}  # the scoped one, not m1
    # A slot's chain is per scope: another scope's value supersedes nothing here.
    boston = location("m4", "Boston", at=0)
    seattle = v(location("m5", "Seattle", at=5).memory.evolve(scope="agent-1"))
    changes = plan([seattle], [boston])
    assert (changes.inserted, changes.superseded, changes.replacing) == (1, 0, [])


# --- supersession ------------------------------------------------------------------------------


def location(memory_id: str, city: str, at: float, valid_from: float | None = None) -> Vectored:
    return v(
        memory(
            memory_id,
            f"Lives in {city}",
            kind="attribute",
            at=at,
            valid_from=valid_from,
            slot="location",
            value=city,
        )
    )


def test_a_new_value_closes_the_old_fact_instead_of_deleting_it() -> None:
    denver = location("m1", "Denver", at=0)
    seattle = location("m2", "Seattle", at=30, valid_from=25)
    changes = plan([seattle], [denver])
    assert (changes.inserted, changes.superseded) == (1, 1)
    held = by_id(apply([denver], changes))
    assert held["m1"].valid_to == day(25) and held["m1"].superseded_by == "m2"
    assert held["m2"].valid_to is None
    assert held["m1"].is_true_at(day(20)) and not held["m1"].is_true_at(day(26))
    assert held["m2"].is_true_at(day(31)) and not held["m2"].is_true_at(day(26))  # not yet known


def test_an_older_fact_arriving_late_is_inserted_already_closed() -> None:
    seattle = location("m2", "Seattle", at=30)
    denver = location("m1", "Denver", at=40, valid_from=0)  # told later: "I used to live in..."
    changes = plan([denver], [seattle])
    held = by_id(apply([seattle], changes))
    assert held["m1"].valid_to == day(30) and held["m1"].superseded_by == "m2"
    assert held["m2"].valid_to is None and changes.replacing == []


def test_a_value_known_to_start_earlier_extends_the_following_fact() -> None:
    denver, seattle = location("m1", "Denver", at=0), location("m2", "Seattle", at=30)
    stored = apply([denver], plan([seattle], [denver]))
    earlier = location("m3", "Seattle", at=35, valid_from=20)  # "we moved there in January"
    held = by_id(apply(stored, plan([earlier], stored)))
    assert "m3" not in held
    assert held["m2"].valid_from == day(20) and held["m1"].valid_to == day(20)
    assert held["m2"].source_event_ids == ("e-m2", "e-m3")


def test_restating_the_current_value_merges_and_takes_the_newer_wording() -> None:
    moved = v(
        memory(
            "m1",
            "Moving to Kyoto",
            kind="life_event",
            at=0,
            valid_from=10,
            slot="location",
            value="Kyoto",
        )
    )
    lives = location("m2", "Kyoto", at=20)
    [written] = plan([lives], [moved]).writes
    assert written.memory.memory_id == "m1"
    assert (written.memory.kind, written.memory.text) == ("attribute", "Lives in Kyoto")


def slot_facts(values: str) -> st.SearchStrategy[list[tuple[str, int]]]:
    """(value, valid_from day) pairs with distinct days."""
    return st.lists(
        st.tuples(st.sampled_from(values), st.integers(0, 200)),
        min_size=1,
        max_size=8,
        unique_by=lambda fact: fact[1],
    )


def replay(facts: list[tuple[str, int]], arrivals: list[int], one_batch: bool) -> list[Vectored]:
    news = [
        location(f"m{i}", facts[i][0], at=300 + order, valid_from=facts[i][1])
        for order, i in enumerate(arrivals)
    ]
    stored: list[Vectored] = []
    if one_batch:
        return apply(stored, plan(news, stored))
    for item in news:
        stored = apply(stored, plan([item], stored))
    return stored


def assert_latest_value_holds(facts: list[tuple[str, int]], stored: list[Vectored]) -> None:
    """The brute-force reference: at time t the slot's value is that of the fact with the
    latest valid_from <= t, and exactly one memory of the slot is valid then."""
    for t in sorted({d for _, d in facts} | {d + 0.5 for _, d in facts} | {-1}):
        moment = day(t)
        valid = [
            item.memory
            for item in stored
            if item.memory.valid_from <= moment
            and (item.memory.valid_to is None or moment < item.memory.valid_to)
        ]
        earlier = [fact for fact in facts if fact[1] <= t]
        want = [max(earlier, key=lambda fact: fact[1])[0]] if earlier else []
        assert [m.value for m in valid] == want


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 200), min_size=1, max_size=8, unique=True),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_a_slot_holds_the_latest_value_at_every_time_in_any_arrival_order(
    days: list[int], random: object, one_batch: bool
) -> None:
    facts = [(f"city{i}", d) for i, d in enumerate(days)]  # every statement a new value
    arrivals = list(range(len(facts)))
    random.shuffle(arrivals)  # type: ignore[attr-defined]
    assert_latest_value_holds(facts, replay(facts, arrivals, one_batch))


@settings(max_examples=60, deadline=None)
@given(slot_facts("ABC"), st.booleans())
def test_restated_values_merge_and_the_latest_value_holds_when_told_in_order(
    facts: list[tuple[str, int]], one_batch: bool
) -> None:
    arrivals = sorted(range(len(facts)), key=lambda i: facts[i][1])
    stored = replay(facts, arrivals, one_batch)
    assert_latest_value_holds(facts, stored)
    # Consecutive statements of one value are one memory.
    runs = 1 + sum(1 for a, b in pairwise(arrivals) if facts[a][0] != facts[b][0])
    assert len(stored) == runs


# --- expiry and decay --------------------------------------------------------------------------


def test_an_intent_is_live_until_it_expires() -> None:
    intent = memory("m1", "Wants to buy a tent", kind="intent", at=0, expires=14)
    assert is_live(intent, day(13.9)) and not is_live(intent, day(14))


def test_a_weak_fact_decays_by_half_life_and_stops_being_live() -> None:
    weak = memory("m1", "Likes opera", at=0, confidence=0.5)
    assert effective_confidence(weak, day(0)) == 0.5
    half = day(WEAK_HALF_LIFE / timedelta(days=1))
    assert abs(effective_confidence(weak, half) - 0.25) < 1e-9
    assert is_live(weak, day(1)) and not is_live(weak, half)
    assert effective_confidence(weak, half) < LIVE_FLOOR
    strong = memory("m2", "Likes jazz", confidence=0.8)
    assert effective_confidence(strong, day(1000)) == 0.8


def test_stating_a_weak_fact_again_refreshes_it() -> None:
    weak = memory("m1", "Likes opera", at=0, confidence=0.5)
    again = memory("m2", "Likes opera", at=50, confidence=0.5)
    [written] = plan([v(again)], [v(weak)]).writes
    assert written.memory.confidence == 0.75
    assert is_live(written.memory, day(80))
