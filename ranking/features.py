"""The model matrix: one function turns candidates and their feature-service rows into features.

`assemble` is the only place features are computed, for training and for serving alike, so the
two cannot drift. Its inputs differ only in where the feature-service rows come from: Feast's
point-in-time join for training (ranking.training_data), the online store for serving
(core.stores.online.read_service); both give the `ranking` service's values for (user, item, time).

Besides the service's user, item and category-match features it computes, from the user's
contacts strictly before the row's time:
- the candidate sources' scores and ranks, and how many sources proposed the item;
- similarity of the item to the user's recent items, taste, disliked items and memories;
- recency of the user's contact with similar items and with the item's category;
- request features: hour of day and day of week.

Per (user, time) group the work runs on numpy arrays over the context's `ItemTable` (item rows,
vectors, category codes; built once per context), so serving a user's candidates
(`assemble_user`, no pandas) and training (`assemble`, many groups) share `_user_block`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from core.errors import InvalidInputError
from ranking.baselines import to_micros
from ranking.candidates import taste_vector
from ranking.history import UserHistory
from ranking.item_vectors import ItemVectors

SIMILAR = 0.7  # cosine above which two items count as similar for recency
RECENT_CONTACTS = 100  # contacts searched for similar items
_DAY_US = 86_400 * 1_000_000
_HOUR_US = 3_600 * 1_000_000
_NEVER = np.iinfo(np.int64).min

CONTEXT_FEATURES: tuple[str, ...] = (
    "sim_recent_max",
    "sim_recent_mean",
    "sim_taste",
    "sim_dislike",
    "sim_pref_memory",
    "sim_dislike_memory",
    "days_since_similar",
    "days_since_category",
    "category_share_recent",
    "user_contacts",
    "days_since_last_contact",
    "hour_of_day",
    "day_of_week",
    "n_sources",
)
_C = {name: j for j, name in enumerate(CONTEXT_FEATURES)}


@dataclass
class UserMemories:
    """Vectors of a user's preference and dislike memories (rows), as of the request."""

    preferences: np.ndarray | None = None
    dislikes: np.ndarray | None = None


@dataclass(frozen=True)
class ItemTable:
    """Per-item arrays by row, built once: vectors (zeros without one) and category codes (-1
    without one). The last row stands for every unknown item."""

    row_of: dict[str, int]
    vectors: np.ndarray  # float32, (items + 1, dim)
    category: np.ndarray  # int64, (items + 1,)

    @classmethod
    def build(cls, vectors: ItemVectors, categories: pd.Series) -> ItemTable:
        """The table of every item with a vector or a category."""
        categories = categories[~categories.index.duplicated()]
        ids = list(dict.fromkeys([*vectors.ids.astype(str), *categories.index.astype(str)]))
        row_of = {item: row for row, item in enumerate(ids)}
        matrix = np.zeros((len(ids) + 1, vectors.matrix.shape[1]), dtype=np.float32)
        matrix[[row_of[str(i)] for i in vectors.ids]] = vectors.matrix
        codes, _ = pd.factorize(categories.reindex(ids).to_numpy())
        category = np.r_[codes, -1].astype(np.int64)
        return cls(row_of, matrix, category)

    def index(self, item_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Rows of the given items, ids as str (the unknown row for items not in the table)."""
        unknown, get = len(self.row_of), self.row_of.get
        return np.fromiter((get(i, unknown) for i in item_ids), np.intp, len(item_ids))

    def rows(self, item_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Vectors of the given items, zeros for items without one (as ItemVectors.rows)."""
        return self.vectors[self.index(item_ids)]


@dataclass
class Context:
    """What `assemble` reads besides the rows: vectors, contacts, categories, memories.

    Treated as immutable: `table` is derived from it once."""

    vectors: ItemVectors
    history: UserHistory
    categories: pd.Series  # item_id -> category
    memories: Mapping[str, UserMemories] = field(default_factory=dict)

    @functools.cached_property
    def table(self) -> ItemTable:
        """The per-item arrays of `vectors` and `categories`."""
        return ItemTable.build(self.vectors, self.categories)

    @functools.cached_property
    def _contact_rows(self) -> dict[str, np.ndarray]:
        return {}

    def forget_user(self, user_id: str) -> None:
        """Hold the user as one with no contacts and no memories from now on, in place (the
        serving ranker's `forget_user`)."""
        self.history.forget_user(user_id)
        self._contact_rows.pop(user_id, None)
        if isinstance(self.memories, MutableMapping):
            self.memories.pop(user_id, None)

    def contact_rows(self, user_id: str) -> np.ndarray:
        """Table rows of all the user's contacts, oldest first; the contacts before any time
        are a prefix of them. Looked up once per user."""
        rows = self._contact_rows.get(user_id)
        if rows is None:
            rows = self.table.index(self.history.before(user_id, 2**62).items)
            self._contact_rows[user_id] = rows
        return rows


def feature_names(sources: Sequence[str], service_features: Sequence[str]) -> list[str]:
    """The model's columns, in order."""
    per_source = [f"{kind}_{s}" for s in sources for kind in ("score", "rank")]
    return [*per_source, *CONTEXT_FEATURES, *service_features]


def assemble(
    candidates: pd.DataFrame,
    service: pd.DataFrame,
    context: Context,
    sources: Sequence[str],
    service_features: Sequence[str],
) -> pd.DataFrame:
    """The model matrix, one row per candidate row (same order), columns `feature_names`.

    `service` is row-aligned with `candidates` and holds the service's output features.
    """
    if len(service) != len(candidates):
        raise InvalidInputError("service", f"{len(service)} rows for {len(candidates)} candidates")
    n, width = len(candidates), 2 * len(sources)
    matrix = np.empty((n, width + len(CONTEXT_FEATURES) + len(service_features)))
    for j, name in enumerate(sources):
        matrix[:, 2 * j] = candidates[f"score_{name}"].to_numpy(dtype=float)
        matrix[:, 2 * j + 1] = candidates[f"rank_{name}"].to_numpy(dtype=float)
    matrix[:, width : width + len(CONTEXT_FEATURES)] = _context_features(candidates, context)
    for j, name in enumerate(service_features):
        values = pd.to_numeric(service[name], errors="coerce") if name in service else np.nan
        matrix[:, width + len(CONTEXT_FEATURES) + j] = np.asarray(values, dtype=float)
    return pd.DataFrame(
        matrix, index=candidates.index, columns=feature_names(sources, service_features)
    )


def assemble_user(
    context: Context,
    user_id: str,
    at_micros: int,
    item_ids: Sequence[str],
    scores: np.ndarray,
    ranks: np.ndarray,
    n_sources: np.ndarray,
    service: np.ndarray,
) -> np.ndarray:
    """`assemble` for one user's candidates at one time, on arrays (the serving path).

    `scores` and `ranks` are (items x sources), `service` (items x service features), in the
    feature list's order; returns the C-contiguous float64 model matrix.
    """
    n, n_sources_ = scores.shape
    width = 2 * n_sources_
    matrix = np.empty((n, width + len(CONTEXT_FEATURES) + service.shape[1]))
    matrix[:, 0:width:2] = scores
    matrix[:, 1:width:2] = ranks
    block = _user_block(context, user_id, at_micros, context.table.index(item_ids))
    block[:, _C["n_sources"]] = n_sources
    block[:, _C["hour_of_day"]], block[:, _C["day_of_week"]] = _clock(np.int64(at_micros))
    matrix[:, width : width + len(CONTEXT_FEATURES)] = block
    matrix[:, width + len(CONTEXT_FEATURES) :] = service
    return matrix


def _clock(micros: np.ndarray | np.int64) -> tuple[np.ndarray, np.ndarray]:
    """UTC hour of day and day of week (Monday 0) of epoch microseconds. Pure."""
    hour = (micros // _HOUR_US) % 24
    day = (micros // _DAY_US + 3) % 7  # 1970-01-01 was a Thursday
    return np.asarray(hour, dtype=float), np.asarray(day, dtype=float)


def _context_features(candidates: pd.DataFrame, context: Context) -> np.ndarray:
    n = len(candidates)
    out = np.full((n, len(CONTEXT_FEATURES)), np.nan)
    if n == 0:
        return out
    at = to_micros(candidates["at"])
    users = candidates["user_id"].astype(str).to_numpy()
    item_rows = context.table.index(candidates["item_id"].astype(str).tolist())
    # Rows of one (user, time) share the user's contacts: grouped, the work is per group.
    codes = pd.DataFrame({"user": users, "at": at}).groupby(["user", "at"], sort=False).ngroup()
    codes = codes.to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1], True])
    # A group's products are small: a second BLAS thread only spins, which cost five times the
    # CPU of one thread on two cores (docs/benchmarks.md, issue 15); the results are the same.
    with threadpool_limits(1, "blas"):
        for left, right in itertools.pairwise(bounds):
            rows = order[left:right]
            out[rows] = _user_block(context, str(users[rows[0]]), int(at[rows[0]]), item_rows[rows])
    out[:, _C["n_sources"]] = candidates["n_sources"].to_numpy(dtype=float)
    out[:, _C["hour_of_day"]], out[:, _C["day_of_week"]] = _clock(at)
    return out


def _user_block(context: Context, user: str, moment: int, item_rows: np.ndarray) -> np.ndarray:
    """The context features of one user's items (table rows) at `moment` (epoch µs), from the
    user's contacts strictly before it; the request columns are left NaN."""
    table = context.table
    out = np.full((len(item_rows), len(CONTEXT_FEATURES)), np.nan)
    contacts = context.history.before(user, moment)
    out[:, _C["user_contacts"]] = len(contacts.items)
    item_vectors = table.vectors[item_rows]
    memories = context.memories.get(user, UserMemories())
    _memory_sims(out, item_vectors, memories)
    if not len(contacts.items):
        return out
    out[:, _C["days_since_last_contact"]] = (moment - contacts.ts[-1]) / _DAY_US
    contact_rows = context.contact_rows(user)[: len(contacts.items)]
    recent_rows = contact_rows[-RECENT_CONTACTS:]
    recent_ts = contacts.ts[-RECENT_CONTACTS:]
    sims = item_vectors @ table.vectors[recent_rows].T
    last20 = sims[:, -20:]
    out[:, _C["sim_recent_max"]] = last20.max(axis=1)
    out[:, _C["sim_recent_mean"]] = last20.mean(axis=1)
    taste = taste_vector(table, contacts.items, contacts.weights, memories.preferences)
    if taste is not None:
        out[:, _C["sim_taste"]] = item_vectors @ taste
    disliked = contact_rows[contacts.weights < 0][-RECENT_CONTACTS:]
    if len(disliked):
        out[:, _C["sim_dislike"]] = (item_vectors @ table.vectors[disliked].T).max(axis=1)
    latest = np.where(sims >= SIMILAR, recent_ts[None, :], _NEVER).max(axis=1)
    out[:, _C["days_since_similar"]] = np.where(
        latest > _NEVER, (moment - latest) / _DAY_US, np.nan
    )
    item_category = table.category[item_rows]
    known = (item_category >= 0)[:, None]
    same = (table.category[recent_rows][None, :] == item_category[:, None]) & known
    out[:, _C["category_share_recent"]] = same[:, -20:].mean(axis=1)
    latest_same = np.where(same, recent_ts[None, :], _NEVER).max(axis=1)
    out[:, _C["days_since_category"]] = np.where(
        latest_same > _NEVER, (moment - latest_same) / _DAY_US, np.nan
    )
    return out


def _memory_sims(out: np.ndarray, items: np.ndarray, memories: UserMemories) -> None:
    for name, vectors in (
        ("sim_pref_memory", memories.preferences),
        ("sim_dislike_memory", memories.dislikes),
    ):
        if vectors is not None and len(vectors):
            out[:, _C[name]] = (items @ np.asarray(vectors, dtype=np.float32).T).max(axis=1)
