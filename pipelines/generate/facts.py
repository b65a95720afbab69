"""What a chatting user reveals about themselves: fact templates, plans and their queries.

A plan is a fact before it is said: its kind, canonical text, slot and value, the first-person
wordings it may take and the memory query that should find it. Plans come in threads: the facts of
one slot in the order they become true (lives in Seattle, then moved to Denver), so each is said
in a later chat session than the one before. Only the last fact of a thread may be dated in the
future, so a thread never contradicts itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pipelines.generate.lexicon import (
    ALLERGIES,
    CITIES,
    COMPANIES,
    DIETS,
    PEOPLE,
    PET_NAMES,
    PETS,
    Category,
)
from pipelines.generate.timephrases import Direction

_LOCATION = (
    "where does the user live",
    "which city is the user's home",
    "where is the user located",
    "the user's current town",
)
_EMPLOYER = ("where does the user work", "who employs the user", "the user's workplace")
_DIET = (
    "what does the user eat",
    "any dietary restrictions for this user",
    "does the user eat meat",
    "food choices of the user",
)
_FAMILY = ("how has the user's family changed", "new additions to the user's family")
_MARRIAGE = ("what is the user's relationship status", "big milestones in the user's relationship")


@dataclass(frozen=True)
class FactTemplate:
    """A kind of fact: canonical text, first-person wordings and queries, with placeholders.

    Wordings start in lower case (or with "I" or a name): the chat layer capitalises some turns.
    "{when}" marks where a relative time phrase goes; other placeholders are the fact's values.
    """

    kind: str
    text: str
    wordings: tuple[str, ...]
    queries: tuple[str, ...]
    slot: str | None = None
    slot_value: str | None = None  # what the slot holds, e.g. "{city}" or "omnivore"
    direction: Direction | None = None
    plain: tuple[str, ...] = ()  # wordings without a time phrase, when none fits the thread
    follow_up: str | None = None  # a second user turn that completes the first


TEMPLATES: dict[str, FactTemplate] = {
    "likes": FactTemplate(
        "preference",
        "Likes {v}",
        (
            "I really love {v}",
            "I'm a huge fan of {v}",
            "{v} is basically my favourite thing",
            "been really into {v} for years",
            "honestly nothing beats {v}",
            "{v} makes me so happy",
            "I could talk about {v} all day",
        ),
        (
            "what {domain} does the user enjoy",
            "which {domain} is the user into",
            "the user's favourite {domain}",
            "what does the user like when it comes to {domain}",
        ),
    ),
    "dislikes": FactTemplate(
        "dislike",
        "Dislikes {v}",
        (
            "I can't stand {v}",
            "{v}? no thanks, I really dislike it",
            "please don't suggest {v}, I hate it",
            "{v} is just not for me at all",
            "never enjoyed {v}, to be honest",
        ),
        (
            "which {domain} should we avoid recommending to the user",
            "what {domain} does the user not enjoy",
            "anything in {domain} the user is not keen on",
        ),
    ),
    "intent": FactTemplate(
        "intent",
        "Wants to buy {v}",
        (
            "I need to buy {v} soon",
            "looking for {v}, any recommendations?",
            "thinking about getting {v}",
            "can you help me find {v}?",
        ),
        (
            "what is the user shopping for",
            "which purchase is the user planning",
            "what product does the user need at the moment",
        ),
    ),
    "lives_in": FactTemplate(
        "attribute",
        "Lives in {city}",
        (
            "I live in {city}",
            "here in {city} it's been raining nonstop",
            "I'm based in {city}",
            "{city} is home for me",
        ),
        _LOCATION,
        "location",
        "{city}",
    ),
    "moved": FactTemplate(
        "life_event",
        "Moved to {city}",
        (
            "we moved to {city} {when}",
            "{when} I moved to {city}",
            "finally settled in {city}, we moved {when}",
        ),
        _LOCATION,
        "location",
        "{city}",
        "past",
        ("we just moved to {city}", "I've just relocated to {city}"),
    ),
    "moving": FactTemplate(
        "life_event",
        "Moving to {city}",
        ("we're moving to {city} {when}", "{when} I'm relocating to {city}"),
        _LOCATION,
        "location",
        "{city}",
        "future",
    ),
    "works_at": FactTemplate(
        "attribute",
        "Works at {company}",
        (
            "I work at {company}",
            "I'm an engineer at {company}",
            "my job at {company} keeps me busy",
            "things at {company}, where I work, are hectic",
        ),
        _EMPLOYER,
        "employer",
        "{company}",
    ),
    "started_job": FactTemplate(
        "life_event",
        "Started a new job at {company}",
        (
            "I started a new job at {company} {when}",
            "{when} was my first day at {company}",
            "started at {company} {when}, still learning the ropes",
        ),
        _EMPLOYER,
        "employer",
        "{company}",
        "past",
        ("I just started a new job at {company}",),
    ),
    "starting_job": FactTemplate(
        "life_event",
        "Starting a new job at {company}",
        ("I start my new job at {company} {when}", "{when} I begin working at {company}"),
        _EMPLOYER,
        "employer",
        "{company}",
        "future",
    ),
    "left_job": FactTemplate(
        "attribute",
        "No longer works at {company}",
        ("I don't work at {company} anymore", "left {company}, taking a break from work for now"),
        _EMPLOYER,
        "employer",
        "none",
    ),
    "diet": FactTemplate(
        "attribute",
        "Is {diet}",
        (
            "I'm {diet}, so please keep that in mind",
            "as a {diet} I always check the ingredients",
            "went {diet} a few years back and never looked back",
            "just so you know, I'm {diet}",
        ),
        _DIET,
        "diet",
        "{diet}",
    ),
    "diet_dropped": FactTemplate(
        "attribute",
        "Is no longer {diet}",
        (
            "I'm not {diet} anymore, I eat meat again",
            "gave up being {diet}, I eat everything now",
            "quick update: no longer {diet}, meat is back on the menu",
        ),
        _DIET,
        "diet",
        "omnivore",
    ),
    "allergy": FactTemplate(
        "attribute",
        "Is allergic to {allergen}",
        (
            "I'm allergic to {allergen}",
            "careful with {allergen}, I'm allergic",
            "can't be around {allergen}, allergies",
        ),
        ("does the user have any allergies", "health issues to keep in mind for the user"),
    ),
    "pet": FactTemplate(
        "relationship",
        "Has a {pet} named {name}",
        (
            "my {pet} {name} keeps stealing my socks",
            "we have a {pet} called {name}",
            "{name}, our {pet}, needs a new bed",
        ),
        (
            "does the user have pets",
            "what animals live with the user",
            "the user's animal companion",
        ),
    ),
    "pet_two_turns": FactTemplate(
        "relationship",
        "Has a {pet} named {name}",
        ("we have a {pet} at home",),
        ("does the user have pets", "what animals live with the user"),
        follow_up="{pronoun} name is {name}",
    ),
    "sibling": FactTemplate(
        "relationship",
        "{Who} is {name}",
        (
            "my {who} {name} is visiting soon",
            "{name}, my older {who}, lives nearby",
            "going shopping with my {who} {name}",
        ),
        ("who are the user's siblings", "names of the user's family members"),
    ),
    "partner": FactTemplate(
        "relationship",
        "{Who} is {name}",
        (
            "my {who} {name} loves this brand",
            "my {who} {name} and I share this account",
            "buying this for my {who} {name}",
        ),
        (
            "who is the user's partner",
            "is the user married or in a relationship",
            "the user's significant other",
        ),
        "partner",
        "{name}",
    ),
    "child": FactTemplate(
        "relationship",
        "Has a {who} named {name}",
        (
            "my {who} {name} is six",
            "shopping for my {who} {name}",
            "{name}, my {who}, wants one too",
        ),
        ("does the user have kids", "who are the user's children"),
    ),
    "had_baby": FactTemplate(
        "life_event",
        "Had a baby",
        ("we had a baby girl {when}!", "our son was born {when}", "{when} we became parents"),
        _FAMILY,
        direction="past",
    ),
    "expecting": FactTemplate(
        "life_event",
        "Expecting a baby",
        ("we're expecting a baby {when}", "our baby is due {when}"),
        _FAMILY,
        direction="future",
    ),
    "married": FactTemplate(
        "life_event",
        "Got married",
        ("we got married {when}", "{when} I married my partner"),
        _MARRIAGE,
        direction="past",
    ),
    "getting_married": FactTemplate(
        "life_event",
        "Getting married",
        ("we're getting married {when}", "our wedding is {when}"),
        _MARRIAGE,
        direction="future",
    ),
    "graduated": FactTemplate(
        "life_event",
        "Graduated from university",
        ("I graduated from university {when}", "{when} I finally finished my degree"),
        ("what is the user's education", "has the user completed their studies"),
        direction="past",
    ),
    "retired": FactTemplate(
        "life_event",
        "Retired",
        ("I retired {when}", "{when} was my last day before retirement"),
        ("is the user still working", "the user's career stage"),
        direction="past",
    ),
}


class _Values(dict[str, str]):
    """Fills known placeholders and leaves the others, such as {when}, in place."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class FactPlan:
    """A fact to plant, before it is said."""

    kind: str
    text: str  # canonical: "Moved to Seattle"
    wordings: tuple[str, ...]  # one is chosen; may hold "{when}"
    query: str
    slot: str | None = None
    value: str | None = None
    direction: Direction | None = None
    plain: tuple[str, ...] = ()
    follow_up: str | None = None
    expires_days: tuple[int, int] | None = None
    restated: bool = False  # said again, in other words, in a later session


def make(rng: random.Random, template: str, **values: str) -> FactPlan:
    """A plan from `template` (a key of TEMPLATES) with these values."""
    spec = TEMPLATES[template]
    fill = _Values(values)

    def render(texts: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(text.format_map(fill) for text in texts)

    return FactPlan(
        kind=spec.kind,
        text=spec.text.format_map(fill),
        wordings=render(spec.wordings),
        query=rng.choice(spec.queries).format_map(fill),
        slot=spec.slot,
        value=spec.slot_value.format_map(fill) if spec.slot_value else None,
        direction=spec.direction,
        plain=render(spec.plain),
        follow_up=spec.follow_up.format_map(fill) if spec.follow_up else None,
        expires_days=(7, 14) if spec.kind == "intent" else None,
        restated=spec.kind == "preference" and rng.random() < 0.15,
    )


@dataclass
class Profile:
    """What a user's facts draw on, and which values are taken."""

    liked: list[Category]
    disliked: list[Category]
    used: set[str] = field(default_factory=set)

    def fresh(self, rng: random.Random, pool: tuple[str, ...]) -> str:
        """A value from `pool` this user has not used yet."""
        value = rng.choice([item for item in pool if item not in self.used] or list(pool))
        self.used.add(value)
        return value


def _location_thread(rng: random.Random, profile: Profile) -> list[FactPlan]:
    first = "lives_in" if rng.random() < 0.6 else "moved"
    thread = [make(rng, first, city=profile.fresh(rng, CITIES))]
    length = 1 + (rng.random() < 0.45) + (rng.random() < 0.35)
    while len(thread) < length:
        future = len(thread) == length - 1 and rng.random() < 0.3
        thread.append(make(rng, "moving" if future else "moved", city=profile.fresh(rng, CITIES)))
    return thread


def _employer_thread(rng: random.Random, profile: Profile) -> list[FactPlan]:
    company = profile.fresh(rng, COMPANIES)
    thread = [make(rng, "works_at", company=company)]
    roll = rng.random()
    if roll < 0.4:
        change = "starting_job" if rng.random() < 0.3 else "started_job"
        thread.append(make(rng, change, company=profile.fresh(rng, COMPANIES)))
    elif roll < 0.55:
        thread.append(make(rng, "left_job", company=company))
    return thread


def _diet_thread(rng: random.Random, profile: Profile) -> list[FactPlan]:
    diet = profile.fresh(rng, DIETS)
    thread = [make(rng, "diet", diet=diet)]
    if rng.random() < 0.35:
        thread.append(make(rng, "diet_dropped", diet=diet))
    return thread


def _relationship(rng: random.Random, profile: Profile) -> FactPlan:
    roll = rng.randrange(4)
    if roll == 2 and "partner" in profile.used:
        roll = 1  # one partner per user: a second would read as a change of partner
    if roll == 0:
        template = "pet_two_turns" if rng.random() < 0.3 else "pet"
        pet, pet_name = profile.fresh(rng, PETS), profile.fresh(rng, PET_NAMES)
        return make(rng, template, pet=pet, name=pet_name, pronoun=rng.choice(("his", "her")))
    person = profile.fresh(rng, PEOPLE)
    if roll == 1:
        who = rng.choice(("sister", "brother"))
        return make(rng, "sibling", who=who, Who=who.capitalize(), name=person)
    if roll == 2:
        profile.used.add("partner")
        who = rng.choice(("wife", "husband", "partner"))
        return make(rng, "partner", who=who, Who=who.capitalize(), name=person)
    return make(rng, "child", who=rng.choice(("son", "daughter")), name=person)


def _life_event(rng: random.Random) -> FactPlan:
    future = rng.random() < 0.3
    if future:
        return make(rng, rng.choice(("expecting", "getting_married")))
    return make(rng, rng.choice(("had_baby", "married", "graduated", "retired")))


def plan_threads(rng: random.Random, profile: Profile) -> list[list[FactPlan]]:
    """The fact threads of one chatting user; at least one fact."""
    threads: list[list[FactPlan]] = []
    for category in rng.sample(profile.liked, k=min(len(profile.liked), rng.randint(1, 2))):
        value = profile.fresh(rng, category.likes)
        threads.append([make(rng, "likes", v=value, domain=category.domain)])
    if profile.disliked and rng.random() < 0.6:
        category = rng.choice(profile.disliked)
        value = profile.fresh(rng, category.likes)
        threads.append([make(rng, "dislikes", v=value, domain=category.domain)])
    if rng.random() < 0.3:
        threads.append(_diet_thread(rng, profile))
    if rng.random() < 0.6:
        threads.append(_location_thread(rng, profile))
    if rng.random() < 0.4:
        threads.append(_employer_thread(rng, profile))
    if rng.random() < 0.15:
        threads.append([make(rng, "allergy", allergen=rng.choice(ALLERGIES))])
    for _ in range(rng.choice((0, 1, 1, 2))):
        threads.append([_relationship(rng, profile)])
    if rng.random() < 0.3:
        threads.append([_life_event(rng)])
    if rng.random() < 0.35:
        category = rng.choice(profile.liked)
        fresh = [i.thing for i in category.intents if i.thing not in profile.used]
        if fresh:
            thing = rng.choice(fresh)
            profile.used.add(thing)
            threads.append([make(rng, "intent", v=thing)])
    return threads
