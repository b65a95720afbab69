"""Feature views over the snapshots, one per freshness horizon, each with the ttl it implies.

A snapshot row exists for every day an entity had signals (stamped at its last signal that day)
and at each run's as_of. A trailing-window feature in a row older than its window counts nothing
that is still inside the window, so each view's ttl is its window: past it, the point-in-time
join (and Engram's online read with enforce_ttl) return NULL, which for these counts means 0.
All-time features stay right until the entity's next signal, so their views never expire.

Each view's source is the push source over the snapshot file: `feast materialize` loads it from
Parquet and the streaming path's pushes refresh it online, with no second copy in Redis.
"""

from datetime import timedelta

from data_sources import item_stats_push_source, user_stats_push_source
from entities import item, user
from feast import FeatureView, Field
from feast.types import Array, Float32, Float64, Int64, String, UnixTimestamp

from pipelines.feature_specs import ITEM_FEATURES, USER_FEATURES

# Feature descriptions live with the features' definitions in the pipeline, written once.
USER = {spec.name: spec.description for spec in USER_FEATURES}
ITEM = {spec.name: spec.description for spec in ITEM_FEATURES}
NEVER = timedelta(0)  # Feast's "no ttl"

user_1d_fv = FeatureView(
    name="user_1d",
    entities=[user],
    ttl=timedelta(days=1),
    source=user_stats_push_source,
    schema=[
        Field(name="events_1d", dtype=Int64, description=USER["events_1d"]),
        Field(name="weighted_1d", dtype=Float64, description=USER["weighted_1d"]),
    ],
    description="User activity in the last day; expires with its one-day window.",
)

user_7d_fv = FeatureView(
    name="user_7d",
    entities=[user],
    ttl=timedelta(days=7),
    source=user_stats_push_source,
    schema=[
        Field(name="events_7d", dtype=Int64, description=USER["events_7d"]),
        Field(name="weighted_7d", dtype=Float64, description=USER["weighted_7d"]),
        Field(name="searches_7d", dtype=Int64, description=USER["searches_7d"]),
    ],
    description="User activity in the last 7 days; expires with its 7-day window.",
)

user_30d_fv = FeatureView(
    name="user_30d",
    entities=[user],
    ttl=timedelta(days=30),
    source=user_stats_push_source,
    schema=[
        Field(name="events_30d", dtype=Int64, description=USER["events_30d"]),
        Field(name="weighted_30d", dtype=Float64, description=USER["weighted_30d"]),
        Field(name="views_30d", dtype=Int64, description=USER["views_30d"]),
        Field(name="clicks_30d", dtype=Int64, description=USER["clicks_30d"]),
        Field(name="add_to_cart_30d", dtype=Int64, description=USER["add_to_cart_30d"]),
        Field(name="purchases_30d", dtype=Int64, description=USER["purchases_30d"]),
        Field(name="messages_30d", dtype=Int64, description=USER["messages_30d"]),
    ],
    description="User activity in the last 30 days; expires with its 30-day window.",
)

user_profile_fv = FeatureView(
    name="user_profile",
    entities=[user],
    ttl=NEVER,
    source=user_stats_push_source,
    schema=[
        Field(name="events_all", dtype=Int64, description=USER["events_all"]),
        Field(name="weighted_all", dtype=Float64, description=USER["weighted_all"]),
        Field(name="purchases_all", dtype=Int64, description=USER["purchases_all"]),
        Field(name="rating_count", dtype=Int64, description=USER["rating_count"]),
        Field(name="rating_mean", dtype=Float64, description=USER["rating_mean"]),
        Field(name="rating_std", dtype=Float64, description=USER["rating_std"]),
        Field(name="distinct_items", dtype=Int64, description=USER["distinct_items"]),
        Field(name="first_event_ts", dtype=UnixTimestamp, description=USER["first_event_ts"]),
        Field(name="last_event_ts", dtype=UnixTimestamp, description=USER["last_event_ts"]),
        Field(name="session_count", dtype=Int64, description=USER["session_count"]),
        Field(name="session_events_mean", dtype=Float64, description=USER["session_events_mean"]),
        Field(name="session_minutes_mean", dtype=Float64, description=USER["session_minutes_mean"]),
        Field(name="top_categories", dtype=Array(String), description=USER["top_categories"]),
        Field(
            name="top_category_shares",
            dtype=Array(Float32),
            description=USER["top_category_shares"],
        ),
        Field(name="category_count", dtype=Int64, description=USER["category_count"]),
    ],
    description="All-time user profile: totals, ratings, sessions, favourite categories. "
    "Right until the user's next signal, so it never expires.",
)

item_1d_fv = FeatureView(
    name="item_1d",
    entities=[item],
    ttl=timedelta(days=1),
    source=item_stats_push_source,
    schema=[Field(name="item_events_1d", dtype=Int64, description=ITEM["item_events_1d"])],
    description="Signals on the item in the last day; expires with its one-day window.",
)

item_7d_fv = FeatureView(
    name="item_7d",
    entities=[item],
    ttl=timedelta(days=7),
    source=item_stats_push_source,
    schema=[
        Field(name="item_events_7d", dtype=Int64, description=ITEM["item_events_7d"]),
        Field(name="item_weighted_7d", dtype=Float64, description=ITEM["item_weighted_7d"]),
        Field(name="item_trend", dtype=Float64, description=ITEM["item_trend"]),
    ],
    description="Item popularity in the last 7 days and its trend; expires with the 7-day window.",
)

item_30d_fv = FeatureView(
    name="item_30d",
    entities=[item],
    ttl=timedelta(days=30),
    source=item_stats_push_source,
    schema=[
        Field(name="item_events_30d", dtype=Int64, description=ITEM["item_events_30d"]),
        Field(name="item_weighted_30d", dtype=Float64, description=ITEM["item_weighted_30d"]),
        Field(name="item_purchases_30d", dtype=Int64, description=ITEM["item_purchases_30d"]),
    ],
    description="Item popularity in the last 30 days; expires with its 30-day window.",
)

item_profile_fv = FeatureView(
    name="item_profile",
    entities=[item],
    ttl=NEVER,
    source=item_stats_push_source,
    schema=[
        Field(name="item_events_all", dtype=Int64, description=ITEM["item_events_all"]),
        Field(name="item_weighted_all", dtype=Float64, description=ITEM["item_weighted_all"]),
        Field(name="item_users", dtype=Int64, description=ITEM["item_users"]),
        Field(name="item_rating_count", dtype=Int64, description=ITEM["item_rating_count"]),
        Field(name="item_rating_mean", dtype=Float64, description=ITEM["item_rating_mean"]),
        Field(name="item_rating_std", dtype=Float64, description=ITEM["item_rating_std"]),
        Field(
            name="item_last_event_ts", dtype=UnixTimestamp, description=ITEM["item_last_event_ts"]
        ),
    ],
    description="All-time item profile: totals, audience, ratings. Right until the item's next "
    "signal, so it never expires.",
)
