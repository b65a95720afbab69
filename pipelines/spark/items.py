"""Item feature snapshots (ITEM_FEATURES) on Spark; semantics in `pipelines/aggregate.py`."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.aggregate_items import ITEM_SNAPSHOT_SCHEMA
from pipelines.spark.timelines import (
    is_row,
    last_signal,
    of_type,
    rating_stats,
    rating_sums,
    scaled,
    timestamp,
    total,
    with_probes,
)

KEY = "item_id"


def item_snapshots(signals: DataFrame, *, as_of_us: int) -> DataFrame:
    """Item snapshot rows (ITEM_SNAPSHOT_SCHEMA's columns) from `timelines.signals`."""
    on_items = signals.filter(F.col(KEY).isNotNull())
    timeline = with_probes(on_items, KEY, as_of_us).select("*", is_row(KEY).alias("is_row"))
    ev, w = F.col("ev"), F.col("w")
    windows = {
        **{f"item_events_{label}": total(ev, KEY, label) for label in ("1d", "7d", "30d", "all")},
        **{f"w_{label}": total(w, KEY, label) for label in ("7d", "30d", "all")},
        "item_users": total("first_pair", KEY, "all"),
        "item_purchases_30d": total(of_type("purchase"), KEY, "30d"),
        **rating_sums(KEY),
        "last_t": last_signal(KEY),
    }
    rows = timeline.select(
        KEY, "t", "is_row", *(column.alias(name) for name, column in windows.items())
    ).filter("is_row")
    week, month = scaled(F.col("w_7d")), scaled(F.col("w_30d"))
    features: dict[str, Column] = {
        **{name: F.col(name) for name in windows if name.startswith("item_")},
        **dict(
            zip(
                ("item_rating_count", "item_rating_mean", "item_rating_std"),
                rating_stats(),
                strict=True,
            )
        ),
        **{f"item_weighted_{label}": scaled(F.col(f"w_{label}")) for label in ("7d", "30d", "all")},
        # The same arithmetic as `aggregate_items.trend`: NULL unless the 30 days are > 0.
        "item_trend": F.when(month > 0, week / (month * 7 / 30)),
        "item_last_event_ts": timestamp("last_t"),
    }
    return rows.select(
        F.col(KEY),
        timestamp("t").alias("event_timestamp"),
        timestamp(F.lit(as_of_us)).alias("created"),
        *(features[name].alias(name) for name in ITEM_SNAPSHOT_SCHEMA.names[3:]),
    )
