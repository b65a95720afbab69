"""Diet and health: "I'm vegetarian", "I don't eat meat", "careful with pollen, I'm allergic"."""

from __future__ import annotations

import re

from memory.patterns import (
    ADV,
    ANIMAL_PRODUCTS,
    DIET,
    DIET_TEXT,
    DIET_WORDS,
    DIETS,
    I_AM,
    I_HAVE,
    MEAT,
    Builder,
    Fact,
    I,
    Rule,
    fixed,
    group,
    rule,
)
from memory.phrases import taste_objects


def _diet_value(match: re.Match[str]) -> str:
    return DIETS["-".join(match["diet"].lower().replace("-", " ").split())]


def diet(match: re.Match[str]) -> list[Fact]:
    """ "Is vegan": the diet slot."""
    value = _diet_value(match)
    return [Fact("attribute", DIET_TEXT[value], "diet", value)]


def diet_named(value: str) -> Builder:
    """A builder for one fixed diet ("I don't eat meat" -> vegetarian)."""
    return fixed("attribute", DIET_TEXT[value], "diet", value)


def not_diet(match: re.Match[str]) -> list[Fact]:
    """ "Is no longer vegetarian": a diet given up means meat is back (diet=omnivore)."""
    value = _diet_value(match)
    if value in ("keto", "paleo"):
        return [Fact("attribute", f"No longer follows a {value} diet", "diet", "none")]
    lapsed = bool(group(match, "lapsed") or group(match, "lapsed2"))
    text = f"Is {'no longer' if lapsed else 'not'} {value}"
    return [Fact("attribute", text, "diet", "omnivore")]


def allergy(match: re.Match[str]) -> list[Fact]:
    """ "Is allergic to X" for each allergen named."""
    return [Fact("attribute", f"Is allergic to {obj}") for obj in taste_objects(match["obj"])]


def allergy_either(match: re.Match[str]) -> list[Fact]:
    """ "a peanut allergy" or "allergies to cats": whichever group took part."""
    raw = group(match, "obj") or group(match, "obj2") or ""
    return [Fact("attribute", f"Is allergic to {obj}") for obj in taste_objects(raw)]


_STOPPED = r"(?:don't|do\s+not|dont|never|no\s+longer|stopped|quit|gave\s+up)"

RULES: tuple[Rule, ...] = (
    rule(
        "diet",
        rf"(?:{I_AM}|{I_HAVE}\s+been){ADV}\s+(?:a\s+)?(?:strict\s+|full[\s-]time\s+|lifelong\s+)?{DIET}",
        diet,
        0.9,
        "state",
        needs=DIET_WORDS,
    ),
    rule(
        "became_diet",
        rf"(?:{I_HAVE}{ADV}\s+(?:become|gone|turned)|{I}{ADV}\s+(?:became|went|turned))"
        rf"{ADV}\s+(?:a\s+)?(?:full[\s-]time\s+)?{DIET}",
        diet,
        0.9,
        "past",
        needs=DIET_WORDS,
    ),
    rule(
        "as_a_diet",
        rf"(?:\bas|^being)\s+(?:a\s+|an\s+)?(?:strict\s+|lifelong\s+)?{DIET}\s*(?:,|\s+(?:I|we)\b)",
        diet,
        0.85,
        "state",
        needs=DIET_WORDS,
    ),
    rule(
        "eats_diet",
        rf"{I}{ADV}\s+(?:eat|cook)\s+(?:only\s+|strictly\s+|mostly\s+)?{DIET}",
        diet,
        0.8,
        "state",
        needs=DIET_WORDS,
    ),
    rule(
        "diet_plan",
        rf"(?:{I_AM}\s+on|{I}{ADV}\s+(?:follow|do|eat))\s+(?:a\s+)?(?:strict\s+)?{DIET}\s+diet",
        diet,
        0.9,
        "state",
        needs=DIET_WORDS,
    ),
    rule(
        "no_meat",
        rf"{I}{ADV}\s+{_STOPPED}\s+(?:eat(?:ing)?\s+)?(?:any\s+)?{MEAT}"
        r"(?!\s*,?\s*(?:or|and)\s+(?:dairy|eggs))\b",
        diet_named("vegetarian"),
        0.8,
        "state",
        needs="meat",
    ),
    rule(
        "no_animal_products",
        rf"{I}{ADV}\s+{_STOPPED}\s+(?:eat(?:ing)?\s+)?(?:any\s+)?{ANIMAL_PRODUCTS}",
        diet_named("vegan"),
        0.8,
        "state",
        needs="animal meat dairy",
    ),
    rule(
        "not_diet",
        rf"{I_AM}{ADV}\s+(?:not|(?P<lapsed>no\s+longer))\s+(?:a\s+)?{DIET}"
        r"(?:\s+(?P<lapsed2>any\s*more))?",
        not_diet,
        0.85,
        "state",
        needs=DIET_WORDS,
    ),
    rule(
        "stopped_diet",
        rf"{I}{ADV}\s+(?P<lapsed>stopped|quit|gave\s+up)\s+being\s+(?:a\s+)?{DIET}",
        not_diet,
        0.85,
        "past",
        needs=DIET_WORDS,
    ),
    rule(
        "eats_meat_again",
        rf"(?:{I}{ADV}\s+(?:eat|started\s+eating|went\s+back\s+to\s+eating)"
        rf"|{I_AM}{ADV}\s+(?:eating|back\s+to\s+eating))\s+meat\s+again"
        r"|\bmeat\s+is\s+back\s+on\s+(?:the|my)\s+(?:menu|plate|table)",
        diet_named("omnivore"),
        0.85,
        "state",
        needs="meat",
    ),
    rule(
        "allergic_to",
        rf"{I_AM}{ADV}\s+(?:(?:very|severely|deathly|highly|super|mildly)\s+)?allergic\s+to\s+"
        r"(?P<obj>[^.;:!?()]{1,60})",
        allergy,
        0.9,
        "state",
        needs="allergic",
    ),
    rule(
        "allergy_to",
        rf"{I}{ADV}\s+have\s+(?:a\s+|an\s+)?(?:severe\s+|bad\s+|mild\s+)?(?:(?P<obj>[a-z]+"
        r"(?:\s+[a-z]+)?)\s+allergy|allergies\s+to\s+(?P<obj2>[a-z]+(?:\s+[a-z]+)?))",
        allergy_either,
        0.85,
        "state",
        needs="allergy allergies",
    ),
    rule(
        "allergic_after",
        rf"\b(?:with|around|near|no|avoid|without)\s+(?P<obj>[^,;:.!?]{{1,40}}?)\s*[,;:.!-]+\s*"
        rf"(?:(?:because|since|as|cause)\s+)?(?:{I_AM}{ADV}\s+allergic|allerg(?:y|ies|ic))\b"
        r"(?!\s+to\b)",
        allergy,
        0.8,
        "state",
        scope="sentence",
        needs="allergic allergy allergies",
    ),
    rule(
        "lactose",
        rf"{I_AM}{ADV}\s+lactose[\s-]intolerant",
        fixed("attribute", "Is lactose intolerant"),
        0.9,
        "state",
        needs="lactose",
    ),
    rule(
        "celiac",
        rf"(?:{I}{ADV}\s+have|{I_AM}{ADV})\s+(?:celiac|coeliac)",
        fixed("attribute", "Has celiac disease"),
        0.9,
        "state",
        needs="celiac coeliac",
    ),
    rule(
        "gluten_free",
        rf"{I_AM}{ADV}\s+(?:strictly\s+)?gluten[\s-]free",
        fixed("attribute", "Is gluten-free"),
        0.85,
        "state",
        needs="gluten gluten-free",
    ),
)
