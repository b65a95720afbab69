"""Clean the phrases a rule captures into canonical objects, names and places.

A captured object runs to the end of its sentence ("hiking with my dog on weekends because...");
these helpers cut it at the first word that starts a new thought, drop fillers, split short lists,
and refuse what is not a thing the user likes or wants ("it", "the idea", "how you explained").
"""

from __future__ import annotations

import re

from memory.patterns import PET_TOKENS, ROLE_TOKENS, STOP_CAPS, word_set

_MONTHS = "january|february|march|april|june|july|august|september|october|november|december"
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_UNITS = "days?|weeks?|weekends?|months?|years?"
_PERIODS = rf"{_UNITS}|{_DAYS}|{_MONTHS}|May|spring|summer|autumn|fall|winter|morning|evening|night"
# Words that end the object: conjunctions, pronouns starting a new clause, time expressions,
# prepositional tails ("hiking in the mountains" is kept as "hiking") and trailing fillers.
_CUT = re.compile(
    r"\s+(?:but|because|cause|cuz|since|so|although|though|when|whenever|while|which|who|that|"
    r"if|unless|until|as|like|especially|except|than|whereas|where|before|after|now|again|"
    r"lately|anymore|any\s+more|these\s+days|nowadays|a\s+lot|so\s+much|very\s+much|too|"
    r"as\s+well|right\s+now|at\s+the\s+moment|in\s+general|haha+|lol|honestly|actually|tbh|btw|"
    r"for\s+sure|more|over|to\s+be\s+honest|ever|i|you|he|she|we|they|it|me|please|thanks|"
    r"thank\s+you|anyway|anyways|fyi|ok|okay|just\s+so\s+you\s+know|"
    r"in|on|at|with|during|from|around|for|by|near|outside|every|each|all|whenever|instead|"
    r"yesterday|today|tomorrow|tonight|soon|someday|eventually|already|recently|ago|"
    rf"(?:last|next|this|past|coming)\s+(?:{_PERIODS})|"
    r"(?:a|one|two|three|a\s+few|a\s+couple\s+of|several|\d+)\s+(?:days?|weeks?|months?|years?)"
    r")\b.*$",
    re.IGNORECASE | re.DOTALL,
)
_AND_SPLIT = re.compile(r"\s+(?:and|or|&)\s+", re.IGNORECASE)
_IDIOMS = frozenset(
    {
        "mac and cheese",
        "rock and roll",
        "fish and chips",
        "salt and pepper",
        "r and b",
        "black and white",
        "arts and crafts",
        "dungeons and dragons",
        "peanut butter and jelly",
        "rhythm and blues",
        "pros and cons",
        "bread and butter",
        "hide and seek",
        "drum and bass",
        "sweet and sour",
        "hot and sour",
        "surf and turf",
        "country and western",
    }
)
# First words that make a phrase a pronoun, a clause or a vague quantity rather than a thing.
_BAD_HEADS = word_set(
    """
    it it's its this that these those them they you your yours him her he she his hers we us
    our ours me my mine myself what how when where why which who whom whose there here so too
    very really such anything something everything nothing all some one ones lot lots being
    having doing getting making going trying to not no any every each either neither both a an
    the whatever whoever kind sort bit little much more most less least other another same
    than then just also
    """
)
# Nouns that, after "the", name the conversation or the item under review, not a taste.
_META_NOUNS = word_set(
    """
    idea ideas suggestion suggestions recommendation recommendations list answer answers tip
    tips help advice way fact sound look one ones first second last option options plan plans
    question questions thought thoughts point points recipe recipes color colour price design
    quality size fit feel product item book movie show film song album game part ending story
    service delivery packaging result results response info information explanation details
    support app site website chat conversation
    """
)
_STRIP_LEADING = re.compile(r"^(?:going|doing|to\s+go)\s+", re.IGNORECASE)
_VOWELS = set("aeiou")


def gerund(verb: str) -> str:
    """The -ing form of a regular English verb: hike -> hiking, run -> running, play -> playing."""
    lower = verb.lower()
    if lower.endswith("ie"):
        return verb[:-2] + "ying"
    if lower.endswith("e") and not lower.endswith(("ee", "ye", "oe")) and len(lower) > 2:
        return verb[:-1] + "ing"
    # One-syllable consonant-vowel-consonant verbs double the last letter (swim, run, shop).
    if (
        len(lower) >= 3
        and lower[-1] not in _VOWELS | {"w", "x", "y"}
        and lower[-2] in _VOWELS
        and lower[-3] not in _VOWELS
        and sum(char in _VOWELS for char in lower) == 1
    ):
        return verb + verb[-1] + "ing"
    return verb + "ing"


def _cut(phrase: str) -> str:
    phrase = _CUT.sub("", " " + phrase.strip()).strip()
    return phrase.strip(" -'\"")


def _acceptable(phrase: str, *, max_words: int, strict: bool) -> bool:
    words = phrase.split()
    if not words or len(words) > max_words:
        return False
    head = words[0].lower()
    if head == "the":
        # In a review "the" points at the item under review; in chat it can name a taste.
        return not strict and len(words) > 1 and words[1].lower() not in _META_NOUNS
    return head not in _BAD_HEADS and not head.isdigit()


def _split_and(phrase: str) -> list[str]:
    if phrase.lower() in _IDIOMS:
        return [phrase]
    return [part for part in _AND_SPLIT.split(phrase) if part]


def taste_objects(raw: str, *, strict: bool = False, max_words: int = 5) -> list[str]:
    """The things a like/dislike statement is about: "hiking, camping and kayaking" gives 3."""
    raw = raw.strip()
    infinitive = re.match(r"to\s+(\w+)(.*)$", raw, re.IGNORECASE | re.DOTALL)
    if infinitive:
        raw = gerund(infinitive.group(1)) + infinitive.group(2)
    raw = _STRIP_LEADING.sub("", raw)
    chunks = raw.split(",")
    # A comma list ("hiking, camping, and fishing") is closed by "and"/"or" before its last
    # item; without one, what follows the first comma is another thought (", anyway").
    closed = next(
        (i for i, chunk in enumerate(chunks) if i and re.match(r"\s*(?:and|or|&)\s", chunk)), 0
    )
    items: list[str] = []
    for index, chunk in enumerate(chunks[: closed + 1]):
        piece = " ".join(re.sub(r"^(?:and|or|&)\s+", "", chunk.strip(), flags=re.I).split())
        cut = _cut(piece)
        if index > 0 and (not cut or len(cut.split()) > 3):
            break
        items.extend(_split_and(cut))
        if cut != piece:
            break
    found: list[str] = []
    for item in items:
        item = re.sub(r"^(?:a|an)\s+", "", item, flags=re.IGNORECASE)
        if not _acceptable(item, max_words=max_words, strict=strict):
            break
        found.append(item)
    return found


def thing(raw: str, *, strict: bool = False, max_words: int = 7) -> str | None:
    """One object phrase, kept whole with its article ("a new tent"), or None if unusable.
    The user's own things become theirs ("sell my car" -> "sell their car"); an infinitive
    stays ("learn to paint")."""
    phrase = _cut(raw.split(",", 1)[0])
    phrase = re.sub(r"^my\s+", "their ", phrase, flags=re.IGNORECASE)
    if re.match(r"to\s+[a-z]", phrase, flags=re.IGNORECASE) and len(phrase.split()) <= max_words:
        return phrase
    words = phrase.split()
    if words and words[0].lower() == "their":
        # "shopping for my son" is about a person, not a thing to get.
        people = len(words) < 2 or words[1].lower() in ROLE_TOKENS | PET_TOKENS
        return phrase if not people and len(words) <= max_words else None
    bare = words[1:] if words and words[0].lower() in ("a", "an", "some", "the") else words
    if not bare:
        return None
    body = " ".join(bare)
    if words[0].lower() == "the" and not _acceptable(phrase, max_words=max_words, strict=strict):
        return None
    if words[0].lower() != "the" and not _acceptable(body, max_words=max_words, strict=strict):
        return None
    return phrase


def proper_noun(raw: str) -> str | None:
    """A name, place or organization as captured, trimmed; None if it is a stop word."""
    words = raw.strip().rstrip(".'").split()
    if words and words[0].lower() == "the":
        words = words[1:]
    kept: list[str] = []
    for word in words:
        clean = word.rstrip(".,'")
        if clean.endswith("'s"):
            clean = clean[:-2]
        if clean.lower() in STOP_CAPS:
            break
        kept.append(clean)
        if clean != word.rstrip("."):
            break
    if not kept or kept[-1].lower() in ("and", "&", "of", "de", "la", "le", "upon", "am"):
        return None
    return " ".join(kept) if kept else None


def opening_case(phrase: str) -> str:
    """A phrase that opened its sentence, lower-cased if only that made it capitalized."""
    first = phrase.split(" ", 1)[0]
    return phrase[0].lower() + phrase[1:] if len(first) > 1 and first[1:].islower() else phrase
