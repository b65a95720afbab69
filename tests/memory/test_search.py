"""Hybrid ranking and BM25: which memories a query gets, in which order, as of when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from memory.lexical import BM25, normalized_scores, terms
from memory.records import Memory, MemoryKind
from memory.search import Weights, rank, recency

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def memory(
    memory_id: str,
    text: str,
    *,
    kind: MemoryKind = "preference",
    age_days: float = 1,
    confidence: float = 0.9,
    valid_to: datetime | None = None,
    expires_at: datetime | None = None,
) -> Memory:
    stated = NOW - timedelta(days=age_days)
    return Memory(
        memory_id=memory_id,
        user_id="u1",
        kind=kind,
        text=text,
        confidence=confidence,
        valid_from=stated,
        created_at=stated,
        updated_at=stated,
        source_event_ids=(f"e-{memory_id}",),
        valid_to=valid_to,
        expires_at=expires_at,
    )


def ids(query: str, candidates: list[Memory], dense: list[float], **kwargs: object) -> list[str]:
    options: dict[str, object] = {"as_of": NOW, "k": 10, **kwargs}
    return [hit.memory.memory_id for hit in rank(query, candidates, dense, **options)]  # type: ignore[arg-type]


# --- BM25 ------------------------------------------------------------------------------------


def test_terms_drop_function_words_possessives_and_plurals() -> None:
    assert terms("Who is the user's partner?") == ["partner"]
    assert terms("Likes hiking boots") == ["like", "hiking", "boot"]
    assert terms("what's the price range") == ["price", "range"]


def test_bm25_prefers_rare_terms_and_scores_zero_without_a_match() -> None:
    index = BM25(["Works at Helios Energy", "Likes energy drinks", "Likes jazz", "Likes blues"])
    scores = index.scores("helios")
    assert scores[0] > 0 and scores[1:].tolist() == [0.0, 0.0, 0.0]
    assert index.idf("helios") > index.idf("like")


@given(st.lists(st.text(max_size=40), max_size=12), st.text(max_size=40))
def test_normalized_scores_stay_between_zero_and_one(documents: list[str], query: str) -> None:
    scores = normalized_scores(query, documents)
    assert scores.shape == (len(documents),)
    assert np.all(scores >= 0) and np.all(scores <= 1)


def test_one_common_word_matched_is_a_small_lexical_score() -> None:
    full, partial = normalized_scores("dog food brand", ["dog food brand", "a dog"]).tolist()
    assert full > 0.75 and partial < 0.3


# --- ranking -----------------------------------------------------------------------------------


def test_dense_similarity_orders_memories() -> None:
    candidates = [memory("a", "Likes jazz"), memory("b", "Moved to Seattle")]
    assert ids("where does the user live", candidates, [0.2, 0.6]) == ["b", "a"]


def test_lexical_match_breaks_a_dense_tie() -> None:
    candidates = [memory("a", "Works at Contoso"), memory("b", "Works at Helios Energy")]
    assert ids("does the user work at Helios", candidates, [0.5, 0.5]) == ["b", "a"]


def test_recency_and_confidence_order_near_ties_but_never_lift_an_irrelevant_memory() -> None:
    old = memory("old", "Likes jazz", age_days=200)
    new = memory("new", "Likes blues", age_days=1)
    assert ids("music", [old, new], [0.5, 0.5]) == ["new", "old"]
    hello = memory("hi", "hi", kind="episode", age_days=0, confidence=1.0)
    fact = memory("fact", "Is vegetarian", age_days=300, confidence=0.7)
    assert ids("diet", [hello, fact], [0.1, 0.4]) == ["fact", "hi"]


def test_a_distilled_fact_wins_a_tie_with_the_turn_that_stated_it() -> None:
    turn = memory("turn", "we have a dog at home", kind="episode", confidence=1.0)
    fact = memory("fact", "Has a dog", kind="relationship", confidence=0.85)
    assert ids("pets", [turn, fact], [0.5, 0.5]) == ["fact", "turn"]
    assert ids("pets", [turn, fact], [0.5, 0.5], weights=Weights(episode=1.0)) == ["turn", "fact"]


def test_only_memories_true_at_as_of_are_ranked() -> None:
    closed = memory("closed", "Lives in Denver", valid_to=NOW - timedelta(hours=1))
    expired = memory("expired", "Wants a tent", kind="intent", expires_at=NOW)
    future = memory("future", "Moving to Kyoto", age_days=-3)
    weak = memory("weak", "Likes opera", confidence=0.4, age_days=90)
    live = memory("live", "Lives in Seattle")
    got = ids("anything", [closed, expired, future, weak, live], [0.9] * 5)
    assert got == ["live"]
    earlier = ids(
        "anything", [closed, expired, future, live], [0.9] * 4, as_of=NOW - timedelta(days=0.5)
    )
    assert sorted(earlier) == ["closed", "expired", "live"]


def test_kinds_and_k_limit_the_hits() -> None:
    candidates = [
        memory(str(i), f"fact {i}", kind="preference" if i % 2 else "dislike") for i in range(10)
    ]
    dense = [i / 10 for i in range(10)]
    assert ids("x", candidates, dense, kinds=["dislike"]) == ["8", "6", "4", "2", "0"]
    assert ids("x", candidates, dense, k=3) == ["9", "8", "7"]


def test_hits_carry_their_score_parts() -> None:
    [hit] = rank("jazz", [memory("a", "Likes jazz")], [0.7], as_of=NOW, k=1)
    assert set(hit.parts) == {"dense", "lexical", "recency", "confidence"}
    assert hit.parts["dense"] == 0.7 and hit.parts["lexical"] > 0
    assert 0 < hit.score <= 1


def test_recency_halves_every_half_life() -> None:
    assert recency(memory("a", "x", age_days=0), NOW) == 1.0
    assert abs(recency(memory("a", "x", age_days=30), NOW) - 0.5) < 1e-9


# --- what a conversation adds ----------------------------------------------------------------


def test_the_reply_to_a_matching_turn_comes_along() -> None:
    def said(memory_id: str, text: str, minutes: float) -> Memory:
        at = NOW - timedelta(days=3) + timedelta(minutes=minutes)
        return memory(memory_id, text, kind="episode", confidence=1.0).evolve(
            valid_from=at, created_at=at, updated_at=at
        )

    asked = said("asked", "What did you paint last week?", 0)
    reply = said("reply", "A sunset over the lake!", 0.5)
    other = said("other", "We went to the beach", 24 * 60)  # the next day's conversation
    filler = [said(f"f{i}", f"filler {i}", 3 * 24 * 60 + i) for i in range(6)]
    dense = [0.7, 0.2, 0.3] + [0.1] * 6
    got = ids("what did she paint", [asked, reply, other, *filler], dense)
    assert got[:3] == ["asked", "reply", "other"]
    alone = ids(
        "what did she paint", [asked, reply, other, *filler], dense, weights=Weights(context=0.0)
    )
    assert alone.index("reply") > alone.index("other")


def test_a_question_naming_a_person_prefers_their_own_lines() -> None:
    mine = memory("mine", "Melanie: we went camping", kind="episode")
    theirs = memory("theirs", "Caroline: we went camping", kind="episode")
    assert ids("where did Melanie go camping", [theirs, mine], [0.5, 0.5]) == ["mine", "theirs"]
    assert ids("where did Caroline go camping", [theirs, mine], [0.5, 0.5]) == ["theirs", "mine"]


def test_inflections_match_lexically() -> None:
    candidates = [memory("a", "I painted a sunrise"), memory("b", "I printed a sunrise")]
    assert ids("when did she paint", candidates, [0.5, 0.5]) == ["a", "b"]


def test_a_period_the_question_names_prefers_what_was_said_in_it() -> None:
    def said(memory_id: str, at: datetime) -> Memory:
        return memory(memory_id, "I started a new painting", kind="episode").evolve(
            valid_from=at, created_at=at, updated_at=at
        )

    april, may = (
        said("april", datetime(2026, 4, 12, tzinfo=UTC)),
        said("may", NOW - timedelta(days=2)),
    )
    assert ids("what did she start painting in April 2026?", [april, may], [0.5, 0.5]) == [
        "april",
        "may",
    ]
    assert ids("what did she start painting?", [april, may], [0.5, 0.5]) == ["may", "april"]
