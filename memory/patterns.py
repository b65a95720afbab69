"""Building blocks of the extraction rules: vocabularies, regex pieces, the Rule record.

Most rules are anchored on a first-person subject ("I", "I'm", "we", "my") right before their
verb, with only adverbs allowed in between, so "my friend is vegetarian", "you could move to
Austin" and "I don't like X" (negations have rules of their own) never match a positive rule;
the rest read topic-first statements ("jazz is my favourite thing"). Patterns run
case-insensitively; names, places and employers must be capitalized (`(?-i:...)` scopes) since
that is what tells "moved to Seattle" from "moved to a bigger place". Each rule lists gate words
(`needs`), one of which a text must hold before its pattern runs: that keeps extraction cheap.

Slot vocabulary (single-valued facts: a new value supersedes the old one):
  diet               vegetarian | vegan | pescatarian | keto | paleo | omnivore
  location           city or region the user lives in (Lives in X, Moved to X)
  hometown           where the user is from
  employer           organization, or "none" after leaving a job or retiring
  occupation         job title ("nurse", "software engineer")
  relationship_status single | married | engaged | divorced | widowed | in a relationship
  partner, mother, father   the name of that person
  age                years, as digits
A planned event ("Moving to Denver") carries the slot and value of the event itself.
Multi-valued facts (likes, siblings, pets, allergies, intents) have no slot and merge by text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

Tense = Literal["past", "future", "state"]
Builder = Callable[["re.Match[str]"], "list[Fact]"]

NO_EMPLOYER = "none"


@dataclass(frozen=True)
class Fact:
    """A fact as a rule reads it, before time and identity are attached."""

    kind: str
    text: str
    slot: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class Rule:
    """One pattern: what it matches, what facts it builds, how sure and in which tense."""

    name: str
    pattern: re.Pattern[str]
    build: Builder
    confidence: float
    tense: Tense
    # Idioms that carry a modal yet state a fact: "I could talk about jazz all day".
    modal_ok: bool = False
    # Requests state a need even when asked: "can you help me find a tent?"
    in_questions: bool = False
    # Sentence rules see across commas: "careful with pollen, I'm allergic".
    scope: Literal["clause", "sentence"] = "clause"
    # Words of which a text must hold one for the pattern to have a chance: a cheap gate.
    needs: frozenset[str] = frozenset()


# Words keep inner hyphens and contractions ("plant-based", "don't") but not a possessive "'s".
_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*(?:'(?!s\b)[a-z0-9]+)?")


def tokens(text: str) -> frozenset[str]:
    """The lower-cased words of a text, apostrophes and hyphens kept inside words."""
    return frozenset(_TOKEN.findall(text.lower()))


def rule(
    name: str,
    pattern: str,
    build: Builder,
    confidence: float,
    tense: Tense,
    *,
    needs: str | frozenset[str],
    modal_ok: bool = False,
    in_questions: bool = False,
    scope: Literal["clause", "sentence"] = "clause",
) -> Rule:
    """A rule with its pattern compiled case-insensitively; `needs` lists its gate words."""
    gate = tokens(needs) if isinstance(needs, str) else needs
    compiled = _compile(pattern)
    return Rule(name, compiled, build, confidence, tense, modal_ok, in_questions, scope, gate)


def fixed(kind: str, text: str, slot: str | None = None, value: str | None = None) -> Builder:
    """A builder that always states the same fact."""

    def build(match: re.Match[str]) -> list[Fact]:
        return [Fact(kind, text, slot, value)]

    return build


def group(match: re.Match[str], name: str) -> str | None:
    """A named group's text, or None when the pattern has no such group or it did not take part."""
    return match.groupdict().get(name)


def article(noun: str) -> str:
    """ "an" before a vowel letter, else "a"."""
    return "an" if noun[:1].lower() in "aeiou" else "a"


def capitalized(text: str) -> str:
    """The text with its first letter upper-cased."""
    return text[:1].upper() + text[1:]


def word_set(words: str) -> frozenset[str]:
    """The whitespace-separated words of a block of text, as a set."""
    return frozenset(words.split())


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _alt(words: set[str] | list[str] | tuple[str, ...]) -> str:
    """An alternation that tries longer phrases first, spaces matching any whitespace."""
    ordered = sorted(words, key=len, reverse=True)
    return "(?:" + "|".join(re.escape(word).replace(r"\ ", r"\s+") for word in ordered) + ")"


# --- building blocks ---------------------------------------------------------------------------

_ADVERBS = (
    "just",
    "finally",
    "recently",
    "also",
    "actually",
    "officially",
    "already",
    "now",
    "really",
    "totally",
    "absolutely",
    "honestly",
    "definitely",
    "genuinely",
    "truly",
    "seriously",
    "still",
    "kinda",
    "kind of",
    "sort of",
    "pretty much",
    "mostly",
    "generally",
    "usually",
    "always",
    "so",
    "very",
    "quite",
    "simply",
    "literally",
    "particularly",
    "super",
    "personally",
    "originally",
    "currently",
    "both",
    "all",
    "happily",
    "proudly",
    "somehow",
    "eventually",
)
ADV = r"(?:\s+" + _alt(_ADVERBS) + r")*"
I = r"\bi"  # noqa: E741 - the pronoun
I_WE = r"\b(?:i|we)"
I_AM = r"\bi(?:'m|\s+am|m)"
WE_ARE = r"\bwe(?:'re|\s+are)"
I_WE_ARE = rf"(?:{I_AM}|{WE_ARE})"
I_HAVE = r"\b(?:i|we)(?:'ve|\s+have)"
OBJ = r"(?P<obj>[^.;:!?()\[\]\"]{1,100})"
_CAP = r"(?-i:[A-Z][\w'&.-]*)"
_LINK = r"(?:(?:of|de|del|la|le|upon|am|and|&)\s+)?"
PLACE = rf"(?P<place>{_CAP}(?:\s+{_LINK}{_CAP}){{0,3}})"
ORG = rf"(?P<org>(?:the\s+)?{_CAP}(?:\s+{_LINK}{_CAP}){{0,4}})"
NAME = r"(?P<name>(?-i:[A-Z][a-z]+(?:-[A-Z][a-z]+)?))"
# A noun phrase opening its clause, for topic-first statements ("jazz is my favourite thing").
TOPIC = r"^(?P<obj>[^,;:.!?]{1,60}?)"

# Capitalized words that are never a name, place or employer.
STOP_CAPS = word_set(
    """
    i i'm i've i'd i'll the a an my our we you he she they it this that these those and but so
    or if when then there here what who why how yes no ok okay oh hey hi hello thanks thank
    sure well also just really maybe monday tuesday wednesday thursday friday saturday sunday
    january february march april may june july august september october november december last
    next today tomorrow yesterday tonight christmas easter mom dad lol haha btw anyway fyi ps
    update quick plus please sorry honestly anyways guess
    """
)

MEAT = r"(?:meat|red\s+meat|meat\s+(?:or|and)\s+(?:fish|poultry|chicken))"
ANIMAL_PRODUCTS = (
    r"(?:animal\s+products|meat\s+(?:or|and)\s+dairy|dairy\s+(?:or|and)\s+meat"
    r"|meat,?\s+dairy,?\s+(?:or|and)\s+eggs)"
)
DIETS = {
    "vegetarian": "vegetarian",
    "veggie": "vegetarian",
    "vegan": "vegan",
    "pescatarian": "pescatarian",
    "pescetarian": "pescatarian",
    "plant-based": "vegan",
    "plant based": "vegan",
    "keto": "keto",
    "paleo": "paleo",
}
DIET = r"(?P<diet>" + _alt(set(DIETS)) + r")(?![\w-])"
DIET_TEXT = {
    "vegetarian": "Is vegetarian",
    "vegan": "Is vegan",
    "pescatarian": "Is pescatarian",
    "keto": "Follows a keto diet",
    "paleo": "Follows a paleo diet",
    "omnivore": "Eats meat",
}

ROLES = {
    "mother": "mother",
    "mom": "mother",
    "mum": "mother",
    "mommy": "mother",
    "mama": "mother",
    "father": "father",
    "dad": "father",
    "daddy": "father",
    "papa": "father",
    "sister": "sister",
    "brother": "brother",
    "wife": "wife",
    "husband": "husband",
    "hubby": "husband",
    "partner": "partner",
    "spouse": "spouse",
    "boyfriend": "boyfriend",
    "girlfriend": "girlfriend",
    "fiance": "fiance",
    "fiancé": "fiance",
    "fiancee": "fiancee",
    "fiancée": "fiancee",
    "son": "son",
    "daughter": "daughter",
    "grandmother": "grandmother",
    "grandma": "grandmother",
    "granny": "grandmother",
    "nana": "grandmother",
    "grandfather": "grandfather",
    "grandpa": "grandfather",
    "aunt": "aunt",
    "uncle": "uncle",
    "cousin": "cousin",
    "niece": "niece",
    "nephew": "nephew",
    "friend": "friend",
    "best friend": "best friend",
    "roommate": "roommate",
    "boss": "boss",
    "coworker": "coworker",
    "co-worker": "coworker",
    "colleague": "colleague",
    "neighbor": "neighbor",
    "neighbour": "neighbor",
    "stepmom": "stepmother",
    "stepdad": "stepfather",
    "kid": "child",
    "child": "child",
    "baby": "baby",
    "twin": "twin",
    "grandson": "grandson",
    "granddaughter": "granddaughter",
    "mother-in-law": "mother-in-law",
    "father-in-law": "father-in-law",
    "sister-in-law": "sister-in-law",
    "brother-in-law": "brother-in-law",
}
ROLE_SLOTS = {
    "wife": "partner",
    "husband": "partner",
    "partner": "partner",
    "spouse": "partner",
    "boyfriend": "partner",
    "girlfriend": "partner",
    "fiance": "partner",
    "fiancee": "partner",
    "mother": "mother",
    "father": "father",
}
ROLE_PLURALS = {"children": "child", "kids": "child"}
PETS = {
    "dog": "dog",
    "puppy": "dog",
    "pup": "dog",
    "cat": "cat",
    "kitten": "cat",
    "kitty": "cat",
    "parrot": "parrot",
    "bird": "bird",
    "hamster": "hamster",
    "rabbit": "rabbit",
    "bunny": "rabbit",
    "horse": "horse",
    "turtle": "turtle",
    "tortoise": "tortoise",
    "snake": "snake",
    "guinea pig": "guinea pig",
    "lizard": "lizard",
    "goldfish": "goldfish",
    "ferret": "ferret",
    "gecko": "gecko",
}
# Pets are companions with names, like people: the same kind as "Sister is Anna".
PET_KIND = "relationship"
MODS = r"(?:(?P<mod>little|big|older|younger|baby|twin|step|half|late|new|ex|ex-)[\s-]?)?"
ROLE_WORDS = _alt(set(ROLES))
ROLE = r"(?P<role>" + ROLE_WORDS + r")(?![\w-])"
PET = r"(?P<pet>" + _alt(set(PETS)) + r")(?:s|es)?(?![\w-])"
COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
COUNT = r"(?P<count>a|an|one|two|three|four|five|six)"

OCCUPATIONS = (
    "nurse",
    "teacher",
    "doctor",
    "physician",
    "surgeon",
    "dentist",
    "pharmacist",
    "veterinarian",
    "vet",
    "engineer",
    "software engineer",
    "software developer",
    "developer",
    "programmer",
    "web developer",
    "data scientist",
    "data analyst",
    "analyst",
    "designer",
    "graphic designer",
    "lawyer",
    "attorney",
    "accountant",
    "chef",
    "cook",
    "baker",
    "writer",
    "author",
    "journalist",
    "editor",
    "artist",
    "photographer",
    "musician",
    "pilot",
    "firefighter",
    "police officer",
    "cop",
    "scientist",
    "researcher",
    "professor",
    "lecturer",
    "architect",
    "electrician",
    "plumber",
    "carpenter",
    "mechanic",
    "farmer",
    "librarian",
    "consultant",
    "manager",
    "product manager",
    "project manager",
    "barista",
    "bartender",
    "waiter",
    "waitress",
    "cashier",
    "paramedic",
    "therapist",
    "psychologist",
    "social worker",
    "student",
    "college student",
    "grad student",
    "graduate student",
    "phd student",
    "med student",
    "law student",
    "freelancer",
    "entrepreneur",
    "realtor",
    "real estate agent",
    "translator",
    "stay-at-home mom",
    "stay-at-home dad",
    "stay at home mom",
    "stay at home dad",
    "retiree",
    "truck driver",
    "driver",
    "personal trainer",
    "coach",
    "tutor",
    "sales rep",
    "salesperson",
    "flight attendant",
    "soldier",
    "marine",
    "physical therapist",
    "dental hygienist",
    "high school teacher",
    "math teacher",
    "english teacher",
    "teaching assistant",
    "intern",
    "ux designer",
    "game developer",
    "civil engineer",
    "mechanical engineer",
    "data engineer",
)
OCCUPATION = r"(?P<occ>" + _alt(OCCUPATIONS) + r")(?![\w-])"

STATUSES = {
    "single": "single",
    "married": "married",
    "engaged": "engaged",
    "divorced": "divorced",
    "widowed": "widowed",
    "a widow": "widowed",
    "a widower": "widowed",
    "in a relationship": "in a relationship",
    "separated": "separated",
    "newly married": "married",
    "happily married": "married",
    "recently divorced": "divorced",
}
STATUS = r"(?P<status>" + _alt(set(STATUSES)) + r")(?![\w-])"

LANGUAGES = (
    "English",
    "Spanish",
    "French",
    "German",
    "Italian",
    "Portuguese",
    "Mandarin",
    "Chinese",
    "Japanese",
    "Korean",
    "Arabic",
    "Hindi",
    "Russian",
    "Dutch",
    "Swedish",
    "Polish",
    "Greek",
    "Turkish",
    "Vietnamese",
    "Hebrew",
    "Cantonese",
    "Tagalog",
    "Norwegian",
    "Danish",
    "Finnish",
)
LANGUAGE = r"(?P<lang>" + _alt(LANGUAGES) + r")\b"

# Verbs that make "I want to VERB X" a lasting intent rather than an errand or a mood.
_INTENT_VERBS = (
    "buy",
    "purchase",
    "order",
    "get",
    "find",
    "learn",
    "visit",
    "try",
    "adopt",
    "book",
    "upgrade",
    "replace",
    "sell",
    "switch to",
    "start",
    "take up",
    "travel to",
    "go to",
    "build",
    "renovate",
    "remodel",
    "join",
    "run",
    "move to",
    "pick up",
    "invest in",
    "plant",
    "redo",
    "redecorate",
    "set up",
    "train for",
    "sign up for",
    "take",
    "explore",
    "see",
)
INTENT_VERB = r"(?P<verb>" + _alt(_INTENT_VERBS) + r")\b"
# Intent verbs whose object is a destination, which must be a proper noun to count.
PLACE_VERBS = frozenset({"go to", "travel to", "move to", "see"})
BUY_VERBS = frozenset({"buy", "purchase", "order"})


def _words_of(phrases: Iterable[str]) -> frozenset[str]:
    return frozenset(word for phrase in phrases for word in tokens(phrase))


DIET_WORDS = _words_of(DIETS)
OCCUPATION_WORDS = _words_of(OCCUPATIONS)
STATUS_WORDS = _words_of(STATUSES)
ROLE_TOKENS = _words_of(ROLES) | {f"{word}s" for word in _words_of(ROLES)} | {"children", "kids"}
PET_TOKENS = _words_of(PETS) | {f"{word}s" for word in _words_of(PETS)}
INTENT_WORDS = frozenset(verb.split()[0] for verb in _INTENT_VERBS)
