"""Memories from behaviour: lasting category affinities and bursts of searches.

Pure functions over feature values and signals; no clients.

A category becomes a preference memory ("Likes outdoor") when it is
- strong: its share of the user's positive weighted affinity is at least `min_share` (0.35:
  with 2-4 liked categories, a real favourite holds a third or more; browsing noise spread over
  ~20 categories rarely reaches it), and
- lasting: the share rests on at least `min_events` signals spread over at least `min_span`
  (14 days), so one evening of browsing is not a taste. When the runner also passes the shares
  of a snapshot `min_span` older, the category must have been strong then too;
- current: the user was active within `max_idle` (90 days) of `as_of`.

A search burst is at least `min_searches` searches by one user within `window` (3 in 2 hours by
default) that share what they look for: a word or two in at least half of them ("waterproof
tent", "tent footprint", "tent" -> "Wants to buy a tent"), or, when the runner passes a
`topic_of` lookup (query -> catalog category), one topic. Unrelated searches close together are
no intent. The intent expires `burst_ttl` (10 days) after the last search: shopping is brief.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from memory.extract import TextSignal, is_user_turn
from memory.patterns import article, word_set
from memory.records import Memory, memory_id_for


@dataclass(frozen=True)
class AffinityThresholds:
    """When a category share counts as a strong, lasting taste."""

    min_share: float = 0.35
    min_events: int = 20
    min_span: timedelta = timedelta(days=14)
    max_idle: timedelta = timedelta(days=90)


def affinity_memories(
    user_id: str,
    top_categories: Sequence[str],
    top_category_shares: Sequence[float],
    *,
    events_all: int,
    first_event_ts: datetime,
    last_event_ts: datetime,
    as_of: datetime,
    previous_shares: Mapping[str, float] | None = None,
    thresholds: AffinityThresholds | None = None,
) -> list[Memory]:
    """Preference memories for the user's strong and lasting categories, from a feature row."""
    limits = thresholds or AffinityThresholds()
    lasting = (
        events_all >= limits.min_events
        and last_event_ts - first_event_ts >= limits.min_span
        and as_of - last_event_ts <= limits.max_idle
    )
    if not lasting:
        return []
    memories: list[Memory] = []
    for category, share in zip(top_categories, top_category_shares, strict=False):
        if not category or share < limits.min_share:
            continue
        if previous_shares is not None and previous_shares.get(category, 0.0) < limits.min_share:
            continue
        text = f"Likes {category}"
        memories.append(
            Memory(
                # The id ignores as_of, so a daily run updates the same memory instead of adding.
                memory_id=memory_id_for(user_id, "preference", text, f"affinity:{category}"),
                user_id=user_id,
                kind="preference",
                text=text,
                confidence=round(min(0.95, 0.5 + float(share) / 2), 3),
                valid_from=first_event_ts,
                created_at=as_of,
                updated_at=as_of,
                source_event_ids=(),
            )
        )
    return memories


_WORD = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
# Words that shape a query without naming what is wanted.
_STOP = word_set(
    """
    a an the for of to in on with and or best cheap cheapest buy new near me my under vs how
    what which where review reviews price prices deal deals sale size sizes guide top good
    """
)


def _key(word: str) -> str:
    """Singular-ish form, so "toys" and "toy" count together."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _shared_phrase(queries: Sequence[str]) -> str | None:
    """The one- or two-word phrase most queries share (at least half of them, and two), the
    longer one on a tie: "tent" for "waterproof tent", "tent footprint", "tent"."""
    counts: Counter[tuple[str, ...]] = Counter()
    surfaces: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    for query in queries:
        words = [word for word in _WORD.findall(query) if word not in _STOP]
        grams = {(word,) for word in words} | set(itertools.pairwise(words))
        keyed: set[tuple[str, ...]] = set()
        for gram in grams:
            key = tuple(_key(word) for word in gram)
            surfaces[key][" ".join(gram)] += 1
            keyed.add(key)
        counts.update(keyed)
    needed = max(2, -(-len(queries) // 2))
    shared = [(count, len(key), key) for key, count in counts.items() if count >= needed]
    if not shared:
        return None
    _, _, best = max(shared)
    return surfaces[best].most_common(1)[0][0]


def _burst_text(queries: Sequence[str], topic: str | None) -> str | None:
    """ "Wants to buy a tent" when the queries share what they look for or repeat one short query;
    "Is shopping for outdoor: ..." when only their topic is shared; None when nothing is shared."""
    distinct: list[str] = []
    for query in queries:
        clean = " ".join(query.lower().split())
        if clean and clean not in distinct:
            distinct.append(clean)
    if len(distinct) > 1:
        phrase = _shared_phrase(distinct)
    else:  # one query again and again names what the user looks for, when it is short
        content = [word for word in _WORD.findall(distinct[0]) if word not in _STOP]
        phrase = distinct[0] if 1 <= len(content) <= 3 else None
    if phrase:
        plural = phrase.endswith("s") and not phrase.endswith("ss")
        return f"Wants to buy {phrase}" if plural else f"Wants to buy {article(phrase)} {phrase}"
    return f"Is shopping for {topic}: {', '.join(distinct[:4])}" if topic else None


def _windows(
    searches: Sequence[TextSignal], window: timedelta, min_searches: int
) -> list[list[TextSignal]]:
    """Maximal greedy runs of at least `min_searches` within `window` of the run's first one."""
    bursts: list[list[TextSignal]] = []
    start = 0
    while start < len(searches):
        end = start
        while end + 1 < len(searches) and searches[end + 1].ts - searches[start].ts <= window:
            end += 1
        if end - start + 1 >= min_searches:
            bursts.append(list(searches[start : end + 1]))
            start = end + 1
        else:
            start += 1
    return bursts


def search_burst_intents(
    searches: Sequence[TextSignal],
    window: timedelta = timedelta(hours=2),
    min_searches: int = 3,
    *,
    topic_of: Callable[[str], str | None] | None = None,
    burst_ttl: timedelta = timedelta(days=10),
) -> list[Memory]:
    """Intent memories for bursts of a user's searches; `topic_of` (e.g. a catalog lookup from
    query to category) narrows a burst to searches of one topic and names it."""
    groups: dict[tuple[str, str | None], list[TextSignal]] = defaultdict(list)
    for signal in searches:
        if signal.type != "search" or not is_user_turn(signal) or not signal.text.strip():
            continue
        topic = topic_of(signal.text) if topic_of is not None else None
        if topic_of is not None and topic is None:
            continue
        groups[(signal.user_id, topic)].append(signal)
    memories: list[Memory] = []
    for (user_id, topic), signals in groups.items():
        ordered = sorted(signals, key=lambda signal: (signal.ts, signal.event_id))
        for burst in _windows(ordered, window, min_searches):
            text = _burst_text([signal.text for signal in burst], topic)
            if text is None:
                continue
            first, last = burst[0], burst[-1]
            memories.append(
                Memory(
                    memory_id=memory_id_for(user_id, "intent", text, first.event_id),
                    user_id=user_id,
                    kind="intent",
                    text=text,
                    confidence=round(min(0.85, 0.6 + 0.05 * (len(burst) - min_searches)), 3),
                    valid_from=first.ts,
                    created_at=last.ts,
                    updated_at=last.ts,
                    source_event_ids=tuple(signal.event_id for signal in burst),
                    expires_at=last.ts + burst_ttl,
                )
            )
    return sorted(memories, key=lambda memory: (memory.user_id, memory.valid_from))
