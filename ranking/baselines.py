"""Baseline recommenders: global and recent popularity, item-kNN, ALS and EASE, on interaction
frames.

Every model scores the fitted catalog for a batch of users at their own cutoffs, drops the
excluded items (normally those the user touched before the cutoff: `Split.seen`) and keeps the
top k. Ties go to the more popular item, then to the smaller item id, so results are reproducible;
a user a model knows nothing about gets the tie-break order, i.e. popular items.

Point in time (`point_in_time = True`): the model uses only events strictly before each user's
cutoff, so it may be fit on the whole log (`Split.history`). The popularity models always are.
ItemKNN and ALS are when given `retrain_growth`: their item side (similarities, item factors) is
retrained at fixed positions of the log and each user is scored by the latest one trained before
their cutoff, from their own contacts before the cutoff. Without it they learn once from what they
are fit on, which must then be `Split.train`: no held-out interaction, but other users' later
ones (the usual per-user-split compromise, and what serving wants: train on everything, now).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal, Protocol, Self, TypeAlias

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.errors import InvalidInputError

Cutoffs: TypeAlias = Sequence[pd.Timestamp] | pd.Series | pd.DatetimeIndex
Exclude: TypeAlias = Mapping[str, Collection[str]]
# Users x items profiles: sparse, or dense rows for the few users of a request (no scipy).
Profiles: TypeAlias = sp.csr_matrix | np.ndarray
DENSE_PROFILES = 8  # users at most whose profiles are dense when a few columns are asked
_REQUIRED = ("user_id", "item_id", "ts", "weight")
# Derived from a fit and kept for requests: positions in the catalog, the retrain grid, item
# sides in compressed columns. Dropped on a new fit and never saved.
_DERIVED = ("_catalog_columns", "_points", "_sides_by_column")


class Recommender(Protocol):
    """What `engram eval` needs from a model: fit, top-k per user at a cutoff, item scores."""

    name: str
    point_in_time: bool  # True: uses only events before each cutoff, may be fit on the full log

    def fit(self, interactions: pd.DataFrame) -> Self:
        """Learn from interactions (user_id, item_id, ts, weight; other columns ignored)."""
        ...

    def recommend(
        self, user_ids: Sequence[str], cutoffs: Cutoffs, k: int, exclude: Exclude | None = None
    ) -> dict[str, list[str]]:
        """The k best items for each user as of that user's cutoff, without excluded items."""
        ...

    def score(self, user_id: str, item_ids: Sequence[str], cutoff: pd.Timestamp) -> np.ndarray:
        """Scores of the given items for one user at a cutoff; NaN for items it cannot score."""
        ...


def top_k(scores: np.ndarray, k: int, tiebreak: np.ndarray | None = None) -> list[np.ndarray]:
    """Per row, columns of the k highest finite scores; ties by higher tiebreak, then column."""
    n_rows, n_cols = scores.shape
    kk = min(k, n_cols)
    if kk == 0:
        return [np.empty(0, dtype=np.int64) for _ in range(n_rows)]
    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
    ties = np.zeros(n_cols) if tiebreak is None else tiebreak
    result = []
    for row, threshold in enumerate(kth):
        values = scores[row]
        # Everything tied with the k-th score competes: argpartition alone picks among ties
        # by memory layout, which is deterministic but not the documented order.
        keep = values >= threshold if np.isfinite(threshold) else np.isfinite(values)
        candidates = np.flatnonzero(keep)
        row_ties = ties[candidates] if ties.ndim == 1 else ties[row, candidates]
        order = np.lexsort((candidates, -row_ties, -values[candidates]))[:kk]
        result.append(candidates[order])
    return result


def catalog_columns(owner: object, fitted: pd.Index, item_ids: Sequence[str]) -> np.ndarray:
    """Positions of `item_ids` among the fitted items (-1: unknown). A pd.Index (the ranker's
    catalog, the same object on every request) is looked up once per owner and kept."""
    if not isinstance(item_ids, pd.Index):
        return fitted.get_indexer([str(item) for item in item_ids])
    kept = owner.__dict__.get("_catalog_columns")
    if kept is None or kept[0] is not item_ids:
        kept = (item_ids, fitted.get_indexer(item_ids.astype(str)))
        owner.__dict__["_catalog_columns"] = kept
    return kept[1]


def catalog_positions(owner: object, catalog: pd.Index, item_ids: Sequence[str]) -> np.ndarray:
    """`catalog.get_indexer(item_ids)` (-1: not in it) through a dict built once per owner and
    catalog and kept: pandas' lookup costs more than a request's hundred ids do in a dict."""
    kept = owner.__dict__.get("_catalog_positions")
    if kept is None or kept[0] is not catalog:
        kept = (catalog, {item: position for position, item in enumerate(catalog.tolist())})
        owner.__dict__["_catalog_positions"] = kept
    found = kept[1]
    return np.fromiter((found.get(item, -1) for item in item_ids), np.intp, len(item_ids))


def compressed_hits(
    indptr: np.ndarray, indices: np.ndarray, picked: np.ndarray, wanted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Entries of the picked rows of a compressed-rows matrix (columns of a compressed-columns
    one) whose index is `wanted` (a mask over indices): (position in `picked`, position in
    `indices`/`data`), in their order. Only the hits are located, so the cost is one masked
    read per entry of the picked rows."""
    starts, ends = indptr[picked], indptr[picked + 1]
    if not len(picked):
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    found = np.concatenate(
        [indices[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    )
    hit = np.flatnonzero(wanted[found])
    past = np.cumsum(ends - starts)
    owner = np.searchsorted(past, hit, side="right")
    return owner, starts[owner] + hit - (past[owner] - (ends - starts)[owner])


def to_micros(values: pd.Series | pd.DatetimeIndex | Sequence[pd.Timestamp]) -> np.ndarray:
    """Timezone-aware timestamps as int64 microseconds since the epoch (UTC)."""
    index = values if isinstance(values, pd.DatetimeIndex) else pd.DatetimeIndex(values)
    if index.tz is None:
        raise InvalidInputError("ts", "timestamps must be timezone-aware")
    if str(index.tz) != "UTC":  # each conversion copies: skipped when there is nothing to do
        index = index.tz_convert("UTC")
    if index.unit != "us":
        index = index.as_unit("us")
    return np.asarray(index.asi8, dtype=np.int64)


class _CatalogModel:
    """The fitted catalog and log (sorted by time), as-of counts and the batched top-k."""

    name = "model"
    point_in_time = False
    batch_size = 512

    items: np.ndarray
    users: np.ndarray
    _item_index: pd.Index
    _ts: np.ndarray  # the fitted log, sorted by time: ts, item, user codes, weights
    _item: np.ndarray
    _user: np.ndarray
    _weight: np.ndarray
    _popularity: np.ndarray  # fitted contacts per item

    def _fit_log(self, interactions: pd.DataFrame) -> None:
        missing = [name for name in _REQUIRED if name not in interactions.columns]
        if missing:
            raise InvalidInputError("interactions", f"missing columns {missing}")
        if interactions.empty:
            raise InvalidInputError("interactions", "nothing to fit")
        ts = to_micros(interactions["ts"])
        order = np.argsort(ts, kind="stable")
        self.items, items = np.unique(interactions["item_id"].astype(str), return_inverse=True)
        self.users, users = np.unique(interactions["user_id"].astype(str), return_inverse=True)
        self._item_index = pd.Index(self.items)
        self._ts, self._item, self._user = ts[order], items[order], users[order]
        self._weight = interactions["weight"].to_numpy(dtype=float)[order]
        self._popularity = np.bincount(items, minlength=len(self.items)).astype(float)
        self._as_of_memo: dict[tuple[object, ...], Any] = {}  # see _counts_as_of
        for derived in _DERIVED:
            self.__dict__.pop(derived, None)

    def __getstate__(self) -> dict[str, Any]:
        """The fit without what requests derive from it (`_DERIVED`, rebuilt on first use), so
        a saved model never carries a cache's layout from the code that saved it."""
        return {k: v for k, v in self.__dict__.items() if k not in _DERIVED}

    def forget_user(self, user_id: str) -> None:
        """Score the user as one with no contacts from now on, in place (a model being served).

        Nothing here is read per user: as-of popularity counts everyone's contacts, which stay
        until the model is fitted again (ranking.registry.forget_user refits without them)."""

    def _scores(
        self, user_ids: Sequence[str], cutoffs: np.ndarray, columns: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, tie-break) for each user and fitted item (only the fitted items at
        `columns`, when given); the tie-break may be one row."""
        raise NotImplementedError

    def recommend(
        self, user_ids: Sequence[str], cutoffs: Cutoffs, k: int, exclude: Exclude | None = None
    ) -> dict[str, list[str]]:
        """The k best items for each user as of that user's cutoff, without excluded items."""
        if k < 1:
            raise InvalidInputError("k", f"must be positive, got {k}")
        users = [str(user) for user in user_ids]
        micros = to_micros(cutoffs)
        if len(micros) != len(users):
            raise InvalidInputError("cutoffs", f"{len(micros)} cutoffs for {len(users)} users")
        # In cutoff order, as-of counts roll forward and users share retrained models.
        order = np.argsort(micros, kind="stable")
        result: dict[str, list[str]] = {}
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = [users[row] for row in rows]
            scores, tiebreak = self._scores(batch, micros[rows])
            for row, user in enumerate(batch):
                excluded = self._item_index.get_indexer(list((exclude or {}).get(user, ())))
                scores[row, excluded[excluded >= 0]] = -np.inf
            best = top_k(scores, k, tiebreak)
            result.update(zip(batch, (self.items[cols].tolist() for cols in best), strict=True))
        return {user: result[user] for user in users}

    def score(self, user_id: str, item_ids: Sequence[str], cutoff: pd.Timestamp) -> np.ndarray:
        """Scores of the given items for one user at a cutoff; NaN for items it cannot score."""
        return self.score_batch([user_id], [cutoff], item_ids)[0]

    def score_batch(
        self,
        user_ids: Sequence[str],
        cutoffs: Cutoffs,
        item_ids: Sequence[str],
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """Users x items scores at each user's cutoff; NaN for items it cannot score then.
        With `rows` (positions in `item_ids`) only those items are scored, in that order: a
        request's given candidates, without scoring the catalog."""
        micros = to_micros(cutoffs)
        if len(micros) != len(user_ids):
            raise InvalidInputError("cutoffs", f"{len(micros)} cutoffs for {len(user_ids)} users")
        columns = catalog_columns(self, self._item_index, item_ids)
        if rows is not None:
            columns = columns[rows]
        # A few columns are scored alone; many, by scoring the catalog and picking them.
        few = 4 * len(columns) < len(self.items)
        picked = np.maximum(columns, 0)
        result = np.full((len(user_ids), len(columns)), np.nan)
        users = [str(user) for user in user_ids]
        for start in range(0, len(users), self.batch_size):
            batch = slice(start, start + self.batch_size)
            if few:
                known, _ = self._scores(users[batch], micros[batch], picked)
            else:
                known = self._scores(users[batch], micros[batch])[0][:, picked]
            result[batch] = np.where((columns >= 0) & np.isfinite(known), known, np.nan)
        return result

    def _counts_as_of(
        self,
        cutoffs: np.ndarray,
        window: int | None = None,
        half_life: float | None = None,
        weights: np.ndarray | None = None,
        columns: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(windowed/decayed score, all-time contacts) per item before each cutoff (only the
        items at `columns`, when given)."""
        if len(cutoffs) == 1 and half_life is None:
            # Serving asks for one cutoff at a time, and the counts change only when an event
            # enters or leaves the window: the last answer per (window, weights) is kept.
            cutoff = int(cutoffs[0])
            upto = int(np.searchsorted(self._ts, cutoff, side="left"))
            since = 0 if window is None else int(np.searchsorted(self._ts, cutoff - window))
            memo = self.__dict__.setdefault("_as_of_memo", {})
            key = (window, weights is None)
            kept = memo.get(key)
            if kept is None or kept[0] != (upto, since):
                kept = ((upto, since), self._counts_between(cutoffs, window, weights))
                memo[key] = kept
            if columns is not None:  # picking copies: the memo stays as it is
                return kept[1][0][:, columns], kept[1][1][:, columns]
            return kept[1][0].copy(), kept[1][1].copy()
        scores, contacts = self._counts_between(cutoffs, window, weights, half_life)
        if columns is not None:
            return scores[:, columns], contacts[:, columns]
        return scores, contacts

    def _counts_between(
        self,
        cutoffs: np.ndarray,
        window: int | None = None,
        weights: np.ndarray | None = None,
        half_life: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        n_items = len(self.items)
        weight = np.ones(len(self._ts)) if weights is None else weights
        scores = np.empty((len(cutoffs), n_items))
        contacts = np.empty((len(cutoffs), n_items))
        running, total = np.zeros(n_items), np.zeros(n_items)
        added = removed = 0
        previous: int | None = None

        def counted(rows: slice, at: int) -> np.ndarray:
            decay = 1.0 if half_life is None else 0.5 ** ((at - self._ts[rows]) / half_life)
            return np.bincount(self._item[rows], weights=weight[rows] * decay, minlength=n_items)

        # Cutoffs in order let every event enter (and leave the window) once.
        for row in np.argsort(cutoffs, kind="stable"):
            cutoff = int(cutoffs[row])
            upto = int(np.searchsorted(self._ts, cutoff, side="left"))
            since = 0 if window is None else int(np.searchsorted(self._ts, cutoff - window))
            if half_life is not None and previous is not None:
                running *= 0.5 ** ((cutoff - previous) / half_life)
            total += np.bincount(self._item[added:upto], minlength=n_items)
            running += counted(slice(added, upto), cutoff)
            running -= counted(slice(removed, since), cutoff)
            added, removed, previous = upto, since, cutoff
            # Decayed sums subtract in floating point; a tiny negative is zero.
            scores[row] = np.maximum(running, 0.0)
            contacts[row] = total
        return scores, contacts


class Popularity(_CatalogModel):
    """Items by contacts strictly before each cutoff, optionally in a window or time-decayed."""

    point_in_time = True

    def __init__(
        self,
        window: pd.Timedelta | None = None,
        half_life: pd.Timedelta | None = None,
        weighted: bool = False,
        name: str = "popularity",
    ) -> None:
        self.window = window
        self.half_life = half_life
        self.weighted = weighted  # count max(weight, 0) instead of 1 per contact
        self.name = name

    def fit(self, interactions: pd.DataFrame) -> Self:
        """Keep the contacts sorted by time, for as-of counts at any cutoff."""
        self._fit_log(interactions)
        return self

    def _scores(
        self, user_ids: Sequence[str], cutoffs: np.ndarray, columns: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        scores, contacts = self._counts_as_of(
            cutoffs,
            window=None if self.window is None else _micros_of(self.window),
            half_life=None if self.half_life is None else float(_micros_of(self.half_life)),
            weights=np.maximum(self._weight, 0.0) if self.weighted else None,
            columns=columns,
        )
        # An item nobody had touched by the cutoff was not known then.
        scores[contacts == 0] = -np.inf
        # In a window many items tie (often at 0): all-time counts as of the cutoff order them.
        return scores, contacts

    def score_contacts(
        self,
        items: np.ndarray,
        ts: np.ndarray,
        weights: np.ndarray,
        cutoff: pd.Timestamp,
        item_ids: Sequence[str],
    ) -> np.ndarray:
        """`score` at `cutoff`: the same for every user, whatever their contacts."""
        return self.score("", item_ids, cutoff)


class GlobalPopularity(Popularity):
    """All-time contacts before each user's cutoff."""

    def __init__(self, weighted: bool = False) -> None:
        super().__init__(weighted=weighted, name="global_popularity")


class RecentPopularity(Popularity):
    """Contacts in a window before each user's cutoff (default 30 days), optionally decayed."""

    def __init__(
        self,
        window: pd.Timedelta = pd.Timedelta(days=30),  # noqa: B008 - immutable value
        half_life: pd.Timedelta | None = None,
        weighted: bool = False,
    ) -> None:
        super().__init__(window, half_life, weighted, name="recent_popularity")


class _ProfileModel(_CatalogModel):
    """An item side learned from a user-item matrix, applied to each user's contacts as of cutoff.

    Subclasses say how a contact becomes a matrix value (`_values`), how the item side is learned
    (`_learn`) and how it scores profiles (`_apply`).
    """

    retrain_growth: float | None
    min_events: int

    def fit(self, interactions: pd.DataFrame) -> Self:
        """Index each user's contacts by time; learn the item side now, or per cutoff later."""
        self._fit_log(interactions)
        by_user = np.lexsort((self._ts, self._user))
        self._p_ts, self._p_item = self._ts[by_user], self._item[by_user]
        self._p_value = self._values(self._weight[by_user])
        starts = np.searchsorted(self._user[by_user], np.arange(len(self.users) + 1))
        self._rows = {
            user: (int(starts[i]), int(starts[i + 1])) for i, user in enumerate(self.users)
        }
        self._sides: dict[int, Any] = {}
        if self.retrain_growth is None:
            self._sides[len(self._ts)] = self._learn(self._matrix(len(self._ts)))
        return self

    def forget_user(self, user_id: str) -> None:
        """Score the user as one with no contacts from now on, in place (a model being served):
        their profile is no longer read, so no user factor or neighbourhood is built from it.
        The item side learned over everyone, and the time-ordered log it is learned from, keep
        their contacts until the model is fitted again (ranking.registry.forget_user)."""
        self._rows.pop(user_id, None)

    # "weight": summed signal weights, a negative sum (low ratings) meaning disliked; "contact":
    # 1 per user and item touched. Models that offer the choice set it in their constructor.
    confidence = "weight"

    def _values(self, weights: np.ndarray) -> np.ndarray:
        return weights if self.confidence == "weight" else np.ones(len(weights))

    def _learn(self, matrix: sp.csr_matrix) -> Any:
        raise NotImplementedError

    def _apply(
        self, side: Any, profiles: Profiles, columns: np.ndarray | None = None
    ) -> np.ndarray:
        """Scores of the profiles' users over every fitted item, or over those at `columns`."""
        raise NotImplementedError

    def _matrix(self, events: int) -> sp.csr_matrix:
        """User-item values of the first `events` events in time order (duplicates summed)."""
        rows = slice(0, events)
        values = self._values(self._weight[rows])
        shape = (len(self.users), len(self.items))
        matrix = sp.csr_matrix((values, (self._user[rows], self._item[rows])), shape=shape)
        return self._finish(matrix)

    def _finish(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        matrix.sum_duplicates()
        matrix.eliminate_zeros()  # weights that cancel out say nothing
        if self.confidence == "contact":
            matrix.data[:] = 1.0
        return matrix

    def _finish_row(self, sums: np.ndarray, contacts: np.ndarray) -> np.ndarray:
        """`_finish` of one dense row: each item's summed values and number of contacts."""
        return (sums != 0).astype(float) if self.confidence == "contact" else sums

    def _dense_profiles(self, user_ids: Sequence[str], cutoffs: np.ndarray) -> np.ndarray:
        """`_profiles` as dense rows, built without scipy (a request's one user)."""
        out = np.zeros((len(user_ids), len(self.items)))
        for row, (user, cutoff) in enumerate(zip(user_ids, cutoffs, strict=True)):
            start, end = self._rows.get(user, (0, 0))
            end = start + int(np.searchsorted(self._p_ts[start:end], cutoff, side="left"))
            items, n = self._p_item[start:end], len(self.items)
            sums = np.bincount(items, weights=self._p_value[start:end], minlength=n)
            out[row] = self._finish_row(sums, np.bincount(items, minlength=n))
        return out

    def _profiles(self, user_ids: Sequence[str], cutoffs: np.ndarray) -> sp.csr_matrix:
        """Each user's values over the items they touched strictly before their cutoff."""
        rows, columns, values = [], [], []
        for row, (user, cutoff) in enumerate(zip(user_ids, cutoffs, strict=True)):
            start, end = self._rows.get(user, (0, 0))
            end = start + int(np.searchsorted(self._p_ts[start:end], cutoff, side="left"))
            rows.append(np.full(end - start, row))
            columns.append(self._p_item[start:end])
            values.append(self._p_value[start:end])
        shape = (len(user_ids), len(self.items))
        matrix = sp.csr_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))), shape=shape
        )
        return self._finish(matrix)

    def _retrain_points(self) -> np.ndarray:
        """Event counts at which the item side is retrained: min_events, then x(1 + growth), and
        last all the events.

        Below the total the grid depends on nothing but these two numbers, so what comes after a
        cutoff never changes which model scores it, only whether anything does; the last point
        serves the cutoffs after every event (a request now), which would otherwise go without
        up to a growth's share of the latest events. Computed once per fit (a request asks).
        """
        points = self.__dict__.get("_points")
        if points is None:
            points = self.__dict__["_points"] = self._grid()
        return points

    def _grid(self) -> np.ndarray:
        assert self.retrain_growth is not None
        total = len(self._ts)
        if total < self.min_events:
            return np.empty(0, dtype=np.int64)
        steps = math.floor(math.log(total / self.min_events) / math.log1p(self.retrain_growth))
        points = np.ceil(self.min_events * (1 + self.retrain_growth) ** np.arange(steps + 2))
        return np.unique(np.append(points[points <= total], total).astype(np.int64))

    def _by_column(self, side: sp.spmatrix) -> sp.csc_matrix:
        """An item side in compressed columns, converted once per side and kept with the model,
        so it goes with the model (a module-wide cache kept every swapped-out model's sides).
        Keyed by the side's identity: sparse matrices are not hashable."""
        kept = self.__dict__.setdefault("_sides_by_column", {})
        found = kept.get(id(side))
        if found is None or found[0] is not side:
            found = kept[id(side)] = (side, sp.csc_matrix(side))
        return found[1]

    def score_contacts(
        self,
        items: np.ndarray,
        ts: np.ndarray,
        weights: np.ndarray,
        cutoff: pd.Timestamp,
        item_ids: Sequence[str],
    ) -> np.ndarray:
        """`score` of a user whose contacts are these (item ids, epoch microseconds, weights),
        not those fitted: a contact that came after the fit counts (ranking.follow)."""
        micros = to_micros([cutoff])
        codes = self._item_index.get_indexer([str(item) for item in items])
        keep = (np.asarray(ts) < micros[0]) & (codes >= 0)  # items fitted after are unknown
        values = self._values(np.asarray(weights, dtype=float)[keep])
        profile = sp.csr_matrix(
            (values, (np.zeros(len(values), dtype=np.int64), codes[keep])),
            shape=(1, len(self.items)),
        )
        scores, _ = self._score_profiles(self._finish(profile), micros)
        columns = catalog_columns(self, self._item_index, item_ids)
        known = scores[0, np.maximum(columns, 0)]
        return np.where((columns >= 0) & np.isfinite(known), known, np.nan)

    def _scores(
        self, user_ids: Sequence[str], cutoffs: np.ndarray, columns: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if columns is not None and len(user_ids) <= DENSE_PROFILES:
            return self._score_profiles(self._dense_profiles(user_ids, cutoffs), cutoffs, columns)
        return self._score_profiles(self._profiles(user_ids, cutoffs), cutoffs, columns)

    def _score_profiles(
        self, profiles: Profiles, cutoffs: np.ndarray, columns: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.retrain_growth is None:
            popularity = self._popularity if columns is None else self._popularity[columns]
            return self._apply(self._sides[len(self._ts)], profiles, columns), popularity
        _, contacts = self._counts_as_of(cutoffs, columns=columns)
        scores = np.zeros(contacts.shape)
        # The latest retrain point whose events all lie strictly before the cutoff; users
        # before the first one get zeros, i.e. as-of popularity through the tie-break.
        points = self._retrain_points()
        usable = np.searchsorted(self._ts, cutoffs, side="left")
        chosen = np.searchsorted(points, usable, side="right") - 1
        for index in sorted(set(chosen[chosen >= 0].tolist())):  # one, for a request
            events = int(points[index])
            if events not in self._sides:
                self._sides[events] = self._learn(self._matrix(events))
            rows = np.flatnonzero(chosen == index)
            part = profiles if len(rows) == profiles.shape[0] else profiles[rows]
            scores[rows] = self._apply(self._sides[events], part, columns)
        scores[contacts == 0] = -np.inf  # unknown as of the cutoff
        return scores, contacts


class ItemKNN(_ProfileModel):
    """Item-to-item cosine over who touched what, summed over the user's items before cutoff."""

    def __init__(
        self,
        neighbors: int = 100,
        retrain_growth: float | None = None,
        min_events: int = 1_000,
        block: int = 1024,
    ) -> None:
        self.name = "item_knn" if retrain_growth is None else "item_knn_asof"
        self.point_in_time = retrain_growth is not None
        self.neighbors = neighbors  # most similar items kept per item
        self.retrain_growth = retrain_growth  # retrain when the log has grown by this fraction
        self.min_events = min_events  # events before the first retrain point
        self.block = block  # items per similarity block: block x catalog floats in memory

    def _values(self, weights: np.ndarray) -> np.ndarray:
        return np.ones(len(weights))

    def _finish(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        matrix.sum_duplicates()
        matrix.data[:] = 1.0  # a user counts once per item, however many contacts
        return matrix

    def _finish_row(self, sums: np.ndarray, contacts: np.ndarray) -> np.ndarray:
        return (contacts > 0).astype(float)

    def _learn(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return _pruned_cosine(matrix, self.neighbors, self.block)

    def _apply(
        self, side: sp.csr_matrix, profiles: Profiles, columns: np.ndarray | None = None
    ) -> np.ndarray:
        if columns is not None:
            return _column_product(profiles, side, self._by_column(side), columns)
        return np.asarray((profiles @ side).toarray())


class ALS(_ProfileModel):
    """Implicit-feedback matrix factorization (implicit's ALS, CPU, seeded)."""

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        confidence: Literal["weight", "contact"] = "weight",
        retrain_growth: float | None = None,
        min_events: int = 1_000,
        seed: int = 0,
        threads: int = 2,
    ) -> None:
        self.name = "als" if retrain_growth is None else "als_asof"
        self.point_in_time = retrain_growth is not None
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha  # confidence = 1 + alpha * value
        self.iterations = iterations
        # "weight": summed signal weights, a negative sum (low ratings) meaning disliked with
        # that confidence; "contact": 1 per user and item touched.
        self.confidence = confidence
        self.retrain_growth = retrain_growth
        self.min_events = min_events
        self.seed = seed
        self.threads = threads

    def _finish(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return sp.csr_matrix(super()._finish(matrix), dtype=np.float32)

    def _learn(self, matrix: sp.csr_matrix) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        # implicit runs its own threads; a multi-threaded BLAS underneath would oversubscribe.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=self.threads,
            )
            model.fit(matrix, show_progress=False)
        return model

    def _apply(
        self, side: Any, profiles: Profiles, columns: np.ndarray | None = None
    ) -> np.ndarray:
        # User factors are solved from the profile as of the cutoff, never from the fit, so a
        # user's later contacts in the fitted matrix do not shape their scores.
        if isinstance(profiles, np.ndarray):
            users = _solve_users(side, profiles)
        else:
            users = side.recalculate_user(np.arange(profiles.shape[0]), profiles)
        factors = _float64_factors(side)
        if columns is not None:
            factors = factors[columns]
        return np.asarray(users, dtype=np.float64) @ factors.T


class EASE(_ProfileModel):
    """Embarrassingly shallow autoencoder (Steck, WWW 2019): the item-item weights that best
    rebuild each user's row from the other items, in closed form,
    B = I - P diag(1 / diag(P)) with P = (X'X + lambda I)^-1 (diagonal of B zero), and a
    user's scores x_u B. Items touched by fewer than `min_contacts` users are left out of the
    inversion (their scores are 0), which bounds its cost: n^3 in the items kept."""

    def __init__(
        self,
        regularization: float = 200.0,
        confidence: Literal["weight", "contact"] = "contact",
        min_contacts: int = 1,
        retrain_growth: float | None = None,
        min_events: int = 1_000,
        neighbors: int | None = None,
    ) -> None:
        self.name = "ease" if retrain_growth is None else "ease_asof"
        self.point_in_time = retrain_growth is not None
        self.regularization = regularization  # lambda: Steck's best values were 200 to 1000
        # "contact": 1 per user and item touched (the paper's binary matrix); "weight": summed
        # signal weights, low ratings negative.
        self.confidence = confidence
        self.min_contacts = min_contacts
        self.retrain_growth = retrain_growth
        self.min_events = min_events
        # Weights kept per item (the largest in absolute value into each item's score), None:
        # all. Retrained along the log, each retrain point keeps its weights: dense, n^2 floats.
        self.neighbors = neighbors

    def _finish(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return sp.csr_matrix(super()._finish(matrix), dtype=np.float32)

    def _learn(self, matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray | sp.csr_matrix]:
        users_per_item = np.asarray((matrix != 0).sum(axis=0)).ravel()
        kept = np.flatnonzero(users_per_item >= max(self.min_contacts, 1))
        part = sp.csc_matrix(matrix[:, kept], dtype=np.float64)
        gram = np.asarray((part.T @ part).toarray())
        gram[np.diag_indices_from(gram)] += self.regularization
        inverse = np.linalg.inv(gram)
        weights = inverse / -np.diag(inverse)
        weights[np.diag_indices_from(weights)] = 0.0
        if self.neighbors is None or self.neighbors >= len(kept):
            return kept, weights.astype(np.float32)
        # Column j scores item j: keep its `neighbors` strongest inputs.
        cut = np.argpartition(-np.abs(weights), self.neighbors - 1, axis=0)[self.neighbors :]
        np.put_along_axis(weights, cut, 0.0, axis=0)
        return kept, sp.csr_matrix(weights.astype(np.float32))

    def _apply(
        self,
        side: tuple[np.ndarray, np.ndarray | sp.csr_matrix],
        profiles: Profiles,
        columns: np.ndarray | None = None,
    ) -> np.ndarray:
        kept, weights = side
        if columns is None:
            scores = np.zeros((profiles.shape[0], len(self.items)))
            product = sp.csr_matrix(profiles)[:, kept] @ weights
            scores[:, kept] = product.toarray() if sp.issparse(product) else np.asarray(product)
            return scores
        # The asked columns among the kept items (the others score 0).
        scores = np.zeros((profiles.shape[0], len(columns)))
        place = np.searchsorted(kept, columns).clip(max=max(len(kept) - 1, 0))
        inside = kept[place] == columns if len(kept) else np.zeros(len(columns), bool)
        into, place = np.flatnonzero(inside), place[inside]
        part = (profiles if isinstance(profiles, np.ndarray) else profiles.toarray())[:, kept]
        if sp.issparse(weights):
            scores[:, into] = _column_product(part, weights, self._by_column(weights), place)
        else:
            scores[:, into] = part @ weights[:, place]
        return scores


_FACTORS64: weakref.WeakKeyDictionary[Any, np.ndarray] = weakref.WeakKeyDictionary()


def _column_product(
    profiles: Profiles, side: sp.csr_matrix, by_column: sp.csc_matrix, columns: np.ndarray
) -> np.ndarray:
    """`profiles @ side[:, columns]` from the side's entries in those columns, or in the rows of
    a profile's items when these are fewer (a request asks for a hundred given candidates; a
    user has a few contacts or thousands), with numpy on the compressed arrays: scipy's
    per-call cost is more than the product's. Each score sums its nonzero terms in the order of
    the profile's items, as scipy's product does."""
    dense = profiles if isinstance(profiles, np.ndarray) else profiles.toarray()
    out = np.empty((len(dense), len(columns)))
    in_columns = int((by_column.indptr[columns + 1] - by_column.indptr[columns]).sum())
    for row, values in enumerate(dense):
        held = values != 0
        items = np.flatnonzero(held)
        if int((side.indptr[items + 1] - side.indptr[items]).sum()) < in_columns:
            out[row] = _row_product(values, items, side, columns)
            continue
        owner, entries = compressed_hits(by_column.indptr, by_column.indices, columns, held)
        terms = values[by_column.indices[entries]] * by_column.data[entries]
        out[row] = np.bincount(owner, weights=terms, minlength=len(columns))
    return out


def _row_product(
    values: np.ndarray, items: np.ndarray, side: sp.csr_matrix, columns: np.ndarray
) -> np.ndarray:
    """`values @ side[:, columns]` from the side's rows of `items` (the profile's nonzeros)."""
    return rows_product(values[items], items, side, columns)


def rows_product(
    weights: np.ndarray, rows: np.ndarray, side: sp.csr_matrix, columns: np.ndarray | None = None
) -> np.ndarray:
    """`weights @ side[rows]` on the compressed arrays, only at `columns` when given (the rows'
    other entries are dropped after one masked read): each sum takes its terms in the order of
    `rows`, as scipy's product does."""
    if columns is None:
        wanted = np.ones(side.shape[1], dtype=bool)
        owner, entries = compressed_hits(side.indptr, side.indices, rows, wanted)
        terms = weights[owner] * side.data[entries]
        return np.bincount(side.indices[entries], weights=terms, minlength=side.shape[1])
    slot = np.full(side.shape[1], -1, dtype=np.intp)
    slot[columns] = np.arange(len(columns))  # a repeated column: one of its places sums for all
    owner, entries = compressed_hits(side.indptr, side.indices, rows, slot >= 0)
    terms = weights[owner] * side.data[entries]
    into = slot[side.indices[entries]]
    return np.bincount(into, weights=terms, minlength=len(columns))[slot[columns]]


def _solve_users(side: Any, profiles: np.ndarray) -> np.ndarray:
    """implicit's `recalculate_user` (float32) of dense profile rows, its solver called on the
    rows' nonzeros without the sparse matrix it takes: building that costs a request more than
    a user's solve. Same inputs to the same solver, so the same factors."""
    from implicit.cpu import _als

    values = profiles.astype(np.float32)
    held = [np.flatnonzero(row) for row in values]  # per row: a 2-d nonzero costs more
    items = np.concatenate([*held, np.empty(0, dtype=np.intp)])
    data = np.concatenate([*(row[h] for row, h in zip(values, held, strict=True)), values[:0, 0]])
    if side.alpha != 1.0:
        data = side.alpha * data
    users = np.zeros((len(values), side.factors), dtype=side.dtype)
    _als._least_squares(
        side.YtY,
        np.cumsum([0, *(len(h) for h in held)]).astype(np.int32),
        items.astype(np.int32),
        data.astype(np.float32),
        users,
        side.item_factors,
        side.regularization,
        num_threads=side.num_threads,
    )
    return users


def _float64_factors(side: Any) -> np.ndarray:
    """The ALS side's item factors as float64, converted once per side: the product with the
    float64 user factors would otherwise copy the catalog's float32 factors on every call
    (numpy converts them anyway, so the scores are the same). Kept beside the side, not in
    it, so that saved models stay as they were."""
    factors = _FACTORS64.get(side)
    if factors is None:
        factors = np.ascontiguousarray(side.item_factors, dtype=np.float64)
        _FACTORS64[side] = factors
    return factors


def _pruned_cosine(contacts: sp.csr_matrix, neighbors: int, block: int) -> sp.csr_matrix:
    """Item-item cosine of the columns of `contacts`, the `neighbors` largest per row, no self."""
    n_items = contacts.shape[1]
    counts = np.asarray(contacts.sum(axis=0)).ravel()
    # Only items someone touched have neighbours: early retrains skip most of the catalog.
    active = np.flatnonzero(counts > 0)
    scaled = sp.csc_matrix(contacts[:, active] @ sp.diags(1.0 / np.sqrt(counts[active])))
    keep = min(neighbors, len(active) - 1)
    parts = [sp.csr_matrix((0, len(active)))]
    for start in range(0, len(active), block):
        stop = min(start + block, len(active))
        dense = (scaled[:, start:stop].T @ scaled).toarray()
        dense[np.arange(stop - start), np.arange(start, stop)] = 0.0
        if keep <= 0:
            dense[:] = 0.0
        else:
            cut = np.argpartition(-dense, keep - 1, axis=1)[:, keep:]
            np.put_along_axis(dense, cut, 0.0, axis=1)
        parts.append(sp.csr_matrix(dense))
    similar = sp.coo_matrix(sp.vstack(parts, format="csr"))
    rows, columns = active[similar.row], active[similar.col]
    return sp.csr_matrix((similar.data, (rows, columns)), shape=(n_items, n_items))


def _micros_of(delta: pd.Timedelta) -> int:
    micros = int(pd.Timedelta(delta).value // 1000)
    if micros <= 0:
        raise InvalidInputError("timedelta", f"must be positive, got {delta}")
    return micros
