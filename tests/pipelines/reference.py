"""Brute-force reference for enrichment and snapshots: plain Python, one event at a time.

Written straight from the definitions in `pipelines/enrich.py`, `pipelines/aggregate.py` and
`pipelines/feature_specs.py`, with no shared code, so the property tests compare two
independent readings of the same rules.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from core.contract import IMPLICIT_WEIGHTS

Row = dict[str, Any]
DAY = timedelta(days=1)
WINDOWS = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}


def weight(event: Row) -> float:
    """Implicit weight of a signal; a rating weighs 3 * (value - 2.5) / 2.5 (0 without value)."""
    if event["type"] == "rate":
        return 0.0 if event["value"] is None else 3.0 * (event["value"] - 2.5) / 2.5
    return IMPLICIT_WEIGHTS[event["type"]]


def enrich(events: list[Row], catalog: list[Row], session_gap: timedelta) -> list[Row]:
    """Each event with catalog fields, session, hour, weekday and weight."""
    items: dict[str, Row] = {}
    for row in sorted(catalog, key=lambda r: (r["title"] is None, r["title"] or "")):
        items.setdefault(row["item_id"], row)
    session: dict[str, str] = {}
    for user in {e["user_id"] for e in events}:
        mine = sorted((e for e in events if e["user_id"] == user), key=lambda e: e["ts"])
        number, previous = 0, None
        for event in mine:
            if previous is not None and event["ts"] - previous > session_gap:
                number += 1
            previous = event["ts"]
            session[event["event_id"]] = f"{user}#{number}"
    enriched = []
    for event in events:
        known = items.get(event["item_id"]) if event["item_id"] is not None else None
        enriched.append(
            {
                **event,
                "category": known["category"] if known else None,
                "genres": known["genres"] if known else None,
                "title": known["title"] if known else None,
                "session": session[event["event_id"]],
                "hour": event["ts"].hour,
                "weekday": event["ts"].weekday(),
                "weight": weight(event),
            }
        )
    return enriched


def _micros(value: float) -> int:
    # Weighted sums are exact to 1e-6 per signal (the aggregate sums integer micro-weights).
    return round(value * 1_000_000)


def _row_times(events: list[Row], as_of: datetime) -> list[datetime]:
    last_per_day: dict[Any, datetime] = {}
    for event in events:
        day = event["ts"].date()
        last_per_day[day] = max(last_per_day.get(day, event["ts"]), event["ts"])
    times = sorted(last_per_day.values())
    if times[-1] < as_of:
        times.append(as_of)
    return times


def _ratings(events: list[Row]) -> tuple[int, float | None, float | None]:
    values = [e["value"] for e in events if e["type"] == "rate" and e["value"] is not None]
    if not values:
        return 0, None, None
    mean = sum(values) / len(values)
    return len(values), mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _in_window(event: Row, at: datetime, span: timedelta) -> bool:
    return at - span < event["ts"] <= at


def user_snapshots(
    enriched: list[Row], as_of: datetime, session_gap: timedelta
) -> dict[tuple[str, datetime], Row]:
    """Expected user rows keyed by (user_id, event_timestamp)."""
    by_user: dict[str, list[Row]] = defaultdict(list)
    for event in enriched:
        if event["ts"] <= as_of:
            by_user[event["user_id"]].append(event)
    rows: dict[tuple[str, datetime], Row] = {}
    for user, events in by_user.items():
        for at in _row_times(events, as_of):
            seen = sorted((e for e in events if e["ts"] <= at), key=lambda e: e["ts"])
            row: Row = {"created": as_of}
            for label, span in {**WINDOWS, "all": None}.items():
                window = [e for e in seen if span is None or _in_window(e, at, span)]
                row[f"events_{label}"] = len(window)
                row[f"weighted_{label}"] = sum(_micros(e["weight"]) for e in window) / 1e6
            month = [e for e in seen if _in_window(e, at, 30 * DAY)]
            week = [e for e in seen if _in_window(e, at, 7 * DAY)]
            for name, kind in [
                ("views_30d", "view"),
                ("clicks_30d", "click"),
                ("add_to_cart_30d", "add_to_cart"),
                ("purchases_30d", "purchase"),
                ("messages_30d", "message"),
            ]:
                row[name] = sum(e["type"] == kind for e in month)
            row["searches_7d"] = sum(e["type"] == "search" for e in week)
            row["purchases_all"] = sum(e["type"] == "purchase" for e in seen)
            row["rating_count"], row["rating_mean"], row["rating_std"] = _ratings(seen)
            row["distinct_items"] = len({e["item_id"] for e in seen if e["item_id"] is not None})
            row["first_event_ts"] = seen[0]["ts"]
            row["last_event_ts"] = seen[-1]["ts"]
            sessions: list[list[datetime]] = []
            for event in seen:
                if sessions and event["ts"] - sessions[-1][-1] <= session_gap:
                    sessions[-1].append(event["ts"])
                else:
                    sessions.append([event["ts"]])
            row["session_count"] = len(sessions)
            row["session_events_mean"] = len(seen) / len(sessions)
            minutes = [(s[-1] - s[0]) / timedelta(minutes=1) for s in sessions]
            row["session_minutes_mean"] = sum(minutes) / len(sessions)
            affinity: dict[str, int] = defaultdict(int)
            for event in seen:
                if event["category"] is not None:
                    affinity[event["category"]] += _micros(event["weight"])
            positive = {c: a for c, a in affinity.items() if a > 0}
            top = sorted(positive.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
            total = sum(positive.values())
            row["top_categories"] = [c for c, _ in top]
            row["top_category_shares"] = [a / total for _, a in top]
            row["category_count"] = len(affinity)
            rows[(user, at)] = row
    return rows


def item_snapshots(enriched: list[Row], as_of: datetime) -> dict[tuple[str, datetime], Row]:
    """Expected item rows keyed by (item_id, event_timestamp)."""
    by_item: dict[str, list[Row]] = defaultdict(list)
    for event in enriched:
        if event["item_id"] is not None and event["ts"] <= as_of:
            by_item[event["item_id"]].append(event)
    rows: dict[tuple[str, datetime], Row] = {}
    for item, events in by_item.items():
        for at in _row_times(events, as_of):
            seen = [e for e in events if e["ts"] <= at]
            row: Row = {"created": as_of}
            for label, span in {**WINDOWS, "all": None}.items():
                window = [e for e in seen if span is None or _in_window(e, at, span)]
                row[f"item_events_{label}"] = len(window)
                if label != "1d":
                    row[f"item_weighted_{label}"] = sum(_micros(e["weight"]) for e in window) / 1e6
            row["item_users"] = len({e["user_id"] for e in seen})
            row["item_purchases_30d"] = sum(
                e["type"] == "purchase" and _in_window(e, at, 30 * DAY) for e in seen
            )
            count, mean, std = _ratings(seen)
            row["item_rating_count"], row["item_rating_mean"], row["item_rating_std"] = (
                count,
                mean,
                std,
            )
            week, month = row["item_weighted_7d"], row["item_weighted_30d"]
            row["item_trend"] = week / (month * 7 / 30) if month > 0 else None
            row["item_last_event_ts"] = max(e["ts"] for e in seen)
            rows[(item, at)] = row
    return rows


def signal(
    event_id: str,
    user_id: str,
    ts: datetime,
    type_: str = "view",
    item_id: str | None = "i1",
    value: float | None = None,
) -> Row:
    """A normalized signal with the fields the tests vary; the rest take fixed values."""
    item = item_id if type_ not in ("search", "message") else None
    return {
        "event_id": event_id,
        "user_id": user_id,
        "ts": ts,
        "type": type_,
        "item_id": item,
        "value": value,
        "text": "words" if type_ in ("search", "message", "review", "tag") else None,
        "context": None,
        "session_id": None,
        "speaker": "user" if type_ == "message" else None,
        "device": None,
        "source": "test",
        "ingested_at": ts,
    }


def item(item_id: str, category: str | None, title: str | None = None) -> Row:
    """A catalog row."""
    return {
        "item_id": item_id,
        "title": title if title is not None else f"Title {item_id}",
        "category": category,
        "genres": [category] if category else [],
        "text": None,
    }
