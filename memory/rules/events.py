"""Life events, past ("we moved to Seattle last week") and planned ("we're moving in spring").

A planned event has its own canonical text in the progressive ("Moving to Denver", "Getting
married", "Starting a new job at Acme") with the same slot and value as the event itself, so the
plan and the later report of it merge by slot, and its `valid_from` is the time it will happen.
"""

from __future__ import annotations

import re

from memory.patterns import (
    ADV,
    COUNT,
    COUNT_WORDS,
    I_AM,
    I_HAVE,
    I_WE,
    I_WE_ARE,
    MODS,
    NAME,
    NO_EMPLOYER,
    ORG,
    PET,
    PET_TOKENS,
    PETS,
    PLACE,
    ROLE,
    Builder,
    Fact,
    I,
    Rule,
    article,
    capitalized,
    fixed,
    group,
    rule,
)
from memory.phrases import proper_noun
from memory.rules.identity import place
from memory.rules.people import pet, role_of


def new_job(planned: bool) -> Builder:
    """ "Started a new job at X" (or "Starting ..." when planned): the employer slot."""
    verb = "Starting" if planned else "Started"

    def build(match: re.Match[str]) -> list[Fact]:
        org = proper_noun(match["org"]) if group(match, "org") else None
        if org:
            return [Fact("life_event", f"{verb} a new job at {org}", "employer", org)]
        return [Fact("life_event", f"{verb} a new job")]

    return build


def union(planned: bool) -> Builder:
    """ "Got married" / "Getting married" (and engaged, divorced): relationship_status."""

    def build(match: re.Match[str]) -> list[Fact]:
        event = (group(match, "event") or "married").lower()
        text = f"{'Getting' if planned else 'Got'} {event}"
        return [Fact("life_event", text, "relationship_status", event)]

    return build


def graduated(planned: bool) -> Builder:
    """ "Graduated from X" / "Graduating from X", or without the school."""
    verb = "Graduating" if planned else "Graduated"

    def build(match: re.Match[str]) -> list[Fact]:
        org = group(match, "org")
        school = (
            proper_noun(org) if org else " ".join((group(match, "school") or "").lower().split())
        )
        return [Fact("life_event", f"{verb} from {school}" if school else verb)]

    return build


def bought_home(match: re.Match[str]) -> list[Fact]:
    """ "Bought a house" (home and place count as a house)."""
    home = match["home"].lower()
    home = "house" if home in ("home", "place") else home
    return [Fact("life_event", f"Bought {article(home)} {home}")]


def got_pet(match: re.Match[str]) -> list[Fact]:
    """ "Got a dog", plus "Has a dog named X" when it is named."""
    animal = PETS[" ".join(match["pet"].lower().split())]
    count = match["count"].lower()
    several = COUNT_WORDS[count] > 1
    facts = [
        Fact(
            "life_event", f"Got {count} {animal}s" if several else f"Got {article(animal)} {animal}"
        )
    ]
    return facts + (pet(match) if group(match, "name") else [])


def passed_away(match: re.Match[str]) -> list[Fact]:
    """ "Father passed away"."""
    role, _ = role_of(match["role"], group(match, "mod"))
    return [Fact("life_event", f"{capitalized(role)} passed away")]


def started_school(match: re.Match[str]) -> list[Fact]:
    """ "Started college"."""
    return [Fact("life_event", f"Started {' '.join(match['school'].lower().split())}")]


_WILL = r"\b(?:i|we)(?:'ll|\s+will)(?:\s+be)?"
_SCHOOL = r"(?:college|university|grad\s+school|law\s+school|med\s+school|high\s+school)"
_JOB = r"(?:job|position|role|gig)"
_KID = r"(?:baby\s+)?(?:son|daughter|baby|twins|boy|girl|little\s+one)"
_FIRST_DAY = rf"\bmy\s+first\s+day\s+(?:at|with)\s+{ORG}"
_HAD_BABY = (
    rf"(?:{I_WE}|{I_HAVE}){ADV}\s+(?:had|welcomed)\s+(?:a\s+|our\s+(?:first\s+|second\s+|third\s+)?)?"
    rf"(?:new\s+)?(?:baby|(?:baby\s+)?(?:boy|girl|son|daughter)|twins)\b"
    rf"|\bmy\s+(?:wife|partner|girlfriend)\s+(?:just\s+)?(?:had\s+(?:a|our)\s+baby|gave\s+birth)"
    rf"|{I}{ADV}\s+gave\s+birth|{I_WE}{ADV}\s+became\s+(?:a\s+)?(?:mom|dad|mother|father|parent)s?\b"
    rf"|\b(?:our|my)\s+(?:new\s+|first\s+|little\s+)?{_KID}\s+(?:was|were)\s+(?:just\s+)?born\b"
)
_EXPECTING = (
    rf"{I_AM}{ADV}\s+pregnant\b|{I_WE_ARE}{ADV}\s+(?:expecting|having)\s+(?:a\s+baby|our\s+first"
    rf"|a\s+(?:baby\s+)?(?:boy|girl)|twins|a\s+little\s+one)|\b(?:our|my)\s+baby\s+is\s+due\b"
    rf"|{I_WE_ARE}{ADV}\s+due\s+(?:in|on|next)\b"
)

RULES: tuple[Rule, ...] = (
    rule(
        "moved",
        rf"(?:{I_WE}|{I_HAVE}){ADV}\s+(?:moved|relocated)\s+(?:back\s+|over\s+|out\s+"
        rf"|all\s+the\s+way\s+)?to\s+{PLACE}",
        place("life_event", "Moved to {}", "location"),
        0.9,
        "past",
        needs="moved relocated",
    ),
    rule(
        "settled_in",
        rf"(?:{I_WE}|{I_HAVE}){ADV}\s+(?:got\s+)?settled\s+(?:down\s+)?in(?:to)?\s+{PLACE}",
        place("life_event", "Moved to {}", "location"),
        0.8,
        "past",
        needs="settled",
    ),
    rule(
        "new_job",
        rf"(?:{I}|{I_HAVE}){ADV}\s+(?:started|began|got|landed|accepted|took)\s+(?:a\s+|my\s+"
        rf"|the\s+)?(?:new\s+)?{_JOB}\s+(?:at|with|for)\s+{ORG}",
        new_job(planned=False),
        0.9,
        "past",
        needs="job position role gig",
    ),
    rule(
        "started_at",
        rf"(?:{I}|{I_HAVE}){ADV}\s+(?:started\s+(?:working\s+|work\s+)?(?:at|for|with)|joined"
        rf"|got\s+hired\s+(?:at|by)|was\s+hired\s+(?:at|by)|accepted\s+an\s+offer\s+from)\s+{ORG}",
        new_job(planned=False),
        0.85,
        "past",
        needs="started joined hired offer",
    ),
    rule(
        "first_day_was",
        rf"(?<!\bis\s)(?<!\bbe\s)(?<!'s\s){_FIRST_DAY}(?!\s+(?:is|will)\b)",
        new_job(planned=False),
        0.85,
        "past",
        needs="first",
    ),
    rule(
        "new_job_bare",
        rf"(?:{I}|{I_HAVE}){ADV}\s+(?:started|got|landed)\s+(?:a|my)\s+new\s+job\b",
        new_job(planned=False),
        0.85,
        "past",
        needs="job",
    ),
    rule(
        "retired",
        rf"(?:{I}{ADV}\s+retired|{I_AM}{ADV}\s+(?:now\s+)?retired|{I_HAVE}{ADV}\s+retired)\b",
        fixed("life_event", "Retired", "employer", NO_EMPLOYER),
        0.85,
        "past",
        needs="retired",
    ),
    rule(
        "got_married",
        rf"(?:{I_WE}|{I_HAVE}){ADV}\s+(?:got|gotten)\s+(?P<event>married|engaged|divorced)\b",
        union(planned=False),
        0.9,
        "past",
        needs="married engaged divorced",
    ),
    rule(
        "married_someone",
        rf"{I_WE}{ADV}\s+(?:tied\s+the\s+knot|eloped|(?:married|wed)\s+(?:my\b|the\s+love|{NAME}))"
        r"|\b(?:our|my)\s+wedding\s+was\b",
        union(planned=False),
        0.85,
        "past",
        needs="married wed tied eloped wedding",
    ),
    rule(
        "broke_up",
        rf"{I_WE}{ADV}\s+(?:broke\s+up|split\s+up)\b|{I}{ADV}\s+(?:dumped|left)\s+my\s+"
        r"(?:boyfriend|girlfriend|partner|husband|wife)\b",
        fixed("life_event", "Broke up with partner", "relationship_status", "single"),
        0.85,
        "past",
        needs="broke split dumped left",
    ),
    rule(
        "had_baby",
        _HAD_BABY,
        fixed("life_event", "Had a baby"),
        0.9,
        "past",
        needs="baby boy girl son daughter twins birth became born",
    ),
    rule(
        "graduated",
        rf"(?:{I}|{I_HAVE}){ADV}\s+graduated(?:\s+from\s+(?:{ORG}|(?P<school>{_SCHOOL})))?",
        graduated(planned=False),
        0.85,
        "past",
        needs="graduated",
    ),
    rule(
        "finished_degree",
        rf"(?:{I}|{I_HAVE}){ADV}\s+(?:finished|completed|got|earned)\s+(?:my\s+)?(?:bachelor'?s?\s+"
        r"|master'?s?\s+|college\s+|university\s+)?(?:degree|studies|diploma|phd|doctorate)\b",
        fixed("life_event", "Graduated"),
        0.8,
        "past",
        needs="degree studies diploma phd doctorate",
    ),
    rule(
        "last_day_before_retiring",
        r"(?<!\bis\s)(?<!\bbe\s)\bmy\s+last\s+day\s+(?:at\s+work\s+|of\s+work\s+)?before\s+"
        r"(?:my\s+)?(?:retirement|retiring|I\s+retire(?:d)?)",
        fixed("life_event", "Retired", "employer", NO_EMPLOYER),
        0.8,
        "past",
        needs="retirement retiring retire retired",
    ),
    rule(
        "bought_home",
        rf"(?:{I_WE}|{I_HAVE}){ADV}\s+(?:bought|purchased|closed\s+on)\s+(?:a|our|my)\s+"
        r"(?:first\s+|new\s+|own\s+)*(?P<home>house|home|condo|apartment|flat|place)\b",
        bought_home,
        0.85,
        "past",
        needs="bought purchased closed",
    ),
    rule(
        "got_pet",
        rf"(?:{I_WE}|{I_HAVE}){ADV}\s+(?:got|adopted|rescued|brought\s+home)\s+{COUNT}\s+"
        rf"(?:new\s+|little\s+|rescue\s+)?{PET}(?:\s*,?\s+(?:named|called)\s+{NAME})?",
        got_pet,
        0.85,
        "past",
        needs=PET_TOKENS,
    ),
    rule(
        "promoted",
        rf"{I}{ADV}\s+(?:got|was|'ve\s+been|have\s+been)\s+promoted",
        fixed("life_event", "Got promoted"),
        0.85,
        "past",
        needs="promoted",
    ),
    rule(
        "passed_away",
        rf"\bmy\s+{MODS}{ROLE}\s+(?:just\s+|recently\s+)?(?:passed\s+away|died)",
        passed_away,
        0.85,
        "past",
        needs="passed died",
    ),
    rule(
        "started_school",
        rf"{I}{ADV}\s+started\s+(?P<school>{_SCHOOL})",
        started_school,
        0.85,
        "past",
        needs="started",
    ),
    # planned
    rule(
        "moving",
        rf"(?:{I_WE_ARE}{ADV}\s+(?:moving|relocating)|{_WILL}{ADV}\s+(?:moving|move|relocating"
        rf"|relocate))\s+(?:back\s+)?to\s+{PLACE}",
        place("life_event", "Moving to {}", "location"),
        0.8,
        "future",
        needs="moving relocating move relocate",
    ),
    rule(
        "starting_job",
        rf"(?:{I}{ADV}\s+(?:start|begin)|{I_AM}{ADV}\s+(?:starting|beginning)|{_WILL}{ADV}"
        rf"\s+(?:start|starting|begin|beginning|joining|join))\s+(?:a\s+|my\s+)?(?:new\s+)?"
        rf"(?:{_JOB}\s+|work\s+|working\s+)?(?:at|with|for)"
        rf"\s+{ORG}",
        new_job(planned=True),
        0.85,
        "future",
        needs="start starting begin beginning joining join",
    ),
    rule(
        "first_day_is",
        rf"(?:\b(?:is|will\s+be)\s+|'s\s+){_FIRST_DAY}",
        new_job(planned=True),
        0.85,
        "future",
        needs="first",
    ),
    rule(
        "first_day_will_be",
        rf"{_FIRST_DAY}\s+(?:is|will\s+be)\b",
        new_job(planned=True),
        0.85,
        "future",
        needs="first",
    ),
    rule(
        "getting_married",
        rf"(?:{I_WE_ARE}{ADV}\s+getting|{_WILL}{ADV}\s+(?:getting|get))\s+"
        r"(?P<event>married|engaged|divorced)\b|\b(?:our|my)\s+wedding\s+is\b",
        union(planned=True),
        0.8,
        "future",
        needs="married engaged divorced wedding",
    ),
    rule(
        "expecting",
        _EXPECTING,
        fixed("life_event", "Expecting a baby"),
        0.85,
        "future",
        needs="pregnant expecting having due",
    ),
    rule(
        "graduating",
        rf"(?:{I_AM}{ADV}\s+graduating|{_WILL}{ADV}\s+graduat(?:e|ing))"
        rf"(?:\s+from\s+(?:{ORG}|(?P<school>{_SCHOOL})))?",
        graduated(planned=True),
        0.8,
        "future",
        needs="graduating graduate",
    ),
    rule(
        "last_day_is_before_retiring",
        r"\b(?:is|will\s+be)\s+my\s+last\s+day\s+(?:at\s+work\s+|of\s+work\s+)?before\s+"
        r"(?:my\s+)?(?:retirement|retiring|I\s+retire)",
        fixed("life_event", "Retiring", "employer", NO_EMPLOYER),
        0.8,
        "future",
        needs="retirement retiring retire",
    ),
    rule(
        "retiring",
        rf"{I_AM}{ADV}\s+retiring\b|{_WILL}{ADV}\s+retir(?:e|ing)\b",
        fixed("life_event", "Retiring", "employer", NO_EMPLOYER),
        0.8,
        "future",
        needs="retiring retire",
    ),
)
