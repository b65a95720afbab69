"""User feature snapshots (USER_FEATURES) on Spark; semantics in `pipelines/aggregate.py`."""

from __future__ import annotations

from datetime import timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines.aggregate_users import MICROS_PER_MINUTE, TOP_CATEGORIES, USER_SNAPSHOT_SCHEMA
from pipelines.spark.timelines import (
    frame,
    is_row,
    last_signal,
    of_type,
    order,
    rating_stats,
    rating_sums,
    scaled,
    timestamp,
    total,
    utc_day,
    with_probes,
)

KEY = "user_id"


def user_snapshots(signals: DataFrame, *, as_of_us: int, session_gap: timedelta) -> DataFrame:
    """User snapshot rows (USER_SNAPSHOT_SCHEMA's columns) from `timelines.signals`."""
    gap_us = session_gap // timedelta(microseconds=1)
    previous = F.lag("t").over(order(KEY))
    real = F.col("ev") == 1
    # A session starts where the gap to the previous signal exceeds the session gap; a
    # session's length is the sum of the gaps inside it, so the minutes of every session up to
    # a row (the current one cut at the row) are one running sum.
    starts = real & (previous.isNull() | (F.col("t") - previous > gap_us))
    timeline = with_probes(signals, KEY, as_of_us).select(
        "*",
        F.when(starts, 1).otherwise(0).alias("session_start"),
        F.when(real & ~starts, F.col("t") - previous).otherwise(0).alias("session_gap"),
        is_row(KEY).alias("is_row"),
    )
    ev, w = F.col("ev"), F.col("w")
    windows = {
        **{f"events_{label}": total(ev, KEY, label) for label in ("1d", "7d", "30d", "all")},
        **{f"w_{label}": total(w, KEY, label) for label in ("1d", "7d", "30d", "all")},
        "views_30d": total(of_type("view"), KEY, "30d"),
        "clicks_30d": total(of_type("click"), KEY, "30d"),
        "add_to_cart_30d": total(of_type("add_to_cart"), KEY, "30d"),
        "purchases_30d": total(of_type("purchase"), KEY, "30d"),
        "purchases_all": total(of_type("purchase"), KEY, "all"),
        "searches_7d": total(of_type("search"), KEY, "7d"),
        "messages_30d": total(of_type("message"), KEY, "30d"),
        **rating_sums(KEY),
        "distinct_items": total("first_pair", KEY, "all"),
        "first_t": F.min(F.when(real, F.col("t"))).over(frame(KEY, "all")),
        "last_t": last_signal(KEY),
        "session_count": total("session_start", KEY, "all"),
        "session_micros": total("session_gap", KEY, "all"),
    }
    rows = timeline.select(
        KEY, "t", "is_row", *(column.alias(name) for name, column in windows.items())
    ).filter("is_row")
    categories = _top_categories(signals)
    rows = rows.join(
        categories,
        (rows[KEY] == categories["c_user"]) & (utc_day(rows["last_t"]) == categories["c_day"]),
        "left",
    )
    features: dict[str, Column] = {
        **{f"events_{label}": F.col(f"events_{label}") for label in ("1d", "7d", "30d", "all")},
        **{
            f"weighted_{label}": scaled(F.col(f"w_{label}")) for label in ("1d", "7d", "30d", "all")
        },
        **{
            name: F.col(name)
            for name in (
                "views_30d",
                "clicks_30d",
                "add_to_cart_30d",
                "purchases_30d",
                "purchases_all",
                "searches_7d",
                "messages_30d",
                "distinct_items",
                "session_count",
            )
        },
        **dict(zip(("rating_count", "rating_mean", "rating_std"), rating_stats(), strict=True)),
        "first_event_ts": timestamp("first_t"),
        "last_event_ts": timestamp("last_t"),
        "session_events_mean": F.col("events_all") / F.col("session_count"),
        "session_minutes_mean": F.col("session_micros")
        / F.lit(MICROS_PER_MINUTE)
        / F.col("session_count"),
        "top_categories": F.coalesce(
            F.transform("top", lambda pick: pick["category"]), F.array().cast("array<string>")
        ),
        "top_category_shares": F.coalesce(
            F.transform(
                "top",
                lambda pick: ((-pick["negative"]).cast("double") / F.col("positive")).cast("float"),
            ),
            F.array().cast("array<float>"),
        ),
        "category_count": F.coalesce(F.col("category_count"), F.lit(0).cast("long")),
    }
    return rows.select(
        F.col(KEY),
        timestamp("t").alias("event_timestamp"),
        timestamp(F.lit(as_of_us)).alias("created"),
        *(features[name].alias(name) for name in USER_SNAPSHOT_SCHEMA.names[3:]),
    )


def _top_categories(signals: DataFrame) -> DataFrame:
    """Per (user, UTC day with signals): categories touched so far, the positive affinity
    total, and the top categories by positive affinity (ties by name) as (negative affinity,
    category) pairs, all in micro-weights.

    Each user day meets each category the user had touched by then; the running sum of the
    category's daily weight down those days is the affinity at the day's last signal.
    """
    days = signals.select(F.col(KEY).alias("c_user"), utc_day(F.col("t")).alias("c_day"))
    daily = (
        signals.filter(F.col("category").isNotNull())
        .groupBy(F.col(KEY).alias("c_user"), "category", utc_day(F.col("t")).alias("c_day"))
        .agg(F.sum("w").alias("w"))
    )
    first = daily.groupBy("c_user", "category").agg(F.min("c_day").alias("first_day"))
    grid = (
        days.distinct()
        .join(first, "c_user")
        .filter(F.col("first_day") <= F.col("c_day"))
        .join(daily, ["c_user", "category", "c_day"], "left")
    )
    running = (
        Window.partitionBy("c_user", "category")
        .orderBy("c_day")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    affinity = grid.withColumn("affinity", F.sum(F.coalesce("w", F.lit(0))).over(running))
    pick = F.when(
        F.col("affinity") > 0,
        F.struct((-F.col("affinity")).alias("negative"), F.col("category").alias("category")),
    )
    return affinity.groupBy("c_user", "c_day").agg(
        F.count(F.lit(1)).alias("category_count"),
        F.sum(F.greatest("affinity", F.lit(0))).alias("positive"),
        F.slice(F.sort_array(F.collect_list(pick)), 1, TOP_CATEGORIES).alias("top"),
    )
