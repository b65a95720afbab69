"""Score extracted facts against planted truth: precision and recall per memory kind.

The one measure of extraction, whoever extracts (the rules, a model through memory.llm_extract):
bench/memory.py prints it on generated data, tests/bench checks it. An evaluation tool, so it
lives here and not in the runtime package.

A predicted fact matches a planted one of the same user and kind when both name the same slot
and value, or, failing that, when their canonical texts share enough content words (Jaccard over
lower-cased, lightly stemmed words without function words, >= `threshold`). Same slot but a
different value is never a match ("Moved to Seattle" is not "Moved to Denver"). Matching is
one-to-one, best pairs first. Predictions that repeat one fact (the same statement made twice)
count once, so a stored-and-deduplicated view and a raw one score alike.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from memory.patterns import word_set
from memory.records import FACT_KINDS


class FactLike(Protocol):
    """What scoring needs of a fact: a Memory and a planted truth fact both qualify."""

    @property
    def user_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def slot(self) -> str | None: ...
    @property
    def value(self) -> str | None: ...
    @property
    def valid_from(self) -> datetime | None: ...


_WORD = re.compile(r"[a-z0-9]+")
# Function words, and the verbs every fact of a kind starts with ("Likes", "Wants to buy").
_STOP = word_set(
    """
    a an the is are was be has have had to of in at on for with from by and or named called my
    their its likes like dislikes dislike wants want buy get purchase looking shopping find
    plans plan planning trip new
    """
)


def content_words(text: str) -> frozenset[str]:
    """Lower-cased content words with a plural "s" dropped: "Likes hiking boots" -> hiking, boot."""
    words = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOP:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.add(word)
    return frozenset(words)


def similarity(left: FactLike, right: FactLike) -> float:
    """1.0 for the same slot and value, 0.0 for the same slot and another value, else Jaccard."""
    if left.slot and right.slot and left.slot == right.slot:
        same = (left.value or "").casefold() == (right.value or "").casefold()
        return 1.0 if same else 0.0
    a, b = content_words(left.text), content_words(right.text)
    if not a or not b:
        return 1.0 if left.text.casefold() == right.text.casefold() else 0.0
    return len(a & b) / len(a | b)


def _distinct(facts: Iterable[FactLike], threshold: float) -> list[FactLike]:
    kept: list[FactLike] = []
    for fact in facts:
        if not any(similarity(fact, other) >= max(threshold, 0.999) for other in kept):
            kept.append(fact)
    return kept


def _match(
    predicted: Sequence[FactLike], truth: Sequence[FactLike], threshold: float
) -> list[tuple[FactLike, FactLike]]:
    pairs = sorted(
        (
            (similarity(guess, fact), i, j)
            for i, guess in enumerate(predicted)
            for j, fact in enumerate(truth)
        ),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    used_p: set[int] = set()
    used_t: set[int] = set()
    matched: list[tuple[FactLike, FactLike]] = []
    for score, i, j in pairs:
        if score < threshold:
            break
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        matched.append((predicted[i], truth[j]))
    return matched


def score_extraction(
    predicted: Sequence[FactLike],
    truth_facts: Sequence[FactLike],
    *,
    threshold: float = 0.5,
    time_tolerance: timedelta = timedelta(days=3),
) -> dict[str, dict[str, float]]:
    """Per kind (and "all"): precision, recall, tp, fp, fn, and how many matched facts got the
    planted `valid_from` within tolerance (time_ok of time_checked): the planted fact's own
    `valid_from_tolerance_days` when it has one, else `time_tolerance`."""
    by_group: dict[tuple[str, str], tuple[list[FactLike], list[FactLike]]] = defaultdict(
        lambda: ([], [])
    )
    for fact in predicted:
        if fact.kind in FACT_KINDS:
            by_group[(fact.user_id, fact.kind)][0].append(fact)
    for fact in truth_facts:
        if fact.kind in FACT_KINDS:
            by_group[(fact.user_id, fact.kind)][1].append(fact)
    counts: dict[str, dict[str, float]] = {
        kind: dict.fromkeys(("tp", "fp", "fn", "time_ok", "time_checked"), 0)
        for kind in [*sorted(FACT_KINDS), "all"]
    }
    for (_, kind), (guesses, planted) in by_group.items():
        guesses = _distinct(guesses, threshold)
        planted = _distinct(planted, threshold)
        matched = _match(guesses, planted, threshold)
        for bucket in (counts[kind], counts["all"]):
            bucket["tp"] += len(matched)
            bucket["fp"] += len(guesses) - len(matched)
            bucket["fn"] += len(planted) - len(matched)
            for guess, fact in matched:
                if guess.valid_from is None or fact.valid_from is None:
                    continue
                bucket["time_checked"] += 1
                # A planted fact may carry its own tolerance (a season is looser than a day).
                days = getattr(fact, "valid_from_tolerance_days", None)
                tolerance = timedelta(days=days) if days is not None else time_tolerance
                if abs(guess.valid_from - fact.valid_from) <= tolerance:
                    bucket["time_ok"] += 1
    for bucket in counts.values():
        predicted_count = bucket["tp"] + bucket["fp"]
        planted_count = bucket["tp"] + bucket["fn"]
        bucket["precision"] = bucket["tp"] / predicted_count if predicted_count else 1.0
        bucket["recall"] = bucket["tp"] / planted_count if planted_count else 1.0
    return counts
