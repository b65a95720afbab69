"""Sequential co-occurrence: items consumed soon after the user's recent items, point in time.

For every user, each contact b that follows a contact a within the next `window` contacts adds
1/gap to the pair (a, b), dated at b's time. A user is scored as of a cutoff from their last
`recent` contacts before it (the latest weighing most) over the row-normalized pair counts of
pairs dated before the cutoff. Counts are rebuilt at fixed pair counts (x(1 + growth), and last at
all the pairs, for a cutoff after them all), so a cutoff is scored by the latest table whose pairs
all precede it: nothing after it can count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ranking.baselines import catalog_columns, rows_product, to_micros


class SequentialCooccurrence:
    """Point-in-time "consumed after" model; scores like the baselines' `score_batch`."""

    name = "cooccurrence"
    point_in_time = True

    def __init__(
        self, window: int = 10, recent: int = 10, growth: float = 0.05, min_pairs: int = 1_000
    ) -> None:
        self.window = window
        self.recent = recent
        self.growth = growth
        self.min_pairs = min_pairs

    def fit(self, interactions: pd.DataFrame) -> Self:
        """Index the contacts per user and the dated pairs."""
        log = interactions.sort_values(["user_id", "ts", "item_id"], kind="stable")
        self.items, codes = np.unique(log["item_id"].astype(str), return_inverse=True)
        self._item_index = pd.Index(self.items)
        users = log["user_id"].astype(str).to_numpy()
        ts = to_micros(log["ts"])
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        ends = np.r_[starts[1:], len(users)]
        self._rows = {str(users[s]): (int(s), int(e)) for s, e in zip(starts, ends, strict=True)}
        self._codes, self._ts = codes, ts
        self.__dict__.pop("_catalog_columns", None)  # positions in the catalog fitted before
        same_user = np.r_[0, np.cumsum(users[1:] != users[:-1])]
        src, dst, weight, when = [], [], [], []
        for gap in range(1, self.window + 1):
            ok = same_user[gap:] == same_user[:-gap]
            src.append(codes[:-gap][ok])
            dst.append(codes[gap:][ok])
            weight.append(np.full(int(ok.sum()), 1.0 / gap))
            when.append(ts[gap:][ok])
        order = np.argsort(np.concatenate(when), kind="stable")
        self._src = np.concatenate(src)[order]
        self._dst = np.concatenate(dst)[order]
        self._w = np.concatenate(weight)[order]
        self._when = np.concatenate(when)[order]
        self._tables: dict[int, sp.csr_matrix] = {}
        total = len(self._when)
        if total < self.min_pairs:
            self._points = np.asarray([total], dtype=np.int64)
        else:
            steps = math.floor(math.log(total / self.min_pairs) / math.log1p(self.growth))
            grid = np.ceil(self.min_pairs * (1 + self.growth) ** np.arange(steps + 2))
            self._points = np.unique(np.append(grid[grid <= total], total).astype(np.int64))
        return self

    def forget_user(self, user_id: str) -> None:
        """Score the user as one with no contacts from now on, in place (a model being served):
        their recent items are no longer read. The dated pair counts, learned over everyone,
        keep their pairs until the model is fitted again (ranking.registry.forget_user)."""
        self._rows.pop(user_id, None)

    def _table(self, pairs: int) -> sp.csr_matrix:
        if pairs not in self._tables:
            n = len(self.items)
            table = sp.csr_matrix(
                (self._w[:pairs], (self._src[:pairs], self._dst[:pairs])), shape=(n, n)
            )
            table.sum_duplicates()
            totals = np.asarray(table.sum(axis=1)).ravel()
            self._tables[pairs] = sp.csr_matrix(sp.diags(1.0 / np.maximum(totals, 1e-12)) @ table)
        return self._tables[pairs]

    def score_batch(
        self,
        user_ids: Sequence[str],
        cutoffs: pd.DatetimeIndex | Sequence[pd.Timestamp],
        item_ids: Sequence[str],
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """Users x items scores as of each cutoff; NaN for unknown items, 0 for no evidence.
        With `rows`, only the items at those positions of `item_ids`."""
        micros = to_micros(cutoffs)
        columns = catalog_columns(self, self._item_index, item_ids)
        if rows is not None:
            columns = columns[rows]
        out = np.full((len(user_ids), len(columns)), np.nan)
        usable = np.searchsorted(self._when, micros, side="left")
        chosen = np.searchsorted(self._points, usable, side="right") - 1
        known = columns >= 0
        asked = columns[known]
        few = 4 * len(asked) < len(self.items)  # scored alone; many, by scoring the catalog
        for row, user in enumerate(user_ids):
            start, end = self._rows.get(str(user), (0, 0))
            end = start + int(np.searchsorted(self._ts[start:end], micros[row], side="left"))
            recent = self._codes[max(start, end - self.recent) : end]
            if few:
                out[row, known] = self._score_recent(recent, int(chosen[row]), asked)
            else:
                out[row, known] = self._score_recent(recent, int(chosen[row]))[asked]
        return out

    def score_contacts(
        self,
        items: np.ndarray,
        ts: np.ndarray,
        weights: np.ndarray,
        cutoff: pd.Timestamp,
        item_ids: Sequence[str],
    ) -> np.ndarray:
        """`score_batch` of one user whose contacts (item ids, epoch microseconds, oldest
        first; weights unused) are these, not those fitted (ranking.follow)."""
        micros = to_micros([cutoff])
        codes = self._item_index.get_indexer([str(item) for item in items])
        codes = codes[(np.asarray(ts) < micros[0]) & (codes >= 0)]  # items fitted after: unknown
        usable = np.searchsorted(self._when, micros, side="left")
        chosen = int(np.searchsorted(self._points, usable, side="right")[0]) - 1
        scores = self._score_recent(codes[-self.recent :], chosen)
        columns = catalog_columns(self, self._item_index, item_ids)
        out = np.full(len(columns), np.nan)
        known = columns >= 0
        out[known] = scores[columns[known]]
        return out

    def _score_recent(
        self, recent: np.ndarray, chosen: int, columns: np.ndarray | None = None
    ) -> np.ndarray:
        """Scores of the `recent` item codes (oldest first) over table `chosen`, of the catalog
        or of the items at `columns` (a request's given candidates, without the catalog's)."""
        if not len(recent) or chosen < 0:
            return np.zeros(len(self.items) if columns is None else len(columns))
        weights = 1.0 / np.arange(len(recent), 0, -1)  # the latest weighs 1
        table = self._table(int(self._points[chosen]))
        return rows_product(weights, recent, table, columns)
