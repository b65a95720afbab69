"""Item features held in the serving process: read once from Redis, decoded, reused for seconds.

A ranking request scores about 600 candidate items. Reading their feature rows from Redis on
every request costs more than everything else the ranker does (one EVAL over 600 hashes, then
decoding 600 x 25 values; docs/benchmarks.md has the figures), yet item features move
slowly: counts over a day, a week, a month. `EntityCache` reads every entity of one join key (the
model's catalog) in a few chunked EVALs, decodes them once into a float matrix and serves rows
from it until it is `max_age_s` old, then reads everything again on the next request. A user's
own row is still read live on every request.

What it gives equals what `OnlineFeatureReader.read` would have given at the last refresh,
`enforce_ttl` included (applied at request time, against each view's stored event time), so the
only difference from a live read is freshness, bounded by `max_age_s`
(ENGRAM_ITEM_CACHE_SECONDS). Ids outside the population are read live on each request.
Memory is population x features x 8 bytes per process (3,000 items x 25: 0.6 MB); a catalog of
millions would want a bounded cache of the items candidates actually come from instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from core.stores.online.decode import decode_column
from core.stores.online.layout import ValueKind
from core.stores.online.read import OnlineFeatureReader, OnlineFeatures
from core.stores.online.timestamps import decode_event_seconds, decode_event_timestamp
from core.times import epoch_micros, epoch_seconds

CHUNK = 1_000  # entities per EVAL on refresh: one EVAL blocks Redis while it runs


@dataclass
class CachedRows:
    """Rows of an `EntityCache` for the requested ids: the interface of `OnlineFeatures`."""

    join_key: str
    ids: list[str]
    names: list[str]
    types: dict[str, ValueKind]
    block: np.ndarray  # (ids x names) float64, NaN where missing or past the view's ttl
    # The cache's stored bytes and these ids' positions in them: decoded only when asked for.
    _raw: dict[str, list[bytes | None]] = field(repr=False)
    _stamps: dict[str, list[bytes | None]] = field(repr=False)
    _at: np.ndarray = field(repr=False)
    _hidden: np.ndarray = field(repr=False)  # (ids x names) bool: value withheld for ttl

    @property
    def event_times(self) -> dict[str, list[datetime | None]]:
        """Each view's event time per entity (None where the view has no row)."""
        return {
            view: [decode_event_timestamp(raws[i]) for i in self._at]
            for view, raws in self._stamps.items()
        }

    def values(self, name: str) -> list[Any]:
        """Python values of one feature (None when missing), as `OnlineFeatures.values`."""
        j = self.names.index(name)
        column = self._raw[name]
        raws = [
            None if hidden else column[i]
            for i, hidden in zip(self._at, self._hidden[:, j], strict=True)
        ]
        return decode_column(raws, self.types[name])

    def numeric(self, name: str) -> np.ndarray:
        """One numeric feature as float64, NaN when missing."""
        return self.block[:, self.names.index(name)].copy()

    def matrix(self, names: Sequence[str] | None = None) -> np.ndarray:
        """An (entities x features) float64 matrix of numeric features, NaN when missing."""
        if names is None:
            return self.block.copy()
        return self.block[:, [self.names.index(n) for n in names]]


@dataclass(frozen=True)
class _Snapshot:
    """What one read of a population holds; never changed once made (requests on other
    threads may hold it while a refresh makes the next one)."""

    ids: list[str]
    row: dict[str, int]
    matrix: np.ndarray  # (ids x names) float64, NaN where missing
    stamps_s: np.ndarray  # (ids x views) epoch seconds of each view's row, NaN: no row
    raw: dict[str, list[bytes | None]]
    stamp_raw: dict[str, list[bytes | None]]
    loaded_at: float


class EntityCache:
    """Every entity of one join key, read through `reader` and kept for `max_age_s` seconds.

    Safe to share between a worker's threads: a refresh builds a new snapshot under a lock
    while other requests go on reading the previous one."""

    def __init__(
        self,
        reader: OnlineFeatureReader,
        join_key: str,
        ids: Sequence[str],
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self.join_key = join_key
        self.max_age_s = max_age_s
        self._clock = clock
        views = reader.views(join_key)
        self._names = reader.names(join_key)
        refs = [ref for view in views for ref in view.features]
        self._types = {name: ref.kind for name, ref in zip(self._names, refs, strict=True)}
        # Column j belongs to view _view_of[j]; a view without ttl never goes stale.
        self._view_names = [v.name for v in views]
        self._view_of = np.repeat(np.arange(len(views)), [len(v.features) for v in views])
        self._ttl_s = np.array([v.ttl.total_seconds() if v.ttl else np.inf for v in views])
        self._numeric = [n for n in self._names if self._types[n] not in _NOT_NUMERIC]
        self._population = list(dict.fromkeys(str(i) for i in ids))
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self.refreshes = 0

    @property
    def size(self) -> int:
        """Entities held."""
        return len(self._snapshot.ids) if self._snapshot else 0

    def rows(
        self, ids: Sequence[str], *, enforce_ttl: bool = False, now: datetime | None = None
    ) -> CachedRows:
        """The features of `ids` (any order, repeats allowed) as of the last refresh."""
        ids = [str(i) for i in ids]
        snap = self._current(ids)
        at = np.fromiter((snap.row[i] for i in ids), np.intp, len(ids))
        block = snap.matrix[at]
        hidden = np.zeros(block.shape, dtype=bool)
        if enforce_ttl and np.isfinite(self._ttl_s).any():
            now_s = epoch_seconds(epoch_micros(now or datetime.now(UTC), "now"))
            # A view's values older than its ttl are missing (NaN stamps: no row, already NaN).
            stale = snap.stamps_s[at] < now_s - self._ttl_s
            hidden = stale[:, self._view_of]
            block[hidden] = np.nan
        return CachedRows(
            self.join_key,
            ids,
            list(self._names),
            self._types,
            block,
            snap.raw,
            snap.stamp_raw,
            at,
            hidden,
        )

    def _current(self, ids: list[str]) -> _Snapshot:
        """A young enough snapshot, with any id outside the population read live for this
        request only (the population stays what it was given: requests cannot grow it)."""
        snap = self._snapshot
        if snap is None or self._clock() - snap.loaded_at > self.max_age_s:
            with self._lock:
                snap = self._snapshot  # another thread may have refreshed meanwhile
                if snap is None or self._clock() - snap.loaded_at > self.max_age_s:
                    snap = self._read(self._population, self._clock())
                    self._snapshot = snap
                    self.refreshes += 1
        unknown = list(dict.fromkeys(i for i in ids if i not in snap.row))
        return _joined(snap, self._read(unknown, snap.loaded_at)) if unknown else snap

    def _read(self, ids: list[str], loaded_at: float) -> _Snapshot:
        parts = []
        for start in range(0, len(ids), CHUNK):
            read = self._reader.read(self.join_key, ids[start : start + CHUNK], event_times=True)
            matrix = np.full((len(read.ids), len(self._names)), np.nan)
            if self._numeric:
                matrix[:, [self._names.index(n) for n in self._numeric]] = read.matrix(
                    self._numeric
                )
            parts.append(
                _Snapshot(
                    list(read.ids),
                    {},
                    matrix,
                    self._seconds(read),
                    read.raw,
                    read.stamps,
                    loaded_at,
                )
            )
        empty = _Snapshot(
            [],
            {},
            np.empty((0, len(self._names))),
            np.empty((0, len(self._view_names))),
            {n: [] for n in self._names},
            {v: [] for v in self._view_names},
            loaded_at,
        )
        return _joined(empty, *parts)

    def _seconds(self, read: OnlineFeatures) -> np.ndarray:
        out = np.full((len(read.ids), len(self._view_names)), np.nan)
        for j, view in enumerate(self._view_names):
            out[:, j] = decode_event_seconds(read.stamps[view])
        return out


def _joined(first: _Snapshot, *more: _Snapshot) -> _Snapshot:
    """The entities of every part in order, in new lists and arrays (a part may be in use),
    loaded when the first was."""
    parts = (first, *more)
    ids = [item for part in parts for item in part.ids]
    return _Snapshot(
        ids,
        {item: k for k, item in enumerate(ids)},
        np.vstack([p.matrix for p in parts]),
        np.vstack([p.stamps_s for p in parts]),
        {n: [raw for p in parts for raw in p.raw[n]] for n in first.raw},
        {v: [raw for p in parts for raw in p.stamp_raw[v]] for v in first.stamp_raw},
        first.loaded_at,
    )


_NOT_NUMERIC = {
    ValueKind.BYTES,
    ValueKind.STRING,
    ValueKind.BYTES_LIST,
    ValueKind.STRING_LIST,
    ValueKind.INT32_LIST,
    ValueKind.INT64_LIST,
    ValueKind.DOUBLE_LIST,
    ValueKind.FLOAT_LIST,
    ValueKind.BOOL_LIST,
    ValueKind.UNIX_TIMESTAMP_LIST,
}


__all__ = ["CHUNK", "CachedRows", "EntityCache"]
