"""The inspector's timeline and charts as shapes: pure functions, plain asserts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from memory.records import Memory
from serving.ui.charts import activity, diverging, shares
from serving.ui.timeline import layout

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def memory(memory_id: str, kind: Any = "attribute", at: datetime = T0, **fields: Any) -> Memory:
    values: dict[str, Any] = {
        "memory_id": memory_id,
        "user_id": "ana",
        "kind": kind,
        "text": memory_id,
        "confidence": 0.9,
        "valid_from": at,
        "created_at": at,
        "updated_at": at,
        "source_event_ids": (f"e-{memory_id}",),
    }
    values.update(fields)
    return Memory(**values)


BOSTON = memory(
    "boston", slot="location", value="Boston", valid_to=T0 + 60 * DAY, superseded_by="seattle"
)
# Told on day 70 that the move happened on day 60.
SEATTLE = memory("seattle", "life_event", T0 + 60 * DAY, slot="location", created_at=T0 + 70 * DAY)


def test_a_superseded_fact_ends_where_what_replaced_it_begins_and_is_linked_to_it() -> None:
    drawn = layout([BOSTON, SEATTLE], T0 + 100 * DAY)
    bars = {bar.memory.memory_id: bar for bar in drawn.bars}
    assert bars["boston"].state == "superseded" and bars["seattle"].state == "open"
    assert bars["boston"].x + bars["boston"].width == bars["seattle"].x
    [link] = drawn.links
    assert (link.x1, link.x2) == (bars["boston"].x + bars["boston"].width, bars["seattle"].x)
    assert [lane.kind for lane in drawn.lanes] == ["attribute", "life_event"]


def test_as_of_a_time_engram_draws_what_it_knew_then() -> None:
    # Day 65: the move had happened (day 60) but Engram learnt of it on day 70.
    then = layout([BOSTON, SEATTLE], T0 + 65 * DAY)
    [bar] = then.bars
    assert bar.memory.memory_id == "boston" and bar.state == "open"
    assert bar.ends == T0 + 65 * DAY and then.hidden == 1 and not then.links
    assert then.cursor == round(bar.x + bar.width, 1)


def test_expired_intents_closed_facts_and_episodes() -> None:
    intent = memory("buy", "intent", T0, expires_at=T0 + 14 * DAY)
    said = memory("hello", "episode", T0 + 3 * DAY)
    closed = memory("old", valid_to=T0 + 5 * DAY)
    drawn = layout([intent, said, closed], T0 + 30 * DAY)
    bars = {bar.memory.memory_id: bar for bar in drawn.bars}
    assert bars["buy"].state == "expired" and bars["buy"].ends == T0 + 14 * DAY
    assert bars["old"].state == "closed"
    assert bars["hello"].point and bars["hello"].width == 0
    assert layout([intent], T0 + 7 * DAY).bars[0].state == "open"


def test_a_slots_facts_share_a_row_and_overlapping_facts_do_not() -> None:
    chain = [
        memory(f"city{i}", at=T0 + 10 * i * DAY, slot="location", valid_to=T0 + 10 * (i + 1) * DAY)
        for i in range(3)
    ]
    overlapping = [memory(f"likes{i}", "preference", T0 + i * DAY) for i in range(3)]
    drawn = layout([*chain, *overlapping], T0 + 40 * DAY)
    rows = {bar.memory.memory_id: bar.y for bar in drawn.bars}
    assert len({rows[m.memory_id] for m in chain}) == 1
    assert len({rows[m.memory_id] for m in overlapping}) == 3


def test_every_bar_lies_inside_the_drawing() -> None:
    memories = [memory(f"m{i}", "preference", T0 + i * DAY) for i in range(40)]
    drawn = layout(memories, T0 + 50 * DAY)
    assert all(bar.x > 0 and bar.x + bar.width <= drawn.width for bar in drawn.bars)
    assert all(bar.y + 9 < drawn.axis_y for bar in drawn.bars)


def test_charts() -> None:
    last = date(2026, 3, 31)
    chart = activity([(date(2026, 3, 30), 4), (date(2026, 3, 31), 2), (date(2025, 1, 1), 99)], last)
    assert [column.value for column in chart.columns] == [4, 2] and chart.peak == 4
    assert chart.columns[0].height == 2 * chart.columns[1].height
    up, down = diverging([("a", 0.5), ("b", -0.25)], width=100)
    assert (up.x, up.width, up.positive) == (50, 50, True)
    assert (down.x, down.width, down.positive) == (25, 25, False)  # half as long, leftwards
    assert [bar.width for bar in shares([("dense", 0.5), ("lexical", 1.5)], width=100)] == [50, 100]


def test_the_axis_runs_to_now_and_its_line_marks_the_time_shown() -> None:
    now = T0 + 100 * DAY
    earlier = layout([BOSTON, SEATTLE], T0 + 65 * DAY, now)
    today = layout([BOSTON, SEATTLE], now, now)
    assert (earlier.start, earlier.end) == (today.start, today.end)
    assert earlier.cursor < today.cursor == today.ticks[-1][0]
