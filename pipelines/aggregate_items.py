"""Item feature snapshots (ITEM_FEATURES) from enriched signals; semantics in `aggregate.py`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from pipelines.feature_specs import ITEM_FEATURES, snapshot_schema
from pipelines.history import History
from pipelines.signal_arrays import WEIGHT_SCALE, SignalArrays, read_signals, type_code
from pipelines.timelines import (
    WINDOWS,
    Timeline,
    as_of_micros,
    first_occurrences,
    micros_to_timestamps,
    rating_stats,
    snapshot_table,
    sort_order,
)

ITEM_SNAPSHOT_SCHEMA = snapshot_schema("item_id", ITEM_FEATURES)


def aggregate_items(
    con: duckdb.DuckDBPyConnection, enriched: duckdb.DuckDBPyRelation, *, as_of: datetime
) -> duckdb.DuckDBPyRelation:
    """Item snapshot rows (ITEM_SNAPSHOT_SCHEMA) from the signals on items with ts <= as_of."""
    as_of_us = as_of_micros(as_of)
    return con.from_arrow(item_snapshots(read_signals(enriched, as_of_us), as_of_us).table)


@dataclass(frozen=True)
class ItemSnapshots:
    """Item snapshot rows, and what their computation found on the way for the user side."""

    table: pa.Table
    first_pair_signals: np.ndarray  # indices into the signals: each (user, item) pair's first


def item_snapshots(
    signals: SignalArrays,
    as_of_us: int,
    history: History | None = None,
    seen_pairs: np.ndarray | None = None,
) -> ItemSnapshots:
    """Item snapshot rows from signals already read (all with ts <= as_of_us); `history` and
    `seen_pairs` as in `aggregate_users.user_snapshots`."""
    on_items = np.flatnonzero(signals.items >= 0)
    order = on_items[sort_order(signals.items[on_items], signals.t[on_items])]
    timeline = Timeline(signals.items[order], signals.t[order], as_of_us)
    weights = signals.weights[order]
    windows: dict[str, int | None] = {**WINDOWS, "all": None}
    features: dict[str, np.ndarray | pa.Array] = {}
    for label, counts in timeline.event_counts(windows).items():
        features[f"item_events_{label}"] = counts
    del windows["1d"]
    row_entity = timeline.row_entity
    for label, sums in timeline.window_sums(weights, windows).items():
        if label == "all" and history is not None:
            sums = sums + history.weight[row_entity]
        features[f"item_weighted_{label}"] = sums / WEIGHT_SCALE
    first_user = first_occurrences(timeline.entity, signals.users[order], len(signals.user_names))
    if seen_pairs is not None:
        first_user &= ~seen_pairs[order]
    features["item_users"] = timeline.total(first_user)
    if history is not None:
        features["item_events_all"] = features["item_events_all"] + history.events[row_entity]
        features["item_users"] = features["item_users"] + history.distinct[row_entity]
    purchases = signals.types[order] == type_code("purchase")
    features["item_purchases_30d"] = timeline.window_sums(purchases, {"30d": WINDOWS["30d"]})["30d"]
    before = None if history is None else history.ratings
    count, mean, std = rating_stats(timeline, signals.ratings[order], before)
    features.update(item_rating_count=count, item_rating_mean=mean, item_rating_std=std)
    features["item_trend"] = trend(features["item_weighted_7d"], features["item_weighted_30d"])
    features["item_last_event_ts"] = micros_to_timestamps(timeline.t[timeline.row_event])
    return ItemSnapshots(
        table=snapshot_table(ITEM_SNAPSHOT_SCHEMA, signals.item_names, timeline, features),
        first_pair_signals=order[first_user],
    )


def trend(weighted_7d: np.ndarray | pa.Array, weighted_30d: np.ndarray | pa.Array) -> np.ndarray:
    """Last week's weight over the 30-day weekly average; NaN (NULL) unless the 30 days are > 0.

    1 means steady and more means rising; with only positive weights it ranges from 0 to 30/7.
    """
    week = np.asarray(weighted_7d, dtype=np.float64)
    month = np.asarray(weighted_30d, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(month > 0, week / (month * 7 / 30), np.nan)
