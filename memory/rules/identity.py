"""Who the user is: home, work, relationship status, age, languages."""

from __future__ import annotations

import re

from memory.patterns import (
    ADV,
    I_AM,
    I_HAVE,
    I_WE,
    I_WE_ARE,
    LANGUAGE,
    NO_EMPLOYER,
    OCCUPATION,
    OCCUPATION_WORDS,
    ORG,
    PLACE,
    STATUS,
    STATUS_WORDS,
    STATUSES,
    Builder,
    Fact,
    I,
    Rule,
    article,
    group,
    rule,
)
from memory.phrases import proper_noun


def place(kind: str, template: str, slot: str) -> Builder:
    """A builder for a fact about a capitalized place ("Lives in {}", "Moved to {}")."""

    def build(match: re.Match[str]) -> list[Fact]:
        name = proper_noun(match["place"])
        return [Fact(kind, template.format(name), slot, name)] if name else []

    return build


def works_at(match: re.Match[str]) -> list[Fact]:
    """ "Works at X": the employer slot."""
    org = proper_noun(match["org"])
    return [Fact("attribute", f"Works at {org}", "employer", org)] if org else []


def left_employer(match: re.Match[str]) -> list[Fact]:
    """ "No longer works at X" (employer cleared), or the bare event when X is not named."""
    org = proper_noun(match["org"]) if group(match, "org") else None
    if org:
        return [Fact("attribute", f"No longer works at {org}", "employer", NO_EMPLOYER)]
    return [Fact("life_event", "Left job", "employer", NO_EMPLOYER)]


def occupation(match: re.Match[str]) -> list[Fact]:
    """ "Is a nurse" (occupation slot), and "Works at X" when the employer is named too."""
    job = " ".join(match["occ"].lower().split())
    facts = [Fact("attribute", f"Is {article(job)} {job}", "occupation", job)]
    return facts + (works_at(match) if group(match, "org") else [])


def status(match: re.Match[str]) -> list[Fact]:
    """ "Is married": the relationship_status slot."""
    value = STATUSES[" ".join(match["status"].lower().split())]
    return [Fact("attribute", f"Is {value}", "relationship_status", value)]


def age(match: re.Match[str]) -> list[Fact]:
    """ "Is 34 years old", for plausible adult and teen ages."""
    years = match["age"]
    return [Fact("attribute", f"Is {years} years old", "age", years)] if int(years) >= 10 else []


def language(match: re.Match[str]) -> list[Fact]:
    """ "Speaks Spanish"."""
    return [Fact("attribute", f"Speaks {match['lang'].capitalize()}")]


_LIVE = (
    rf"(?:{I_WE}{ADV}\s+(?:live|reside)|{I_WE_ARE}{ADV}\s+living"
    rf"|{I_HAVE}{ADV}\s+(?:lived|been\s+living)|{I_AM}{ADV}\s+(?:based|located))"
)
_WORK = rf"(?:{I}{ADV}\s+work|{I_AM}{ADV}\s+working|{I_HAVE}{ADV}\s+been\s+working)"
_JOB_MODS = (
    r"(?:registered|senior|junior|full-time|part-time|freelance|professional|licensed"
    r"|certified|lead|head|high\s+school|middle\s+school|elementary\s+school)"
)
# Visitors are "here in Rome" too; a clause about a trip is not about home.
_NOT_A_VISIT = r"^(?!.*\b(?:visit\w*|trip|vacation|holiday|conference|business|staying|travel\w*))"

RULES: tuple[Rule, ...] = (
    rule(
        "lives_in",
        rf"{_LIVE}\s+(?:in|out\s+of)\s+{PLACE}",
        place("attribute", "Lives in {}", "location"),
        0.9,
        "state",
        needs="live reside living lived based located",
    ),
    rule(
        "place_is_home",
        rf"(?:^|\s){PLACE}\s+is\s+(?:now\s+|finally\s+|still\s+)?(?:my\s+|our\s+)?home\b",
        place("attribute", "Lives in {}", "location"),
        0.8,
        "state",
        needs="home",
    ),
    rule(
        "call_place_home",
        rf"{I_WE}{ADV}\s+call\s+{PLACE}\s+home\b",
        place("attribute", "Lives in {}", "location"),
        0.8,
        "state",
        needs="home",
    ),
    rule(
        "home_is_place",
        rf"\bhome\s+is\s+(?:now\s+)?{PLACE}",
        place("attribute", "Lives in {}", "location"),
        0.8,
        "state",
        needs="home",
    ),
    rule(
        "here_in",
        rf"{_NOT_A_VISIT}.*?\b(?:here\s+in|over\s+here\s+in|where\s+I\s+live\s+in)\s+{PLACE}",
        place("attribute", "Lives in {}", "location"),
        0.7,
        "state",
        needs="here where",
    ),
    rule(
        "from",
        rf"(?:{I_AM}{ADV}\s+from|{I}{ADV}\s+grew\s+up\s+in)\s+{PLACE}",
        place("attribute", "Is from {}", "hometown"),
        0.85,
        "state",
        needs="from grew",
    ),
    rule(
        "works_at", rf"{_WORK}\s+(?:at|for)\s+{ORG}", works_at, 0.9, "state", needs="work working"
    ),
    rule(
        "employed",
        rf"{I_AM}{ADV}\s+employed\s+(?:at|by)\s+{ORG}",
        works_at,
        0.9,
        "state",
        needs="employed",
    ),
    rule(
        "where_i_work",
        rf"{ORG},?\s+where\s+(?:I|we){ADV}\s+(?:work|am\s+working|'m\s+working)\b",
        works_at,
        0.85,
        "state",
        needs="work working",
    ),
    rule(
        "my_job_at",
        # Not "I start my new job at X": that is a plan (memory.rules.events).
        rf"(?<!start\s)(?<!begin\s)(?<!starting\s)"
        rf"\bmy\s+(?:new\s+|current\s+|day\s+|full[\s-]time\s+|part[\s-]time\s+)?"
        rf"(?:job|work|role|position)\s+(?:at|with)\s+{ORG}",
        works_at,
        0.8,
        "state",
        needs="job work role position",
    ),
    rule(
        "occupation",
        rf"(?:{I_AM}|{I}{ADV}\s+work\s+as|{I_HAVE}\s+been\s+working\s+as){ADV}\s+(?:a|an)\s+"
        rf"(?:{_JOB_MODS}\s+)?{OCCUPATION}(?:\s+(?:at|for|with)\s+{ORG})?",
        occupation,
        0.85,
        "state",
        needs=OCCUPATION_WORDS,
    ),
    rule(
        "left_job",
        rf"{I}{ADV}\s+(?:quit|left|lost)\s+my\s+(?:old\s+)?job(?:\s+at\s+{ORG})?",
        left_employer,
        0.85,
        "past",
        needs="job",
    ),
    rule(
        "left_for_good",
        # "I left Acme" could be a city; talk of work in the sentence says it was a job.
        rf"{I}{ADV}\s+(?:resigned\s+from\s+|(?:left|quit)\s+(?=\S+.*\b(?:work|job|career|company"
        rf"|employer|boss|office|colleagues|coworkers|team|notice)\b)){ORG}",
        left_employer,
        0.75,
        "past",
        needs="left resigned quit",
        scope="sentence",
    ),
    rule(
        "no_longer_works",
        rf"{I}{ADV}\s+no\s+longer\s+work\s+(?:at|for)\s+{ORG}",
        left_employer,
        0.85,
        "past",
        needs="longer",
    ),
    rule(
        "not_working_anymore",
        rf"{I}{ADV}\s+(?:don't|do\s+not|dont)\s+work\s+(?:at|for)\s+{ORG}\s+any\s*more",
        left_employer,
        0.85,
        "past",
        needs="anymore more",
    ),
    rule(
        "laid_off",
        rf"{I}{ADV}\s+(?:got|was|have\s+been|'ve\s+been)\s+(?:laid\s+off|fired|let\s+go)"
        rf"(?:\s+(?:from|by|at)\s+{ORG})?",
        left_employer,
        0.85,
        "past",
        needs="laid fired let",
    ),
    rule(
        "status",
        rf"{I_AM}{ADV}\s+{STATUS}(?<!engaged)(?<!separated)",
        status,
        0.85,
        "state",
        needs=STATUS_WORDS,
    ),
    rule(
        "engaged",
        rf"{I_AM}{ADV}\s+(?P<status>engaged|separated)(?!\s+(?:in|with|from|by|on)\b)",
        status,
        0.85,
        "state",
        needs="engaged separated",
    ),
    rule(
        "age",
        rf"{I_AM}{ADV}\s+(?P<age>\d{{2}})\s*(?:years?\s+old|yo|y/o|yrs?\s+old)\b",
        age,
        0.9,
        "state",
        needs="old yo y yr yrs",
    ),
    rule(
        "turned",
        rf"{I}{ADV}\s+(?:just\s+)?turned\s+(?P<age>\d{{2}})\b",
        age,
        0.85,
        "state",
        needs="turned",
    ),
    rule(
        "speaks",
        rf"{I}{ADV}\s+speak\s+(?:fluent\s+)?{LANGUAGE}",
        language,
        0.85,
        "state",
        needs="speak",
    ),
)
