"""The planted truth of a generated dataset, as typed records, and its truth.json form.

Times are UTC datetimes here and RFC 3339 strings with "Z" in the file. Event ids are those of
signals.jsonl / signals.parquet; positions are 0-based line (or row) numbers in that file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from core.errors import SourceError
from core.times import parse_time


@dataclass(frozen=True)
class Counts:
    """What the signals file holds."""

    lines: int  # lines (JSONL) or rows (Parquet) written
    valid_unique: int  # distinct valid events
    by_type: dict[str, int]  # valid unique events per type
    duplicates: int  # valid records written a second time, verbatim
    malformed: dict[str, int]  # malformed lines per kind (JSONL only)


@dataclass(frozen=True)
class UserTruth:
    """A user's planted tastes."""

    user_id: str
    tastes: dict[str, float]  # liked category -> weight, weights sum to 1
    dislikes: tuple[str, ...]
    utc_offset: str  # "+02:00": the offset most of the user's RFC 3339 timestamps carry
    chats: bool


@dataclass(frozen=True)
class Fact:
    """A fact about a user, stated in their own words (chat, review) or shown by searches."""

    fact_id: str
    user_id: str
    kind: str  # preference, dislike, attribute, relationship, life_event, intent
    text: str  # canonical: "Moved to Seattle"
    stated_event_ids: tuple[str, ...]  # in time order
    stated_at: datetime  # the first of them
    valid_from: datetime  # when it became true (for dated facts, the day the phrase names)
    valid_from_tolerance_days: int  # a valid_from this close counts as right
    speaker: str
    source: str  # "message", "search" or "review"
    slot: str | None = None  # location, employer, diet, partner: facts that supersede
    value: str | None = None
    time_phrase: str | None = None  # "last week", "next spring"
    time_direction: str | None = None  # "past" or "future"
    valid_to: datetime | None = None  # the valid_from of the fact that superseded it
    superseded_by: str | None = None
    expires_at: datetime | None = None  # intents only


@dataclass(frozen=True)
class Mention:
    """A text that names a fact which is not the user's: a distractor or a non-fact."""

    event_id: str
    user_id: str
    text: str
    mentions: tuple[str, ...]  # canonical facts it could be mistaken for
    reason: str  # "assistant", "hypothetical", "third_party", "question"


@dataclass(frozen=True)
class Pii:
    """Personal data typed into an event's text, exactly as written."""

    event_id: str
    user_id: str
    kind: str  # "email", "phone" or "card"
    value: str


@dataclass(frozen=True)
class MalformedLine:
    """A line that breaks the contract in exactly one field ("$": the line as a whole)."""

    position: int
    kind: str
    field: str


@dataclass(frozen=True)
class Duplicate:
    """A valid record written again, verbatim, later in the file."""

    position: int
    event_id: str
    original_position: int


@dataclass(frozen=True)
class Truth:
    """Everything planted in one dataset."""

    contract_version: int
    seed: int
    format: str
    start: datetime
    end: datetime
    counts: Counts
    users: tuple[UserTruth, ...]
    facts: tuple[Fact, ...]
    distractors: tuple[Mention, ...]  # assistant turns
    non_facts: tuple[Mention, ...]  # user turns: hypotheticals, third parties, questions
    pii: tuple[Pii, ...]
    malformed: tuple[MalformedLine, ...]
    duplicates: tuple[Duplicate, ...]

    def facts_of(self, user_id: str) -> list[Fact]:
        """The facts planted about one user."""
        return [fact for fact in self.facts if fact.user_id == user_id]


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with "Z", milliseconds only when there are some."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace(".000+00:00", "Z").replace("+00:00", "Z")


def dump_truth(truth: Truth) -> bytes:
    """truth.json: compact, keys in declaration order, times in UTC with "Z"."""
    return orjson.dumps(truth, option=orjson.OPT_UTC_Z)


def _record(cls: type[Any], raw: dict[str, Any]) -> Any:
    values: dict[str, Any] = {}
    for spec in fields(cls):
        value = raw.get(spec.name)
        kind = str(spec.type)
        if "datetime" in kind:
            value = parse_time(value, spec.name)
        elif kind.startswith("tuple") and value is not None:
            value = tuple(value)
        values[spec.name] = value
    return cls(**values)


def load_truth(path: Path) -> Truth:
    """Read truth.json written by `write_dataset`."""
    try:
        raw = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise SourceError(str(path), f"cannot read truth: {error}") from error
    return Truth(
        contract_version=raw["contract_version"],
        seed=raw["seed"],
        format=raw["format"],
        start=datetime.fromisoformat(raw["start"]),
        end=datetime.fromisoformat(raw["end"]),
        counts=Counts(**raw["counts"]),
        users=tuple(_record(UserTruth, user) for user in raw["users"]),
        facts=tuple(_record(Fact, fact) for fact in raw["facts"]),
        distractors=tuple(_record(Mention, item) for item in raw["distractors"]),
        non_facts=tuple(_record(Mention, item) for item in raw["non_facts"]),
        pii=tuple(_record(Pii, item) for item in raw["pii"]),
        malformed=tuple(MalformedLine(**item) for item in raw["malformed"]),
        duplicates=tuple(Duplicate(**item) for item in raw["duplicates"]),
    )
