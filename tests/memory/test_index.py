"""The search index: the same liveness as the lifecycle, neighbours in one conversation, labels,
and BM25 postings that score as the plain formula does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from memory.index import MemoryIndex, speaker_label
from memory.lexical import BM25, LexicalIndex, stem, stems
from memory.lifecycle import is_live
from memory.records import MEMORY_KINDS, Memory

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def turn(n: int, text: str, at: datetime, kind: str = "episode") -> Memory:
    return Memory(
        memory_id=f"m{n:03d}",
        user_id="u1",
        kind=kind,  # type: ignore[arg-type]
        text=text,
        confidence=1.0,
        valid_from=at,
        created_at=at,
        updated_at=at,
        source_event_ids=(f"e{n}",),
    )


# --- liveness, against memory.lifecycle.is_live ------------------------------------------------

hours = st.integers(min_value=-400 * 24, max_value=400 * 24).map(lambda h: T0 + timedelta(hours=h))


@st.composite
def memories(draw: st.DrawFn, n: int) -> Memory:
    created = draw(hours)
    return Memory(
        memory_id=f"m{n}",
        user_id="u1",
        kind=draw(st.sampled_from(MEMORY_KINDS)),
        text="x",
        confidence=draw(st.floats(min_value=0.05, max_value=1.0)),
        valid_from=draw(hours),
        created_at=created,
        updated_at=created + timedelta(hours=draw(st.integers(0, 2_000))),
        source_event_ids=(f"e{n}",),
        valid_to=draw(st.none() | hours),
        expires_at=draw(st.none() | hours),
    )


@given(
    st.integers(1, 15).flatmap(lambda n: st.tuples(*(memories(i) for i in range(n)))),
    hours,
    st.none() | st.lists(st.sampled_from(MEMORY_KINDS), min_size=1, max_size=3),
)
def test_live_is_the_lifecycles_is_live(
    drawn: tuple[Memory, ...], at: datetime, kinds: list[str] | None
) -> None:
    index = MemoryIndex.build(list(drawn))
    expected = [is_live(m, at) and (kinds is None or m.kind in kinds) for m in drawn]
    assert index.live(at, kinds).tolist() == expected


# --- neighbours and labels -------------------------------------------------------------------


def test_neighbours_are_the_turns_around_it_in_one_conversation() -> None:
    minute = timedelta(minutes=1)
    day = timedelta(days=1)
    rows = [
        turn(0, "a", T0),
        turn(1, "b", T0 + minute),
        turn(2, "Likes jazz", T0 + minute, kind="preference"),  # a fact: no neighbours
        turn(3, "c", T0 + 2 * minute),
        turn(4, "d", T0 + day),  # the next conversation
    ]
    index = MemoryIndex.build(list(reversed(rows)))  # order of rows does not matter
    row = {memory.memory_id: i for i, memory in enumerate(index.memories)}

    def around(memory_id: str) -> list[str | None]:
        return [index.ids[i] if i >= 0 else None for i in index.neighbours[row[memory_id]]]

    assert around("m000") == [None, None, "m001", "m003"]
    assert around("m001") == [None, "m000", "m003", None]
    assert around("m003") == ["m000", "m001", None, None]
    assert around("m004") == [None, None, None, None]
    assert around("m002") == [None, None, None, None]


def test_a_context_vector_is_the_turn_with_the_one_before() -> None:
    a, b = np.eye(2, dtype=np.float32)
    index = MemoryIndex.build(
        [turn(0, "q", T0), turn(1, "r", T0 + timedelta(seconds=30))], np.stack([a, b])
    )
    assert index.context_vectors is not None
    np.testing.assert_allclose(index.context_vectors[0], a)
    np.testing.assert_allclose(index.context_vectors[1], (a + b) / np.sqrt(2), rtol=1e-6)


def test_a_transcript_line_is_labelled_with_its_speaker() -> None:
    assert speaker_label("Caroline: I went to a support group") == "Caroline"
    assert speaker_label("Mary Ann: hi") == "Mary Ann"
    assert speaker_label("Note: buy milk") == "Note"
    assert speaker_label("I love jazz: all of it") is None
    index = MemoryIndex.build([turn(0, "Caroline: hi", T0), turn(1, "Melanie: hey Caroline", T0)])
    assert index.named_labels("When did Caroline paint?").tolist() == [True, False]
    assert index.named_labels("what about carolines?").tolist() == [False, False]


# --- lexical ---------------------------------------------------------------------------------


def test_stems_fold_inflections() -> None:
    assert {stem(w) for w in ("paint", "painted", "painting", "paints")} == {"paint"}
    assert {stem(w) for w in ("hike", "hiked", "hiking")} == {"hik"}
    assert stem("running") == "run" and stem("jazz") == "jazz"
    assert stems("The user's paintings") == ["paint"]


WORDS = ["jazz", "cat", "tent", "boat", "kyoto", "dog"]  # words that are their own stems


@given(
    st.lists(st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join), min_size=1, max_size=12),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
)
def test_postings_score_as_plain_bm25(documents: list[str], query: str) -> None:
    scores, ceiling = LexicalIndex(documents).scores(query)
    plain = BM25(documents)
    np.testing.assert_allclose(scores, plain.scores(query), rtol=1e-9, atol=1e-12)
    assert ceiling == sum(plain.idf(term) for term in set(query.split()))
