"""Intents: what the user wants to do or get soon ("I want to buy a tent", "looking for a desk").

Only verbs of lasting plans count (buy, learn, visit, adopt, ...), so "I want to go to bed" and
"I need a break" are not intents; destinations must be proper nouns ("go to Japan").
"""

from __future__ import annotations

import re

from memory.patterns import (
    ADV,
    BUY_VERBS,
    I_WE,
    I_WE_ARE,
    INTENT_VERB,
    INTENT_WORDS,
    OBJ,
    PLACE,
    PLACE_VERBS,
    Fact,
    Rule,
    rule,
    word_set,
)
from memory.phrases import proper_noun, thing

_INFINITIVES = {
    "buying": "buy",
    "purchasing": "purchase",
    "ordering": "order",
    "getting": "get",
    "learning": "learn",
    "visiting": "visit",
    "trying": "try",
    "adopting": "adopt",
    "booking": "book",
    "upgrading": "upgrade",
    "replacing": "replace",
    "selling": "sell",
    "switching to": "switch to",
    "starting": "start",
    "taking up": "take up",
    "traveling to": "travel to",
    "travelling to": "travel to",
    "going to": "go to",
    "building": "build",
    "renovating": "renovate",
    "joining": "join",
    "moving to": "move to",
    "picking up": "pick up",
    "investing in": "invest in",
    "planting": "plant",
    "setting up": "set up",
    "training for": "train for",
    "signing up for": "sign up for",
    "exploring": "explore",
}
_GERUND = r"(?P<verb>" + "|".join(g.replace(" ", r"\s+") for g in _INFINITIVES) + r")\b"
# What people look for when they want advice rather than a thing.
_VAGUE_WANTS = word_set(
    """advice help ideas idea suggestions suggestion recommendations recommendation tips tip
    something anything info information way ways answers answer options inspiration"""
)


def wants(match: re.Match[str]) -> list[Fact]:
    """ "Wants to buy a tent", "Wants to learn Spanish", "Wants to visit Japan"."""
    verb = " ".join(match["verb"].lower().split())
    verb = _INFINITIVES.get(verb, verb)
    if verb in PLACE_VERBS:
        destination = proper_noun(match["obj"]) if match["obj"][:1].isupper() else None
        if not destination:
            return []
        return [Fact("intent", f"Wants to {'visit' if verb == 'see' else verb} {destination}")]
    obj = thing(match["obj"])
    if not obj:
        return []
    return [Fact("intent", f"Wants to {'buy' if verb in BUY_VERBS else verb} {obj}")]


def buying(match: re.Match[str]) -> list[Fact]:
    """ "Wants to buy X" for shopping and saving up."""
    obj = thing(match["obj"])
    return [Fact("intent", f"Wants to buy {obj}")] if obj else []


def looking_for(match: re.Match[str]) -> list[Fact]:
    """ "Is looking for X", unless X is advice or "something"."""
    obj = thing(match["obj"])
    if not obj or obj.split()[-1].lower() in _VAGUE_WANTS:
        return []
    return [Fact("intent", f"Is looking for {obj}")]


def trip(match: re.Match[str]) -> list[Fact]:
    """ "Is planning a trip to X"."""
    destination = proper_noun(match["place"])
    return [Fact("intent", f"Is planning a trip to {destination}")] if destination else []


_WANT = (
    r"(?:want|wanna|plan|planning|intend|going|gonna|looking|meaning|decided|aim|aiming"
    r"|ready)"
)
_AUX = r"(?:'m|'re|\s+am|\s+are|'ve\s+been|\s+have\s+been)?"
_TRIP = (
    rf"{I_WE_ARE}{ADV}\s+(?:planning|going\s+on|taking|booking)\s+(?:a|an|our|my)\s+(?:[a-z]+\s+)?"
    rf"trip\s+to|{I_WE_ARE}{ADV}\s+(?:heading|flying|traveling|travelling)\s+to"
    rf"|{I_WE_ARE}{ADV}\s+visiting|\b(?:i|we)(?:'ll|\s+will)\s+be\s+(?:in|visiting"
    rf"|traveling\s+to|travelling\s+to)"
)

RULES: tuple[Rule, ...] = (
    rule(
        "wants_to",
        rf"{I_WE}{_AUX}{ADV}\s+{_WANT}\s+(?:to\s+)?{INTENT_VERB}\s+{OBJ}",
        wants,
        0.85,
        "future",
        needs=INTENT_WORDS,
    ),
    rule(
        "would_like_to",
        rf"{I_WE}(?:'d|\s+would){ADV}\s+(?:like|love)\s+to\s+{INTENT_VERB}\s+{OBJ}",
        wants,
        0.8,
        "future",
        modal_ok=True,
        needs=INTENT_WORDS,
    ),
    rule(
        "hopes_to",
        rf"{I_WE}{_AUX}{ADV}\s+(?:hope|hoping|need|trying|try)\s+to\s+{INTENT_VERB}\s+{OBJ}",
        wants,
        0.75,
        "future",
        needs=INTENT_WORDS,
    ),
    rule(
        "thinking_of",
        rf"{I_WE_ARE}{ADV}\s+(?:thinking\s+(?:about|of)|considering)\s+{_GERUND}\s+{OBJ}",
        wants,
        0.7,
        "future",
        needs="thinking considering",
    ),
    rule(
        "shopping_for",
        rf"{I_WE_ARE}{ADV}\s+(?:shopping\s+(?:around\s+)?for|in\s+the\s+market\s+for"
        rf"|saving\s+(?:up\s+)?for)\s+{OBJ}",
        buying,
        0.85,
        "future",
        needs="shopping market saving",
    ),
    rule(
        "looking_for",
        rf"{I_WE_ARE}{ADV}\s+(?:looking|searching|hunting)\s+(?:around\s+)?for\s+{OBJ}",
        looking_for,
        0.75,
        "future",
        needs="looking searching hunting",
    ),
    rule(
        "help_me_find",
        rf"\b(?:(?:can|could|would)\s+you\s+)?(?:please\s+)?help\s+me\s+(?:find|choose|pick"
        rf"(?:\s+out)?|track\s+down)\s+{OBJ}",
        looking_for,
        0.7,
        "future",
        modal_ok=True,
        in_questions=True,
        needs="help",
    ),
    rule(
        "need_new",
        rf"{I_WE}{ADV}\s+(?:really\s+|badly\s+)?need\s+(?P<obj>(?:a\s+|an\s+|some\s+)?new\s+"
        r"[^.;:!?()\[\]\"]{1,60})",
        buying,
        0.75,
        "future",
        needs="need",
    ),
    rule(
        "trip",
        rf"(?:{_TRIP})\s+{PLACE}",
        trip,
        0.8,
        "future",
        needs="trip heading flying traveling travelling visiting be",
    ),
)
