"""Memory extraction from text signals: the interface and the default rule-based extractor.

What each signal yields (`RuleExtractor`):
- message / review from the user (speaker None or "user"): one `episode` memory of the raw text,
  plus the facts its sentences state (memory.rules), attributed to the user;
- message from anyone else (assistant, system, other): nothing. An assistant's words are never
  facts about the user, and its turns are not the user's episodes;
- search: nothing here. One query is weak evidence; a burst of them becomes an intent in
  memory.behaviour.search_burst_intents;
- tag: nothing. A tag is a label on an item and already counts as behaviour in the features.

Text is read clause by clause (memory.sentences restores the "I" chat drops: "Been into jazz for
years"). Clauses that ask ("should I move to Denver?"), suppose ("if I ever moved to Paris"),
wish ("I wish I lived in Rome") or hold a modal ("I could move to Austin") state no fact, except
for the few idioms a rule knows ("I could talk about jazz all day", "I'd love to visit Kyoto",
"can you help me find a tent?"). A negation before a match voids it ("I don't think I like
jazz"); negations have rules of their own ("I'm not vegetarian anymore"). Quoted speech is
dropped, so "she said 'I love hiking'" is not about the user. Hedges ("I think", "maybe") lower
confidence by HEDGE_FACTOR.

Time: a time expression in the same clause as a fact ("we moved to Seattle last week") sets
`valid_from`, read in the past for past-tense rules and in the future for plans; state facts only
take a "since ..." expression. Intents expire `INTENT_TTL` after they are stated, or
`INTENT_GRACE` after the time they name if that is later; their `valid_from` stays the statement
time, since the wish exists from then even when its target is next month.

Memories are stamped `created_at = updated_at = ` the event time: a memory is learned from its
event, so replaying history gives the same memories. The store may overwrite with ingestion time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from memory.patterns import Fact, Rule, tokens
from memory.records import Memory, memory_id_for
from memory.rules import RULES
from memory.sentences import Sentence, sentences, with_subject
from memory.timeparse import Direction, TimeMention, find_times

INTENT_TTL = timedelta(days=14)
INTENT_GRACE = timedelta(days=7)
HEDGE_FACTOR = 0.7
USER_SPEAKERS = frozenset({"user"})
EPISODE_TYPES = frozenset({"message", "review"})


@dataclass(frozen=True)
class TextSignal:
    """What extraction sees of a normalized text signal."""

    event_id: str
    user_id: str
    ts: datetime
    type: str  # message | review | search | tag
    text: str
    speaker: str | None = None
    session_id: str | None = None
    item_id: str | None = None


class Extractor(Protocol):
    """Turns text signals into memories (rule-based by default, a model optionally)."""

    def extract(self, signals: Sequence[TextSignal]) -> list[Memory]:
        """Memories stated by `signals`, in signal order."""
        ...


def is_user_turn(signal: TextSignal) -> bool:
    """True when the user wrote it: no speaker given, or speaker "user"."""
    return signal.speaker is None or signal.speaker.strip().lower() in USER_SPEAKERS


def episode_memory(signal: TextSignal) -> Memory | None:
    """The raw text of a user's message or review as an episode; None for anything else."""
    text = " ".join(signal.text.split())
    if signal.type not in EPISODE_TYPES or not is_user_turn(signal) or not text:
        return None
    return Memory(
        memory_id=memory_id_for(signal.user_id, "episode", text, signal.event_id),
        user_id=signal.user_id,
        kind="episode",
        text=text,
        confidence=1.0,
        valid_from=signal.ts,
        created_at=signal.ts,
        updated_at=signal.ts,
        source_event_ids=(signal.event_id,),
    )


def fact_memory(
    signal: TextSignal,
    fact: Fact,
    confidence: float,
    valid_from: datetime,
    expires_at: datetime | None = None,
) -> Memory:
    """A fact stated by `signal`, as a memory with a deterministic id."""
    return Memory(
        memory_id=memory_id_for(signal.user_id, fact.kind, fact.text, signal.event_id),
        user_id=signal.user_id,
        kind=fact.kind,  # type: ignore[arg-type]
        text=fact.text,
        confidence=round(confidence, 3),
        valid_from=valid_from,
        created_at=signal.ts,
        updated_at=signal.ts,
        source_event_ids=(signal.event_id,),
        slot=fact.slot,
        value=fact.value,
        expires_at=expires_at,
    )


def intent_expiry(stated: datetime, target: datetime | None) -> datetime:
    """When an intent lapses: INTENT_TTL after it was stated, or INTENT_GRACE after its target."""
    expiry = stated + INTENT_TTL
    if target is not None and target + INTENT_GRACE > expiry:
        expiry = target + INTENT_GRACE
    return expiry


# --- what a unit of text allows --------------------------------------------------------------

# Words that put a clause outside reality: conditions, wishes, dreams.
_HYPOTHETICAL = re.compile(
    r"\b(?:if|unless|whether|suppose|supposing|imagine|imagining|wish|wished|wonder|wondering"
    r"|hypothetically|someday|one\s+day|dream|dreaming|fantasi[sz]e|pretend|in\s+case)\b",
    re.IGNORECASE,
)
# Modal verbs: possibilities and advice, not facts, unless a rule knows the idiom.
_MODAL = re.compile(r"\b(?:could|would|should|might|(?-i:may))\b|(?<=\w)'d\b", re.IGNORECASE)
# A negation or doubt before the match turns "I don't think I like X" away from "Likes X".
_NEGATED_BEFORE = re.compile(
    r"\b(?:don't|dont|do\s+not|doesn't|didn't|never|not|no\s+longer|doubt|hardly|used\s+to"
    r"|pretend|pretending|joke|joking|kidding)\b",
    re.IGNORECASE,
)
_HEDGES = re.compile(
    r"\b(?:i\s+think|i\s+guess|i\s+suppose|i\s+believe|maybe|probably|perhaps|kind\s+of"
    r"|sort\s+of|kinda|sorta|not\s+sure|possibly|hopefully|i\s+feel\s+like|might|ish)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Unit:
    """A stretch of text rules run on, and what it allows."""

    text: str
    scope: str  # "clause", "sentence" or "question"
    words: frozenset[str]


def _nearest(mentions: list[TimeMention], match: re.Match[str]) -> TimeMention | None:
    start, end = match.span()
    best: TimeMention | None = None
    best_distance = 1 << 30
    for mention in mentions:
        distance = max(mention.start - end, start - mention.end, 0)
        if distance < best_distance:
            best, best_distance = mention, distance
    return best


def _when(
    rule: Rule, unit: _Unit, match: re.Match[str], sentence: Sentence, base: datetime
) -> datetime | None:
    """The time the text gives for this fact, read in the rule's tense: from the unit itself, or
    for events from elsewhere in the sentence ("settled in Rome, we moved two weeks ago")."""
    direction: Direction = "future" if rule.tense == "future" else "past"
    mentions = find_times(unit.text, base, direction)
    if rule.tense == "state":
        mentions = [m for m in mentions if m.phrase.lower().startswith("since")]
    mention = _nearest(mentions, match)
    if mention is None and rule.tense != "state" and unit.scope == "clause":
        others = find_times(sentence.statement, base, direction)
        mention = others[0] if others else None
    return mention.when if mention else None


# --- the rule extractor ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    fact: Fact
    confidence: float
    when: datetime | None
    order: tuple[int, int]  # clause index, match start: where in the text it was said


class RuleExtractor:
    """The default extractor: regular-expression rules on first-person English, CPU only."""

    def __init__(self, rules: Sequence[Rule] = RULES) -> None:
        self._rules = tuple(rules)
        # Gate words -> rules (by position), so a unit only tries rules whose words it holds.
        self._by_word: dict[str, list[int]] = {}
        for position, rule in enumerate(self._rules):
            for word in rule.needs:
                self._by_word.setdefault(word, []).append(position)
        self._ungated = [position for position, rule in enumerate(self._rules) if not rule.needs]
        # Whether a sentence or question unit is worth building at all.
        self._sentence_words = frozenset().union(
            *(rule.needs for rule in self._rules if rule.scope == "sentence")
        )
        self._question_words = frozenset().union(
            *(rule.needs for rule in self._rules if rule.in_questions)
        )

    def extract(self, signals: Sequence[TextSignal]) -> list[Memory]:
        """Episodes and facts of the user's own messages and reviews, in signal order."""
        memories: list[Memory] = []
        for signal in signals:
            if signal.type not in EPISODE_TYPES or not is_user_turn(signal):
                continue
            episode = episode_memory(signal)
            if episode is None:
                continue
            memories.append(episode)
            memories.extend(self.facts(signal))
        return memories

    def facts(self, signal: TextSignal) -> list[Memory]:
        """The facts one user-written signal states, deduplicated."""
        found: list[_Found] = []
        for index, sentence in enumerate(sentences(signal.text)):
            for unit in self._units(sentence):
                found.extend(self._unit_facts(signal, sentence, unit, index))
        if signal.type == "review":
            found = [item for item in found if not _about_reviewed_item(item.fact)]
        return [self._memory(signal, item) for item in _dedup(found)]

    def _units(self, sentence: Sentence) -> list[_Unit]:
        units = [_Unit(clause, "clause", tokens(clause)) for clause in sentence.clauses]
        words = tokens(sentence.text)
        if sentence.statement and not self._sentence_words.isdisjoint(words):
            statement = with_subject(sentence.statement)
            units.append(_Unit(statement, "sentence", tokens(statement)))
        if sentence.question and not self._question_words.isdisjoint(words):
            units.append(_Unit(sentence.text, "question", words))
        return units

    def _candidates(self, unit: _Unit) -> list[Rule]:
        positions = set(self._ungated)
        for word in unit.words:
            positions.update(self._by_word.get(word, ()))
        rules = [self._rules[position] for position in sorted(positions)]
        if unit.scope == "question":
            return [rule for rule in rules if rule.in_questions]
        return [rule for rule in rules if rule.scope == unit.scope]

    def _unit_facts(
        self, signal: TextSignal, sentence: Sentence, unit: _Unit, index: int
    ) -> list[_Found]:
        rules = self._candidates(unit)
        if not rules or _HYPOTHETICAL.search(unit.text):
            return []
        if _MODAL.search(unit.text):
            rules = [rule for rule in rules if rule.modal_ok]
        hedge = HEDGE_FACTOR if _HEDGES.search(unit.text) else 1.0
        found: list[_Found] = []
        for rule in rules:
            for match in rule.pattern.finditer(unit.text):
                if _NEGATED_BEFORE.search(unit.text, 0, match.start()):
                    continue
                facts = rule.build(match)
                if not facts:
                    continue
                when = _when(rule, unit, match, sentence, signal.ts)
                order = (index, match.start())
                found.extend(_Found(fact, rule.confidence * hedge, when, order) for fact in facts)
        return found

    @staticmethod
    def _memory(signal: TextSignal, item: _Found) -> Memory:
        if item.fact.kind == "intent":
            target = item.when if item.when is not None and item.when > signal.ts else None
            expiry = intent_expiry(signal.ts, target)
            return fact_memory(signal, item.fact, item.confidence, signal.ts, expiry)
        return fact_memory(signal, item.fact, item.confidence, item.when or signal.ts)


def _about_reviewed_item(fact: Fact) -> bool:
    """In a review, "I love the color" is about the item, not a taste of the user."""
    return fact.kind in ("preference", "dislike") and fact.text.split(" ", 2)[1:2] == ["the"]


def _dedup(found: list[_Found]) -> list[_Found]:
    """One fact per text and one value per slot; a fact that only repeats a longer one goes."""
    by_text: dict[tuple[str, str], _Found] = {}
    for item in sorted(found, key=lambda item: item.order):
        key = (item.fact.kind, item.fact.text.casefold())
        if key not in by_text or item.confidence > by_text[key].confidence:
            by_text[key] = item
    # Within one signal the last value stated for a slot wins ("not vegan, just vegetarian").
    last_for_slot: dict[str, tuple[str, str]] = {}
    for key, item in by_text.items():
        if item.fact.slot is not None:
            last_for_slot[item.fact.slot] = key
    kept: list[_Found] = []
    for key, item in by_text.items():
        if item.fact.slot is not None and last_for_slot[item.fact.slot] != key:
            same_value = by_text[last_for_slot[item.fact.slot]].fact.value == item.fact.value
            if not same_value:
                continue
        longer = any(
            other != key and other[0] == key[0] and other[1].startswith(key[1] + " ")
            for other in by_text
        )
        if not longer:
            kept.append(item)
    return kept
