"""Enrichment: catalog fields, sessions by inactivity gap, UTC hour and weekday, weights."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contract import CATALOG_SCHEMA, ENRICHED_SCHEMA, NORMALIZED_SCHEMA, SIGNAL_TYPES
from core.errors import InvalidInputError
from pipelines.enrich import enrich, rate_weight
from tests.pipelines import reference
from tests.pipelines.reference import item, signal

GAP = timedelta(minutes=30)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose time zone is not UTC, so any local-time slip shows."""
    connection = duckdb.connect(config={"threads": 1})
    connection.execute("SET TimeZone = 'Asia/Kolkata'")
    yield connection
    connection.close()


def run(
    con: duckdb.DuckDBPyConnection,
    events: list[dict[str, Any]],
    catalog: list[dict[str, Any]] | None = None,
    gap: timedelta = GAP,
) -> dict[str, dict[str, Any]]:
    """Enrich `events` and return the rows by event_id."""
    events_rel = con.from_arrow(pa.Table.from_pylist(events, schema=NORMALIZED_SCHEMA))
    catalog_rel = con.from_arrow(pa.Table.from_pylist(catalog or [], schema=CATALOG_SCHEMA))
    table = enrich(con, events_rel, catalog_rel, session_gap=gap).to_arrow_table()
    assert table.schema.names == ENRICHED_SCHEMA.names
    table = table.cast(ENRICHED_SCHEMA)
    assert table.num_rows == len(events)
    return {row["event_id"]: row for row in table.to_pylist()}


def test_output_has_the_enriched_schema(con: duckdb.DuckDBPyConnection) -> None:
    table = enrich(
        con,
        con.from_arrow(pa.Table.from_pylist([signal("e1", "u1", T0)], schema=NORMALIZED_SCHEMA)),
        con.from_arrow(CATALOG_SCHEMA.empty_table()),
        session_gap=GAP,
    ).to_arrow_table()
    assert table.cast(ENRICHED_SCHEMA).schema == ENRICHED_SCHEMA


def test_catalog_fields_join_and_missing_items_keep_nulls(con: duckdb.DuckDBPyConnection) -> None:
    rows = run(
        con,
        [
            signal("e1", "u1", T0, "view", "i1"),
            signal("e2", "u1", T0, "view", "unknown"),
            signal("e3", "u1", T0, "search"),
        ],
        [item("i1", "books", "Dune")],
    )
    assert (rows["e1"]["category"], rows["e1"]["title"], rows["e1"]["genres"]) == (
        "books",
        "Dune",
        ["books"],
    )
    for missing in ("e2", "e3"):
        assert (rows[missing]["category"], rows[missing]["title"]) == (None, None)
        assert rows[missing]["genres"] is None


def test_duplicate_catalog_rows_never_multiply_events(con: duckdb.DuckDBPyConnection) -> None:
    rows = run(
        con,
        [signal("e1", "u1", T0, "view", "i1")],
        [item("i1", "b", "Zed"), item("i1", "a", "Alpha")],
    )
    assert rows["e1"]["title"] == "Alpha"


def test_a_gap_equal_to_session_gap_stays_in_the_session(con: duckdb.DuckDBPyConnection) -> None:
    rows = run(
        con,
        [
            signal("e1", "u1", T0),
            signal("e2", "u1", T0 + GAP),  # exactly the gap: same session
            signal("e3", "u1", T0 + 2 * GAP + timedelta(microseconds=1)),  # just over: new one
            signal("e4", "u2", T0 + GAP),
        ],
    )
    assert [rows[e]["session"] for e in ("e1", "e2", "e3", "e4")] == [
        "u1#0",
        "u1#0",
        "u1#1",
        "u2#0",
    ]


def test_sessions_are_numbered_in_time_order_whatever_the_input_order(
    con: duckdb.DuckDBPyConnection,
) -> None:
    events = [
        signal("e1", "u1", T0),
        signal("e2", "u1", T0 + timedelta(hours=1)),
        signal("e3", "u1", T0 + timedelta(hours=1)),  # tie on ts
        signal("e4", "u1", T0 + timedelta(hours=3)),
    ]
    expected = {"e1": "u1#0", "e2": "u1#1", "e3": "u1#1", "e4": "u1#2"}
    for seed in range(5):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        assert {k: v["session"] for k, v in run(con, shuffled).items()} == expected


def test_hour_and_weekday_are_utc(con: duckdb.DuckDBPyConnection) -> None:
    # 2026-03-01 is a Sunday; 23:30 UTC is already Monday 05:00 in the connection's zone.
    rows = run(con, [signal("e1", "u1", T0 + timedelta(hours=23, minutes=30))])
    assert (rows["e1"]["hour"], rows["e1"]["weekday"]) == (23, 6)


def test_rating_weight_is_centred_on_the_middle_of_the_scale(
    con: duckdb.DuckDBPyConnection,
) -> None:
    values = {"r5": 5.0, "r25": 2.5, "r0": 0.0, "r4": 4.0, "none": None}
    rows = run(con, [signal(k, "u1", T0, "rate", "i1", value) for k, value in values.items()])
    weights = {k: rows[k]["weight"] for k in values}
    assert weights == pytest.approx({"r5": 3.0, "r25": 0.0, "r0": -3.0, "r4": 1.8, "none": 0.0})
    assert all(rate_weight(v) == pytest.approx(weights[k]) for k, v in values.items())


def test_other_types_weigh_their_implicit_weight(con: duckdb.DuckDBPyConnection) -> None:
    rows = run(con, [signal(t, "u1", T0, t) for t in SIGNAL_TYPES if t != "rate"])
    assert {k: v["weight"] for k, v in rows.items()} == {
        t: reference.weight({"type": t, "value": None}) for t in SIGNAL_TYPES if t != "rate"
    }


def test_a_non_positive_session_gap_is_refused(con: duckdb.DuckDBPyConnection) -> None:
    empty = con.from_arrow(NORMALIZED_SCHEMA.empty_table())
    with pytest.raises(InvalidInputError, match="session_gap"):
        enrich(con, empty, con.from_arrow(CATALOG_SCHEMA.empty_table()), session_gap=timedelta(0))


minutes = st.sampled_from([0, 0, 1, 29, 30, 31, 60, 24 * 60, 24 * 60 + 30])


@st.composite
def signal_sets(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A few users' signals with ties and gaps around 30 minutes, and a partial catalog."""
    count = draw(st.integers(1, 25))
    offsets = draw(st.lists(minutes, min_size=count, max_size=count))
    events = []
    at = T0 + timedelta(hours=draw(st.integers(0, 47)))
    for n, offset in enumerate(offsets):
        at += timedelta(minutes=offset)
        kind = draw(st.sampled_from(SIGNAL_TYPES))
        value = draw(st.sampled_from([None, 0.0, 1.5, 2.5, 4.0, 5.0])) if kind == "rate" else None
        events.append(
            signal(
                f"e{n:02d}",
                draw(st.sampled_from(["u1", "u2", "u3"])),
                at,
                kind,
                draw(st.sampled_from(["i1", "i2", "i3"])),
                value,
            )
        )
    catalog = [item(i, draw(st.sampled_from(["a", "b", None]))) for i in ("i1", "i2")]
    return events, catalog


@settings(max_examples=40, deadline=None)
@given(signal_sets())
def test_enrich_matches_the_reference(
    con: duckdb.DuckDBPyConnection, data: tuple[list[dict[str, Any]], list[dict[str, Any]]]
) -> None:
    events, catalog = data
    rows = run(con, events, catalog)
    for expected in reference.enrich(events, catalog, GAP):
        got = rows[expected["event_id"]]
        assert got["weight"] == pytest.approx(expected.pop("weight"))
        got.pop("weight")
        assert got == expected
