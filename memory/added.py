"""Memories an application states itself, and its edits of any memory. Pure: no clients.

An added memory (POST /v1/users/{user_id}/memories) is a statement the application makes about
its user: "Lives in Boston", "I am vegetarian", "Prefers window seats". It joins the user's
memories through the same lifecycle as extracted ones (memory.lifecycle: merged with what is
already known, superseded by a later change), so it carries what they carry:

- kind, slot and value, read from the text by the rules of memory.extract, as the user would
  have said it: "Lives in Boston" is read as "I live in Boston" (an attribute, slot location,
  value Boston), so a later "I moved to Seattle" supersedes it exactly as it would an extracted
  "Lives in Boston". A kind given by the application wins over the one read (the slot is
  kept: slots are not tied to a kind); a text the rules do not read is an `attribute` with no
  slot, merged by text and vector only.
- its own words: the text is kept as given (whitespace folded), not the rules' wording.
- provenance: one source id of its own, `added:<hex>`, so two additions of the same fact add
  evidence to one memory, and forget finds it under the user like any other.
- times: `valid_from` as given (default: now); `created_at` = `updated_at` = now, when Engram
  learnt it, so a search as of an earlier time does not see it. An intent expires as an
  extracted one does (memory.extract.intent_expiry).
- confidence `ADDED_CONFIDENCE`: the application asserts it; it does not guess.

An edit (PATCH) corrects one memory in place: new text (its slot and value read again) or new
validity. The id stays; the version it replaces is kept as history (memory.store).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from core.errors import InvalidInputError
from memory.extract import RuleExtractor, TextSignal, intent_expiry
from memory.records import FACT_KINDS, Memory, MemoryKind, memory_id_for

ADDED_CONFIDENCE = 1.0
DEFAULT_KIND: MemoryKind = "attribute"
ADDED_SOURCE_PREFIX = "added:"
_SUBJECT = re.compile(r"^(?:the\s+)?user(?:'s)?\s+", re.IGNORECASE)
_IRREGULAR = {"is": "am", "has": "have", "does": "do", "was": "was"}


@dataclass(frozen=True)
class NewMemory:
    """What an application says about its user: a text, and optionally its kind, when it
    started to hold, and the scope it belongs to."""

    text: str
    kind: MemoryKind | None = None
    valid_from: datetime | None = None
    scope: str | None = None


@dataclass(frozen=True)
class Read:
    """What the rules read in a text: a kind, and a slot and value for single-valued facts."""

    kind: MemoryKind
    slot: str | None
    value: str | None


def folded(text: str) -> str:
    """The text with its whitespace folded; InvalidInputError when nothing is left."""
    words = " ".join(text.split())
    if not words:
        raise InvalidInputError("text", "must not be blank")
    return words


def first_person(text: str) -> str:
    """A third-person statement as its user would say it: "Lives in Boston" -> "I live in
    Boston", "The user is vegan" -> "I am vegan"."""
    verb, _, rest = _SUBJECT.sub("", text.strip()).partition(" ")
    word = verb.lower()
    if word in _IRREGULAR:
        word = _IRREGULAR[word]
    elif word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("ches", "shes", "sses", "xes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return f"I {word} {rest}".strip()


def read(text: str, rules: RuleExtractor, at: datetime) -> Read | None:
    """The first fact the rules read in `text` as said, as said in the first person, or about
    "my" someone ("Sister is Anna"); None when they read none."""
    for said in (text, first_person(text), f"My {text[:1].lower()}{text[1:]}"):
        facts = rules.facts(TextSignal("read", "read", at, "message", said))
        if facts:
            fact = facts[0]
            return Read(fact.kind, fact.slot, fact.value)
    return None


def added_memory(
    user_id: str, new: NewMemory, *, source_id: str, now: datetime, rules: RuleExtractor
) -> Memory:
    """The memory an application states (see the module doc); `source_id` is its provenance."""
    text = folded(new.text)
    valid_from = new.valid_from or now
    found = None if new.kind == "episode" else read(text, rules, valid_from)
    kind: MemoryKind = new.kind or (found.kind if found else DEFAULT_KIND)
    slot = found.slot if found is not None and kind in FACT_KINDS else None
    return Memory(
        memory_id=memory_id_for(user_id, kind, text, source_id),
        user_id=user_id,
        kind=kind,
        text=text,
        confidence=ADDED_CONFIDENCE,
        valid_from=valid_from,
        created_at=now,
        updated_at=now,
        source_event_ids=(source_id,),
        slot=slot,
        value=found.value if slot is not None and found is not None else None,
        expires_at=intent_expiry(valid_from, None) if kind == "intent" else None,
        scope=new.scope,
    )


class Keep:
    """The type of `KEEP`: an argument of `edited` left out (None is "no end" for valid_to)."""


KEEP = Keep()


def edited(
    memory: Memory,
    *,
    now: datetime,
    rules: RuleExtractor,
    text: str | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | Keep | None = KEEP,
) -> Memory:
    """`memory` corrected: a new text (its slot and value read again), a new start, a new end
    (None reopens it, and it is no longer superseded). Arguments left out stay as they were."""
    changes: dict[str, object] = {}
    if text is not None:
        new_text = folded(text)
        if new_text != memory.text:
            changes["text"] = new_text
            if memory.kind != "episode":
                found = read(new_text, rules, valid_from or memory.valid_from)
                changes["slot"] = found.slot if found else None
                changes["value"] = found.value if found and found.slot else None
    if valid_from is not None:
        changes["valid_from"] = valid_from
    if not isinstance(valid_to, Keep):
        changes["valid_to"] = valid_to
        if valid_to is None:
            changes["superseded_by"] = None
    start = changes.get("valid_from", memory.valid_from)
    end = changes.get("valid_to", memory.valid_to)
    if isinstance(end, datetime) and isinstance(start, datetime) and end <= start:
        raise InvalidInputError("valid_to", "must be later than valid_from")
    if not changes or all(getattr(memory, name) == value for name, value in changes.items()):
        return memory
    return memory.evolve(**changes, updated_at=max(now, memory.updated_at))


def history_id(memory_id: str, replaced_at_micros: int) -> str:
    """The row id of a memory's version replaced at that time (never a memory id: `h-`)."""
    digest = hashlib.blake2b(f"{memory_id}\x1f{replaced_at_micros}".encode(), digest_size=12)
    return f"h-{digest.hexdigest()}"
