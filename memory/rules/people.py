"""The people and pets in the user's life: "my sister Anna", "Max, our dog", "I have two kids"."""

from __future__ import annotations

import re

from memory.patterns import (
    ADV,
    COUNT,
    COUNT_WORDS,
    I_HAVE,
    MODS,
    NAME,
    PET,
    PET_KIND,
    PET_TOKENS,
    PETS,
    ROLE,
    ROLE_PLURALS,
    ROLE_SLOTS,
    ROLE_TOKENS,
    ROLE_WORDS,
    ROLES,
    Fact,
    Rule,
    article,
    capitalized,
    group,
    rule,
)
from memory.phrases import proper_noun

# Roles that say little on their own: "I have a friend" is not worth remembering.
_VAGUE_ROLES = frozenset(
    {"friend", "best friend", "boss", "coworker", "colleague", "neighbor", "roommate", "baby"}
)


def role_of(raw: str, mod: str | None) -> tuple[str, str | None]:
    """Canonical role name and its slot: ("sister", None), ("wife", "partner")."""
    role = ROLES.get(" ".join(raw.lower().split()), raw.lower())
    modifier = (mod or "").lower().rstrip("-")
    if modifier == "ex":
        return f"ex-{role}", None
    if modifier == "step":
        return f"step{role}", None
    if modifier == "half":
        return f"half-{role}", None
    if modifier == "late":
        return role, None
    return role, ROLE_SLOTS.get(role)


def person(match: re.Match[str]) -> list[Fact]:
    """ "Sister is Anna"; partners and parents fill a slot, others merge by text."""
    name = proper_noun(match["name"])
    if not name or " " in name:
        return []
    role, slot = role_of(match["role"], group(match, "mod"))
    return [Fact("relationship", f"{capitalized(role)} is {name}", slot, name)]


def pet(match: re.Match[str]) -> list[Fact]:
    """ "Has a dog named Max", "Has two cats" or "Has a dog"."""
    animal = PETS[" ".join(match["pet"].lower().split())]
    name = proper_noun(match["name"]) if group(match, "name") else None
    if name and " " not in name:
        return [Fact(PET_KIND, f"Has {article(animal)} {animal} named {name}")]
    count = (group(match, "count") or "a").lower()
    if COUNT_WORDS.get(count, 1) > 1:
        return [Fact(PET_KIND, f"Has {count} {animal}s")]
    return [Fact(PET_KIND, f"Has {article(animal)} {animal}")]


def family(match: re.Match[str]) -> list[Fact]:
    """ "Has two kids", "Has a sister", or "Sister is Anna" when named."""
    raw = " ".join(match["role"].lower().split())
    role = ROLE_PLURALS.get(raw) or ROLES.get(raw) or ROLES.get(raw.removesuffix("s"))
    if role is None or role in _VAGUE_ROLES:
        return []
    if group(match, "name"):
        name = proper_noun(match["name"])
        return [Fact("relationship", f"{capitalized(role)} is {name}")] if name else []
    count = match["count"].lower()
    if COUNT_WORDS[count] > 1:
        plural = "kids" if raw.startswith("kid") else "children" if role == "child" else f"{role}s"
        return [Fact("relationship", f"Has {count} {plural}")]
    return [Fact("relationship", f"Has {article(role)} {role}")]


_NAMED = r"(?:'s\s+name\s+is|\s+is\s+(?:called|named)|\s+(?:called|named)|\s*,)?\s+"
_END = r"(?=\s*(?:$|[.,;!?]|and\b|who\b|but\b))"
_FAMILY_COUNT = (
    rf"{I_HAVE}{ADV}\s+(?:got\s+)?{COUNT}\s+(?:(?:little|big|older|younger|baby|twin|teenage"
    rf"|grown|adult)\s+)?(?P<role>children|kids|{ROLE_WORDS}s?)(?![\w-])"
)
_PET_MODS = r"(?:(?:new|little|old|sweet|rescue|senior|adorable|lazy|crazy)\s+)?"

RULES: tuple[Rule, ...] = (
    rule(
        "my_role_name",
        rf"\b(?:my|our)\s+{MODS}{ROLE}{_NAMED}{NAME}",
        person,
        0.85,
        "state",
        needs=ROLE_TOKENS,
    ),
    rule(
        "my_role_is_name",
        rf"\b(?:my|our)\s+{MODS}{ROLE}\s+is\s+{NAME}{_END}",
        person,
        0.8,
        "state",
        needs=ROLE_TOKENS,
    ),
    rule(
        "name_is_my_role",
        rf"\b{NAME}(?:\s+is|,)\s+(?:my|our)\s+{MODS}{ROLE}\b",
        person,
        0.8,
        "state",
        needs=ROLE_TOKENS,
    ),
    rule(
        "have_family",
        rf"{_FAMILY_COUNT}(?:\s*,?\s+(?:named|called)\s+{NAME})?",
        family,
        0.85,
        "state",
        needs=ROLE_TOKENS,
    ),
    rule(
        "my_pet_name",
        rf"\b(?:my|our)\s+{_PET_MODS}{PET}{_NAMED}{NAME}",
        pet,
        0.85,
        "state",
        needs=PET_TOKENS,
    ),
    rule(
        "name_is_my_pet",
        rf"\b{NAME}(?:\s+is|,)\s+(?:my|our)\s+{_PET_MODS}{PET}",
        pet,
        0.8,
        "state",
        needs=PET_TOKENS,
    ),
    rule(
        "have_pet",
        rf"{I_HAVE}{ADV}\s+(?:got\s+)?{COUNT}\s+{_PET_MODS}{PET}"
        rf"(?:\s*,?\s+(?:named|called)\s+{NAME})?",
        pet,
        0.85,
        "state",
        needs=PET_TOKENS,
    ),
)
