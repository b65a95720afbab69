"""Interactions read from the offline store, and each user's contacts before a given time.

The ranker's own user x item features (recency of similar contacts, taste vectors) are computed
from the log strictly before the moment they describe, the same rule the feature views follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from core.settings import Settings
from ranking.baselines import to_micros
from ranking.split import INTERACTION_COLUMNS, item_contacts


def load_interactions(settings: Settings) -> pd.DataFrame:
    """Every stored item contact (enriched: weight, category) with UTC `ts`, sorted by time."""
    from pipelines import catalog_store, duck, enrich, event_store

    con = duck.connect(settings)
    try:
        enriched = enrich.enrich(
            con,
            event_store.scan(con, settings),
            catalog_store.load(con, settings),
            session_gap=timedelta(minutes=settings.session_gap_minutes),
        )
        columns = ", ".join(INTERACTION_COLUMNS)
        frame = enriched.project(columns).to_df()
    finally:
        con.close()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).dt.as_unit("us")
    out = item_contacts(frame)
    return out.sort_values(["ts", "user_id", "item_id"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Contacts:
    """One user's contacts before some time, oldest first."""

    items: np.ndarray  # item ids (str)
    ts: np.ndarray  # int64 microseconds
    weights: np.ndarray


class UserHistory:
    """Per-user contact arrays, sliced at any time without looking past it."""

    def __init__(self, interactions: pd.DataFrame) -> None:
        log = interactions.sort_values(["user_id", "ts"], kind="stable")
        self._users = log["user_id"].astype(str).to_numpy()
        self._items = log["item_id"].astype(str).to_numpy()
        self._ts = to_micros(log["ts"]) if len(log) else np.empty(0, dtype=np.int64)
        self._weights = log["weight"].to_numpy(dtype=float)
        bounds = np.flatnonzero(np.r_[True, self._users[1:] != self._users[:-1]])
        ends = np.r_[bounds[1:], len(self._users)]
        self._rows = (
            {str(self._users[s]): (int(s), int(e)) for s, e in zip(bounds, ends, strict=True)}
            if len(self._users)
            else {}
        )

    @property
    def users(self) -> list[str]:
        """Users with at least one contact."""
        return list(self._rows)

    def knows(self, user_id: str) -> bool:
        """True when the history holds contacts of the user."""
        return user_id in self._rows

    def forget_user(self, user_id: str) -> None:
        """Hold the user as one with no contacts from now on, in place: their rows are no
        longer reachable (the arrays keep them until the history is built again)."""
        self._rows.pop(user_id, None)

    def before(self, user_id: str, at_micros: int) -> Contacts:
        """The user's contacts strictly before `at_micros`."""
        start, end = self._rows.get(user_id, (0, 0))
        end = start + int(np.searchsorted(self._ts[start:end], at_micros, side="left"))
        return Contacts(self._items[start:end], self._ts[start:end], self._weights[start:end])
