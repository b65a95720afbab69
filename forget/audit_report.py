"""What the forget audit looks for and what it found: needles, hits and a report per place."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

# Encodings a string may be stored in on disk: UTF-8 (text, JSON, RESP, pickled str), UTF-16
# (some binary formats) and UTF-32 (numpy's fixed-width str arrays, pickled as raw buffers).
_ENCODINGS = ("utf-8", "utf-16-le", "utf-32-le")


@dataclass(frozen=True)
class Needles:
    """What the audit looks for: the user's id and a distinctive text of theirs."""

    user_id: str
    text: str

    def named(self) -> list[tuple[str, str]]:
        """(name, string) of each needle, JSON-escaped forms included (a stream entry keeps
        the JSON it was sent as)."""
        out = [("user_id", self.user_id), ("text", self.text)]
        escaped = json.dumps(self.text)[1:-1]
        if escaped != self.text:
            out.append(("text", escaped))
        return out

    def in_text(self, value: str) -> list[str]:
        """Names of the needles `value` contains."""
        return sorted({name for name, needle in self.named() if needle in value})

    def in_bytes(self, value: bytes) -> list[str]:
        """Names of the needles `value` holds in any of the encodings above."""
        found = set()
        for name, needle in self.named():
            if any(needle.encode(encoding) in value for encoding in _ENCODINGS):
                found.add(name)
        return sorted(found)


@dataclass(frozen=True)
class Hit:
    """A needle found: in which place, where in it (a key, a file, a row) and which needle."""

    place: str
    where: str
    needle: str


@dataclass
class PlaceReport:
    """One place scanned: how much was looked at, and the hits. `skipped` says why a place was
    not scanned at all (it does not exist here, or its scan is not wired yet)."""

    place: str
    unit: str
    scanned: int = 0
    hits: list[Hit] = field(default_factory=list)
    skipped: str | None = None

    def check_text(self, where: str, value: str, needles: Needles) -> None:
        """Record a hit for each needle in a text value."""
        self.hits.extend(Hit(self.place, where, name) for name in needles.in_text(value))

    def check_bytes(self, where: str, value: bytes, needles: Needles) -> None:
        """Record a hit for each needle in a binary value (any encoding)."""
        self.hits.extend(Hit(self.place, where, name) for name in needles.in_bytes(value))

    def line(self) -> str:
        """One line: the place, what was scanned and the hit count (or why it was skipped)."""
        if self.skipped is not None:
            return f"{self.place}: not scanned ({self.skipped})"
        return f"{self.place}: {self.scanned} {self.unit} scanned, {len(self.hits)} hits"


@dataclass
class AuditReport:
    """Every place's report; the audit passes when no place has a hit."""

    needles: Needles
    places: list[PlaceReport]

    @property
    def hits(self) -> list[Hit]:
        """Every hit, place by place."""
        return [hit for place in self.places for hit in place.hits]

    @property
    def passed(self) -> bool:
        """True when nothing of the user was found anywhere scanned."""
        return not self.hits

    def place(self, name: str) -> PlaceReport:
        """The report of one place."""
        return next(place for place in self.places if place.place == name)

    def lines(self) -> list[str]:
        """The report as text: one line per place, then one per hit."""
        out = [place.line() for place in self.places]
        out += [f"HIT {hit.place}: {hit.needle} in {hit.where}" for hit in self.hits]
        out.append("PASS: nothing of the user found" if self.passed else "FAIL")
        return out
