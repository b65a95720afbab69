"""Snapshot rows from the incremental state: the batch aggregates' features, per touched entity.

Pure: `EntityState` in, rows of USER_SNAPSHOT_SCHEMA / ITEM_SNAPSHOT_SCHEMA out. A streamed row
is the entity's row at its latest event (row time T = last event), the same row the batch path
writes for the entity's last active day: trailing windows (T - w, T], all-time totals, sessions,
top categories. Counts, micro-weight sums, session figures and shares are computed from exact
integers with the batch's arithmetic, so they equal the batch values bit for bit; rating mean
and std use the same formula from running sums, equal to ~1e-12 (the order of float sums
differs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pyarrow as pa

from core.contract import SIGNAL_TYPES
from pipelines.aggregate_items import ITEM_SNAPSHOT_SCHEMA, trend
from pipelines.aggregate_users import MICROS_PER_MINUTE, TOP_CATEGORIES, USER_SNAPSHOT_SCHEMA
from pipelines.signal_arrays import WEIGHT_SCALE, type_code
from pipelines.stream.state import EntityState
from pipelines.timelines import WINDOWS, micros_to_timestamps

_VIEW, _CLICK, _CART, _PURCHASE, _SEARCH, _MESSAGE = (
    type_code(name) for name in ("view", "click", "add_to_cart", "purchase", "search", "message")
)
_TYPES = len(SIGNAL_TYPES)
_USER_COUNTS = (
    ("views_30d", _VIEW, "30d"),
    ("clicks_30d", _CLICK, "30d"),
    ("add_to_cart_30d", _CART, "30d"),
    ("purchases_30d", _PURCHASE, "30d"),
    ("searches_7d", _SEARCH, "7d"),
    ("messages_30d", _MESSAGE, "30d"),
)


def _windows(state: EntityState, last: int) -> dict[str, tuple[int, int, list[int]]]:
    """Per window: events, micro-weight sum and events per type code in (last - w, last]."""
    # Windows nest (1d in 7d in 30d): one pass, each event tested against the widest first.
    (l1, s1), (l7, s7), (l30, s30) = WINDOWS.items()
    b1, b7, b30 = last - s1, last - s7, last - s30
    n1 = n7 = n30 = w1 = w7 = w30 = 0
    t1, t7, t30 = [0] * _TYPES, [0] * _TYPES, [0] * _TYPES
    for t, code, w in state.recent:
        if b30 < t <= last:
            n30 += 1
            w30 += w
            t30[code] += 1
            if t > b7:
                n7 += 1
                w7 += w
                t7[code] += 1
                if t > b1:
                    n1 += 1
                    w1 += w
                    t1[code] += 1
    return {l1: (n1, w1, t1), l7: (n7, w7, t7), l30: (n30, w30, t30)}


def _ratings(totals: dict[str, str]) -> tuple[int, float, float]:
    """Count, mean and population std from the running sums of deviations (NaN without)."""
    count = int(totals.get("rn", 0))
    if count == 0:
        return 0, math.nan, math.nan
    base, sums, squares = float(totals["rb"]), float(totals["rs"]), float(totals["rq"])
    mean_deviation = sums / count
    variance = squares / count - mean_deviation * mean_deviation
    return count, base + mean_deviation, math.sqrt(max(variance, 0.0))


def _top_categories(affinities: dict[str, int]) -> tuple[list[str], list[float], int]:
    """Up to TOP_CATEGORIES categories by positive affinity (ties by name) and their shares."""
    ranked = sorted(affinities.items(), key=lambda pair: (-pair[1], pair[0]))
    top = [(name, value) for name, value in ranked[:TOP_CATEGORIES] if value > 0]
    total = float(sum(max(value, 0) for value in affinities.values())) if top else 1.0
    shares = np.array([value for _, value in top], np.float64) / total
    return [name for name, _ in top], shares.astype(np.float32).tolist(), len(affinities)


def user_rows(states: Sequence[EntityState], created: datetime) -> pa.Table:
    """USER_SNAPSHOT_SCHEMA rows, one per user, at each user's latest event."""
    columns: dict[str, list[object]] = {name: [] for name in USER_SNAPSHOT_SCHEMA.names}
    for state in states:
        totals = state.totals
        last = int(totals["last"])
        windows = _windows(state, last)
        row: dict[str, object] = {"user_id": state.entity_id, "event_timestamp": last}
        for label, (count, weight, _) in windows.items():
            row[f"events_{label}"] = count
            row[f"weighted_{label}"] = weight / WEIGHT_SCALE
        row["events_all"] = events = int(totals["n"])
        row["weighted_all"] = int(totals["w"]) / WEIGHT_SCALE
        for name, code, label in _USER_COUNTS:
            row[name] = windows[label][2][code]
        row["purchases_all"] = int(totals.get(f"t{_PURCHASE}", 0))
        row["rating_count"], row["rating_mean"], row["rating_std"] = _ratings(totals)
        row["distinct_items"] = int(totals.get("di", 0))
        row["first_event_ts"], row["last_event_ts"] = int(totals["first"]), last
        sessions = int(totals["sc"])
        row["session_count"] = sessions
        row["session_events_mean"] = events / sessions
        row["session_minutes_mean"] = int(totals["sd"]) / MICROS_PER_MINUTE / sessions
        top = _top_categories(state.affinities)
        row["top_categories"], row["top_category_shares"], row["category_count"] = top
        for name in USER_SNAPSHOT_SCHEMA.names:
            if name != "created":
                columns[name].append(row[name])
    return _table(USER_SNAPSHOT_SCHEMA, columns, created, len(states))


def item_rows(states: Sequence[EntityState], created: datetime) -> pa.Table:
    """ITEM_SNAPSHOT_SCHEMA rows, one per item, at each item's latest event."""
    columns: dict[str, list[object]] = {name: [] for name in ITEM_SNAPSHOT_SCHEMA.names}
    for state in states:
        totals = state.totals
        last = int(totals["last"])
        windows = _windows(state, last)
        row: dict[str, object] = {"item_id": state.entity_id, "event_timestamp": last}
        for label, (count, weight, by_type) in windows.items():
            row[f"item_events_{label}"] = count
            if label != "1d":
                row[f"item_weighted_{label}"] = weight / WEIGHT_SCALE
            if label == "30d":
                row["item_purchases_30d"] = by_type[_PURCHASE]
        row["item_events_all"] = int(totals["n"])
        row["item_weighted_all"] = int(totals["w"]) / WEIGHT_SCALE
        row["item_users"] = int(totals.get("du", 0))
        count, mean, std = _ratings(totals)
        row["item_rating_count"], row["item_rating_mean"], row["item_rating_std"] = count, mean, std
        week = np.array([row["item_weighted_7d"]], np.float64)
        month = np.array([row["item_weighted_30d"]], np.float64)
        row["item_trend"] = float(trend(week, month)[0])
        row["item_last_event_ts"] = last
        for name in ITEM_SNAPSHOT_SCHEMA.names:
            if name != "created":
                columns[name].append(row[name])
    return _table(ITEM_SNAPSHOT_SCHEMA, columns, created, len(states))


def _table(
    schema: pa.Schema, columns: dict[str, list[object]], created: datetime, rows: int
) -> pa.Table:
    arrays = []
    for field in schema:
        if field.name == "created":
            arrays.append(pa.array([created] * rows, field.type))
        elif pa.types.is_timestamp(field.type):
            arrays.append(micros_to_timestamps(np.array(columns[field.name], np.int64)))
        elif pa.types.is_floating(field.type):
            arrays.append(pa.array(np.array(columns[field.name], np.float64), from_pandas=True))
        else:
            arrays.append(pa.array(columns[field.name], field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
