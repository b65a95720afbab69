"""Per-entity event timelines: events sorted by (entity, time), their snapshot rows, and exact
cumulative and trailing-window sums at those rows, all vectorized with numpy.

Used by `aggregate_users` and `aggregate_items`; see `pipelines/aggregate.py` for the snapshot
semantics. Everything works on integer codes and epoch microseconds, so sums of counts and of
integer micro-weights are exact and a window's sum is a difference of two prefix sums.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa

from core.errors import InvalidInputError
from core.times import epoch_micros

MICROS_PER_DAY = 86_400_000_000
WINDOWS: dict[str, int] = {
    "1d": MICROS_PER_DAY,
    "7d": 7 * MICROS_PER_DAY,
    "30d": 30 * MICROS_PER_DAY,
}
# Trailing windows may be probed with complex keys (entity + 1j * t), whose float64 parts are
# exact only below 2**53 microseconds (year 2255); the contract stops epochs at 2100.
_MAX_EXACT_MICROS = 2**53


def as_of_micros(as_of: datetime) -> int:
    """`as_of` as epoch microseconds; it must carry a time zone."""
    micros = epoch_micros(as_of, "as_of")
    if not 0 <= micros < _MAX_EXACT_MICROS:
        raise InvalidInputError("as_of", "must fall between 1970 and 2255")
    return micros


def sort_order(entity: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A permutation sorting events by (entity, t); the order of exact ties is unspecified.

    No feature depends on how events tied on (entity, t) are ordered: windows, days and
    sessions are all defined by time, and ties always fall on the same side of every boundary.
    """
    if len(t) == 0:
        return np.zeros(0, dtype=np.int64)
    low = int(t.min())
    span = int(t.max()) - low + 1
    if (int(entity.max()) + 1) * span >= 2**63:
        # Too wide for one int64 key: rank the times instead (at most one rank per event).
        distinct, ranks = np.unique(t, return_inverse=True)
        low, span, t = 0, len(distinct), ranks
    key = entity.astype(np.int64) * span
    key += t - low
    # The event store writes each part sorted by (user, ts): on such runs a merge sort is near
    # linear, while on shuffled keys quicksort is about twice as fast as it.
    descents = np.count_nonzero(key[1:] < key[:-1])
    return np.argsort(key, kind="stable" if descents * 64 < len(key) else "quicksort")


def prefix(values: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading zero: prefix(x)[k] = x[:k].sum().

    Floats sum as float64 and integers as int64, but flags as int32 while the count fits:
    numpy's cumulative sum of bools into int64 is several times slower than into int32.
    """
    if values.dtype.kind == "f":
        dtype: type[np.generic] = np.float64
    elif values.dtype == np.bool_ and len(values) < 2**31:
        dtype = np.int32
    else:
        dtype = np.int64
    out = np.zeros(len(values) + 1, dtype=dtype)
    np.cumsum(values, out=out[1:])
    return out


@dataclass(frozen=True)
class Pairs:
    """The distinct (entity, other) pairs among events whose `other` code is >= 0."""

    events: np.ndarray  # indices of the events that have an `other`
    pair_of_event: np.ndarray  # per such event: its pair, numbered in (entity, other) order
    entity: np.ndarray  # per pair
    other: np.ndarray  # per pair
    first_event: np.ndarray  # per pair: index of its earliest event (events sorted by time)


def pairs(entity: np.ndarray, other: np.ndarray, n_other: int) -> Pairs:
    """Number the (entity, other) pairs of events sorted by (entity, t)."""
    events = np.flatnonzero(other >= 0)
    n_other = max(n_other, 1)
    key = entity[events].astype(np.int64) * n_other + other[events]
    key_range = (int(entity.max(initial=-1)) + 1) * n_other
    if key_range <= 4 * len(key) + 1024:
        # Few possible pairs (users x categories): a dense table instead of a sort.
        present = np.zeros(key_range, dtype=bool)
        present[key] = True
        unique_keys = np.flatnonzero(present)
        pair_of_event = (np.cumsum(present) - 1)[key]
        first_event = np.full(len(unique_keys), len(entity), dtype=np.int64)
        np.minimum.at(first_event, pair_of_event, events)
    else:
        # The sort is stable, so each pair's index points at its earliest event.
        unique_keys, first, pair_of_event = np.unique(key, return_index=True, return_inverse=True)
        first_event = events[first]
    return Pairs(
        events=events,
        pair_of_event=pair_of_event,
        entity=unique_keys // n_other,
        other=unique_keys % n_other,
        first_event=first_event,
    )


def first_occurrences(entity: np.ndarray, other: np.ndarray, n_other: int) -> np.ndarray:
    """For events sorted by (entity, t): True where `other` (>= 0) first appears for the entity."""
    events = np.flatnonzero(other >= 0)
    n_other = max(n_other, 1)
    key = entity[events].astype(np.int64) * n_other + other[events]
    key_range = (int(entity.max(initial=-1)) + 1) * n_other
    if key_range <= 4 * len(key) + 1024:
        first = np.full(key_range, len(entity), dtype=np.int64)
        np.minimum.at(first, key, events)
        first = first[first < len(entity)]
    else:
        # A hash of the keys seen, in event order: measured faster than numpy's sort-based unique.
        first = events[~pd.Series(key).duplicated().to_numpy()]
    flags = np.zeros(len(entity), dtype=bool)
    flags[first] = True
    return flags


@dataclass
class Timeline:
    """Events sorted by (entity, t) and the snapshot rows taken from them.

    Snapshot rows are sorted by (entity, time): one per (entity, UTC day with events) at the day's
    last event, then one at `as_of` for each entity whose last event is earlier.
    """

    entity: np.ndarray  # per event, sorted
    t: np.ndarray  # per event, epoch microseconds, sorted within each entity
    as_of: int
    new_entity: np.ndarray = field(init=False)  # per event: first of its entity
    day_events: np.ndarray = field(init=False)  # per (entity, day): its last event
    row_event: np.ndarray = field(init=False)  # per row: last event the row covers
    row_t: np.ndarray = field(init=False)  # per row: its timestamp
    row_start: np.ndarray = field(init=False)  # per row: first event of its entity
    window_starts: dict[int, np.ndarray] = field(init=False)  # per window: `window_start`

    def __post_init__(self) -> None:
        n = len(self.t)
        if n and (self.t.min() < -_MAX_EXACT_MICROS or self.t.max() >= _MAX_EXACT_MICROS):
            raise InvalidInputError("ts", "must fall between 1970 and 2255")
        new_entity = np.ones(n, dtype=bool)
        np.not_equal(self.entity[1:], self.entity[:-1], out=new_entity[1:])
        day = self.t // MICROS_PER_DAY  # floor division: UTC calendar days
        day_end = np.ones(n, dtype=bool)
        np.not_equal(day[1:], day[:-1], out=day_end[:-1])
        day_end[:-1] |= new_entity[1:]
        self.new_entity = new_entity
        self.day_events = np.flatnonzero(day_end)
        firsts = np.flatnonzero(new_entity)
        lasts = np.append(firsts[1:] - 1, n - 1)[: len(firsts)]
        late = lasts[self.t[lasts] < self.as_of]
        # An as_of row sorts right after its entity's last day row, which ends at the same event.
        row_event = np.concatenate([self.day_events, late])
        order = np.argsort(np.concatenate([self.day_events * 2, late * 2 + 1]), kind="stable")
        self.row_event = row_event[order]
        self.row_t = np.concatenate([self.t[self.day_events], np.full(len(late), self.as_of)])[
            order
        ]
        self.row_start = firsts[np.searchsorted(firsts, self.row_event, side="right") - 1]
        self.window_starts = self._window_starts(tuple(WINDOWS.values()))

    @property
    def rows(self) -> int:
        """Number of snapshot rows."""
        return len(self.row_event)

    @cached_property
    def row_entity(self) -> np.ndarray:
        """Entity code of each snapshot row."""
        return self.entity[self.row_event]

    @cached_property
    def day_entity(self) -> np.ndarray:
        """Entity of each (entity, day) row."""
        return self.entity[self.day_events]

    @cached_property
    def row_day(self) -> np.ndarray:
        """Per snapshot row: the (entity, day) row it is, or repeats (an as_of row)."""
        return np.searchsorted(self.day_events, self.row_event)

    @cached_property
    def event_day(self) -> np.ndarray:
        """Per event: the (entity, day) row it belongs to."""
        starts = np.zeros(len(self.t), dtype=bool)
        starts[self.day_events[:-1] + 1] = True
        return prefix(starts)[1:]

    def total(self, values: np.ndarray) -> np.ndarray:
        """Per row: the sum of `values` over the entity's events up to the row (all time)."""
        return self.window_sums(values, {"all": None})["all"]

    def window_sums(
        self, values: np.ndarray, windows: Mapping[str, int | None]
    ) -> dict[str, np.ndarray]:
        """Per row and labelled window (None: all time): the sum of `values` in the window."""
        sums = prefix(values)
        end = sums[self.row_event + 1]
        return {
            label: end - sums[self.row_start if window is None else self.window_start(window)]
            for label, window in windows.items()
        }

    def event_counts(self, windows: Mapping[str, int | None]) -> dict[str, np.ndarray]:
        """Per row and labelled window (None: all time): how many events fall in the window."""
        end = self.row_event + 1
        return {
            label: end - (self.row_start if window is None else self.window_start(window))
            for label, window in windows.items()
        }

    def window_start(self, window_micros: int) -> np.ndarray:
        """Per row: the first event of its entity later than row_t - window."""
        if window_micros not in self.window_starts:
            self.window_starts.update(self._window_starts((window_micros,)))
        return self.window_starts[window_micros]

    def _window_starts(self, windows: tuple[int, ...]) -> dict[int, np.ndarray]:
        # One binary search over (entity, t) pairs per window: as int64 keys entity * span + t
        # when they fit, else as complex numbers, which order lexicographically (real, then
        # imaginary). The keys are large, so they live only while the windows are searched.
        if self.rows == 0:
            return {window: np.zeros(0, dtype=np.int64) for window in windows}
        low = int(self.t.min()) - max(windows)
        span = max(int(self.t.max()), self.as_of) - low + 1
        keys: np.ndarray
        probes: np.ndarray
        if (int(self.entity.max()) + 1) * span < 2**63:
            keys = self.entity.astype(np.int64) * span
            keys += self.t - low
            probes = self.row_entity.astype(np.int64) * span
            probes += self.row_t - low
            return {w: np.searchsorted(keys, probes - w, side="right") for w in windows}
        keys = np.empty(len(self.t), dtype=np.complex128)
        keys.real, keys.imag = self.entity, self.t
        probes = np.empty(self.rows, dtype=np.complex128)
        probes.real = self.row_entity
        starts = {}
        for window in windows:
            probes.imag = self.row_t - window
            starts[window] = np.searchsorted(keys, probes, side="right")
        return starts


# Ratings are summed as integer micro-stars, as deviations from the scale's midpoint, so
# every sum is exact and adds up across any split of the signals (the incremental ingest adds
# the totals of older signals to those of recent ones). A square is below 2**43, so an entity's
# sum of squares fits int64 up to a million ratings; prefix sums over all entities may wrap,
# but their differences are exact.
RATING_SCALE = 1_000_000
RATING_MIDPOINT_MICROS = 2_500_000


def rating_micros(ratings: np.ndarray) -> np.ndarray:
    """Non-NaN ratings as integer micro-star deviations from the midpoint (2.5 stars)."""
    return np.round(ratings * RATING_SCALE).astype(np.int64) - RATING_MIDPOINT_MICROS


@dataclass(frozen=True)
class RatingTotals:
    """Per entity: count, sum and sum of squares of `rating_micros`, over older signals."""

    count: np.ndarray
    sum: np.ndarray
    squares: np.ndarray


def rating_stats(
    timeline: Timeline, ratings: np.ndarray, before: RatingTotals | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: count, mean and population std of the non-NaN `ratings` up to the row, plus
    the entity's totals `before` its first signal here when given.

    Mean and std are NaN (NULL) without ratings; std is 0 for one rating.
    """
    # Ratings are a small share of events: sum over them alone and find each row's range of
    # them by binary search, rather than cumulating over every event.
    positions = np.flatnonzero(~np.isnan(ratings))
    deviation = rating_micros(ratings[positions])
    end = np.searchsorted(positions, timeline.row_event, side="right")
    begin = np.searchsorted(positions, timeline.row_start)
    count = end - begin
    sums, squares = prefix(deviation), prefix(deviation * deviation)
    total = sums[end] - sums[begin]
    total_squares = squares[end] - squares[begin]
    if before is not None:
        entity = timeline.row_entity
        count = count + before.count[entity]
        total = total + before.sum[entity]
        total_squares = total_squares + before.squares[entity]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_deviation = total / count
        variance = total_squares / count - mean_deviation * mean_deviation
        mean = (RATING_MIDPOINT_MICROS + mean_deviation) / RATING_SCALE
        std = np.sqrt(np.maximum(variance, 0.0)) / RATING_SCALE
    return count, np.where(count > 0, mean, np.nan), np.where(count > 0, std, np.nan)


def micros_to_timestamps(values: np.ndarray) -> pa.Array:
    """Epoch microseconds as timestamp[us, UTC]."""
    return pa.array(values, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def snapshot_table(
    schema: pa.Schema,
    names: pa.Array,
    timeline: Timeline,
    features: Mapping[str, np.ndarray | pa.Array],
) -> pa.Table:
    """The snapshot rows as an Arrow table of `schema`: key, event_timestamp, created, features.

    `names` maps entity codes to keys. NaN in a float feature means undefined: NULL.
    """
    created = np.full(timeline.rows, timeline.as_of, dtype=np.int64)
    columns: list[pa.Array] = [
        names.take(pa.array(timeline.row_entity)),
        micros_to_timestamps(timeline.row_t),
        micros_to_timestamps(created),
    ]
    for name in schema.names[3:]:
        values = features[name]
        array = pa.array(values, from_pandas=True) if isinstance(values, np.ndarray) else values
        columns.append(array.cast(schema.field(name).type))
    return pa.Table.from_arrays(columns, schema=schema)
