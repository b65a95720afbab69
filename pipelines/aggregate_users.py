"""User feature snapshots (USER_FEATURES) from enriched signals; semantics in `aggregate.py`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from core.errors import InvalidInputError
from pipelines.feature_specs import USER_FEATURES, snapshot_schema
from pipelines.history import History
from pipelines.signal_arrays import WEIGHT_SCALE, SignalArrays, read_signals, type_code
from pipelines.timelines import (
    WINDOWS,
    Pairs,
    Timeline,
    as_of_micros,
    first_occurrences,
    micros_to_timestamps,
    pairs,
    prefix,
    rating_stats,
    snapshot_table,
    sort_order,
)

USER_SNAPSHOT_SCHEMA = snapshot_schema("user_id", USER_FEATURES)
TOP_CATEGORIES = 5
_ROWS_PER_SLICE = 1 << 16
MICROS_PER_MINUTE = 60_000_000
# Windowed counts of one kind of signal: (feature, signal type, window).
KIND_WINDOWS = [
    ("views_30d", "view", "30d"),
    ("clicks_30d", "click", "30d"),
    ("add_to_cart_30d", "add_to_cart", "30d"),
    ("searches_7d", "search", "7d"),
    ("messages_30d", "message", "30d"),
    ("purchases_30d", "purchase", "30d"),
]


def session_gap_micros(session_gap: timedelta) -> int:
    """The session gap in microseconds; it must be positive."""
    if session_gap <= timedelta(0):
        raise InvalidInputError("session_gap", "must be positive")
    return session_gap // timedelta(microseconds=1)


def aggregate_users(
    con: duckdb.DuckDBPyConnection,
    enriched: duckdb.DuckDBPyRelation,
    *,
    as_of: datetime,
    session_gap: timedelta,
) -> duckdb.DuckDBPyRelation:
    """User snapshot rows (USER_SNAPSHOT_SCHEMA) from the signals with ts <= as_of."""
    gap_us = session_gap_micros(session_gap)
    as_of_us = as_of_micros(as_of)
    return con.from_arrow(user_snapshots(read_signals(enriched, as_of_us), as_of_us, gap_us))


def user_snapshots(
    signals: SignalArrays,
    as_of_us: int,
    session_gap_us: int,
    first_pair_signals: Callable[[], np.ndarray] | None = None,
    history: History | None = None,
    seen_pairs: np.ndarray | None = None,
) -> pa.Table:
    """User snapshot rows from signals already read (all with ts <= as_of_us).

    `first_pair_signals`, when given, supplies the first signal of each (user, item) pair (as
    `ItemSnapshots` finds them), called only when needed so the item side can finish meanwhile.
    `history`, when given, holds each user's totals before these signals (`pipelines/history`)
    and `seen_pairs` flags the signals whose (user, item) pair it has seen.
    """
    order = sort_order(signals.users, signals.t)
    timeline = Timeline(signals.users[order], signals.t[order], as_of_us)
    types = signals.types[order]
    weights = signals.weights[order]
    windows: dict[str, int | None] = {**WINDOWS, "all": None}
    features: dict[str, np.ndarray | pa.Array] = {}
    row_entity = timeline.row_entity
    for label, counts in timeline.event_counts(windows).items():
        features[f"events_{label}"] = counts
    for label, sums in timeline.window_sums(weights, windows).items():
        if label == "all" and history is not None:
            sums = sums + history.weight[row_entity]
        features[f"weighted_{label}"] = sums / WEIGHT_SCALE
    for name, kind, label in KIND_WINDOWS:
        of_kind = types == type_code(kind)
        features[name] = timeline.window_sums(of_kind, {label: WINDOWS[label]})[label]
    features["purchases_all"] = timeline.total(types == type_code("purchase"))
    first_t = timeline.t[timeline.row_start]
    if history is not None:
        features["events_all"] = features["events_all"] + history.events[row_entity]
        features["purchases_all"] = features["purchases_all"] + history.purchases[row_entity]
        first_t = np.where(history.known[row_entity], history.first_t[row_entity], first_t)
    before = None if history is None else history.ratings
    count, mean, std = rating_stats(timeline, signals.ratings[order], before)
    features.update(rating_count=count, rating_mean=mean, rating_std=std)
    features["first_event_ts"] = micros_to_timestamps(first_t)
    features["last_event_ts"] = micros_to_timestamps(timeline.t[timeline.row_event])
    features.update(_sessions(timeline, session_gap_us, history))
    features.update(
        _top_categories(
            timeline, signals.categories[order], signals.category_names, weights, history
        )
    )
    if first_pair_signals is None:
        first_item = first_occurrences(
            timeline.entity, signals.items[order], len(signals.item_names)
        )
        if seen_pairs is not None:
            first_item &= ~seen_pairs[order]
    else:
        # Which of several signals tied on (user, item, ts) counts as first changes no row.
        first_item = np.zeros(len(signals), dtype=bool)
        first_item[first_pair_signals()] = True
        first_item = first_item[order]
    features["distinct_items"] = timeline.total(first_item)
    if history is not None:
        features["distinct_items"] = features["distinct_items"] + history.distinct[row_entity]
    return snapshot_table(USER_SNAPSHOT_SCHEMA, signals.user_names, timeline, features)


def _sessions(
    timeline: Timeline, gap_us: int, history: History | None = None
) -> dict[str, np.ndarray]:
    """Session count, mean signals and mean minutes per session, counting events up to the row.

    The same rule as `enrich` (a gap > session_gap starts a session), recounted here from the
    sorted timestamps, which costs one pass: reading enrich's `session` column instead would make
    DuckDB run enrich's window functions over every signal again. With `history`, a user's first
    signal here carries on the history's last session when it comes within the gap.
    """
    t = timeline.t
    new = timeline.new_entity.copy()
    new[1:] |= np.diff(t) > gap_us
    started = prefix(new)
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:] - 1, len(t) - 1)[: len(starts)]
    begun = t[starts]
    entity = timeline.row_entity
    count = started[timeline.row_event + 1] - started[timeline.row_start]
    events = timeline.row_event + 1 - timeline.row_start
    carried = np.zeros(0, dtype=np.int64)
    if history is not None:
        owner = timeline.entity[starts]
        joined = (
            timeline.new_entity[starts]
            & history.known[owner]
            & (t[starts] - history.last_t[owner] <= gap_us)
        )
        begun = np.where(joined, history.session_start[owner], begun)
        continues = np.zeros(len(history.known), dtype=bool)
        continues[owner[joined]] = True
        # The history's last session is counted there and continues here: count it once.
        count = count + history.sessions[entity] - continues[entity]
        events = events + history.events[entity]
        last_span = history.last_t - history.session_start
        carried = history.session_micros - np.where(continues, last_span, 0)
    finished = prefix(t[ends] - begun)
    current = started[timeline.row_event + 1] - 1  # global number of the row's session
    first = started[timeline.row_start]
    # Sessions before the current one are over by the row's time; the current one is cut at
    # the row's last event, so a later event of the same session never leaks in.
    micros = finished[current] - finished[first] + (t[timeline.row_event] - begun[current])
    if history is not None:
        micros = micros + carried[entity]
    return {
        "session_count": count,
        "session_events_mean": events / count,
        "session_minutes_mean": micros / MICROS_PER_MINUTE / count,
    }


def _affinity_blocks(
    timeline: Timeline,
    found: Pairs,
    event_entity: np.ndarray,
    event_day: np.ndarray,
    weights: np.ndarray,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per group of users with the same number k of categories: their snapshot rows and, for
    each, the running weighted affinity to each of the user's k categories (in name order).

    Each user's block is a (days x k) matrix in one flat grid, users ordered by k, so a group's
    blocks form one (all their days x k) matrix whose running sums down the days are one
    cumulative sum (exact: the weights are integer micro-units). `event_entity`, `event_day`
    and `weights` are per event of `found` (the timeline's, then any history's).
    """
    n_entities = int(timeline.entity.max()) + 1
    width = np.bincount(found.entity, minlength=n_entities)
    days = np.bincount(timeline.day_entity, minlength=n_entities)
    first_day = np.cumsum(days) - days
    first_pair = np.cumsum(width) - width
    by_width = np.argsort(width, kind="stable")
    offset = np.empty(n_entities, dtype=np.int64)
    offset[by_width] = np.cumsum((width * days)[by_width]) - (width * days)[by_width]
    entity = event_entity[found.events]
    cells = (offset - first_day * width)[entity]
    cells += event_day[found.events] * width[entity]
    cells += found.pair_of_event - first_pair[entity]
    grid = np.bincount(cells, weights=weights[found.events], minlength=int((width * days).sum()))
    del entity, cells
    row_entity = timeline.row_entity
    row_width = width[row_entity]
    for k in np.unique(row_width[row_width > 0]):
        users = by_width[width[by_width] == k]  # in offset order
        block = grid[offset[users[0]] : offset[users[-1]] + days[users[-1]] * k].reshape(-1, k)
        user_rows = np.cumsum(days[users]) - days[users]  # first row of each user's block
        # Subtract each user's totals at the start of the next block, then sum down the rows.
        block[user_rows[1:]] -= np.add.reduceat(block, user_rows, axis=0)[:-1]
        np.cumsum(block, axis=0, out=block)
        rows = np.flatnonzero(row_width == k)
        row_users = row_entity[rows]
        block_row = (offset[row_users] - offset[users[0]]) // k
        block_row += timeline.row_day[rows] - first_day[row_users]
        # Slices of rows keep the (rows x k) copies small.
        for begin in range(0, len(rows), _ROWS_PER_SLICE):
            end = begin + _ROWS_PER_SLICE
            yield rows[begin:end], block[block_row[begin:end]]


def _top_categories(
    timeline: Timeline,
    categories: np.ndarray,
    names: pa.Array,
    weights: np.ndarray,
    history: History | None = None,
) -> dict[str, np.ndarray | pa.Array]:
    """Per row: the top categories by positive affinity, their shares, the categories touched.

    A history's affinities count as events on the user's first day here."""
    rows = timeline.rows
    counts = np.zeros(rows, dtype=np.int64)
    top_codes = np.zeros((rows, TOP_CATEGORIES), dtype=np.int32)
    top_values = np.zeros((rows, TOP_CATEGORIES), dtype=np.float64)
    positive_total = np.ones(rows, dtype=np.float64)
    entity, day, weight = timeline.entity, timeline.event_day, weights
    touched: np.ndarray | int = 0  # categories each row's user touched in its history
    if history is not None and len(timeline.t):
        present = np.zeros(len(history.known), dtype=bool)
        present[timeline.entity] = True
        keep = np.flatnonzero(present[history.affinity_entity])
        owner = history.affinity_entity[keep]
        entity = np.concatenate([entity, owner])
        categories = np.concatenate([categories, history.affinity_category[keep]])
        day = np.concatenate([day, np.searchsorted(timeline.day_entity, owner)])
        weight = np.concatenate([weight, history.affinity_weight[keep]])
    found = pairs(entity, categories, len(names))
    if history is not None:
        # Categories the history touched are counted there, not again at their first event here.
        older = np.zeros(len(found.entity), dtype=bool)
        older[found.pair_of_event[found.events >= len(timeline.t)]] = True
        touched = history.categories[timeline.row_entity]
        found_first = found.first_event[~older]
    else:
        found_first = found.first_event
    first_seen = np.zeros(len(timeline.t), dtype=bool)
    first_seen[found_first] = True
    if len(found.events):
        for selected, affinity in _affinity_blocks(timeline, found, entity, day, weight):
            positive_total[selected] = np.maximum(affinity, 0.0).sum(axis=1)
            # Pairs are numbered in (user, category) order: a user's first is found by search.
            own_pairs = np.searchsorted(found.entity, timeline.row_entity[selected])
            picked = np.arange(len(selected))
            for slot in range(min(affinity.shape[1], TOP_CATEGORIES)):
                # argmax returns the first maximum: equal affinities go in name order.
                best = np.argmax(affinity, axis=1)
                top_values[selected, slot] = affinity[picked, best]
                top_codes[selected, slot] = found.other[own_pairs + best]
                affinity[picked, best] = -np.inf
            # Picks come in decreasing order, so the positive ones are a prefix.
            counts[selected] = (top_values[selected] > 0).sum(axis=1)
    filled = np.arange(TOP_CATEGORIES) < counts[:, None]
    offsets = pa.array(prefix(counts), type=pa.int32())
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = (top_values / positive_total[:, None])[filled].astype(np.float32)
    return {
        "top_categories": pa.ListArray.from_arrays(offsets, names.take(top_codes[filled])),
        "top_category_shares": pa.ListArray.from_arrays(offsets, pa.array(shares)),
        "category_count": timeline.total(first_seen) + touched,
    }
