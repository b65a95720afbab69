"""Per-user temporal split: each user's last interactions are held out, as of that user's cutoff.

A single global cutoff leaves few users with history on both sides when users are active in short
bursts (MovieLens: under 30 of 610), so every user with enough interactions gets a cutoff of their
own: the timestamp of their first held-out interaction.

What "as of the cutoff" means here:
- `train` holds, for every evaluated user, everything strictly before that user's cutoff, and all
  interactions of users too short to evaluate (they are signal as of their own time).
- Interactions at exactly the cutoff timestamp all go to the test side, so a burst logged in the
  same second is never split between history and answer.
- `history` is the whole log, for point-in-time models: they use only events strictly before
  each user's cutoff, held out or not (the popularity baselines, and item-kNN and ALS retrained
  along the log, see `baselines`). Models trained once are trained on `train`: they never see a
  held-out interaction, but do see other users' interactions after a given user's cutoff, the
  usual per-user-split compromise, which flatters them (see `SplitStats.relevant_new_items`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.contract import ITEM_TYPES
from core.errors import InvalidInputError

INTERACTION_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "ts", "type", "value", "weight")
DEFAULT_POSITIVE_TYPES: frozenset[str] = frozenset({"click", "add_to_cart", "purchase"})
DEFAULT_MIN_RATING = 4.0


@dataclass(frozen=True)
class PositiveRule:
    """Which held-out interactions count as relevant: strong implicit types or a high rating."""

    types: frozenset[str] = DEFAULT_POSITIVE_TYPES
    min_rating: float = DEFAULT_MIN_RATING

    def mask(self, interactions: pd.DataFrame) -> np.ndarray:
        """True where the interaction is a positive."""
        kind = interactions["type"].to_numpy()
        value = interactions["value"].to_numpy(dtype=float, na_value=np.nan)
        rated_high = (kind == "rate") & (value >= self.min_rating)
        return np.asarray(rated_high | np.isin(kind, list(self.types)), dtype=bool)


@dataclass(frozen=True)
class SplitStats:
    """Counts describing a split, for reports."""

    users: int  # users in the log
    eligible_users: int  # users with at least `min_interactions` interactions
    evaluated_users: int  # eligible users with at least one relevant held-out item
    dropped_no_positive: int  # eligible users whose held-out part has no positive
    evaluated_without_history: int  # evaluated users with nothing before their cutoff
    train_interactions: int
    heldout_interactions: int  # held-out interactions of all eligible users
    relevant_pairs: int  # (user, item) pairs in `relevant`
    # Relevant pairs whose item nobody had touched before the user's cutoff: a point-in-time
    # model has no signal to rank them with (only content or catalog data could).
    relevant_new_items: int


@dataclass(frozen=True)
class Split:
    """A per-user temporal split; `cutoffs`, `relevant` and `seen` cover the evaluated users."""

    history: pd.DataFrame  # the whole log, sorted by ts
    train: pd.DataFrame
    test: pd.DataFrame  # held-out interactions of all eligible users
    cutoffs: pd.Series  # user_id -> cutoff timestamp (UTC), sorted by user_id
    relevant: dict[str, frozenset[str]]
    seen: dict[str, frozenset[str]] = field(repr=False)  # items each user touched before cutoff
    stats: SplitStats

    @property
    def users(self) -> list[str]:
        """The evaluated users, sorted."""
        return list(self.cutoffs.index)


def item_contacts(events: pd.DataFrame) -> pd.DataFrame:
    """Enriched events reduced to item contacts with the interaction columns."""
    missing = [name for name in INTERACTION_COLUMNS if name not in events.columns]
    if missing:
        raise InvalidInputError("interactions", f"missing columns {missing}")
    contact = events["type"].isin(list(ITEM_TYPES)) & events["item_id"].notna()
    return events.loc[contact, list(INTERACTION_COLUMNS)].reset_index(drop=True)


def temporal_split(
    interactions: pd.DataFrame,
    holdout_fraction: float = 0.2,
    min_interactions: int = 5,
    positive: PositiveRule | None = None,
) -> Split:
    """Hold out the last `holdout_fraction` of each user's interactions (ceil, at least one)."""
    if not 0.0 < holdout_fraction < 1.0:
        raise InvalidInputError("holdout_fraction", f"must be in (0, 1), got {holdout_fraction}")
    if min_interactions < 2:
        raise InvalidInputError("min_interactions", f"must be at least 2, got {min_interactions}")
    rule = positive or PositiveRule()
    log = _sorted_log(item_contacts(interactions))

    by_user = log.groupby("user_id", sort=False)["ts"]
    size = by_user.transform("size").to_numpy()
    position = by_user.cumcount().to_numpy()
    # Rounded before ceil so that 0.2 * 5 (1.0000000000000002) holds out one, not two.
    n_test = np.maximum(np.ceil(np.round(size * holdout_fraction, 9)), 1).astype(np.int64)
    eligible = size >= min_interactions
    first_heldout = eligible & (position == size - n_test)
    cutoff_of = pd.Series(log["ts"].array[first_heldout], index=log["user_id"][first_heldout])
    cutoff = log["user_id"].map(cutoff_of)
    is_test = (eligible & (log["ts"] >= cutoff)).to_numpy()

    train = log.loc[~is_test].reset_index(drop=True)
    test = log.loc[is_test].reset_index(drop=True)
    seen_all = _items_by_user(train)
    relevant = _relevant(test, rule, seen_all)
    cutoffs = cutoff_of.loc[sorted(relevant)].rename("cutoff")
    cutoffs.index.name = "user_id"
    seen = {user: seen_all.get(user, frozenset()) for user in cutoffs.index}

    eligible_users = int(first_heldout.sum())
    stats = SplitStats(
        users=int(log["user_id"].nunique()),
        eligible_users=eligible_users,
        evaluated_users=len(relevant),
        dropped_no_positive=eligible_users - len(relevant),
        evaluated_without_history=sum(1 for user in relevant if not seen[user]),
        train_interactions=len(train),
        heldout_interactions=len(test),
        relevant_pairs=sum(len(items) for items in relevant.values()),
        relevant_new_items=_new_items(log, relevant, cutoffs),
    )
    history = log.sort_values("ts", kind="stable").reset_index(drop=True)
    return Split(history, train, test, cutoffs, relevant, seen, stats)


def seen_before(
    interactions: pd.DataFrame, user_ids: Iterable[str], cutoffs: Iterable[pd.Timestamp]
) -> dict[str, frozenset[str]]:
    """Items each user interacted with strictly before that user's cutoff: excluded from recs."""
    wanted = pd.Series(pd.DatetimeIndex(list(cutoffs)), index=pd.Index(list(user_ids)))
    if not wanted.index.is_unique:
        raise InvalidInputError("user_ids", "each user may have one cutoff only")
    rows = interactions[interactions["user_id"].isin(wanted.index)]
    rows = rows[rows["ts"] < rows["user_id"].map(wanted)]
    found = _items_by_user(rows)
    return {user: found.get(user, frozenset()) for user in wanted.index}


def _sorted_log(log: pd.DataFrame) -> pd.DataFrame:
    """The log with UTC timestamps, sorted by user, time, then item and type for determinism."""
    ts = log["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise InvalidInputError("ts", f"must be a timezone-aware datetime column, got {ts.dtype}")
    log = log.assign(
        user_id=log["user_id"].astype(str),
        item_id=log["item_id"].astype(str),
        ts=ts.dt.tz_convert("UTC"),
    )
    return log.sort_values(["user_id", "ts", "item_id", "type"], kind="stable").reset_index(
        drop=True
    )


def _items_by_user(log: pd.DataFrame) -> dict[str, frozenset[str]]:
    grouped = log.groupby("user_id", sort=False)["item_id"].agg(frozenset)
    return dict(zip(grouped.index, grouped.to_numpy(), strict=True))


def _new_items(log: pd.DataFrame, relevant: dict[str, frozenset[str]], cutoffs: pd.Series) -> int:
    """Relevant pairs whose item's first contact by anyone is at or after the user's cutoff."""
    first_contact = log.groupby("item_id")["ts"].min()
    pairs = [(user, item) for user, items in relevant.items() for item in items]
    if not pairs:
        return 0
    users, items = zip(*pairs, strict=True)
    cutoff = cutoffs.loc[list(users)].to_numpy()
    return int((first_contact.loc[list(items)].to_numpy() >= cutoff).sum())


def _relevant(
    test: pd.DataFrame, rule: PositiveRule, seen: dict[str, frozenset[str]]
) -> dict[str, frozenset[str]]:
    """Held-out positives not already seen before the cutoff (those are never recommended)."""
    positives = _items_by_user(test.loc[rule.mask(test)])
    relevant = {user: items - seen.get(user, frozenset()) for user, items in positives.items()}
    return {user: items for user, items in relevant.items() if items}
