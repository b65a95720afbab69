"""The batch features Engram computes: names (the Feast feature names), types and descriptions.

`aggregate_users` and `aggregate_items` emit exactly these columns in this order after the entity
key, `event_timestamp` and `created`; the Feast definitions are tested against these tuples and
the docs render from them. Windows are trailing and exact: "7d" counts events with
row time - 7 days < ts <= row time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from core.contract import UTC_TS

FeatureType = Literal["int64", "float64", "timestamp", "list<string>", "list<float32>"]

ARROW_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "timestamp": UTC_TS,
    "list<string>": pa.list_(pa.string()),
    "list<float32>": pa.list_(pa.float32()),
}


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of a snapshot row."""

    name: str
    dtype: FeatureType
    description: str

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type of the feature's column."""
        return ARROW_TYPES[self.dtype]


def _windows(
    prefix: str, dtype: FeatureType, what: str, windows: tuple[str, ...]
) -> tuple[FeatureSpec, ...]:
    spans = {"1d": "in the last day", "7d": "in the last 7 days", "30d": "in the last 30 days"}
    return tuple(
        FeatureSpec(f"{prefix}_{window}", dtype, f"{what} {spans.get(window, 'over all time')}.")
        for window in windows
    )


USER_FEATURES: tuple[FeatureSpec, ...] = (
    *_windows("events", "int64", "Signals of any type", ("1d", "7d", "30d", "all")),
    *_windows(
        "weighted",
        "float64",
        "Sum of signal weights (implicit weight per type; ratings above 2.5 add, below subtract)",
        ("1d", "7d", "30d", "all"),
    ),
    FeatureSpec("views_30d", "int64", "Item views in the last 30 days."),
    FeatureSpec("clicks_30d", "int64", "Item clicks in the last 30 days."),
    FeatureSpec("add_to_cart_30d", "int64", "Items added to the cart in the last 30 days."),
    FeatureSpec("purchases_30d", "int64", "Purchases in the last 30 days."),
    FeatureSpec("purchases_all", "int64", "Purchases over all time."),
    FeatureSpec("searches_7d", "int64", "Searches in the last 7 days."),
    FeatureSpec("messages_30d", "int64", "Chat messages in the last 30 days."),
    FeatureSpec("rating_count", "int64", "Ratings given over all time."),
    FeatureSpec("rating_mean", "float64", "Mean rating given over all time; NULL without ratings."),
    FeatureSpec(
        "rating_std",
        "float64",
        "Population standard deviation of ratings given; 0 for one rating, NULL for none.",
    ),
    FeatureSpec("distinct_items", "int64", "Distinct items the user touched over all time."),
    FeatureSpec("first_event_ts", "timestamp", "Time of the user's first signal."),
    FeatureSpec("last_event_ts", "timestamp", "Time of the user's latest signal up to the row."),
    FeatureSpec("session_count", "int64", "Sessions (split by the inactivity gap) so far."),
    FeatureSpec("session_events_mean", "float64", "Mean signals per session."),
    FeatureSpec(
        "session_minutes_mean",
        "float64",
        "Mean session length in minutes, first to last signal (0 for a one-signal session).",
    ),
    FeatureSpec(
        "top_categories",
        "list<string>",
        "Up to 5 item categories with the highest positive weighted affinity, ties by name.",
    ),
    FeatureSpec(
        "top_category_shares",
        "list<float32>",
        "Each top category's share of the user's positive affinity over all categories.",
    ),
    FeatureSpec("category_count", "int64", "Distinct item categories the user touched."),
)

ITEM_FEATURES: tuple[FeatureSpec, ...] = (
    *_windows("item_events", "int64", "Signals on the item", ("1d", "7d", "30d", "all")),
    *_windows(
        "item_weighted",
        "float64",
        "Sum of the weights of signals on the item",
        ("7d", "30d", "all"),
    ),
    FeatureSpec("item_users", "int64", "Distinct users who touched the item over all time."),
    FeatureSpec("item_purchases_30d", "int64", "Purchases of the item in the last 30 days."),
    FeatureSpec("item_rating_count", "int64", "Ratings of the item over all time."),
    FeatureSpec("item_rating_mean", "float64", "Mean rating of the item; NULL without ratings."),
    FeatureSpec(
        "item_rating_std",
        "float64",
        "Population standard deviation of the item's ratings; 0 for one, NULL for none.",
    ),
    FeatureSpec(
        "item_trend",
        "float64",
        "Weighted signals of the last 7 days over the 30-day weekly average "
        "(item_weighted_7d / (item_weighted_30d * 7 / 30)); 1 is steady, NULL when the "
        "30-day weight is not positive.",
    ),
    FeatureSpec("item_last_event_ts", "timestamp", "Time of the latest signal on the item."),
)


def snapshot_schema(key: str, features: tuple[FeatureSpec, ...]) -> pa.Schema:
    """Arrow schema of a snapshot: entity key, event_timestamp, created, then the features."""
    return pa.schema(
        [
            pa.field(key, pa.string(), nullable=False),
            pa.field("event_timestamp", UTC_TS, nullable=False),
            pa.field("created", UTC_TS, nullable=False),
            *(pa.field(spec.name, spec.arrow_type) for spec in features),
        ]
    )
