"""Popularity ranking from what is at hand: the answer when there is no model, or no Redis.

The item snapshot (offline store, the file Feast materializes from) orders the items by their
weighted events over 30 days at the last run, all time breaking ties, and an item's score is
1 / (1 + its place in that order), so scores fall with the order (unknown items score 0) and
stay comparable between refreshes; the event store gives what each user
already touched, so those items are left out (when the store is small enough to index in
memory). Both are read into the process when the app starts and on each refresh, never per
request, so this ranker needs no store at all while answering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from core.settings import Settings
from pipelines import event_store
from pipelines.batch import ITEM_FEATURES_FILE, features_dir
from serving.ports import RankResult

MODEL_VERSION = "popularity"
MAX_ITEMS = 10_000  # the head of the popularity list kept in memory
MAX_SEEN_PAIRS = 2_000_000  # above this many (user, item) pairs, what users saw stays unknown


@dataclass(frozen=True)
class Popularity:
    """Items most popular first, their scores, and what each user saw (None: unknown)."""

    items: tuple[str, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)
    seen: dict[str, frozenset[str]] | None = None


def rank_by_popularity(
    popularity: Popularity, user_id: str, k: int, candidates: list[str] | None = None
) -> RankResult:
    """The k most popular items the user has not seen; or the candidates ordered by popularity."""
    scores = popularity.scores
    if candidates is not None:
        unique = list(dict.fromkeys(candidates))
        ordered = sorted(unique, key=lambda item: -scores.get(item, 0.0))  # stable: input order
        return RankResult([(item, scores.get(item, 0.0)) for item in ordered[:k]], MODEL_VERSION)
    seen = (popularity.seen or {}).get(user_id, frozenset())
    chosen: list[tuple[str, float]] = []
    for item in popularity.items:
        if item not in seen:
            chosen.append((item, scores[item]))
            if len(chosen) == k:
                break
    return RankResult(chosen, MODEL_VERSION)


class PopularityRanker:
    """The Ranker port over a popularity table that the app refreshes."""

    model_version = MODEL_VERSION

    def __init__(self, popularity: Popularity) -> None:
        self.popularity = popularity

    def knows(self, user_id: str) -> bool:
        """True when the table holds what the user saw."""
        return self.popularity.seen is not None and user_id in self.popularity.seen

    def forget_user(self, user_id: str) -> None:
        """Forget what the user saw, in place (no request in flight loses a refreshed table)."""
        if self.popularity.seen is not None:
            self.popularity.seen.pop(user_id, None)

    def rank(
        self,
        user_id: str,
        k: int,
        candidates: list[str] | None = None,
        query: str | None = None,
        at: datetime | None = None,
    ) -> RankResult:
        """Popularity ranking; `query` and `at` are not used."""
        return rank_by_popularity(self.popularity, user_id, k, candidates)


def popularity_inputs(settings: Settings) -> tuple[tuple[str, int, int], ...]:
    """Name, size and modification time of every file `load_popularity` reads: equal between
    two calls when nothing it reads was rewritten (ingest, stream parts, a forget)."""
    events = event_store.events_dir(settings)
    parts = sorted(events.glob("part-*.parquet")) if events.is_dir() else []
    paths = [features_dir(settings) / ITEM_FEATURES_FILE, *parts]
    out = []
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        out.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(out)


def load_popularity(settings: Settings) -> Popularity:
    """Read the item snapshot and the event store into a Popularity (empty when none exist)."""
    con = duckdb.connect()
    try:
        path = features_dir(settings) / ITEM_FEATURES_FILE
        items: tuple[str, ...] = ()
        scores: dict[str, float] = {}
        if path.exists():  # a directory of day files (pipelines/snapshot_files.py)
            rows = con.execute(
                f"""
                SELECT item_id, arg_max(item_weighted_30d, event_timestamp) AS recent,
                       arg_max(item_weighted_all, event_timestamp) AS total
                FROM read_parquet(?) GROUP BY item_id
                ORDER BY recent DESC NULLS LAST, total DESC NULLS LAST, item_id LIMIT {MAX_ITEMS}
                """,
                [str(path)],
            ).fetchall()
            items = tuple(str(row[0]) for row in rows)
            scores = {item: 1.0 / (1 + place) for place, item in enumerate(items)}
        return Popularity(items, scores, _seen(con, settings))
    finally:
        con.close()


def _seen(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, frozenset[str]] | None:
    events = event_store.scan(con, settings).filter("item_id IS NOT NULL")
    pairs = events.aggregate("count(DISTINCT (user_id, item_id))").fetchall()[0][0]
    if pairs > MAX_SEEN_PAIRS:
        return None
    rows = events.aggregate("user_id, list(DISTINCT item_id)", "user_id").fetchall()
    return {str(user): frozenset(items) for user, items in rows}
