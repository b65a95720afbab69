"""The page's small charts as shapes: activity per day, feature contributions, score parts.
Pure, like the timeline: values in, coordinates out; the templates write the SVG."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Column:
    """One vertical bar: a day's signals."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: float


@dataclass(frozen=True)
class ColumnChart:
    """Columns over consecutive days, with the largest value for the scale."""

    width: int
    height: int
    columns: list[Column]
    peak: float
    first: str
    last: str


def activity(
    counts: Sequence[tuple[date, int]], last_day: date, days: int = 60, width: int = 420
) -> ColumnChart:
    """A column per day of the `days` up to `last_day` (empty days are gaps)."""
    height = 70
    first_day = last_day - timedelta(days=days - 1)
    step = width / days
    by_day = dict(counts)
    peak = max([value for day, value in counts if first_day <= day <= last_day] or [0])
    columns = []
    for i in range(days):
        day = first_day + timedelta(days=i)
        value = by_day.get(day, 0)
        if not value:
            continue
        bar = (height - 4) * value / peak
        columns.append(
            Column(
                x=round(i * step, 1),
                y=round(height - bar, 1),
                width=round(max(step - 1, 1), 1),
                height=round(bar, 1),
                label=f"{day:%Y-%m-%d}: {value} signals",
                value=value,
            )
        )
    return ColumnChart(
        width, height, columns, peak, f"{first_day:%Y-%m-%d}", f"{last_day:%Y-%m-%d}"
    )


@dataclass(frozen=True)
class HBar:
    """One horizontal bar of a labelled value."""

    label: str
    value: float
    x: float
    width: float
    positive: bool


def diverging(values: Sequence[tuple[str, float]], width: int = 160) -> list[HBar]:
    """Bars from a centre line: positive values to the right, negative to the left, scaled by
    the largest magnitude (LightGBM's contributions to an item's score)."""
    largest = max([abs(value) for _, value in values] or [0.0]) or 1.0
    half = width / 2
    bars = []
    for label, value in values:
        length = round(half * abs(value) / largest, 1)
        x = half if value >= 0 else half - length
        bars.append(HBar(label, value, round(x, 1), max(length, 1.0), value >= 0))
    return bars


def shares(values: Sequence[tuple[str, float]], width: int = 120) -> list[HBar]:
    """Bars of values in [0, 1] (a search score's parts), from the left edge."""
    return [
        HBar(label, value, 0.0, round(width * min(max(value, 0.0), 1.0), 1), True)
        for label, value in values
    ]
