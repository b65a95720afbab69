"""The model matrix: one function turns candidates and their feature-service rows into features.

`assemble` is the only place features are computed, for training and for serving alike, so the
two cannot drift. Its inputs differ only in where the feature-service rows come from: Feast's
point-in-time join for training (ranking.training_data), the online store for serving
(ranking.online_features); both give the `ranking` service's values for (user, item, time).

Besides the service's user, item and category-match features it computes, from the user's
contacts strictly before the row's time:
- the candidate sources' scores and ranks, and how many sources proposed the item;
- similarity of the item to the user's recent items, taste, disliked items and memories;
- recency of the user's contact with similar items and with the item's category;
- request features: hour of day and day of week.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engram.errors import InvalidInputError
from ranking.baselines import to_micros
from ranking.candidates import taste_vector
from ranking.history import UserHistory
from ranking.item_vectors import ItemVectors

SIMILAR = 0.7  # cosine above which two items count as similar for recency
RECENT_CONTACTS = 100  # contacts searched for similar items
_DAY_US = 86_400 * 1_000_000

CONTEXT_FEATURES: tuple[str, ...] = (
    "sim_recent_max", "sim_recent_mean", "sim_taste", "sim_dislike",
    "sim_pref_memory", "sim_dislike_memory",
    "days_since_similar", "days_since_category", "category_share_recent",
    "user_contacts", "days_since_last_contact", "hour_of_day", "day_of_week", "n_sources",
)  # fmt: skip


@dataclass
class UserMemories:
    """Vectors of a user's preference and dislike memories (rows), as of the request."""

    preferences: np.ndarray | None = None
    dislikes: np.ndarray | None = None


@dataclass
class Context:
    """What `assemble` reads besides the rows: vectors, contacts, categories, memories."""

    vectors: ItemVectors
    history: UserHistory
    categories: pd.Series  # item_id -> category
    memories: Mapping[str, UserMemories] = field(default_factory=dict)


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
    out = pd.DataFrame(index=candidates.index)
    for name in sources:
        out[f"score_{name}"] = candidates[f"score_{name}"].to_numpy(dtype=float)
        out[f"rank_{name}"] = candidates[f"rank_{name}"].to_numpy(dtype=float)
    extra = _context_features(candidates, context)
    for name in CONTEXT_FEATURES:
        out[name] = extra[name]
    for name in service_features:
        values = pd.to_numeric(service[name], errors="coerce") if name in service else np.nan
        out[name] = np.asarray(values, dtype=float)
    return out[feature_names(sources, service_features)]


def _context_features(candidates: pd.DataFrame, context: Context) -> dict[str, np.ndarray]:
    n = len(candidates)
    out = {name: np.full(n, np.nan) for name in CONTEXT_FEATURES}
    if n == 0:
        return out
    at = to_micros(candidates["at"])
    out["n_sources"] = candidates["n_sources"].to_numpy(dtype=float)
    moments = pd.DatetimeIndex(candidates["at"]).tz_convert("UTC")
    out["hour_of_day"] = moments.hour.to_numpy(dtype=float)
    out["day_of_week"] = moments.dayofweek.to_numpy(dtype=float)
    users = candidates["user_id"].astype(str).to_numpy()
    item_ids = candidates["item_id"].astype(str).to_numpy()
    item_category = context.categories.reindex(item_ids).to_numpy()
    # Rows of one (user, time) share the user's contacts: grouped, the work is per group.
    codes, _ = pd.factorize(pd.Series(users) + "@" + pd.Series(at).astype(str))
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1], True])
    for left, right in itertools.pairwise(bounds):
        rows = order[left:right]
        user, moment = users[rows[0]], int(at[rows[0]])
        contacts = context.history.before(user, moment)
        out["user_contacts"][rows] = len(contacts.items)
        item_vectors = context.vectors.rows(list(item_ids[rows]))
        memories = context.memories.get(user, UserMemories())
        _memory_sims(out, rows, item_vectors, memories)
        if not len(contacts.items):
            continue
        out["days_since_last_contact"][rows] = (moment - contacts.ts[-1]) / _DAY_US
        recent_items = contacts.items[-RECENT_CONTACTS:]
        recent_ts = contacts.ts[-RECENT_CONTACTS:]
        sims = item_vectors @ context.vectors.rows(list(recent_items)).T
        last20 = sims[:, -20:]
        out["sim_recent_max"][rows] = last20.max(axis=1)
        out["sim_recent_mean"][rows] = last20.mean(axis=1)
        taste = taste_vector(
            context.vectors, contacts.items, contacts.weights, memories.preferences
        )
        if taste is not None:
            out["sim_taste"][rows] = item_vectors @ taste
        disliked = contacts.items[contacts.weights < 0][-RECENT_CONTACTS:]
        if len(disliked):
            out["sim_dislike"][rows] = (item_vectors @ context.vectors.rows(list(disliked)).T).max(
                axis=1
            )
        similar_ts = np.where(sims >= SIMILAR, recent_ts[None, :], np.iinfo(np.int64).min)
        latest = similar_ts.max(axis=1)
        out["days_since_similar"][rows] = np.where(
            latest > np.iinfo(np.int64).min, (moment - latest) / _DAY_US, np.nan
        )
        contact_category = context.categories.reindex(recent_items).to_numpy()
        same = (contact_category[None, :] == item_category[rows][:, None]) & pd.notna(
            item_category[rows]
        )[:, None]
        out["category_share_recent"][rows] = same[:, -20:].mean(axis=1)
        latest_same = np.where(same, recent_ts[None, :], np.iinfo(np.int64).min).max(axis=1)
        out["days_since_category"][rows] = np.where(
            latest_same > np.iinfo(np.int64).min, (moment - latest_same) / _DAY_US, np.nan
        )
    return out


def _memory_sims(
    out: dict[str, np.ndarray], rows: np.ndarray, items: np.ndarray, memories: UserMemories
) -> None:
    for name, vectors in (("sim_pref_memory", memories.preferences),
                          ("sim_dislike_memory", memories.dislikes)):  # fmt: skip
        if vectors is not None and len(vectors):
            out[name][rows] = (items @ np.asarray(vectors, dtype=np.float32).T).max(axis=1)
