"""Resolve relative time in text ("last week", "two days ago", "next spring") against event time.

Pure and rule-based: a fixed grammar of English expressions, each resolved to the start of the
period it names. Ambiguous bare names ("in March", "on Friday") resolve to the nearest past
occurrence for past-tense statements and the nearest future one otherwise. "This summer" said
during the summer is the current one; "last spring" said during the spring is the one before.
The month "May" only counts when capitalized, since "this may take" and "in may" are modal verbs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Direction = Literal["past", "future"]

_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "a couple of": 2,
    "a couple": 2,
    "couple of": 2,
    "a few": 3,
    "few": 3,
    "several": 3,
}
MONTHS = [  # month names in order (memory/periods.py reads them too)
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
# Meteorological seasons, northern hemisphere: the month each starts.
_SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
_UNITS = {"day": 1, "week": 7, "month": 30, "year": 365}


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_NUM = r"(?P<n>\d{1,3}|" + "|".join(sorted(map(re.escape, _NUMBERS), key=len, reverse=True)) + ")"
_UNIT = r"(?P<unit>day|week|month|year)s?"
_REL = r"(?P<rel>last|next|this(?:\s+past)?)"
_SEASON = r"(?P<season>spring|summer|autumn|fall|winter)"
_WEEKDAY = r"(?P<weekday>" + "|".join(_WEEKDAYS) + ")"
_MONTH = r"(?P<month>" + "|".join(MONTHS) + ")"
_IN = r"(?:in|since|back in)"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("ago", _compile(rf"\b{_NUM}\s+{_UNIT}\s+ago\b")),
    ("in_n", _compile(rf"\bin\s+{_NUM}\s+{_UNIT}\b")),
    ("day_before_yesterday", _compile(r"\bthe day before yesterday\b")),
    ("day_after_tomorrow", _compile(r"\bthe day after tomorrow\b")),
    ("yesterday", _compile(r"\b(?:yesterday|last night)\b")),
    ("tomorrow", _compile(r"\btomorrow\b")),
    ("today", _compile(r"\b(?:today|tonight|this morning|this afternoon|this evening)\b")),
    ("rel_unit", _compile(rf"\b{_REL}\s+(?P<unit>week|weekend|month|year)\b")),
    ("rel_season", _compile(rf"\b{_REL}\s+{_SEASON}\b")),
    ("rel_weekday", _compile(rf"\b{_REL}\s+{_WEEKDAY}\b")),
    ("rel_month", _compile(rf"\b{_REL}\s+{_MONTH}\b")),
    ("in_month", _compile(rf"\b{_IN}\s+{_MONTH}\b")),
    ("in_season", _compile(rf"\b{_IN}\s+(?:the\s+)?{_SEASON}\b")),
    ("on_weekday", _compile(rf"\bon\s+{_WEEKDAY}\b")),
    ("in_year", _compile(rf"\b{_IN}\s+(?P<year>(?:19|20)\d{{2}})\b")),
]


@dataclass(frozen=True)
class TimeMention:
    """A resolved time expression: when it points to and where it stood in the text."""

    when: datetime
    phrase: str
    start: int
    end: int


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_start(year: int, month: int, like: datetime) -> datetime:
    return _day(like).replace(year=year, month=month, day=1)


def _shift_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return _month_start(index // 12, index % 12 + 1, moment)


def _nearest_month(base: datetime, month: int, direction: Direction) -> datetime:
    this_year = _month_start(base.year, month, base)
    if direction == "past":
        return this_year if month <= base.month else _month_start(base.year - 1, month, base)
    return this_year if month > base.month else _month_start(base.year + 1, month, base)


def _resolve(kind: str, match: re.Match[str], base: datetime, direction: Direction) -> datetime:
    groups = match.groupdict()
    if kind in ("ago", "in_n"):
        raw = " ".join(groups["n"].lower().split())
        count = int(raw) if raw.isdigit() else _NUMBERS[raw]
        unit = groups["unit"].lower()
        sign = -1 if kind == "ago" else 1
        if unit == "month":
            return _shift_months(_day(base), sign * count).replace(day=min(base.day, 28))
        if unit == "year":
            return _day(base).replace(year=base.year + sign * count, day=min(base.day, 28))
        return _day(base) + timedelta(days=sign * count * _UNITS[unit])
    offsets = {
        "day_before_yesterday": -2,
        "day_after_tomorrow": 2,
        "yesterday": -1,
        "tomorrow": 1,
        "today": 0,
    }
    if kind in offsets:
        return _day(base) + timedelta(days=offsets[kind])
    rel = " ".join((groups.get("rel") or "").lower().split())
    step = {"last": -1, "next": 1, "this": 0, "this past": -1}.get(rel, 0)
    if kind == "rel_unit":
        unit = groups["unit"].lower()
        if unit in ("week", "weekend"):
            monday = _day(base) - timedelta(days=base.weekday())
            start = monday + timedelta(weeks=step)
            return start + timedelta(days=5) if unit == "weekend" else start
        if unit == "month":
            return _shift_months(_month_start(base.year, base.month, base), step)
        return _month_start(base.year + step, 1, base)
    if kind in ("rel_season", "in_season"):
        month = _SEASONS[groups["season"].lower()]
        current = _shift_months(
            _month_start(base.year, base.month, base), -((base.month - month) % 12)
        )
        in_season = (base.month - month) % 12 < 3
        if kind == "rel_season" and step == 0 and in_season:
            return current
        if kind == "rel_season" and step < 0 and in_season:
            return _shift_months(current, -12)
        if kind == "in_season" or step == 0:
            return _nearest_month(base, month, direction)
        return _nearest_month(base, month, "past" if step < 0 else "future")
    if kind in ("rel_weekday", "on_weekday"):
        target = _WEEKDAYS.index(groups["weekday"].lower())
        delta = target - base.weekday()
        if kind == "rel_weekday" and step != 0:
            direction = "past" if step < 0 else "future"
        if direction == "past":
            delta = delta - 7 if delta >= 0 else delta
        else:
            delta = delta + 7 if delta <= 0 else delta
        return _day(base) + timedelta(days=delta)
    if kind in ("rel_month", "in_month"):
        month = MONTHS.index(groups["month"].lower()) + 1
        if kind == "rel_month" and step != 0:
            direction = "past" if step < 0 else "future"
        return _nearest_month(base, month, direction)
    if kind == "in_year":
        return _month_start(int(groups["year"]), 1, base)
    raise ValueError(f"unknown time expression kind {kind}")


def find_times(text: str, base: datetime, direction: Direction = "past") -> list[TimeMention]:
    """Every time expression in `text`, resolved against `base`, in order; overlaps dropped."""
    found: list[TimeMention] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _PATTERNS:
        # Matching the original text (not a lower-cased copy) keeps spans right for characters
        # whose lower case is longer, such as "İ".
        for match in pattern.finditer(text):
            month = match.groupdict().get("month")
            if month is not None and month.lower() == "may" and month != "May":
                continue
            span = match.span()
            if any(span[0] < end and start < span[1] for start, end in taken):
                continue
            taken.append(span)
            when = _resolve(kind, match, base, direction)
            found.append(TimeMention(when, text[span[0] : span[1]], span[0], span[1]))
    return sorted(found, key=lambda mention: mention.start)


def first_time(text: str, base: datetime, direction: Direction = "past") -> datetime | None:
    """The first resolved time expression in `text`, or None."""
    mentions = find_times(text, base, direction)
    return mentions[0].when if mentions else None
