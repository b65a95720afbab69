"""Text events outside chats: search bursts that reveal an intent, reviews, and the vocabulary of
one-off searches and tags that browse events draw on."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

import pipelines.generate.facts as facts
import pipelines.generate.pii as pii
from pipelines.generate.drafts import Drafts, FactDraft, PiiDraft
from pipelines.generate.events import SESSION_BROWSE, TextRows
from pipelines.generate.facts import Profile
from pipelines.generate.lexicon import CATEGORIES

_DAY_MS = 86_400_000
_POSITIVE = (
    "Love this {noun}! Great quality for the price.",
    "Exactly what I needed, works great.",
    "Really happy with this {noun}, would buy again.",
    "Five stars, does everything it promises.",
)
_NEGATIVE = (
    "Not for me, sending it back.",
    "Disappointed, the {noun} feels cheap.",
    "Two stars. Expected more from this {noun}.",
)
_NEUTRAL = ("It's fine, does the job.", "Decent {noun}, nothing special.", "Okay for the money.")
_REVIEW_LIKES = (
    "I love {v} and this {noun} is perfect for it.",
    "As someone who's really into {v}, I'd recommend this {noun}.",
)
_REVIEW_DISLIKES = ("I can't stand {v}, should have read the description before buying.",)


@dataclass(frozen=True)
class Vocabulary:
    """Search and tag texts of every category, laid out for vectorized lookup."""

    texts: list[str]
    search_start: np.ndarray  # per category: first index of its searches in `texts`
    search_count: np.ndarray
    tag_start: np.ndarray
    tag_count: np.ndarray


def vocabulary() -> Vocabulary:
    """The fixed vocabulary; the same for every dataset."""
    texts: list[str] = []
    starts: dict[str, list[int]] = {"search": [], "tag": []}
    counts: dict[str, list[int]] = {"search": [], "tag": []}
    for kind in ("search", "tag"):
        for category in CATEGORIES:
            words = category.searches if kind == "search" else category.tags
            starts[kind].append(len(texts))
            counts[kind].append(len(words))
            texts.extend(words)
    return Vocabulary(
        texts,
        np.array(starts["search"], np.int32),
        np.array(counts["search"], np.int32),
        np.array(starts["tag"], np.int32),
        np.array(counts["tag"], np.int32),
    )


def add_search_burst(
    rows: TextRows,
    drafts: Drafts,
    rng: random.Random,
    user: int,
    profile: Profile,
    window: tuple[int, int],
) -> None:
    """A few searches within minutes about one thing to buy: a short-lived intent."""
    category = rng.choice(profile.liked)
    fresh = [i for i in category.intents if i.thing not in profile.used] or list(category.intents)
    wanted = rng.choice(fresh)
    profile.used.add(wanted.thing)
    count = rng.randint(3, 6)
    queries = rng.sample(wanted.searches, min(count, len(wanted.searches)))
    queries += rng.choices(wanted.searches, k=count - len(queries))
    now = rng.randrange(window[0] + _DAY_MS, window[1] - _DAY_MS)
    session, device = rows.new_session(SESSION_BROWSE), rng.randrange(3)
    found = []
    for query in queries:
        now += rng.randint(10_000, 120_000)
        found.append(rows.add(user, now, "search", query, session=session, device=device))
    plan = facts.make(rng, "intent", v=wanted.thing)
    expiry = rng.randint(7, 14) * _DAY_MS
    draft = FactDraft(user, plan.kind, plan.text, plan.query, "search", found)
    draft.expires_after_ms = expiry
    drafts.facts.append(draft)


def add_review(
    rows: TextRows,
    drafts: Drafts,
    rng: random.Random,
    user: int,
    profile: Profile,
    item: int,
    noun: str,
    category: int,
    at: int,
) -> None:
    """A review of a purchased item; some state a taste, a few leak an email address."""
    liked = CATEGORIES[category] in profile.liked
    disliked = CATEGORIES[category] in profile.disliked
    spec = CATEGORIES[category]
    plan: facts.FactPlan | None = None
    if liked and rng.random() < 0.25:
        value = rng.choice(spec.likes)
        text = rng.choice(_REVIEW_LIKES).format(v=value, noun=noun)
        plan = facts.make(rng, "likes", v=value, domain=spec.domain)
    elif disliked and rng.random() < 0.25:
        value = rng.choice(spec.likes)
        text = rng.choice(_REVIEW_DISLIKES).format(v=value)
        plan = facts.make(rng, "dislikes", v=value, domain=spec.domain)
    else:
        templates = _POSITIVE if liked else _NEGATIVE if disliked else _NEUTRAL
        text = rng.choice(templates).format(noun=noun)
    email = pii.email_address(rng) if rng.random() < 0.02 else None
    if email is not None:
        text += f" Seller, please contact me at {email} about a replacement."
    row = rows.add(user, at, "review", text, device=rng.randrange(3), item=item)
    if email is not None:
        drafts.pii.append(PiiDraft(user, row, "email", email))
    if plan is not None:
        drafts.facts.append(FactDraft(user, plan.kind, plan.text, plan.query, "review", [row]))
