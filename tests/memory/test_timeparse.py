"""Relative time in text resolves against the event time to the start of the period it names."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory.timeparse import find_times, first_time

# Wednesday 13 May 2026, 15:00 UTC.
BASE = datetime(2026, 5, 13, 15, 0, tzinfo=UTC)


def day(year: int, month: int, dom: int) -> datetime:
    return datetime(year, month, dom, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "direction", "expected"),
    [
        ("yesterday", "past", day(2026, 5, 12)),
        ("last night", "past", day(2026, 5, 12)),
        ("the day before yesterday", "past", day(2026, 5, 11)),
        ("tomorrow", "future", day(2026, 5, 14)),
        ("tonight", "future", day(2026, 5, 13)),
        ("two days ago", "past", day(2026, 5, 11)),
        ("a couple of weeks ago", "past", day(2026, 4, 29)),
        ("3 months ago", "past", day(2026, 2, 13)),
        ("a year ago", "past", day(2025, 5, 13)),
        ("in two weeks", "future", day(2026, 5, 27)),
        ("last week", "past", day(2026, 5, 4)),
        ("this past weekend", "past", day(2026, 5, 9)),
        ("next weekend", "future", day(2026, 5, 23)),
        ("next month", "future", day(2026, 6, 1)),
        ("last year", "past", day(2025, 1, 1)),
        ("next spring", "future", day(2027, 3, 1)),
        ("last summer", "past", day(2025, 6, 1)),
        ("last Friday", "past", day(2026, 5, 8)),
        ("next Monday", "future", day(2026, 5, 18)),
        ("on Friday", "past", day(2026, 5, 8)),
        ("on Friday", "future", day(2026, 5, 15)),
        ("in March", "past", day(2026, 3, 1)),
        ("in March", "future", day(2027, 3, 1)),
        ("back in 2019", "past", day(2019, 1, 1)),
        ("since the fall", "past", day(2025, 9, 1)),
        ("LAST WEEK", "past", day(2026, 5, 4)),
    ],
)
def test_expressions_resolve_to_the_start_of_their_period(
    text: str, direction: str, expected: datetime
) -> None:
    assert first_time(f"it was {text} I think", BASE, direction) == expected  # type: ignore[arg-type]


def test_a_season_said_inside_it_is_the_current_one_for_this_and_the_previous_for_last() -> None:
    july = day(2026, 7, 10)
    assert first_time("this summer", july, "future") == day(2026, 6, 1)
    assert first_time("this summer", july, "past") == day(2026, 6, 1)
    assert first_time("last summer", july, "past") == day(2025, 6, 1)
    january = day(2026, 1, 10)
    assert first_time("this winter", january, "past") == day(2025, 12, 1)
    assert first_time("last winter", january, "past") == day(2024, 12, 1)


def test_only_a_capitalized_may_is_the_month() -> None:
    assert find_times("This may take a while, we may go in may", BASE) == []
    assert first_time("we got married in May", BASE, "past") == day(2026, 5, 1)


def test_phrases_and_spans_point_into_the_original_text() -> None:
    text = "İstanbul trip: we flew out Yesterday and return next Monday"
    mentions = find_times(text, BASE, "future")
    assert [m.phrase for m in mentions] == ["Yesterday", "next Monday"]
    assert all(text[m.start : m.end] == m.phrase for m in mentions)


def test_no_expression_means_no_time() -> None:
    assert first_time("I love hiking", BASE) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120), st.sampled_from(["past", "future"]))
def test_mentions_are_ordered_disjoint_and_keep_the_event_timezone(
    text: str, direction: str
) -> None:
    mentions = find_times(text, BASE, direction)  # type: ignore[arg-type]
    for earlier, later in itertools.pairwise(mentions):
        assert earlier.end <= later.start
    for mention in mentions:
        assert text[mention.start : mention.end] == mention.phrase
        assert mention.when.tzinfo == UTC
