"""Split chat text into the units rules read: statement clauses, with their subjects restored.

Chat is terse: "Been really into jazz for years", "Thinking about getting a tent", "Love
hiking but hate running". A clause that opens (after fillers like "oh btw", "honestly") with a
verb has dropped its "I", which is put back so one set of first-person rules reads both forms.
Questions state nothing, except for the statements before them in the same sentence ("Looking
for a tent, any recommendations?"). A bare noun phrase followed by "it" ("Horror movies? Can't
stand them") lends itself to the pronoun.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from memory.patterns import word_set
from memory.phrases import taste_objects

_QUOTES = re.compile(r"\"[^\"]*\"|“[^”]*”|'(?=[A-Z])[^']*'(?!\w)")
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+|(?<=[.!?])(?=[A-Z])")
_CLAUSES = re.compile(
    r"\s*[;:]\s+|,?\s+(?:but|although|though|whereas|however|except|because|cause)\s+|,\s+so\s+"
    r"|,\s+and\s+(?=(?:i|we|my)\b)|\s+and\s+(?=(?:i|we)\b)|,\s*(?=(?:i|we)\b)"
    r"|,\s+(?=(?:should|would|could|might|must)\b)",
    re.IGNORECASE,
)
_QUESTION_START = re.compile(
    r"^\W*(?:should|could|would|can|do|does|did|is|are|am|will|shall|may|might|what|how|where"
    r"|why|which|who|whom|whose|have|has|any|anyone|anybody)\b(?!')",
    re.IGNORECASE,
)
_FILLER = (
    r"(?:oh|so|well|anyway|anyways|honestly|btw|by\s+the\s+way|fyi|ok|okay|also|plus|update"
    r"|quick\s+update|actually|and|but|lol|haha|yeah|yes|hey|hi|um|uh|ps|p\.s|seriously|frankly"
    r"|sadly|luckily|fun\s+fact|good\s+news|big\s+news|guess\s+what|news|btw\s+fyi|then|now)"
)
_LEAD = re.compile(rf"^(?:[\s\W]*{_FILLER}\b[\s,:;!.\-]*)*", re.IGNORECASE)
_DROPPED_IVE = re.compile(r"^been\b", re.IGNORECASE)
_DROPPED_IM = re.compile(
    r"^(?:thinking|looking|planning|hoping|trying|moving|starting|saving|shopping|searching|hunting"
    r"|heading|flying|visiting|living|working|getting|expecting|graduating|retiring|allergic"
    r"|obsessed|not\s+(?:a|an|into|really|big|keen|vegetarian|vegan|pescatarian)"
    r"|no\s+longer\s+(?!work|eat|live|like|love)|(?:a\s+)?(?:big|huge)\s+fan"
    r"|(?:newly\s+)?married|engaged|divorced|based|originally\s+from|vegetarian|vegan"
    r"|pescatarian)\b",
    re.IGNORECASE,
)
_DROPPED_I = re.compile(
    r"^(?:never|just|finally|recently|really|totally|also|still|always|moved|relocated|started"
    r"|began|went|got|quit|left|lost|bought|adopted|married|joined|graduated|retired|landed"
    r"|switched|settled|turned|became|stopped|gave|love|loved|like|hate|hated|enjoy|enjoyed"
    r"|adore|dislike|can't|cannot|don't|need|want|plan|work|live|grew|speak|no\s+longer"
    r"|finished|completed|welcomed|had|tied|eloped|broke)\b",
    re.IGNORECASE,
)
_DROPPED = re.compile(
    rf"(?:{_DROPPED_IVE.pattern}|{_DROPPED_IM.pattern}|{_DROPPED_I.pattern})", re.IGNORECASE
)
_PRONOUN_OBJECT = re.compile(
    r"\b(love|like|enjoy|adore|hate|dislike|detest|loathe|despise|stand|allergic\s+to)"
    r"\s+(?:it|them|those|that)\b(?!\s+(?:when|if|how|way))",
    re.IGNORECASE,
)
_NOT_NOUNS = word_set(
    """
    is are was were be do does did have has had can will would should could i you we he she
    they it my your our please no yes thanks thank ok okay not don't sure what how why
    """
)


@dataclass(frozen=True)
class Sentence:
    """One sentence: the statement clauses rules read, and the whole text for wider rules."""

    text: str  # the sentence as written (quotes removed)
    statement: str  # what it states: all of it, or the part before a trailing question
    clauses: tuple[str, ...]  # statement clauses, fillers stripped and subjects restored
    question: bool


# One word and a comma before the statement is an interjection, typos included ("wlel, ...",
# "Aynway, never liked it"); a capitalized one may be a name, so only before a dropped "I".
_INTERJECTION = re.compile(r"^[A-Za-z]+,\s+")


def with_subject(clause: str) -> str:
    """The clause without leading fillers and with a dropped "I" restored."""
    body = clause[_LEAD.match(clause).end() :].strip()  # type: ignore[union-attr]
    interjection = _INTERJECTION.match(body)
    if interjection and (body[0].islower() or _DROPPED.match(body[interjection.end() :])):
        body = body[interjection.end() :]
    lowered = body[:1].lower() + body[1:]  # the verb that opened the clause
    if _DROPPED_IVE.match(body):
        return "I've " + lowered
    if _DROPPED_IM.match(body):
        return "I'm " + lowered
    if _DROPPED_I.match(body):
        return "I " + lowered
    return body


def _bare_noun_phrase(segment: str) -> str | None:
    """ "Long distance running" in "Long distance running? No thanks": a topic, or None."""
    body = segment[_LEAD.match(segment).end() :].strip(" ?!.…-")  # type: ignore[union-attr]
    words = body.split()
    if not 0 < len(words) <= 5 or any(word.lower() in _NOT_NOUNS for word in words):
        return None
    if not all(re.fullmatch(r"[A-Za-z][\w'-]*", word) for word in words):
        return None
    things = taste_objects(body)
    if things != [body] and len(things) < 2:
        return None
    # Capitalized only for opening its sentence: "Horror movies?" is about horror movies.
    first = words[0]
    return body[0].lower() + body[1:] if first[1:].islower() else body


def _resolve(segment: str, antecedent: str | None) -> str:
    if not antecedent or not _PRONOUN_OBJECT.search(segment):
        return segment
    return _PRONOUN_OBJECT.sub(lambda match: f"{match.group(1)} {antecedent}", segment)


def _statement(sentence: str, question: bool) -> str:
    if not question:
        return sentence
    parts = [part.strip() for part in sentence.split(",")]
    kept = [part for part in parts[:-1] if part and not _QUESTION_START.match(part)]
    return ", ".join(kept)


def sentences(text: str) -> list[Sentence]:
    """The sentences of `text`, apostrophes unified, quoted speech removed, pronouns resolved."""
    text = _QUOTES.sub(" ", text.replace("’", "'").replace("‘", "'"))
    found: list[Sentence] = []
    carried: str | None = None  # a fragment question's topic, for the next sentence's "it"
    for raw in _SENTENCES.split(text):
        sentence = raw.strip()
        if not sentence:
            continue
        question = sentence.endswith("?") or _QUESTION_START.match(sentence) is not None
        # A pronoun object points back to the segment just before it when that is a bare noun
        # phrase ("Horror movies, I can't stand them"), or to a fragment question before it
        # ("Jazz? Love it!").
        segments = sentence.split(",")
        if _PRONOUN_OBJECT.search(sentence):
            resolved = [_resolve(segments[0], carried)]
            for before, segment in itertools.pairwise(segments):
                resolved.append(_resolve(segment, _bare_noun_phrase(before) or carried))
            sentence = ",".join(resolved)
        carried = _bare_noun_phrase(segments[-1]) if question else None
        statement = _statement(sentence, question)
        clauses = tuple(
            clause
            for part in _CLAUSES.split(statement)
            if part and part.strip() and (clause := with_subject(part))
        )
        found.append(Sentence(sentence, statement, clauses, question))
    return found
