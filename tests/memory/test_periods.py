"""The period a question names: a day, a month or a year, with its year."""

from __future__ import annotations

from datetime import UTC, datetime

from memory.periods import named_period


def day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


def test_a_day_a_month_and_a_year() -> None:
    assert named_period("What did Tim say on 16 November, 2023?") == (
        day(2023, 11, 16),
        day(2023, 11, 17),
    )
    assert named_period("the book he finished on 8th December, 2023") == (
        day(2023, 12, 8),
        day(2023, 12, 9),
    )
    assert named_period("shared on December 1,2023") == (day(2023, 12, 1), day(2023, 12, 2))
    assert named_period("started learning in August 2023") == (day(2023, 8, 1), day(2023, 9, 1))
    assert named_period("in December 2023") == (day(2023, 12, 1), day(2024, 1, 1))
    assert named_period("organized in 2024") == (day(2024, 1, 1), day(2025, 1, 1))


def test_no_year_no_period() -> None:
    assert named_period("what did she paint in June?") is None
    assert named_period("last week") is None
    assert named_period("the 2023 team") is None  # a year that names no period of the question


def test_an_impossible_day_falls_back_to_its_month() -> None:
    assert named_period("on 31 February 2023") == (day(2023, 2, 1), day(2023, 3, 1))
