"""The event table: every valid event as numpy columns, sorted by time, plus the texts it uses.

Behaviour comes in as columns from `behaviour.py`; events with free text (chats, bursts, reviews)
are appended row by row to `TextRows`. `merge` joins both, picks each event's timestamp format
(rounding the instant to what that format can carry) and sorts by time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.contract import SIGNAL_TYPES

TYPE_CODE: dict[str, int] = {name: code for code, name in enumerate(SIGNAL_TYPES)}
SPEAKERS = ("user", "assistant")
SPEAKER_USER, SPEAKER_ASSISTANT = 0, 1
DEVICES = ("mobile", "desktop", "tablet")
SESSION_PREFIXES = ("s-", "chat-")
SESSION_BROWSE, SESSION_CHAT = 0, 1
NO_SESSION = -1

# Timestamp formats: RFC 3339 in the user's offset (whole seconds, or milliseconds), RFC 3339
# in UTC with "Z", epoch seconds as an integer, epoch seconds as a float.
TS_FORMATS = ("rfc3339", "rfc3339_ms", "rfc3339_z", "epoch", "epoch_float")
_TS_FORMAT_SHARES = (0.35, 0.15, 0.15, 0.2, 0.15)
# Float epochs carry eighths of a second: exact in binary, so a parser cannot round them off.
_FLOAT_STEP_MS = 125


@dataclass
class Behaviour:
    """Browse events as columns (one entry per event)."""

    user: np.ndarray  # int32
    ts: np.ndarray  # int64 epoch ms
    type: np.ndarray  # int8, index into SIGNAL_TYPES
    item: np.ndarray  # int32, -1 none
    rating: np.ndarray  # int8, value * 2, -1 none
    text: np.ndarray  # int32, index into the vocabulary texts, -1 none
    session: np.ndarray  # int32
    device: np.ndarray  # int8, -1: no context at all


@dataclass
class TextRows:
    """Events with free text, added one at a time."""

    user: list[int] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    type: list[int] = field(default_factory=list)
    item: list[int] = field(default_factory=list)
    rating: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    session_kind: list[int] = field(default_factory=list)
    session: list[int] = field(default_factory=list)
    device: list[int] = field(default_factory=list)
    speaker: list[int] = field(default_factory=list)
    sessions: list[int] = field(default_factory=lambda: [0, 0])

    def new_session(self, kind: int) -> int:
        """A fresh session number of this kind."""
        self.sessions[kind] += 1
        return self.sessions[kind] - 1

    def add(
        self,
        user: int,
        ts: int,
        type_name: str,
        text: str,
        *,
        session: int = NO_SESSION,
        session_kind: int = SESSION_BROWSE,
        device: int = 0,
        speaker: int = -1,
        item: int = -1,
    ) -> int:
        """Append one event; returns its row number."""
        self.user.append(user)
        self.ts.append(ts)
        self.type.append(TYPE_CODE[type_name])
        self.item.append(item)
        self.rating.append(-1)
        self.text.append(text)
        self.session_kind.append(session_kind)
        self.session.append(session)
        self.device.append(device)
        self.speaker.append(speaker)
        return len(self.user) - 1

    def __len__(self) -> int:
        return len(self.user)


@dataclass
class EventTable:
    """All valid unique events, sorted by time; row i gets event id number i."""

    user: np.ndarray
    ts: np.ndarray  # epoch ms, already rounded to what ts_format can carry
    ts_format: np.ndarray  # int8, index into TS_FORMATS
    type: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    text: np.ndarray  # index into `texts`, -1 none
    session_kind: np.ndarray
    session: np.ndarray  # -1 none
    device: np.ndarray  # -1: no context
    speaker: np.ndarray  # -1 none
    texts: list[str]
    text_row_index: np.ndarray  # final row of each TextRows row

    def __len__(self) -> int:
        return len(self.ts)


def merge(
    behaviour: Behaviour, rows: TextRows, vocabulary: list[str], rng: np.random.Generator
) -> EventTable:
    """Join browse and text events, choose timestamp formats, sort by time."""
    n_text = len(rows)
    text_index = np.full(n_text, -1, np.int32)
    has_text = np.array([bool(text) for text in rows.text], bool)
    text_index[has_text] = len(vocabulary) + np.arange(int(has_text.sum()), dtype=np.int32)
    browse_sessions = behaviour.session + rows.sessions[SESSION_BROWSE]  # after the bursts'
    columns = {
        "user": (behaviour.user, rows.user, np.int32),
        "ts": (behaviour.ts, rows.ts, np.int64),
        "type": (behaviour.type, rows.type, np.int8),
        "item": (behaviour.item, rows.item, np.int32),
        "rating": (behaviour.rating, rows.rating, np.int8),
        "text": (behaviour.text, text_index, np.int32),
        "session_kind": (np.zeros(len(behaviour.ts), np.int8), rows.session_kind, np.int8),
        "session": (browse_sessions, rows.session, np.int32),
        "device": (behaviour.device, rows.device, np.int8),
        "speaker": (np.full(len(behaviour.ts), -1, np.int8), rows.speaker, np.int8),
    }
    joined = {
        name: np.concatenate([np.asarray(a, dtype), np.asarray(b, dtype)])
        for name, (a, b, dtype) in columns.items()
    }
    ts_format = rng.choice(len(TS_FORMATS), size=len(joined["ts"]), p=_TS_FORMAT_SHARES)
    ts = joined["ts"]
    whole = np.isin(ts_format, (0, 2, 3))
    ts = np.where(whole, ts - ts % 1000, ts)
    ts = np.where(ts_format == 4, ts - ts % _FLOAT_STEP_MS, ts)
    order = np.argsort(ts, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    return EventTable(
        ts=ts[order],
        ts_format=ts_format.astype(np.int8)[order],
        texts=vocabulary + [text for text in rows.text if text],
        text_row_index=position[len(behaviour.ts) :],
        **{name: column[order] for name, column in joined.items() if name != "ts"},
    )
