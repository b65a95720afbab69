"""The rule table: first-person English statements and the facts they state, by topic.

Each rule pairs a pattern (built from memory.patterns) with a builder that turns the match into
canonical facts, a base confidence (how often the pattern means what it seems to) and a tense
that says how a time mention next to it is read. Every rule runs; the extractor deduplicates.
"""

from __future__ import annotations

from memory.patterns import Rule
from memory.rules import events, health, identity, intents, people, tastes

RULES: tuple[Rule, ...] = (
    *tastes.RULES,
    *health.RULES,
    *identity.RULES,
    *people.RULES,
    *events.RULES,
    *intents.RULES,
)

__all__ = ["RULES"]
