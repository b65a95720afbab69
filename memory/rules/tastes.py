"""Likes and dislikes: "I love hiking", "jazz is my favourite thing", "X is not for me"."""

from __future__ import annotations

import re

from memory.patterns import ADV, I_AM, I_HAVE, I_WE, OBJ, TOPIC, Fact, I, Rule, rule
from memory.phrases import opening_case, taste_objects


def _objects(match: re.Match[str]) -> list[str]:
    raw = match["obj"]
    return taste_objects(opening_case(raw) if match.start("obj") == 0 else raw)


def likes(match: re.Match[str]) -> list[Fact]:
    """ "Likes X" for each thing named."""
    return [Fact("preference", f"Likes {obj}") for obj in _objects(match)]


def dislikes(match: re.Match[str]) -> list[Fact]:
    """ "Dislikes X" for each thing named."""
    return [Fact("dislike", f"Dislikes {obj}") for obj in _objects(match)]


_LIKE_VERBS = r"(?:love|like|enjoy|adore|prefer|dig)"
_INTO = (
    r"(?:a\s+(?:big\s+|huge\s+|great\s+|massive\s+|total\s+)?(?:fan|lover|enthusiast)\s+of|into"
    r"|obsessed\s+with|passionate\s+about|crazy\s+about|fond\s+of|hooked\s+on|mad\s+about)"
)
_HATE_VERBS = (
    r"(?:hate|dislike|detest|loathe|despise|can't\s+stand|cannot\s+stand|can't\s+bear"
    r"|(?:do\s+not|don't|dont)\s+(?:really\s+|much\s+|particularly\s+)?(?:like|enjoy|care\s+for)"
    r"|never\s+(?:liked|enjoyed|cared\s+for|got\s+into))"
)
_NOT_INTO = (
    r"(?:not|no)\s+(?:really\s+|much\s+of\s+)?(?:a\s+(?:big\s+|huge\s+)?fan\s+of|fan\s+of|into"
    r"|keen\s+on|big\s+on|crazy\s+about|a\s+(?:\w+\s+)?person)"
)
_SO = r"(?:(?:basically|really|probably|definitely|honestly|hands\s+down|by\s+far|easily|totally|kind\s+of|literally|just|simply|always|still|truly)\s+)*"  # noqa: E501
_FAVOURITE = r"(?:favou?rites?|faves?)"
_FAVOURITE_WORDS = "favorite favourite favorites favourites fave faves"

RULES: tuple[Rule, ...] = (
    rule(
        "likes",
        rf"{I_WE}{ADV}\s+{_LIKE_VERBS}\s+{OBJ}",
        likes,
        0.85,
        "state",
        needs="love like enjoy adore prefer dig",
    ),
    rule(
        "have_liked",
        rf"{I_HAVE}{ADV}\s+(?:loved|liked|enjoyed|(?:been|gotten|got){ADV}\s+{_INTO})\s+{OBJ}",
        likes,
        0.85,
        "state",
        needs="loved liked enjoyed been gotten got",
    ),
    rule(
        "into",
        rf"{I_AM}{ADV}\s+{_INTO}\s+{OBJ}",
        likes,
        0.85,
        "state",
        needs="into fan lover enthusiast obsessed passionate crazy fond hooked mad",
    ),
    rule(
        "my_favourite_is",
        rf"\bmy\s+(?:absolute\s+|all[\s-]time\s+)*{_FAVOURITE}\s+[a-z]+(?:\s+[a-z]+)?"
        rf"\s+(?:is|are|has\s+to\s+be)\s+{OBJ}",
        likes,
        0.8,
        "state",
        needs=_FAVOURITE_WORDS,
    ),
    rule(
        "topic_is_favourite",
        rf"{TOPIC}\s+(?:is|are)\s+{_SO}(?:my|one\s+of\s+my)\s+(?:absolute\s+|all[\s-]time\s+"
        rf"|very\s+|top\s+)*{_FAVOURITE}\b",
        likes,
        0.8,
        "state",
        needs=_FAVOURITE_WORDS,
    ),
    rule(
        "topic_is_my_thing",
        rf"{TOPIC}\s+(?:is|are)\s+{_SO}my\s+(?:jam|thing|passion|obsession|happy\s+place"
        rf"|guilty\s+pleasure|go-to)\b",
        likes,
        0.8,
        "state",
        needs="jam thing passion obsession place pleasure go-to",
    ),
    rule(
        "topic_makes_me_happy",
        rf"{TOPIC}\s+{_SO}(?:makes?|keeps?)\s+me\s+(?:so\s+|really\s+|very\s+|super\s+|incredibly"
        rf"\s+|truly\s+)?(?:happy|smile|calm|relaxed|joyful)\b",
        likes,
        0.8,
        "state",
        needs="happy smile calm relaxed joyful",
    ),
    rule(
        "nothing_beats",
        rf"\bnothing\s+(?:beats|compares\s+to|tops|is\s+better\s+than)\s+{OBJ}",
        likes,
        0.8,
        "state",
        needs="nothing",
    ),
    rule(
        "could_do_all_day",
        rf"{I}(?:\s+could|\s+can){ADV}\s+(?:talk\s+about|watch|eat|read\s+about|read|listen\s+to"
        rf"|play)\s+(?P<obj>[^.;:!?()]{{1,60}}?)\s+(?:all\s+day|forever|every\s+(?:single\s+)?day"
        rf"|for\s+hours|all\s+the\s+time|nonstop)\b",
        likes,
        0.8,
        "state",
        modal_ok=True,
        needs="day forever hours time nonstop",
    ),
    rule(
        "as_a_fan",
        rf"\bas\s+(?:(?:someone|a\s+person|somebody)\s+who(?:'s|\s+is|\s+has\s+been){ADV}"
        rf"\s+{_INTO}|a\s+(?:big\s+|huge\s+|lifelong\s+)?(?:fan|lover)\s+of)\s+{OBJ}",
        likes,
        0.85,
        "state",
        needs="as",
    ),
    rule(
        "cant_get_enough",
        rf"{I}{ADV}\s+(?:can't|cannot|can\s+not)\s+get\s+enough\s+of\s+{OBJ}",
        likes,
        0.85,
        "state",
        needs="enough",
    ),
    rule(
        "dislikes",
        rf"{I_WE}{ADV}\s+{_HATE_VERBS}\s+{OBJ}",
        dislikes,
        0.85,
        "state",
        needs="hate dislike detest loathe despise can't cannot don't dont not never",
    ),
    rule(
        "not_a_person",
        rf"{I_AM}{ADV}\s+(?:not|no)\s+(?:really\s+)?(?:a|much\s+of\s+a)\s+"
        r"(?!(?:big|huge|great|massive|real|total|true)\b)"
        r"(?P<obj>[a-z]+(?:\s+[a-z]+)?)\s+(?:person|fan|guy|gal|drinker|eater)\b",
        dislikes,
        0.8,
        "state",
        needs="person fan guy gal drinker eater",
    ),
    rule("not_into", rf"{I_AM}{ADV}\s+{_NOT_INTO}\s+{OBJ}", dislikes, 0.8, "state", needs="not no"),
    rule(
        "topic_not_for_me",
        rf"{TOPIC}\s+(?:is|are)\s+{_SO}(?:not\s+(?:really\s+|at\s+all\s+)?(?:for\s+me|my\s+thing"
        rf"|my\s+cup\s+of\s+tea|my\s+jam|my\s+style|my\s+scene)|never\s+for\s+me)",
        dislikes,
        0.8,
        "state",
        needs="not never",
    ),
    rule(
        "topic_bores_me",
        rf"{TOPIC}\s+{_SO}(?:bores?|annoys?|irritates?|disgusts?|grosses?\s+out)\s+me\b",
        dislikes,
        0.8,
        "state",
        needs="bore bores annoy annoys irritate irritates disgust disgusts gross grosses",
    ),
    rule(
        "please_no",
        rf"\bplease\s+(?:don't|do\s+not|dont|never|stop)\s+(?:suggest(?:ing)?|recommend(?:ing)?"
        rf"|show(?:ing)?\s+me|send(?:ing)?\s+me|offer(?:ing)?\s+me|giv(?:e|ing)\s+me)"
        rf"\s+(?:any\s+(?:more\s+)?)?{OBJ}",
        dislikes,
        0.75,
        "state",
        needs="please",
    ),
)
