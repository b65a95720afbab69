"""The memory timeline as drawn: each memory's validity interval placed on a time axis, lanes by
kind. Pure: memories and a time in, shapes with coordinates out; the template only writes them
as SVG.

What Engram knew at T (the page's "as of", default now) is drawn, not what it knows today:
- only memories Engram had learnt by T (`created_at <= T`);
- a memory closed by a supersession Engram learnt after T is drawn open up to T, as it stood;
- an interval runs from `valid_from` to `valid_to`, to `expires_at` if that comes first, or up
  to T while open; episodes (one turn of the user's) are drawn as points;
- state: `open` (true at T), `superseded` (closed by a newer fact: linked to it), `expired`
  (an intent past its expiry), `closed` (ended otherwise).
A merge rewrites a memory in place (its confidence, its latest wording), so a memory shows
today's text and confidence even as of an earlier time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from memory.records import MEMORY_KINDS, Memory

WIDTH = 960
LABEL_WIDTH = 110  # the lane labels, left of the axis
RIGHT_PAD = 14
ROW_HEIGHT = 9
ROW_GAP = 3
LANE_GAP = 10
AXIS_HEIGHT = 22
MAX_ROWS = 12  # rows per lane; more overlapping intervals share the last rows
MIN_BAR = 3.0  # px: an interval of a few minutes is still visible and clickable
TICKS = 6


@dataclass(frozen=True)
class Bar:
    """One memory on the timeline: a rect (`point` False) or a dot at (x, y)."""

    memory: Memory
    x: float
    y: float
    width: float
    state: str  # open, superseded, expired, closed
    point: bool
    ends: datetime  # where it is drawn to


@dataclass(frozen=True)
class Lane:
    """The rows of one kind."""

    kind: str
    y: float
    height: float
    count: int


@dataclass(frozen=True)
class Link:
    """A superseded memory's end joined to the start of what replaced it."""

    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Timeline:
    """Everything the SVG draws."""

    width: int
    height: int
    start: datetime
    end: datetime
    lanes: list[Lane]
    bars: list[Bar]
    links: list[Link]
    ticks: list[tuple[float, str]]
    cursor: float  # x of the time shown (the as-of line)
    hidden: int  # memories Engram had not learnt yet at that time

    @property
    def axis_y(self) -> float:
        """Where the axis line is drawn."""
        return self.height - AXIS_HEIGHT + 4


def known_end(memory: Memory, by_id: dict[str, Memory], at: datetime) -> datetime | None:
    """Where the memory's validity ended as Engram knew it at `at` (None: open then)."""
    end = memory.valid_to
    if end is None:
        return None
    successor = by_id.get(memory.superseded_by or "")
    if successor is not None and successor.created_at > at:
        return None  # the newer fact was learnt later: at `at` this one still stood
    return end


def state_at(memory: Memory, by_id: dict[str, Memory], at: datetime) -> tuple[str, datetime]:
    """The memory's state at `at` and the time its interval is drawn to."""
    end = known_end(memory, by_id, at)
    if end is not None and end <= at:
        return ("superseded" if memory.superseded_by else "closed"), end
    if memory.expires_at is not None and memory.expires_at <= at:
        return "expired", memory.expires_at
    return "open", at


def layout(
    memories: Sequence[Memory], at: datetime, until: datetime | None = None, width: int = WIDTH
) -> Timeline:
    """The timeline of `memories` as Engram knew them at `at`, on an axis from the first
    memory to `until` (default `at`): the page passes now, so moving the time shown moves
    its line across one axis instead of redrawing the axis."""
    at = at.astimezone(UTC)
    by_id = {memory.memory_id: memory for memory in memories}
    known = [memory for memory in memories if memory.created_at <= at]
    placed = [(memory, *state_at(memory, by_id, at)) for memory in known]
    start = min([at, *(memory.valid_from for memory in memories)])
    end = max([at, until or at, *(memory.valid_from for memory in known)])
    span = max(end - start, timedelta(hours=1))
    start -= span * 0.02  # a margin, so the first interval does not touch the labels
    span = end - start
    inner = width - LABEL_WIDTH - RIGHT_PAD

    def x_of(moment: datetime) -> float:
        return round(LABEL_WIDTH + inner * ((moment - start) / span), 1)

    lanes: list[Lane] = []
    bars: list[Bar] = []
    y = 6.0
    for kind in MEMORY_KINDS:
        group = sorted(
            (item for item in placed if item[0].kind == kind),
            key=lambda item: (item[0].valid_from, item[0].memory_id),
        )
        if not group:
            continue
        rows = _rows(group)
        for (memory, state, drawn_to), row in zip(group, rows, strict=True):
            x1 = x_of(memory.valid_from)
            point = kind == "episode"
            bars.append(
                Bar(
                    memory=memory,
                    x=x1,
                    y=y + row * (ROW_HEIGHT + ROW_GAP),
                    width=0.0 if point else max(MIN_BAR, x_of(drawn_to) - x1),
                    state=state,
                    point=point,
                    ends=drawn_to,
                )
            )
        height = (max(rows) + 1) * (ROW_HEIGHT + ROW_GAP) - ROW_GAP
        lanes.append(Lane(kind=kind, y=y, height=height, count=len(group)))
        y += height + LANE_GAP
    links = _links(bars)
    shape = "%Y-%m-%d" if span >= timedelta(days=TICKS) else "%m-%d %H:%M"
    ticks = [(x_of(start + span * (i / (TICKS - 1))), "") for i in range(TICKS)]
    ticks = [(x, f"{start + span * (i / (TICKS - 1)):{shape}}") for i, (x, _) in enumerate(ticks)]
    return Timeline(
        width=width,
        height=int(y + AXIS_HEIGHT),
        start=start,
        end=end,
        lanes=lanes,
        bars=bars,
        links=links,
        ticks=ticks,
        cursor=x_of(at),
        hidden=len(memories) - len(known),
    )


def _rows(group: list[tuple[Memory, str, datetime]]) -> list[int]:
    """A row per memory of one lane: a slot's facts share a row (their chain never overlaps),
    other intervals go to the first row free at their start; episodes all sit on one row."""
    rows: list[int] = []
    slot_row: dict[str, int] = {}
    free_from: list[datetime] = []  # per row: when its last interval ends
    for memory, _state, drawn_to in group:
        if memory.kind == "episode":
            rows.append(0)
            continue
        if memory.slot and memory.slot in slot_row:
            row = slot_row[memory.slot]
        else:
            row = next(
                (r for r, free in enumerate(free_from) if free <= memory.valid_from),
                len(free_from),
            )
            if row >= MAX_ROWS:
                row = min(range(MAX_ROWS), key=lambda r: free_from[r])
            if memory.slot:
                slot_row[memory.slot] = row
        if row == len(free_from):
            free_from.append(drawn_to)
        else:
            free_from[row] = max(free_from[row], drawn_to)
        rows.append(row)
    return rows


def _links(bars: list[Bar]) -> list[Link]:
    at = {bar.memory.memory_id: bar for bar in bars}
    links = []
    for bar in bars:
        successor = at.get(bar.memory.superseded_by or "")
        if bar.state == "superseded" and successor is not None:
            half = ROW_HEIGHT / 2
            links.append(Link(bar.x + bar.width, bar.y + half, successor.x, successor.y + half))
    return links
