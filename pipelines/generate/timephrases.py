"""Relative time phrases a user may date a fact with, and the day each one points to.

The truth of a dated fact is a representative UTC day plus a tolerance in days: any valid_from an
extractor derives inside that window reads the phrase correctly. "last week" said on a Sunday may
mean any day of the previous calendar week, so its window covers that whole week; "back in March"
covers March. Past phrases always resolve to a day before the statement, future ones after it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Direction = Literal["past", "future"]

MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# Meteorological spring starts in March, northern hemisphere.
_SPRING_MONTH = 3
_DAY_MS = 86_400_000

# phrase, day offset from the statement's day, tolerance in days
_PAST_DAYS: tuple[tuple[str, int, int], ...] = (
    ("yesterday", -1, 1),
    ("the day before yesterday", -2, 1),
    ("two days ago", -2, 1),
    ("three days ago", -3, 1),
    ("a couple of days ago", -2, 1),
    ("last week", -7, 7),
    ("two weeks ago", -14, 3),
    ("three weeks ago", -21, 3),
)
_FUTURE_DAYS: tuple[tuple[str, int, int], ...] = (
    ("tomorrow", 1, 1),
    ("the day after tomorrow", 2, 1),
    ("next week", 7, 7),
    ("in two weeks", 14, 3),
)


@dataclass(frozen=True)
class Dating:
    """A phrase and what it means said on a given day."""

    phrase: str
    direction: Direction
    valid_from_ms: int  # UTC midnight of the representative day
    tolerance_days: int


def _midnight(ms: int) -> datetime:
    day = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return day.replace(hour=0, minute=0, second=0, microsecond=0)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _month_mid(year: int, month: int) -> datetime:
    return datetime(year, month, 15, tzinfo=UTC)


def _shift_month(moment: datetime, months: int) -> tuple[int, int]:
    index = moment.year * 12 + moment.month - 1 + months
    return index // 12, index % 12 + 1


def datings(stated_ms: int, direction: Direction, rng: random.Random) -> list[Dating]:
    """Every phrase of `direction` resolved against a statement at `stated_ms`, in random order."""
    today = _midnight(stated_ms)
    found = [
        Dating(phrase, direction, _ms(today + timedelta(days=offset)), tolerance)
        for phrase, offset, tolerance in (_PAST_DAYS if direction == "past" else _FUTURE_DAYS)
    ]
    step = -1 if direction == "past" else 1
    year, month = _shift_month(today, step)
    found.append(
        Dating(
            f"{'last' if step < 0 else 'next'} month", direction, _ms(_month_mid(year, month)), 16
        )
    )
    # A named month one to five months away: "back in March" / "in March".
    year, month = _shift_month(today, step * rng.randint(2, 5))
    named = f"back in {MONTH_NAMES[month - 1]}" if step < 0 else f"in {MONTH_NAMES[month - 1]}"
    found.append(Dating(named, direction, _ms(_month_mid(year, month)), 16))
    if direction == "future":
        spring_year = today.year if today.month < _SPRING_MONTH else today.year + 1
        spring = datetime(spring_year, _SPRING_MONTH, 1, tzinfo=UTC) + timedelta(days=45)
        found.append(Dating("next spring", direction, _ms(spring), 46))
    rng.shuffle(found)
    return found


def pick_dating(
    stated_ms: int, direction: Direction, rng: random.Random, after_ms: int | None = None
) -> Dating | None:
    """A random phrase whose whole window lies after `after_ms` (None: no constraint)."""
    for dating in datings(stated_ms, direction, rng):
        if after_ms is None or dating.valid_from_ms - dating.tolerance_days * _DAY_MS > after_ms:
            return dating
    return None
