"""The calendar period a question names: "on 8 December, 2023", "in August 2023", "in 2023".

Pure. Only absolute dates with a year are read: a day, a month or a year, as the half-open
UTC interval it covers. Relative phrases ("last week") and bare months ("in June") name a
period only against a time the question does not give (memory.timeparse reads those in
statements, against the time they were said). Search prefers the memories true or said within
the period (memory.search).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from memory.timeparse import MONTHS

_MONTH = r"(?P<month>" + "|".join(MONTHS) + r")"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_DAY_MONTH_YEAR = re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b", re.IGNORECASE)
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\s+{_DAY},?\s*{_YEAR}\b", re.IGNORECASE)
_MONTH_YEAR = re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?{_YEAR}\b", re.IGNORECASE)
_IN_YEAR = re.compile(rf"\b(?:in|of|during|since)\s+{_YEAR}\b", re.IGNORECASE)


def named_period(text: str) -> tuple[datetime, datetime] | None:
    """The first day, month or year `text` names with its year, as [start, end) in UTC."""
    for pattern in (_DAY_MONTH_YEAR, _MONTH_DAY_YEAR):
        match = pattern.search(text)
        if match:
            year, month = int(match["year"]), MONTHS.index(match["month"].lower()) + 1
            try:
                start = datetime(year, month, int(match["day"]), tzinfo=UTC)
            except ValueError:  # "31 February": not a day
                continue
            return start, start + timedelta(days=1)
    match = _MONTH_YEAR.search(text)
    if match:
        year, month = int(match["year"]), MONTHS.index(match["month"].lower()) + 1
        end_year, end_month = (year + 1, 1) if month == 12 else (year, month + 1)
        return datetime(year, month, 1, tzinfo=UTC), datetime(end_year, end_month, 1, tzinfo=UTC)
    match = _IN_YEAR.search(text)
    if match:
        year = int(match["year"])
        return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    return None
