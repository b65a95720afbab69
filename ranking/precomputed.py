"""Each user's candidates, computed when the model is trained and kept beside it.

Every candidate source scores the whole catalog for a user (ALS, item-kNN and co-occurrence
profiles, the taste vector, as-of popularity), then keeps its top items: on MovieLens-small
(9,742 items) that is most of a request's time, and it grows with the catalog. The sources read
only the log saved with the model, so a user's candidates do not change between two trainings
but for the 30-day popularity window sliding on; `engram train` computes them once per user
(`compute`: the sources and union of a live request, many users scored at once) and saves
them in the registry version (`candidates.npz`). A request without candidates, query or time
then reads its user's rows here instead of scoring the catalog; one with any of them generates
its candidates live, as before.

Storage, per user: ~600 candidates x (4-byte item code + 8 bytes x 5 source scores + 2 bytes x 5
source ranks) = ~33 KB, and each source's list 500 deep (4-byte codes: 10 KB), ~43 KB;
MovieLens-small's 610 users ~26 MB. Serving reads them from Redis (ranking.candidate_store),
where the first process to load the version writes them. The budget (`budget_bytes`,
ENGRAM_CANDIDATES_BUDGET_MB) keeps the most active users that fit; the others are generated
live per request.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from core.errors import InvalidInputError
from ranking.baselines import to_micros
from ranking.candidates import (
    DEFAULT_LIMITS,
    RECALL_DEPTH,
    Source,
    UserCandidates,
    unions,
)
from ranking.history import UserHistory

FILE = "candidates.npz"
NOT_LISTED = 0  # a stored rank of 0: the item is not in that source's list (NaN live)


@dataclass(frozen=True)
class StoredCandidates:
    """Candidates of many users as of one time, in flat arrays (one row per candidate)."""

    at: pd.Timestamp  # the time they were generated as of
    names: list[str]  # source names, the columns of scores and ranks
    limits: list[int]  # each source's share of the union, in the same order
    users: np.ndarray  # str, sorted
    offsets: np.ndarray  # int64, users + 1: user i's rows are offsets[i]:offsets[i + 1]
    catalog: np.ndarray  # str item ids the codes point into
    codes: np.ndarray  # int32 position of each row's item in `catalog`
    scores: np.ndarray  # float64 (rows x sources), NaN: the source cannot score the item
    ranks: np.ndarray  # int16 (rows x sources), place in the source's list, 0: not in it
    lists: np.ndarray | None = None  # int32 (users x sources x depth): UserCandidates.lists
    _objects: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_objects", self.catalog.astype(object))

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays held."""
        arrays = (self.users, self.offsets, self.catalog, self.codes, self.scores, self.ranks)
        return sum(a.nbytes for a in arrays) + (0 if self.lists is None else self.lists.nbytes)

    def __contains__(self, user_id: str) -> bool:
        return self._position(user_id) >= 0

    def get(self, user_id: str) -> UserCandidates | None:
        """The user's candidates, as `generate_user` gave them (None: not stored)."""
        position = self._position(user_id)
        if position < 0:
            return None
        rows = slice(int(self.offsets[position]), int(self.offsets[position + 1]))
        ranks = self.ranks[rows].astype(float)
        ranks[ranks == NOT_LISTED] = np.nan
        inside = ranks <= np.asarray(self.limits, dtype=float)  # NaN compares False
        return UserCandidates(
            self._objects[self.codes[rows]],
            list(self.names),
            self.scores[rows],
            ranks,
            inside,
            None if self.lists is None else self.lists[position],
        )

    def without(self, user_id: str) -> StoredCandidates:
        """These candidates less the user's (a forget)."""
        position = self._position(user_id)
        if position < 0:
            return self
        start, stop = int(self.offsets[position]), int(self.offsets[position + 1])
        keep = np.r_[0:start, stop : len(self.codes)]
        offsets = np.r_[self.offsets[:position], self.offsets[position + 1 :] - (stop - start)]
        return StoredCandidates(
            self.at,
            self.names,
            self.limits,
            np.delete(self.users, position),
            offsets.astype(np.int64),
            self.catalog,
            self.codes[keep],
            self.scores[keep],
            self.ranks[keep],
            None if self.lists is None else np.delete(self.lists, position, axis=0),
        )

    def to_bytes(self) -> bytes:
        """The arrays as one uncompressed .npz."""
        out = io.BytesIO()
        extra: dict[str, Any] = {} if self.lists is None else {"lists": self.lists}
        np.savez(
            out,
            at=np.array([to_micros(pd.DatetimeIndex([self.at]))[0]], dtype=np.int64),
            names=np.array(self.names, dtype=str),
            limits=np.array(self.limits, dtype=np.int64),
            users=self.users,
            offsets=self.offsets,
            catalog=self.catalog,
            codes=self.codes,
            scores=self.scores,
            ranks=self.ranks,
            **extra,
        )
        return out.getvalue()

    def _position(self, user_id: str) -> int:
        position = int(np.searchsorted(self.users, user_id))
        if position < len(self.users) and self.users[position] == user_id:
            return position
        return -1


def load(source: Path | IO[bytes]) -> StoredCandidates:
    """Candidates saved by `StoredCandidates.to_bytes`, from a file or a stream."""
    with np.load(source, allow_pickle=False) as saved:
        return StoredCandidates(
            pd.Timestamp(int(saved["at"][0]), unit="us", tz="UTC"),
            [str(n) for n in saved["names"]],
            [int(n) for n in saved["limits"]],
            saved["users"],
            saved["offsets"],
            saved["catalog"],
            saved["codes"],
            saved["scores"],
            saved["ranks"],
            saved["lists"] if "lists" in saved.files else None,
        )


def bytes_per_candidate(sources: int) -> int:
    """Storage of one candidate row: item code, a float64 score and an int16 rank a source."""
    return 4 + sources * (8 + 2)


def bytes_of_lists(sources: int) -> int:
    """Storage of one user's source lists: RECALL_DEPTH int32 codes a source."""
    return sources * RECALL_DEPTH * 4


def compute(
    sources: Sequence[Source],
    history: UserHistory,
    items: pd.Index,
    at: pd.Timestamp,
    budget_bytes: int,
    expected_candidates: int = 600,
) -> StoredCandidates:
    """Every user's candidates at `at` (what a live request at `at` would generate), the most
    active users first while the estimate of their size fits `budget_bytes`."""
    if at.tzinfo is None:
        raise InvalidInputError("at", "needs a UTC offset")
    micros = int(to_micros(pd.DatetimeIndex([at]))[0])
    per_user = expected_candidates * bytes_per_candidate(len(sources)) + bytes_of_lists(
        len(sources)
    )
    active = sorted(history.users, key=lambda u: (-len(history.before(u, micros).items), u))
    chosen = sorted(active[: max(0, budget_bytes // per_user)])
    names = [s.name for s in sources]
    limits = [DEFAULT_LIMITS.get(name, 100) for name in names]
    exclude = {user: history.before(user, micros).items for user in chosen}
    moments = pd.DatetimeIndex([at] * len(chosen))
    codes, scores, ranks, lists, offsets = [], [], [], [], [0]
    for _, found, _ in unions(sources, chosen, moments, items, exclude):
        codes.append(items.get_indexer(found.item_ids.astype(str)).astype(np.int32))
        scores.append(found.scores)
        ranks.append(np.nan_to_num(found.ranks, nan=NOT_LISTED).astype(np.int16))
        assert found.lists is not None
        lists.append(found.lists)
        offsets.append(offsets[-1] + len(found.item_ids))
    width = len(names)
    return StoredCandidates(
        at,
        names,
        limits,
        np.array(chosen, dtype=str),
        np.array(offsets, dtype=np.int64),
        np.asarray(items, dtype=str),
        np.concatenate(codes) if codes else np.empty(0, np.int32),
        np.concatenate(scores) if scores else np.empty((0, width)),
        np.concatenate(ranks) if ranks else np.empty((0, width), np.int16),
        np.stack(lists) if lists else np.empty((0, width, RECALL_DEPTH), np.int32),
    )


__all__ = ["FILE", "StoredCandidates", "bytes_of_lists", "bytes_per_candidate", "compute", "load"]
