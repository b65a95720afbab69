"""An entity's signals before a horizon, summed: the totals the snapshots add to recent signals.

Every all-time feature is a function of totals that add up (counts, integer micro-weights and
micro-stars, first and last times, sessions carried across the horizon, the set of (user, item)
pairs and each user's affinity per category), so an entity's rows after the horizon are those
of its recent signals plus its history: the same functions as a full recompute, given this
history (`aggregate_users.user_snapshots`, `aggregate_items.item_snapshots`). Windows reach back
30 days at most, so rows at least 30 days after the horizon need no older signal at all.

Pure: tables in, tables out; `pipelines/incremental.py` keeps them on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.signal_arrays import SignalArrays, type_code
from pipelines.timelines import RatingTotals, rating_micros, sort_order

# Totals per entity, keyed by its id; `pipelines/incremental.py` stores one table per side.
HISTORY_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("events", pa.int64()),
        ("weight", pa.int64()),
        ("purchases", pa.int64()),
        ("rating_count", pa.int64()),
        ("rating_sum", pa.int64()),
        ("rating_squares", pa.int64()),
        ("first_t", pa.int64()),
        ("last_t", pa.int64()),
        ("sessions", pa.int64()),
        ("session_micros", pa.int64()),  # spans of every session, the last one included
        ("session_start", pa.int64()),  # start of the last session
        ("distinct", pa.int64()),  # items of a user, users of an item
    ]
)
AFFINITY_SCHEMA = pa.schema(
    [("user_id", pa.string()), ("category", pa.string()), ("weight", pa.int64())]
)
_ITEM_BITS = 32


@dataclass(frozen=True)
class History:
    """HISTORY_SCHEMA's totals per entity code of the signals being aggregated (0 where the
    entity has no history), and for users their affinities (category codes of those signals)."""

    known: np.ndarray
    events: np.ndarray
    weight: np.ndarray
    purchases: np.ndarray
    ratings: RatingTotals
    first_t: np.ndarray
    last_t: np.ndarray
    sessions: np.ndarray
    session_micros: np.ndarray
    session_start: np.ndarray
    distinct: np.ndarray
    categories: np.ndarray  # categories a user touched
    affinity_entity: np.ndarray
    affinity_category: np.ndarray
    affinity_weight: np.ndarray


def group_sum(entity: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Exact int64 sums of `values` per entity code."""
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, entity, values.astype(np.int64))
    return out


def totals(
    signals: SignalArrays, *, items: bool, session_gap_us: int, distinct: np.ndarray
) -> pa.Table:
    """HISTORY_SCHEMA per user (or per item, with `items`) of `signals`; `distinct` is the
    number of distinct items per user code (users per item code)."""
    if items:
        on = np.flatnonzero(signals.items >= 0)
        entity, names = signals.items[on], signals.item_names
    else:
        on = np.arange(len(signals))
        entity, names = signals.users, signals.user_names
    n = len(names)
    t = signals.t[on]
    weights, types, ratings = signals.weights[on], signals.types[on], signals.ratings[on]
    rated = np.flatnonzero(~np.isnan(ratings))
    micros = rating_micros(ratings[rated])
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, entity, t)
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, entity, t)
    sessions = np.zeros(n, dtype=np.int64)
    spans = np.zeros(n, dtype=np.int64)
    session_start = np.zeros(n, dtype=np.int64)
    if not items and len(t):
        order = sort_order(entity, t)
        sorted_entity, sorted_t = entity[order], t[order]
        starts = np.ones(len(order), dtype=bool)
        starts[1:] = (sorted_entity[1:] != sorted_entity[:-1]) | (
            np.diff(sorted_t) > session_gap_us
        )
        begin = np.flatnonzero(starts)
        end = np.append(begin[1:] - 1, len(order) - 1)
        owner = sorted_entity[begin]
        sessions = np.bincount(owner, minlength=n).astype(np.int64)
        spans = group_sum(owner, sorted_t[end] - sorted_t[begin], n)
        session_start[owner] = sorted_t[begin]  # the last session of each entity wins
    table = pa.table(
        {
            "key": names,
            "events": np.bincount(entity, minlength=n).astype(np.int64),
            "weight": group_sum(entity, weights, n),
            "purchases": np.bincount(entity[types == type_code("purchase")], minlength=n).astype(
                np.int64
            ),
            "rating_count": np.bincount(entity[rated], minlength=n).astype(np.int64),
            "rating_sum": group_sum(entity[rated], micros, n),
            "rating_squares": group_sum(entity[rated], micros * micros, n),
            "first_t": first,
            "last_t": last,
            "sessions": sessions,
            "session_micros": spans,
            "session_start": session_start,
            "distinct": distinct.astype(np.int64),
        },
        schema=HISTORY_SCHEMA,
    )
    return table.filter(pc.greater(table.column("events"), 0))


def pair_keys(signals: SignalArrays) -> np.ndarray:
    """The distinct (user, item) pairs of `signals` as sorted int64 keys of their codes."""
    on = np.flatnonzero(signals.items >= 0)
    keys = (signals.users[on].astype(np.int64) << _ITEM_BITS) | signals.items[on]
    keys.sort()  # then drop repeats: several times faster here than np.unique's hashing
    return keys[np.append(True, keys[1:] != keys[:-1])] if len(keys) else keys


def distinct_counts(keys: np.ndarray, users: int, items: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct items per user code and users per item code, from `pair_keys`."""
    return (
        np.bincount(keys >> _ITEM_BITS, minlength=users),
        np.bincount(keys & ((1 << _ITEM_BITS) - 1), minlength=items),
    )


def affinities(signals: SignalArrays) -> pa.Table:
    """AFFINITY_SCHEMA: each user's summed micro-weight per category it touched."""
    on = np.flatnonzero(signals.categories >= 0)
    width = max(len(signals.category_names), 1)
    keys = signals.users[on].astype(np.int64) * width + signals.categories[on]
    unique, inverse = np.unique(keys, return_inverse=True)
    weight = group_sum(inverse, signals.weights[on], len(unique))
    return pa.table(
        {
            "user_id": signals.user_names.take(pa.array(unique // width)),
            "category": signals.category_names.take(pa.array(unique % width)),
            "weight": weight,
        },
        schema=AFFINITY_SCHEMA,
    )


def seen_pairs(
    signals: SignalArrays, keys: np.ndarray, user_names: pa.Array, item_names: pa.Array
) -> np.ndarray:
    """Per signal: True where its (user, item) pair is among `keys`, which number users and
    items by their place in `user_names` and `item_names`."""
    users = _codes_in(signals.user_names, user_names)[signals.users]
    items = np.append(_codes_in(signals.item_names, item_names), -1)[signals.items]
    return paired(keys, users, items)


def paired(keys: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Per signal: True where its (user, item) codes (-1 for none) are a pair of `keys`."""
    if len(keys) == 0:
        return np.zeros(len(users), dtype=bool)
    key = (users.astype(np.int64) << _ITEM_BITS) | np.maximum(items, 0)
    # Searched in sorted order, the binary searches stay in cache: several times faster.
    order = np.argsort(key)
    at = np.minimum(np.searchsorted(keys, key[order]), len(keys) - 1)
    found = np.empty(len(key), dtype=bool)
    found[order] = keys[at] == key[order]
    return (users >= 0) & (items >= 0) & found


def _codes_in(names: pa.Array, dictionary: pa.Array) -> np.ndarray:
    """Each name's place in `dictionary`, -1 where absent."""
    found = pc.index_in(names, value_set=dictionary)
    return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def align(
    table: pa.Table,
    names: pa.Array,
    affinity: pa.Table | None = None,
    category_names: pa.Array | None = None,
) -> History:
    """The totals of `table` (HISTORY_SCHEMA) per code of `names`; with `affinity`, the users'
    affinities whose categories are among `category_names` (which must hold all of them)."""
    n = len(names)
    at = _codes_in(names, table.column("key").combine_chunks())
    known = at >= 0

    def column(name: str) -> np.ndarray:
        values = np.asarray(table.column(name).to_numpy(), dtype=np.int64)
        out = np.zeros(n, dtype=np.int64)
        out[known] = values[at[known]]
        return out

    empty = np.zeros(0, dtype=np.int64)
    entity, category, weight = empty, empty, empty
    categories = np.zeros(n, dtype=np.int64)
    if affinity is not None and affinity.num_rows and category_names is not None:
        users = _codes_in(affinity.column("user_id").combine_chunks(), names)
        mine = np.flatnonzero(users >= 0)
        entity = users[mine]
        category = _codes_in(affinity.column("category").combine_chunks(), category_names)[mine]
        weight = np.asarray(affinity.column("weight").to_numpy(), dtype=np.int64)[mine]
        categories = np.bincount(entity, minlength=n).astype(np.int64)
    return History(
        known=known,
        events=column("events"),
        weight=column("weight"),
        purchases=column("purchases"),
        ratings=RatingTotals(
            count=column("rating_count"),
            sum=column("rating_sum"),
            squares=column("rating_squares"),
        ),
        first_t=column("first_t"),
        last_t=column("last_t"),
        sessions=column("sessions"),
        session_micros=column("session_micros"),
        session_start=column("session_start"),
        distinct=column("distinct"),
        categories=categories,
        affinity_entity=entity,
        affinity_category=category,
        affinity_weight=weight,
    )
