"""Candidate generation: several sources each propose their best items; the union is ranked.

Sources (each scores the whole catalog for a user as of a time, using nothing after it):
- `popularity`: recent popularity (contacts in the 30 days before).
- `cooccurrence`: item-kNN over who touched what, from the user's contacts before the time.
- `als`: implicit matrix factorization, user factors solved from contacts before the time.
- `ease`: EASE's item-item weights (retrained along the log) over the user's contacts before
  the time.
- `embedding`: the user's taste vector (recent liked items' MiniLM vectors, and preference
  memories when given) against the item vectors held in Milvus.
Each candidate keeps its sources (`sources`, and `rank_<source>` within that source's list)
and every source's score, which the ranker reads as features. Items the user touched before
the time are never candidates.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from core.errors import InvalidInputError
from ranking.baselines import catalog_columns, catalog_positions, to_micros, top_k
from ranking.history import Contacts, UserHistory
from ranking.item_vectors import ItemVectors

# How many items of each source enter the ranked union (about 700 distinct per user).
DEFAULT_LIMITS: dict[str, int] = {
    "als": 300,
    "ease": 200,
    "cooccurrence": 250,
    "item_knn": 150,
    "embedding": 150,
    "popularity": 50,
}
RECALL_DEPTH = 500  # each source's list is kept this deep to measure its recall@500
RECENT_ITEMS = 20  # contacts that make the taste vector
RRF_K = 60.0  # reciprocal rank fusion's constant (Cormack et al., 2009)
_LOOKED_UP = ("_catalog_columns", "_catalog_positions")  # what requests keep on a source


class Source(Protocol):
    """Scores of catalog items for users at their own times (NaN: cannot score)."""

    name: str

    def scores(
        self,
        user_ids: Sequence[str],
        at: pd.DatetimeIndex,
        items: pd.Index,
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """Users x items (only those at positions `rows` of `items`, when given)."""
        ...

    def forget_user(self, user_id: str) -> None:
        """Score the user as one with no history from now on (in place, while serving)."""
        ...

    def score_contacts(
        self, user_id: str, contacts: Contacts, at: pd.Timestamp, items: pd.Index
    ) -> np.ndarray:
        """One user's scores of the catalog at `at` from these contacts, not those fitted."""
        ...


class CatalogScorer(Protocol):
    """A fitted point-in-time model: ranking.baselines' models, ranking.sequence's."""

    def score_batch(
        self,
        user_ids: Sequence[str],
        cutoffs: pd.DatetimeIndex,
        item_ids: Sequence[str],
        rows: np.ndarray | None = None,
    ) -> np.ndarray: ...

    def forget_user(self, user_id: str) -> None: ...

    def score_contacts(
        self,
        items: np.ndarray,
        ts: np.ndarray,
        weights: np.ndarray,
        cutoff: pd.Timestamp,
        item_ids: Sequence[str],
    ) -> np.ndarray: ...


class ModelSource:
    """A point-in-time baseline recommender (ranking.baselines) as a candidate source."""

    def __init__(self, name: str, model: CatalogScorer) -> None:
        self.name = name
        self.model = model

    def scores(
        self,
        user_ids: Sequence[str],
        at: pd.DatetimeIndex,
        items: pd.Index,
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """The model's scores (see `_CatalogModel.score_batch`)."""
        return np.asarray(self.model.score_batch(list(user_ids), at, items, rows))

    def forget_user(self, user_id: str) -> None:
        """The model's `forget_user`."""
        self.model.forget_user(user_id)

    def score_contacts(
        self, user_id: str, contacts: Contacts, at: pd.Timestamp, items: pd.Index
    ) -> np.ndarray:
        """The model's `score_contacts`."""
        return self.model.score_contacts(contacts.items, contacts.ts, contacts.weights, at, items)


class VectorRows(Protocol):
    """Anything that gives item vectors by id (ItemVectors, ranking.features.ItemTable)."""

    def rows(self, item_ids: Sequence[str]) -> np.ndarray: ...


def taste_vector(
    vectors: VectorRows,
    items: np.ndarray,
    weights: np.ndarray,
    memory_vectors: np.ndarray | None = None,
    recent: int = RECENT_ITEMS,
) -> np.ndarray | None:
    """Unit mean of the last `recent` liked items' vectors (weight > 0, else any) and of the
    preference memories; None when there is nothing to go on. Pure."""
    liked = items[weights > 0][-recent:]
    chosen = liked if len(liked) else items[-recent:]
    parts = [vectors.rows(list(chosen))] if len(chosen) else []
    if memory_vectors is not None and len(memory_vectors):
        parts.append(np.asarray(memory_vectors, dtype=np.float32))
    if not parts:
        return None
    mean = np.concatenate(parts).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else None


class EmbeddingSource:
    """Cosine between the user's taste vector and each item vector."""

    name = "embedding"

    def __init__(
        self,
        vectors: ItemVectors,
        history: UserHistory,
        memories: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.vectors = vectors
        self.history = history
        self.memories = memories or {}

    def __getstate__(self) -> dict[str, object]:
        """Without the positions requests looked up (rebuilt on first use): a saved source
        never carries a cache."""
        return {k: v for k, v in self.__dict__.items() if k not in _LOOKED_UP}

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """The item vectors' `rows`, the ids looked up in a dict: a request's taste reads 20."""
        found = catalog_positions(self, self.vectors.index, [str(i) for i in item_ids])
        out = np.zeros((len(found), self.vectors.matrix.shape[1]), dtype=np.float32)
        out[found >= 0] = self.vectors.matrix[found[found >= 0]]
        return out

    def scores(
        self,
        user_ids: Sequence[str],
        at: pd.DatetimeIndex,
        items: pd.Index,
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """Users x items cosine; NaN for a user with no taste yet or an item with no vector."""
        micros = to_micros(at)
        columns = catalog_columns(self, self.vectors.index, items)
        if rows is not None:
            columns = columns[rows]
        out = np.full((len(user_ids), len(columns)), np.nan)
        tastes = np.zeros((len(user_ids), self.vectors.matrix.shape[1]), dtype=np.float32)
        known = np.zeros(len(user_ids), dtype=bool)
        for row, (user, moment) in enumerate(zip(user_ids, micros, strict=True)):
            contacts = self.history.before(user, int(moment))
            taste = taste_vector(self, contacts.items, contacts.weights, self.memories.get(user))
            if taste is not None:
                tastes[row], known[row] = taste, True
        has = columns >= 0
        if 4 * int(has.sum()) < len(self.vectors.matrix):  # a few items (given candidates)
            out[np.ix_(known, has)] = tastes[known] @ self.vectors.matrix[columns[has]].T
            return out
        # Every vector scored, then picked: cheaper than copying the catalog's rows per request.
        out[np.ix_(known, has)] = (tastes[known] @ self.vectors.matrix.T)[:, columns[has]]
        return out

    def score_contacts(
        self, user_id: str, contacts: Contacts, at: pd.Timestamp, items: pd.Index
    ) -> np.ndarray:
        """`scores` of one user whose contacts are these, not the history's."""
        before = contacts.ts < int(to_micros([at])[0])
        out = np.full(len(items), np.nan)
        taste = taste_vector(
            self.vectors,
            contacts.items[before],
            contacts.weights[before],
            self.memories.get(user_id),
        )
        if taste is not None:
            columns = self.vectors.index.get_indexer(items)
            has = columns >= 0
            row = taste.astype(np.float32)[None, :]  # as `scores` holds it
            out[has] = (row @ self.vectors.matrix.T)[0, columns[has]]
        return out

    def forget_user(self, user_id: str) -> None:
        """No taste for the user from now on: their contacts and memories are not read."""
        self.history.forget_user(user_id)
        if isinstance(self.memories, MutableMapping):
            self.memories.pop(user_id, None)


@dataclass
class UserCandidates:
    """One user's candidates at one time as arrays: what `generate` makes a frame of, and what
    the serving ranker reads directly (`generate_user`)."""

    item_ids: np.ndarray  # object, str ids
    names: list[str]  # source names, the columns below
    scores: np.ndarray  # (items x sources) each source's score, NaN: cannot score
    ranks: np.ndarray  # (items x sources) position in each source's list, NaN: not in it
    inside: np.ndarray  # (items x sources) bool: within that source's limit
    # (sources x depth) int32 catalog positions of each source's list, best first, -1 past its
    # end: the ranks of any item, so a request with given candidates need not rank the catalog
    lists: np.ndarray | None = None

    @property
    def n_sources(self) -> np.ndarray:
        """How many sources proposed each item."""
        return self.inside.sum(axis=1)

    def shortlist(self, size: int) -> UserCandidates:
        """The `size` rows best by reciprocal rank fusion of the sources' ranks (sum of
        1 / (60 + rank); Cormack et al., 2009), in their order here: a first stage that needs
        no features, so the model scores a few hundred rows instead of every candidate."""
        if len(self.item_ids) <= size:
            return self
        fused = np.nansum(1.0 / (RRF_K + self.ranks), axis=1)
        rows = np.sort(np.argpartition(-fused, size - 1)[:size])
        return UserCandidates(
            self.item_ids[rows],
            self.names,
            self.scores[rows],
            self.ranks[rows],
            self.inside[rows],
            self.lists,
        )

    def sources(self) -> list[str]:
        """Per item, the names of the sources that proposed it, joined by '+'."""
        bits = (self.inside * (1 << np.arange(len(self.names)))).sum(axis=1)
        return _labels(tuple(self.names))[bits].tolist()

    def columns(self) -> dict[str, object]:
        """The frame columns of `generate` (without user_id and at)."""
        out: dict[str, object] = {"item_id": self.item_ids}
        for j, name in enumerate(self.names):
            out[f"score_{name}"] = self.scores[:, j]
            out[f"rank_{name}"] = self.ranks[:, j]
        out["n_sources"] = self.n_sources
        out["sources"] = self.sources()
        return out


@functools.cache
def _labels(names: tuple[str, ...]) -> np.ndarray:
    """Every subset of the sources as its '+'-joined label, indexed by its bit mask."""
    return np.array(
        [
            "+".join(n for j, n in enumerate(names) if mask >> j & 1)
            for mask in range(1 << len(names))
        ],
        dtype=object,
    )


@dataclass
class CandidateSet:
    """The ranked union per (user, time), and each source's own top lists (for recall)."""

    frame: pd.DataFrame  # user_id, at, item_id, sources, n_sources, score_<s>, rank_<s>
    lists: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # source -> key -> items

    @property
    def sources(self) -> list[str]:
        """Source names, in the order they were given."""
        return list(self.lists)


def generate(
    sources: Sequence[Source],
    user_ids: Sequence[str],
    at: pd.DatetimeIndex,
    items: pd.Index,
    exclude: Mapping[str, Collection[str]] | None = None,
    limits: Mapping[str, int] | None = None,
    only: Sequence[str] | None = None,
    batch_size: int = 256,
) -> CandidateSet:
    """Candidates of each user at their time: each source's top `limits[name]`, merged; with
    `only`, exactly those items (for one user), still scored by every source."""
    if len(user_ids) != len(at):
        raise InvalidInputError("at", f"{len(at)} times for {len(user_ids)} users")
    keys = _keys(user_ids, at)
    if len(set(keys)) != len(keys):
        raise InvalidInputError("user_ids", "each (user, time) pair may appear once")
    item_array = np.asarray(items, dtype=object)
    pieces: list[UserCandidates] = []
    lists: dict[str, dict[str, list[str]]] = {s.name: {} for s in sources}
    for position, union, best in unions(
        sources, user_ids, at, items, exclude, limits, only, batch_size
    ):
        for name, columns in best.items():
            lists[name][keys[position]] = item_array[columns].tolist()
        pieces.append(union)
    owner_ids = np.array([str(u) for u in user_ids], dtype=object)
    return CandidateSet(_frame(pieces, owner_ids, at, [s.name for s in sources]), lists)


def unions(
    sources: Sequence[Source],
    user_ids: Sequence[str],
    at: pd.DatetimeIndex,
    items: pd.Index,
    exclude: Mapping[str, Collection[str]] | None = None,
    limits: Mapping[str, int] | None = None,
    only: Sequence[str] | None = None,
    batch_size: int = 256,
) -> Iterator[tuple[int, UserCandidates, dict[str, np.ndarray]]]:
    """Each user's union at their time, in order: (position in `user_ids`, the union, each
    source's list as catalog positions). The sources score `batch_size` users at once, which
    costs a fraction of scoring them one by one."""
    limits = {s.name: (limits or DEFAULT_LIMITS).get(s.name, 100) for s in sources}
    item_array = np.asarray(items, dtype=object)
    chosen = None if only is None else items.get_indexer([str(i) for i in only])
    depth = _depth(limits)
    for start in range(0, len(user_ids), batch_size):
        users = [str(u) for u in user_ids[start : start + batch_size]]
        times = at[start : start + batch_size]
        matrices = {s.name: s.scores(users, times, items) for s in sources}
        blocked = [items.get_indexer(list((exclude or {}).get(user, ()))) for user in users]
        cells = (
            np.repeat(np.arange(len(users)), [len(b) for b in blocked]),
            np.concatenate([np.empty(0, np.intp), *blocked]),
        )
        known = cells[1] >= 0
        ranked = {
            name: ranked_columns(matrix, (cells[0][known], cells[1][known]), depth)
            for name, matrix in matrices.items()
        }
        for row in range(len(users)):
            best = {name: order[row, : counts[row]] for name, (order, counts) in ranked.items()}
            rows = {name: matrix[row] for name, matrix in matrices.items()}
            yield start + row, _union_of(rows, best, item_array, limits, chosen), best


def ranked_columns(
    scores: np.ndarray, blocked: tuple[np.ndarray, np.ndarray], depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's columns best first, `depth` deep, and how many lead with a finite score
    (NaN and the `blocked` (rows, columns) cells never do): per row what `top_k` keeps, ties
    by column, for a whole batch at once. Pure."""
    values = np.where(np.isfinite(scores), scores, -np.inf)
    values[blocked] = -np.inf
    order = np.argsort(-values, axis=1, kind="stable")[:, :depth]
    counts = np.isfinite(np.take_along_axis(values, order, axis=1)).sum(axis=1)
    return order, counts


def _frame(
    pieces: Sequence[UserCandidates], users: np.ndarray, at: pd.DatetimeIndex, names: list[str]
) -> pd.DataFrame:
    """The rows of many (user, time) unions as one frame, built from the joined arrays (a frame
    per user, concatenated, cost more than the candidates on a log of thousands of users)."""
    if not pieces:
        return pd.DataFrame()
    sizes = [len(piece.item_ids) for piece in pieces]
    joined = UserCandidates(
        np.concatenate([piece.item_ids for piece in pieces]),
        names,
        np.concatenate([piece.scores for piece in pieces]),
        np.concatenate([piece.ranks for piece in pieces]),
        np.concatenate([piece.inside for piece in pieces]),
    )
    return pd.DataFrame(
        {"user_id": np.repeat(users, sizes), "at": at.repeat(sizes), **joined.columns()}
    )


def generate_user(
    sources: Sequence[Source],
    user_id: str,
    at: pd.Timestamp,
    items: pd.Index,
    exclude: Collection[str] = (),
    limits: Mapping[str, int] | None = None,
    only: Sequence[str] | None = None,
) -> UserCandidates:
    """`generate` for one user at one time, as arrays (the serving path: no frames)."""
    limits = {s.name: (limits or DEFAULT_LIMITS).get(s.name, 100) for s in sources}
    moment = pd.DatetimeIndex([at])
    rows = {s.name: s.scores([user_id], moment, items)[0] for s in sources}
    blocked = items.get_indexer(list(exclude))
    chosen = None if only is None else items.get_indexer([str(i) for i in only])
    item_array = np.asarray(items, dtype=object)
    return _union(rows, item_array, blocked[blocked >= 0], limits, chosen)[0]


def generate_contacts(
    sources: Sequence[Source],
    user_id: str,
    contacts: Contacts,
    at: pd.Timestamp,
    items: pd.Index,
    limits: Mapping[str, int] | None = None,
) -> UserCandidates:
    """`generate_user` of a user whose contacts are these (oldest first), not those the
    sources were fitted on; the items of contacts before `at` are excluded (ranking.follow)."""
    limits = {s.name: (limits or DEFAULT_LIMITS).get(s.name, 100) for s in sources}
    rows = {s.name: s.score_contacts(user_id, contacts, at, items) for s in sources}
    seen = contacts.items[contacts.ts < int(to_micros([at])[0])]
    blocked = items.get_indexer(list(dict.fromkeys(seen)))
    item_array = np.asarray(items, dtype=object)
    return _union(rows, item_array, blocked[blocked >= 0], limits, None)[0]


def _depth(limits: Mapping[str, int]) -> int:
    return max(RECALL_DEPTH, *limits.values()) if limits else RECALL_DEPTH


def _union(
    scores: Mapping[str, np.ndarray],
    item_array: np.ndarray,
    blocked: np.ndarray,
    limits: Mapping[str, int],
    only: np.ndarray | None,
) -> tuple[UserCandidates, dict[str, np.ndarray]]:
    """One user's union of each source's top `limits` (or exactly the `only` positions), and
    each source's list `RECALL_DEPTH` deep (catalog positions). `scores`: source -> catalog
    row."""
    depth = _depth(limits)
    best: dict[str, np.ndarray] = {}
    for name, row in scores.items():
        values = np.where(np.isfinite(row), row, -np.inf)
        values[blocked] = -np.inf
        top = top_k(values[None, :], depth)[0]
        best[name] = top[np.isfinite(values[top])]
    return _union_of(scores, best, item_array, limits, only), best


def _union_of(
    scores: Mapping[str, np.ndarray],
    best: Mapping[str, np.ndarray],
    item_array: np.ndarray,
    limits: Mapping[str, int],
    only: np.ndarray | None,
) -> UserCandidates:
    """The union of each source's list `best` (catalog positions, best first) cut at its limit,
    or exactly the `only` positions, with every source's score and rank."""
    if only is not None:
        chosen = only[only >= 0]
    else:
        chosen = np.unique(
            np.concatenate([best[name][: limits[name]] for name in best] or [np.empty(0, np.int64)])
        )
    names = list(best)
    n_items = len(item_array)
    score_block = np.empty((len(chosen), len(names)))
    rank_block = np.empty((len(chosen), len(names)))
    for j, name in enumerate(names):
        position = np.full(n_items, np.nan)
        position[best[name]] = np.arange(1, len(best[name]) + 1)
        score_block[:, j] = scores[name][chosen]
        rank_block[:, j] = position[chosen]
    inside = rank_block <= np.array([limits[n] for n in names])  # NaN compares False
    lists = np.full((len(names), _depth(limits)), -1, dtype=np.int32)
    for j, name in enumerate(names):
        lists[j, : len(best[name])] = best[name]
    return UserCandidates(item_array[chosen], names, score_block, rank_block, inside, lists)


def _keys(user_ids: Sequence[str], at: pd.DatetimeIndex) -> list[str]:
    return [f"{u}@{t.isoformat()}" for u, t in zip(user_ids, at, strict=True)]


def key_of(user_id: str, at: pd.Timestamp) -> str:
    """The key of a (user, time) pair in `CandidateSet.lists`."""
    return f"{user_id}@{at.isoformat()}"


def source_recall(
    candidates: CandidateSet,
    relevant: Mapping[str, Collection[str]],
    at: pd.Series,
    ks: Sequence[int] = (100, 500),
) -> dict[str, dict[str, float]]:
    """Mean recall@k of each source's list and of the ranked union, over users in `relevant`."""
    users = [u for u in relevant if u in at.index]
    out: dict[str, dict[str, float]] = {}
    for name, by_key in candidates.lists.items():
        out[name] = {
            f"recall@{k}": float(
                np.mean(
                    [
                        len(set(by_key.get(key_of(u, at[u]), [])[:k]) & set(relevant[u]))
                        / len(relevant[u])
                        for u in users
                    ]
                )
            )
            for k in ks
        }
    union = candidates.frame.groupby("user_id")["item_id"].agg(set)
    out["union"] = {
        "recall": float(
            np.mean([len(union.get(u, set()) & set(relevant[u])) / len(relevant[u]) for u in users])
        ),
        "mean_size": float(candidates.frame.groupby("user_id").size().mean()),
    }
    return out
