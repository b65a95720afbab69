"""Users with planted tastes, and their browsing, vectorized so ten million events take seconds.

Each user likes 2-4 categories (weights summing to 1: the planted `tastes`) and dislikes 1-2.
Browse events pick a category from the user's behaviour mix (mostly tastes, some exploration,
rarely a disliked category), then an item of that category by popularity. Ratings are high in
liked categories, low in disliked ones. Events come in sessions: seconds to minutes apart inside
one, at least an hour (usually days) between sessions, all inside the configured window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.generate.catalog import Catalog
from pipelines.generate.events import TYPE_CODE, Behaviour
from pipelines.generate.lexicon import CATEGORIES
from pipelines.generate.texts import Vocabulary

TASTE_SHARE, EXPLORE_SHARE, DISLIKE_SHARE = 0.85, 0.14, 0.01
# Offsets users write their local time with (minutes east of UTC).
UTC_OFFSETS_MIN = (-480, -300, -180, 0, 60, 120, 330, 540, 600)
_BROWSE_TYPES = ("view", "click", "add_to_cart", "purchase", "rate")
_BROWSE_SHARES = (0.58, 0.22, 0.07, 0.04, 0.09)
_FOLLOWS_PREVIOUS = ("click", "add_to_cart", "purchase", "rate")  # often the item just seen
_MEAN_SESSION_EVENTS = 8
_MIN_SESSION_GAP_MS = 3_600_000
_NO_CONTEXT_SHARE = 0.03
_RATING_MEANS = {"liked": 4.2, "other": 3.0, "disliked": 1.4}


@dataclass(frozen=True)
class Users:
    """Planted tastes, one row per user."""

    ids: list[str]
    liked: np.ndarray  # bool (users, categories)
    disliked: np.ndarray  # bool (users, categories)
    tastes: np.ndarray  # float (users, categories): weights over liked categories, sum 1
    mix: np.ndarray  # float (users, categories): what browsing draws categories from
    offset_min: np.ndarray  # int16: the UTC offset the user's clock writes


def _user_id(index: int) -> str:
    # A few id shapes, all inside the contract's id pattern.
    if index % 10 == 3:
        return f"usr:{index:06d}"
    if index % 10 == 7:
        return f"u_{index:06d}.x"
    return f"u{index:06d}"


def build_users(rng: np.random.Generator, n: int) -> Users:
    """`n` users with sparse tastes and dislikes."""
    n_categories = len(CATEGORIES)
    prior = np.array([category.weight for category in CATEGORIES])
    keys = np.log(prior / prior.sum()) + rng.gumbel(size=(n, n_categories))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    n_liked = rng.integers(2, 5, size=n)[:, None]
    n_disliked = rng.integers(1, 3, size=n)[:, None]
    liked = rank < n_liked
    disliked = (rank >= n_liked) & (rank < n_liked + n_disliked)
    weights = rng.gamma(2.0, size=(n, n_categories)) * liked
    tastes = weights / weights.sum(axis=1, keepdims=True)
    other = ~liked & ~disliked
    mix = (
        TASTE_SHARE * tastes
        + EXPLORE_SHARE * other / other.sum(axis=1, keepdims=True)
        + DISLIKE_SHARE * disliked / disliked.sum(axis=1, keepdims=True)
    )
    offsets = np.array(UTC_OFFSETS_MIN, np.int16)[rng.integers(0, len(UTC_OFFSETS_MIN), n)]
    return Users([_user_id(i) for i in range(n)], liked, disliked, tastes, mix, offsets)


def _segment_cumsum(
    values: np.ndarray, segment_start: np.ndarray, segment: np.ndarray
) -> np.ndarray:
    """Cumulative sum restarting at each segment (rows sorted by segment)."""
    total = np.cumsum(values)
    before = total[segment_start] - values[segment_start]
    return total - before[segment]


def _times(
    rng: np.random.Generator, user: np.ndarray, n_users: int, window: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Event times (ms) and session numbers for events sorted by user."""
    n = len(user)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    first = np.ones(n, bool)
    first[1:] = user[1:] != user[:-1]
    new = first | (rng.random(n) < 1 / _MEAN_SESSION_EVENTS)
    session = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    gaps = np.exp(rng.normal(np.log(40_000), 1.0, n)).clip(2_000, 1_200_000)
    gaps[new] = 0.0
    offset = _segment_cumsum(gaps, starts, session)
    ends = np.append(starts[1:], n) - 1
    duration = offset[ends]
    owner = user[starts]
    per_user = np.bincount(owner, minlength=n_users).astype(np.float64)
    span = float(window[1] - window[0])
    busy = np.bincount(owner, weights=duration, minlength=n_users)
    free = span - busy - per_user * _MIN_SESSION_GAP_MS
    # Only a user with thousands of sessions runs out of room: their gaps shrink below an hour.
    min_gap = np.where(
        free < 0, np.clip(span - busy, 0, None) / np.maximum(per_user, 1), _MIN_SESSION_GAP_MS
    )
    free = np.clip(free, 0, None)
    spacing = rng.exponential(size=len(starts))
    tail = rng.exponential(size=n_users)  # room left after the user's last session
    spacing_total = np.bincount(owner, weights=spacing, minlength=n_users) + tail
    gap_before = spacing / spacing_total[owner] * free[owner] + min_gap[owner]
    owner_first = np.flatnonzero(np.append(True, owner[1:] != owner[:-1]))
    owner_segment = np.cumsum(np.append(True, owner[1:] != owner[:-1])) - 1
    session_start = (
        window[0] + _segment_cumsum(gap_before + duration, owner_first, owner_segment) - duration
    )
    ts = np.floor(session_start[session] + offset).astype(np.int64)
    return np.minimum(ts, window[1] - 1), session.astype(np.int32)


def _draw_categories(rng: np.random.Generator, mix: np.ndarray, user: np.ndarray) -> np.ndarray:
    """A category per event from its user's mix: one search over every user's cumulative mix,
    each row shifted by the user's number so all rows line up in one increasing array."""
    n_users, n_categories = mix.shape
    cumulative = np.cumsum(mix, axis=1)
    cumulative /= cumulative[:, -1:]
    # Every category has some mix, so the shifted rows increase strictly.
    shifted = (cumulative + np.arange(n_users)[:, None]).ravel()
    found = np.searchsorted(shifted, user + rng.random(len(user)), side="right")
    return np.minimum(found - user.astype(np.int64) * n_categories, n_categories - 1).astype(
        np.int8
    )


def browse(
    rng: np.random.Generator,
    users: Users,
    catalog: Catalog,
    vocabulary: Vocabulary,
    budget: int,
    window: tuple[int, int],
    *,
    search_share: float,
    tag_rate: float,
) -> Behaviour:
    """`budget` browse events spread over users by a skewed activity level."""
    n_users = len(users.ids)
    activity = rng.lognormal(0.0, 0.6, n_users)
    counts = rng.multinomial(budget, activity / activity.sum())
    user = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    ts, session = _times(rng, user, n_users, window)
    n = len(user)
    codes = np.array([TYPE_CODE[name] for name in _BROWSE_TYPES], np.int8)
    kind = codes[rng.choice(len(codes), size=n, p=_BROWSE_SHARES)]
    category = _draw_categories(rng, users.mix, user)
    item = np.empty(n, np.int32)
    draws = rng.random(n)
    for code, members in enumerate(catalog.by_category):
        here = np.flatnonzero(category == code)
        cumulative = catalog.cumulative[code]
        picked = np.searchsorted(cumulative, draws[here] * cumulative[-1])
        item[here] = members[np.minimum(picked, len(members) - 1)]
    # Clicks, carts, purchases and ratings mostly follow the item seen just before.
    same_session = np.append(False, session[1:] == session[:-1])
    follows = np.isin(kind, [TYPE_CODE[name] for name in _FOLLOWS_PREVIOUS])
    for _ in range(2):
        chained = np.flatnonzero(follows & same_session & (rng.random(n) < 0.6))
        item[chained] = item[chained - 1]
        category[chained] = category[chained - 1]
    text = np.full(n, -1, np.int32)
    searching = rng.random(n) < search_share
    kind[searching] = TYPE_CODE["search"]
    item[searching] = -1
    text[searching] = vocabulary.search_start[category[searching]] + (
        rng.random(int(searching.sum())) * vocabulary.search_count[category[searching]]
    ).astype(np.int32)
    tagging = np.isin(kind, [TYPE_CODE["view"], TYPE_CODE["click"]]) & (rng.random(n) < tag_rate)
    kind[tagging] = TYPE_CODE["tag"]
    text[tagging] = vocabulary.tag_start[category[tagging]] + (
        rng.random(int(tagging.sum())) * vocabulary.tag_count[category[tagging]]
    ).astype(np.int32)
    rating = np.full(n, -1, np.int8)
    rated = np.flatnonzero(kind == TYPE_CODE["rate"])
    rated_user, rated_category = user[rated], category[rated]
    mean = np.full(len(rated), _RATING_MEANS["other"])
    mean[users.liked[rated_user, rated_category]] = _RATING_MEANS["liked"]
    mean[users.disliked[rated_user, rated_category]] = _RATING_MEANS["disliked"]
    value = mean + catalog.quality[item[rated]] + rng.normal(0.0, 0.6, len(rated))
    rating[rated] = np.clip(np.rint(value * 2), 1, 10).astype(np.int8)
    device = rng.integers(0, 3, int(session.max(initial=-1)) + 1).astype(np.int8)[session]
    device[rng.random(n) < _NO_CONTEXT_SHARE] = -1
    return Behaviour(user, ts, kind, item, rating, text, session, device)


def drop_views(rng: np.random.Generator, behaviour: Behaviour, count: int) -> Behaviour:
    """The same events minus `count` random views (room for events added later)."""
    views = np.flatnonzero(behaviour.type == TYPE_CODE["view"])
    keep = np.ones(len(behaviour.ts), bool)
    keep[rng.choice(views, size=min(count, len(views)), replace=False)] = False
    return Behaviour(
        **{name: getattr(behaviour, name)[keep] for name in Behaviour.__dataclass_fields__}
    )
