"""Enrichment: normalized signals plus catalog fields, sessions, UTC calendar fields and weights.

A pure transform over DuckDB relations: it reads nothing and writes nothing, so the batch runner
can hand it a scan of the event store and tests can hand it an Arrow table.

- Catalog: a left join on `item_id`; events whose item is absent from the catalog (or that have
  no item) keep NULL `category`, `genres` and `title`.
- Sessions: per user in ts order, a new session starts when the gap to the user's previous
  event is strictly greater than `session_gap` (a gap exactly equal stays in the session).
  `session` is f"{user_id}#{n}", n counting from 0 in time order. Events tied on ts have a gap
  of 0, so they always share a session and the result never depends on the order of ties.
- `hour` (0-23) and `weekday` (0 = Monday) are taken in UTC whatever the connection's time zone.
- `weight` is IMPLICIT_WEIGHTS[type], except for `rate`, see `rate_weight_sql`.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb

from core.contract import (
    CATALOG_SCHEMA,
    IMPLICIT_WEIGHTS,
    NORMALIZED_SCHEMA,
    RATING_MAX,
    RATING_MIN,
)
from core.errors import InvalidInputError

# A rating is feedback in both directions: the middle of the scale weighs nothing, a top rating
# weighs as much as any rating's implicit weight and a bottom one as much against. So a 1-star
# rating lowers a user's affinity to the item's category and an item's weighted counts, the same
# way in user and item features. A rating without a value says nothing either way: weight 0.
RATE_WEIGHT_MIDPOINT = (RATING_MIN + RATING_MAX) / 2
RATE_WEIGHT_SCALE = IMPLICIT_WEIGHTS["rate"] / (RATING_MAX - RATE_WEIGHT_MIDPOINT)


def rate_weight(value: float | None) -> float:
    """The weight of a rating with this value (3.0 for 5 stars, 0 for 2.5, -3.0 for 0)."""
    if value is None:
        return 0.0
    return (value - RATE_WEIGHT_MIDPOINT) * RATE_WEIGHT_SCALE


def rate_weight_sql(value_column: str) -> str:
    """SQL for `rate_weight` of a column, the same arithmetic as the Python function."""
    return f"coalesce(({value_column} - {RATE_WEIGHT_MIDPOINT!r}) * {RATE_WEIGHT_SCALE!r}, 0.0)"


def weight_sql() -> str:
    """SQL of a signal's weight from its `type` and `value` columns (DuckDB and Spark SQL alike)."""
    cases = " ".join(
        f"WHEN '{name}' THEN {weight!r}"
        for name, weight in IMPLICIT_WEIGHTS.items()
        if name != "rate"
    )
    # Types outside the contract cannot pass normalization; weight 0 keeps the column non-null.
    return f"CASE type WHEN 'rate' THEN {rate_weight_sql('value')} {cases} ELSE 0.0 END"


def _require_columns(relation: duckdb.DuckDBPyRelation, needed: list[str], what: str) -> None:
    missing = [name for name in needed if name not in relation.columns]
    if missing:
        raise InvalidInputError(what, f"missing columns {', '.join(missing)}")


def enrich(
    con: duckdb.DuckDBPyConnection,
    events: duckdb.DuckDBPyRelation,
    catalog: duckdb.DuckDBPyRelation,
    *,
    session_gap: timedelta,
) -> duckdb.DuckDBPyRelation:
    """Normalized events with ENRICHED_SCHEMA's columns: catalog fields, session, hour, weight."""
    if session_gap <= timedelta(0):
        raise InvalidInputError("session_gap", "must be positive")
    _require_columns(events, NORMALIZED_SCHEMA.names, "events")
    _require_columns(catalog, ["item_id", "title", "category", "genres"], "catalog")
    gap_us = session_gap // timedelta(microseconds=1)
    event_columns = ", ".join(f"e.{name}" for name in NORMALIZED_SCHEMA.names)
    # The catalog is one row per item by construction; should it hold duplicates anyway, keep
    # one per item (the first by title) so the join can never multiply events.
    catalog_columns = [name for name in CATALOG_SCHEMA.names if name != "text"]
    # `events` and `catalog` in the SQL are this function's arguments (DuckDB replacement scans).
    return con.sql(
        f"""
        WITH items AS (
            SELECT DISTINCT ON (item_id) {", ".join(catalog_columns)}
            FROM catalog
            ORDER BY item_id, title NULLS LAST, category NULLS LAST
        ),
        gaps AS (
            SELECT
                {event_columns}, i.category, i.genres, i.title,
                coalesce(
                    epoch_us(e.ts) - lag(epoch_us(e.ts)) OVER (PARTITION BY e.user_id ORDER BY e.ts)
                        > {gap_us},
                    false
                ) AS gap_before
            FROM events e
            LEFT JOIN items i ON e.item_id = i.item_id
        )
        SELECT
            {", ".join(NORMALIZED_SCHEMA.names)}, category, genres, title,
            -- RANGE counts every event tied on ts alike, whichever of them carries the gap.
            user_id || '#' || CAST(
                count_if(gap_before) OVER (
                    PARTITION BY user_id ORDER BY ts RANGE UNBOUNDED PRECEDING
                ) AS VARCHAR
            ) AS session,
            CAST(hour(timezone('UTC', ts)) AS TINYINT) AS hour,
            CAST(isodow(timezone('UTC', ts)) - 1 AS TINYINT) AS weekday,
            CAST({weight_sql()} AS DOUBLE) AS weight
        FROM gaps
        """
    )
