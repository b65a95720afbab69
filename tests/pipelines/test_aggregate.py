"""Snapshots: one row per entity and UTC day plus one at as_of, exact trailing windows, no leaks."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contract import CATALOG_SCHEMA, NORMALIZED_SCHEMA, SIGNAL_TYPES
from core.errors import InvalidInputError
from pipelines.aggregate import (
    ITEM_SNAPSHOT_SCHEMA,
    USER_SNAPSHOT_SCHEMA,
    aggregate_items,
    aggregate_snapshots,
    aggregate_users,
    write_snapshot,
)
from pipelines.enrich import enrich
from pipelines.feature_specs import ITEM_FEATURES, USER_FEATURES
from pipelines.timelines import WINDOWS, Timeline, first_occurrences, pairs, sort_order
from tests.pipelines import reference
from tests.pipelines.reference import item, signal

GAP = timedelta(minutes=30)
T0 = datetime(2026, 3, 1, tzinfo=UTC)  # a UTC midnight
DAY = timedelta(days=1)
Rows = dict[tuple[str, datetime], dict[str, Any]]


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose time zone is not UTC, so any local-day slip shows."""
    connection = duckdb.connect(config={"threads": 1})
    connection.execute("SET TimeZone = 'Asia/Kolkata'")
    yield connection
    connection.close()


def enriched(
    con: duckdb.DuckDBPyConnection,
    events: list[dict[str, Any]],
    catalog: list[dict[str, Any]] | None = None,
) -> duckdb.DuckDBPyRelation:
    """The events enriched against the catalog."""
    return enrich(
        con,
        con.from_arrow(pa.Table.from_pylist(events, schema=NORMALIZED_SCHEMA)),
        con.from_arrow(pa.Table.from_pylist(catalog or [], schema=CATALOG_SCHEMA)),
        session_gap=GAP,
    )


def conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with `schema`'s names and types; a timestamp may come in another zone's view."""
    assert table.schema.names == schema.names
    for got, want in zip(table.schema, schema, strict=True):
        if pa.types.is_timestamp(want.type):
            assert pa.types.is_timestamp(got.type) and got.type.unit == want.type.unit, got
        else:
            assert got.type == want.type, (got, want)
    return table.cast(schema)


def users(
    con: duckdb.DuckDBPyConnection,
    events: list[dict[str, Any]],
    as_of: datetime,
    catalog: list[dict[str, Any]] | None = None,
) -> Rows:
    """User snapshot rows keyed by (user_id, event_timestamp)."""
    table = aggregate_users(
        con, enriched(con, events, catalog), as_of=as_of, session_gap=GAP
    ).to_arrow_table()
    table = conformed(table, USER_SNAPSHOT_SCHEMA)
    return {(r.pop("user_id"), r.pop("event_timestamp")): r for r in table.to_pylist()}


def items(
    con: duckdb.DuckDBPyConnection,
    events: list[dict[str, Any]],
    as_of: datetime,
    catalog: list[dict[str, Any]] | None = None,
) -> Rows:
    """Item snapshot rows keyed by (item_id, event_timestamp)."""
    table = aggregate_items(con, enriched(con, events, catalog), as_of=as_of).to_arrow_table()
    table = conformed(table, ITEM_SNAPSHOT_SCHEMA)
    return {(r.pop("item_id"), r.pop("event_timestamp")): r for r in table.to_pylist()}


def assert_rows_equal(got: Rows, expected: Rows) -> None:
    """Same keys; ints, timestamps and lists exact, floats to 1e-9 (shares are float32)."""
    assert sorted(got) == sorted(expected)
    for key, row in expected.items():
        assert set(got[key]) == set(row), key
        for name, want in row.items():
            have = got[key][name]
            if name == "top_category_shares":
                assert have == pytest.approx(want, rel=1e-6), (key, name)
            elif isinstance(want, float) and not isinstance(have, datetime):
                assert have is not None and math.isclose(have, want, abs_tol=1e-9), (
                    key,
                    name,
                    have,
                    want,
                )
            else:
                assert have == want, (key, name, have, want)


def test_specs_name_every_feature_once_with_a_description() -> None:
    for specs in (USER_FEATURES, ITEM_FEATURES):
        names = [spec.name for spec in specs]
        assert len(names) == len(set(names))
        assert all(spec.description.endswith(".") for spec in specs)
    assert USER_SNAPSHOT_SCHEMA.names[3:] == [spec.name for spec in USER_FEATURES]
    assert ITEM_SNAPSHOT_SCHEMA.names[3:] == [spec.name for spec in ITEM_FEATURES]


def test_one_row_per_utc_day_at_its_last_event_plus_one_at_as_of(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # 20:00 and 23:59 UTC are the next local day in Asia/Kolkata; the rows follow UTC days.
    times = [T0 + timedelta(hours=20), T0 + timedelta(hours=23, minutes=59), T0 + DAY]
    events = [signal(f"e{n}", "u1", at) for n, at in enumerate(times)]
    as_of = T0 + 3 * DAY
    assert sorted(users(con, events, as_of)) == [("u1", times[1]), ("u1", times[2]), ("u1", as_of)]


def test_no_as_of_row_when_the_last_event_is_at_as_of(con: duckdb.DuckDBPyConnection) -> None:
    assert sorted(users(con, [signal("e1", "u1", T0)], T0)) == [("u1", T0)]


def test_events_after_as_of_are_ignored(con: duckdb.DuckDBPyConnection) -> None:
    events = [signal("e1", "u1", T0), signal("e2", "u1", T0 + 2 * DAY)]
    rows = users(con, events, T0 + DAY)
    assert sorted(rows) == [("u1", T0), ("u1", T0 + DAY)]
    assert rows[("u1", T0 + DAY)]["events_all"] == 1


def test_windows_exclude_an_event_exactly_a_window_before_and_include_the_row_time(
    con: duckdb.DuckDBPyConnection,
) -> None:
    row = T0 + 40 * DAY
    events = [
        signal("at_row", "u1", row, "purchase"),
        signal("on_1d_edge", "u1", row - DAY, "purchase"),
        signal("inside_7d", "u1", row - 7 * DAY + timedelta(microseconds=1), "purchase"),
        signal("on_7d_edge", "u1", row - 7 * DAY, "purchase"),
        signal("on_30d_edge", "u1", row - 30 * DAY, "purchase"),
    ]
    got = users(con, events, row)[("u1", row)]
    assert (got["events_1d"], got["events_7d"], got["events_30d"], got["events_all"]) == (
        1,
        3,
        4,
        5,
    )
    assert (got["purchases_30d"], got["weighted_7d"]) == (4, 24.0)


def test_a_day_row_never_sees_a_later_event_of_an_open_session(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # One session across midnight: the first day's row must cut it at its own last event.
    late = T0 + timedelta(hours=23, minutes=50)
    events = [
        signal("e1", "u1", late - timedelta(minutes=20)),
        signal("e2", "u1", late),
        signal("e3", "u1", late + timedelta(minutes=25)),
    ]
    rows = users(con, events, late + timedelta(minutes=25))
    first_day = rows[("u1", late)]
    assert (first_day["session_count"], first_day["session_minutes_mean"]) == (1, 20.0)
    assert first_day["last_event_ts"] == late
    last = rows[("u1", late + timedelta(minutes=25))]
    assert (last["session_count"], last["session_minutes_mean"]) == (1, 45.0)


def test_session_features_agree_with_the_enriched_sessions(
    con: duckdb.DuckDBPyConnection,
) -> None:
    offsets = [0, 10, 40, 41, 200, 230, 231, 2000]
    events = [signal(f"e{n}", "u1", T0 + timedelta(minutes=m)) for n, m in enumerate(offsets)]
    sessions = enriched(con, events).aggregate("count(DISTINCT session)").fetchall()[0][0]
    as_of = T0 + 5 * DAY
    assert users(con, events, as_of)[("u1", as_of)]["session_count"] == sessions == 3


def test_top_categories_rank_positive_affinity_and_break_ties_by_name(
    con: duckdb.DuckDBPyConnection,
) -> None:
    catalog = [item(i, c) for i, c in [("i1", "b"), ("i2", "a"), ("i3", "c"), ("i4", "d")]]
    events = [
        signal("e1", "u1", T0, "click", "i1"),  # b: 2
        signal("e2", "u1", T0, "click", "i2"),  # a: 2, ties with b, first by name
        signal("e3", "u1", T0, "purchase", "i3"),  # c: 8
        signal("e4", "u1", T0, "rate", "i4", 0.5),  # d: -2.4, never on the list
        signal("e5", "u1", T0, "view", "unknown"),  # no category
    ]
    got = users(con, events, T0, catalog)[("u1", T0)]
    assert got["top_categories"] == ["c", "a", "b"]
    assert got["top_category_shares"] == pytest.approx([8 / 12, 2 / 12, 2 / 12])
    assert got["category_count"] == 4


def test_ratings_statistics_and_their_null_rules(con: duckdb.DuckDBPyConnection) -> None:
    events = [
        signal("e1", "u1", T0, "view"),
        signal("e2", "u1", T0 + DAY, "rate", "i1", 4.0),
        signal("e3", "u1", T0 + 2 * DAY, "rate", "i2", 2.0),
        signal("e4", "u1", T0 + 2 * DAY, "rate", "i2", None),  # no value: not a rating
    ]
    rows = users(con, events, T0 + 2 * DAY)
    assert [
        (rows[("u1", at)]["rating_count"], rows[("u1", at)]["rating_mean"])
        for at in (T0, T0 + DAY, T0 + 2 * DAY)
    ] == [(0, None), (1, 4.0), (2, 3.0)]
    assert [rows[("u1", at)]["rating_std"] for at in (T0, T0 + DAY, T0 + 2 * DAY)] == [
        None,
        0.0,
        1.0,
    ]


def test_item_trend_compares_the_last_week_with_the_monthly_weekly_average(
    con: duckdb.DuckDBPyConnection,
) -> None:
    row = T0 + 40 * DAY
    events = [
        signal("e1", "u1", row - 20 * DAY, "view", "i1"),
        signal("e2", "u2", row, "view", "i1"),
        signal("e3", "u1", row - 20 * DAY, "rate", "i2", 0.0),
    ]
    got = items(con, events, row)
    assert got[("i1", row)]["item_trend"] == pytest.approx(1 / (2 * 7 / 30))
    assert got[("i1", row)]["item_users"] == 2
    assert got[("i2", row)]["item_trend"] is None  # the month's weight is negative


def test_the_same_events_in_any_order_give_the_same_snapshots(
    con: duckdb.DuckDBPyConnection,
) -> None:
    events = [
        signal(f"e{n}", f"u{n % 3}", T0 + timedelta(hours=5 * n), SIGNAL_TYPES[n % 9], f"i{n % 4}")
        for n in range(40)
    ]
    catalog = [item(f"i{n}", "abc"[n % 3]) for n in range(4)]
    as_of = T0 + 20 * DAY

    def tables(ordered: list[dict[str, Any]]) -> tuple[pa.Table, pa.Table]:
        rel = enriched(con, ordered, catalog)
        return (
            aggregate_users(con, rel, as_of=as_of, session_gap=GAP).to_arrow_table(),
            aggregate_items(con, rel, as_of=as_of).to_arrow_table(),
        )

    first = tables(events)
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    assert tables(shuffled) == first
    assert first[0].column("user_id").to_pylist() == sorted(first[0].column("user_id").to_pylist())


def test_one_read_for_both_snapshots_gives_the_same_tables(
    con: duckdb.DuckDBPyConnection,
) -> None:
    events = [
        signal(f"e{n}", f"u{n % 4}", T0 + timedelta(hours=7 * n), SIGNAL_TYPES[n % 9], f"i{n % 5}")
        for n in range(60)
    ]
    rel = enriched(con, events, [item(f"i{n}", "ab"[n % 2]) for n in range(5)])
    as_of = T0 + 30 * DAY
    both = aggregate_snapshots(con, rel, as_of=as_of, session_gap=GAP)
    assert (
        both[0].to_arrow_table()
        == aggregate_users(con, rel, as_of=as_of, session_gap=GAP).to_arrow_table()
    )
    assert both[1].to_arrow_table() == aggregate_items(con, rel, as_of=as_of).to_arrow_table()


def test_no_events_give_empty_snapshots_with_the_schema(con: duckdb.DuckDBPyConnection) -> None:
    assert users(con, [], T0) == {}
    assert items(con, [], T0) == {}


def test_as_of_must_carry_a_time_zone(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(InvalidInputError, match="as_of"):
        aggregate_items(con, enriched(con, []), as_of=datetime(2026, 1, 1))


def test_write_snapshot_writes_parquet_atomically(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    events = [signal("e1", "u1", T0, "click", "i1"), signal("e2", "u2", T0 + DAY, "view", "i1")]
    rel = aggregate_users(
        con, enriched(con, events, [item("i1", "a")]), as_of=T0 + 2 * DAY, session_gap=GAP
    )
    path = tmp_path / "features" / "user_features.parquet"
    assert write_snapshot(con, rel, path) == 4
    assert write_snapshot(con, rel, path) == 4  # replaces the file
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    table = pq.read_table(path)
    assert table.schema.names == USER_SNAPSHOT_SCHEMA.names
    assert table.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("top_categories").type == pa.list_(pa.string())
    assert table.schema.field("top_category_shares").type == pa.list_(pa.float32())


# Times on a 10-minute lattice over whole days repeat exact differences of 1, 7 and 30 days
# (window edges), ties, and gaps of exactly the 30-minute session gap.
lattice = st.builds(
    lambda day, slot: T0 + day * DAY + slot * timedelta(minutes=10),
    st.integers(0, 45),
    st.sampled_from([0, 0, 3, 6, 100, 143]),
)


@st.composite
def signal_sets(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], datetime]:
    """Signals of a few users on a few items, a partial catalog and an as_of time."""
    events = []
    for n in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(SIGNAL_TYPES))
        value = (
            draw(st.sampled_from([None, 0.0, 0.5, 2.5, 3.0, 3.7, 5.0])) if kind == "rate" else None
        )
        events.append(
            signal(
                f"e{n:02d}",
                draw(st.sampled_from(["u1", "u2", "u3"])),
                draw(lattice),
                kind,
                draw(st.sampled_from(["i1", "i2", "i3", "i4"])),
                value,
            )
        )
    catalog = [item(i, draw(st.sampled_from(["a", "b", "c", None]))) for i in ("i1", "i2", "i3")]
    as_of = draw(st.one_of(lattice, st.just(T0 + 60 * DAY)))
    return events, catalog, as_of


@settings(max_examples=60, deadline=None)
@given(signal_sets())
def test_snapshots_match_the_reference(
    con: duckdb.DuckDBPyConnection,
    data: tuple[list[dict[str, Any]], list[dict[str, Any]], datetime],
) -> None:
    events, catalog, as_of = data
    expected = reference.enrich(events, catalog, GAP)
    assert_rows_equal(
        users(con, events, as_of, catalog), reference.user_snapshots(expected, as_of, GAP)
    )
    assert_rows_equal(items(con, events, as_of, catalog), reference.item_snapshots(expected, as_of))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5000),
            st.integers(0, 4_102_444_800_000_000),
            st.sampled_from([-1, 0, 1, 2, 10**9]),
        ),
        max_size=40,
    )
)
def test_sorting_and_pair_numbering_match_brute_force(
    events: list[tuple[int, int, int]],
) -> None:
    # Entities up to 5000 over 130 years of microseconds overflow one int64 key, and `other`
    # codes up to 10**9 overflow the dense pair table: both fallbacks are exercised.
    entity = np.array([e for e, _, _ in events], dtype=np.int32)
    t = np.array([t for _, t, _ in events], dtype=np.int64)
    order = sort_order(entity, t)
    assert sorted(order.tolist()) == list(range(len(events)))
    assert [(entity[i], t[i]) for i in order] == sorted(
        zip(entity.tolist(), t.tolist(), strict=True)
    )
    entity, t = entity[order], t[order]
    other = np.array([events[i][2] for i in order], dtype=np.int64)
    found = pairs(entity, other, int(other.max(initial=0)) + 1)
    expected = sorted(
        {(e, o) for e, o in zip(entity.tolist(), other.tolist(), strict=True) if o >= 0}
    )
    assert list(zip(found.entity.tolist(), found.other.tolist(), strict=True)) == expected
    for n, event in enumerate(found.events.tolist()):
        pair = expected[found.pair_of_event[n]]
        assert (entity[event], other[event]) == pair
        first = min(i for i in range(len(entity)) if (entity[i], other[i]) == pair)
        assert found.first_event[found.pair_of_event[n]] == first
    flags = first_occurrences(entity, other, int(other.max(initial=0)) + 1)
    assert sorted(np.flatnonzero(flags).tolist()) == sorted(found.first_event.tolist())


micros = st.one_of(
    st.integers(0, 4_102_444_800_000_000),
    st.integers(0, 40).map(lambda day: 1_772_323_200_000_000 + day * 86_400_000_000),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0, 1, 4999]), micros), min_size=1, max_size=30),
    micros,
    st.booleans(),
)
def test_timeline_rows_and_window_starts_match_brute_force(
    events: list[tuple[int, int]], as_of: int, wide: bool
) -> None:
    if wide:
        # Entity 4999 over 1970..2100 makes (entity, t) too wide for int64 keys: complex path.
        events = [*events, (4999, 0), (4999, 4_102_444_800_000_000)]
    events = sorted(events)
    entity = np.array([e for e, _ in events], dtype=np.int32)
    t = np.array([t for _, t in events], dtype=np.int64)
    as_of = max(as_of, int(t.max()))
    timeline = Timeline(entity, t, as_of)
    expected = []
    for e in sorted(set(entity.tolist())):
        times = [t for entity_, t in events if entity_ == e]
        by_day = {}
        for at in times:
            by_day[at // 86_400_000_000] = at
        expected += [(e, at) for at in sorted(by_day.values())]
        if times[-1] < as_of:
            expected.append((e, as_of))
    rows = list(zip(timeline.row_entity.tolist(), timeline.row_t.tolist(), strict=True))
    assert rows == expected
    for n, (e, at) in enumerate(rows):
        assert timeline.row_event[n] == max(i for i, ev in enumerate(events) if ev <= (e, at))
        for window in WINDOWS.values():
            inside = [i for i, (e_, t_) in enumerate(events) if e_ == e and at - window < t_ <= at]
            start = inside[0] if inside else timeline.row_event[n] + 1
            assert timeline.window_start(window)[n] == start
