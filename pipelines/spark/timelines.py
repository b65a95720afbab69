"""Per-entity timelines on Spark: the signals as the aggregations read them, the snapshot rows,
and exact trailing windows, with the semantics of `pipelines/aggregate.py`.

Every feature is a window aggregate over an entity's signals ordered by epoch microseconds `t`.
RANGE frames make the trailing window "w" exactly (t - w, t], and since signals tied on `t` are
peers of one another, every tied signal sees the same value, as in the DuckDB engine.

Snapshot rows: the last signal of each (entity, UTC day) is that day's row. For the row at
`as_of`, each entity whose last signal is earlier gets one *probe*: a row at t = as_of that
counts for nothing (`ev` = 0), so the frames that end at the probe are the windows as of then.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from pipelines.signal_arrays import WEIGHT_SCALE, type_code, type_code_sql
from pipelines.timelines import MICROS_PER_DAY, RATING_MIDPOINT_MICROS, RATING_SCALE, WINDOWS


def signals(enriched: DataFrame, as_of_us: int) -> DataFrame:
    """The enriched signals with ts <= as_of, as the aggregations read them: `t` (epoch
    microseconds), `type_code`, integer micro-weights `w`, `rating`, and `first_pair` (1 on the
    first signal of each (user, item) pair), `ev` = 1."""
    t = F.unix_micros("ts")
    pair = Window.partitionBy("user_id", "item_id").orderBy("t")
    return (
        enriched.filter(t <= as_of_us)
        .select(
            "user_id",
            "item_id",
            "category",
            t.alias("t"),
            F.expr(type_code_sql()).alias("type_code"),
            F.round(F.col("weight") * WEIGHT_SCALE).cast("long").alias("w"),
            F.when(F.col("type") == "rate", F.col("value")).alias("rating"),
        )
        .withColumn(
            "first_pair",
            F.when(F.col("item_id").isNotNull() & (F.row_number().over(pair) == 1), 1).otherwise(0),
        )
        .withColumn("ev", F.lit(1))
    )


def utc_day(t: Column) -> Column:
    """The UTC calendar day of epoch microseconds (floor division, as numpy's)."""
    return ((t - F.pmod(t, F.lit(MICROS_PER_DAY))) / MICROS_PER_DAY).cast("long")


def with_probes(signals: DataFrame, key: str, as_of_us: int) -> DataFrame:
    """`signals` and one probe at as_of for each entity whose last signal is earlier."""
    late = signals.groupBy(key).agg(F.max("t").alias("last")).filter(F.col("last") < as_of_us)
    probes = late.select(key, F.lit(as_of_us).cast("long").alias("t"), F.lit(0).alias("ev"))
    return signals.unionByName(probes, allowMissingColumns=True)


def order(key: str) -> WindowSpec:
    """An entity's signals (and probe) in time order."""
    return Window.partitionBy(key).orderBy("t")


def frame(key: str, window: str) -> WindowSpec:
    """The trailing window (row t - w, row t] ("all": everything up to the row), peers in."""
    if window == "all":
        return order(key).rangeBetween(Window.unboundedPreceding, Window.currentRow)
    return order(key).rangeBetween(-(WINDOWS[window] - 1), Window.currentRow)


def total(column: Column | str, key: str, window: str) -> Column:
    """Sum of `column` in the row's window; 0 for an empty one.

    A trailing window is the running sum up to the row minus the running sum up to t - w, as
    the DuckDB engine's prefix sums: Spark adds rows to a frame that starts unbounded, but
    sums a sliding frame anew at every row, which on an item with many signals is quadratic.
    """
    upto_row = F.coalesce(F.sum(column).over(frame(key, "all")), F.lit(0))
    if window == "all":
        return upto_row
    before = order(key).rangeBetween(Window.unboundedPreceding, -WINDOWS[window])
    return upto_row - F.coalesce(F.sum(column).over(before), F.lit(0))


def of_type(name: str) -> Column:
    """1 on signals of this type, else 0."""
    return F.when(F.col("type_code") == type_code(name), 1).otherwise(0)


def is_row(key: str) -> Column:
    """True on the snapshot rows: each (entity, day)'s last signal, and the probes."""
    following = order(key)
    next_t = F.lead("t").over(following)
    day_last = (
        next_t.isNull()
        | (F.lead("ev").over(following) == 0)
        | (utc_day(next_t) != utc_day(F.col("t")))
    )
    return (F.col("ev") == 0) | day_last


def last_signal(key: str) -> Column:
    """Time of the last signal up to the row (the probe's entity's last signal)."""
    return F.max(F.when(F.col("ev") == 1, F.col("t"))).over(frame(key, "all"))


def scaled(micro_weights: Column) -> Column:
    """Summed micro-weights back in weight units (the same division as the DuckDB engine)."""
    return micro_weights / F.lit(WEIGHT_SCALE)


def timestamp(micros: Column | str) -> Column:
    """Epoch microseconds as a timestamp."""
    return F.timestamp_micros(micros if isinstance(micros, Column) else F.col(micros))


def rating_sums(key: str) -> dict[str, Column]:
    """Running count, sum and sum of squares of the ratings as integer micro-star deviations
    from the midpoint (`pipelines.timelines.rating_micros`: half to even, as numpy rounds)."""
    deviation = F.bround(F.col("rating") * RATING_SCALE).cast("long") - F.lit(
        RATING_MIDPOINT_MICROS
    )
    return {
        "rating_n": total(F.col("rating").isNotNull().cast("long"), key, "all"),
        "rating_s1": F.sum(deviation).over(frame(key, "all")),
        "rating_s2": F.sum(deviation * deviation).over(frame(key, "all")),
    }


def rating_stats() -> tuple[Column, Column, Column]:
    """Count, mean and population std of the ratings up to the row from `rating_sums`, with the
    arithmetic of `pipelines.timelines.rating_stats` (exact integer sums), so both engines give
    the same floats; mean and std are NULL without ratings."""
    count = F.col("rating_n")
    mean_deviation = F.col("rating_s1") / count
    variance = F.col("rating_s2") / count - mean_deviation * mean_deviation
    return (
        count,
        F.when(count > 0, (F.lit(RATING_MIDPOINT_MICROS) + mean_deviation) / RATING_SCALE),
        F.when(count > 0, F.sqrt(F.greatest(variance, F.lit(0.0))) / RATING_SCALE),
    )
