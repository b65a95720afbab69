"""Turn rows of the event table into JSON lines or Parquet rows, a million at a time.

Lines are assembled column-wise with Arrow kernels, not one `json.dumps` per event: ten million
events would otherwise take minutes. Every optional field is a lookup into a table of ready-made
fragments (index 0 is the empty fragment: field absent), so a line is one `take` per field and one
concatenation. Free texts go through a JSON encoder once each. Keys are always written in contract
order, so a duplicate record is the same bytes as its original.
"""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from core.contract import SIGNAL_SCHEMA, SIGNAL_TYPES, UTC_TS
from pipelines.generate.build import Dataset, utc_offset_text
from pipelines.generate.events import DEVICES, SESSION_PREFIXES, SPEAKERS

PARQUET_SCHEMA = SIGNAL_SCHEMA
_DAY_S = 86_400
_FLOAT_STEP_MS = 125
_SESSION_DIGITS = 6
_NULL = pa.scalar(None, pa.string())


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _take(table: pa.Array, index: np.ndarray) -> pa.Array:
    return table.take(pa.array(index))


def _fragments(values: list[str], template: str) -> pa.Array:
    """Index 0: "" (field absent); index i + 1: `template` filled with values[i]."""
    return pa.array([""] + [template.format(value) for value in values], pa.string())


def _context_tails(with_key: bool) -> tuple[pa.Array, pa.Array]:
    """Fragments around a context's session id, indexed by `_context_code`.

    Heads: "" (no context), a context with a session id (up to the id), one without.
    Tails: after the id (or right after "{"): speaker and device, and the closing brace.
    """
    key = ',"context":' if with_key else ""
    heads = pa.array(["", key + '{"session_id":"', key + "{"])
    tails = [""]
    for has_session in (True, False):
        for speaker in ("", *SPEAKERS):
            for device in DEVICES:
                said = f'"speaker":"{speaker}",' if speaker else ""
                tails.append(('",' if has_session else "") + said + f'"device":"{device}"}}')
    return heads, pa.array(tails)


def _context_code(session: np.ndarray, speaker: np.ndarray, device: np.ndarray) -> np.ndarray:
    """Index into the tails of `_context_tails`; 0 for no context."""
    n_speakers, n_devices = len(SPEAKERS) + 1, len(DEVICES)
    code = 1 + ((session < 0) * n_speakers + speaker + 1) * n_devices + np.maximum(device, 0)
    return np.where(device >= 0, code, 0)


class Encoder:
    """Encodes rows of one dataset's event table."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.table = dataset.table
        texts = dataset.table.texts
        self.user_ids = pa.array(dataset.users.ids, pa.string())
        self.item_ids = pa.array(dataset.catalog.item_ids, pa.string())
        self.texts = pa.array(texts, pa.string())
        self.types = pa.array(SIGNAL_TYPES, pa.string())
        self.user_part = pa.array([f',"user_id":"{user_id}"' for user_id in dataset.users.ids])
        self.type_part = pa.array([f',"type":"{name}"' for name in SIGNAL_TYPES])
        self.item_part = _fragments(dataset.catalog.item_ids, ',"item_id":"{}"')
        self.value_part = _fragments([f"{code / 2:.1f}" for code in range(11)], ',"value":{}')
        self.text_part = pa.array([""] + [',"text":' + orjson.dumps(t).decode() for t in texts])
        self.context_heads, self.context_tails = _context_tails(with_key=True)
        self.parquet_heads, self.parquet_tails = _context_tails(with_key=False)
        self.session_prefixes = pa.array(SESSION_PREFIXES)
        offsets = [utc_offset_text(int(m)) + '"' for m in dataset.users.offset_min]
        self.suffixes = pa.array(['Z"', *offsets])  # 0: UTC, user + 1: the user's offset
        self.clock = pa.array(
            [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(_DAY_S)]
        )
        self.millis = _fragments([f"{ms:03d}" for ms in range(1000)], ".{}")
        # An integer epoch, or a float one whose fraction is a multiple of 1/8 s.
        self.epoch_tails = _fragments(
            [str(k * _FLOAT_STEP_MS / 1000)[1:] for k in range(1000 // _FLOAT_STEP_MS)], "{}"
        )

    def _event_ids(self, rows: np.ndarray) -> pa.Array:
        """The zero-padded row numbers; the prefix is added by the caller."""
        return pc.utf8_lpad(pa.array(rows).cast(pa.string()), self.dataset.event_id.width, "0")

    def _ts(self, rows: np.ndarray) -> pa.Array:
        """',"ts":' and the timestamp: RFC 3339 (user offset or Z) or epoch (int or float)."""
        ts, fmt, user = self.table.ts[rows], self.table.ts_format[rows], self.table.user[rows]
        rfc = np.flatnonzero(fmt <= 2)
        epoch = np.flatnonzero(fmt > 2)
        # RFC 3339: local date and clock, then milliseconds (format 1 only) and the offset.
        shift = np.where(fmt[rfc] <= 1, self.dataset.users.offset_min[user[rfc]], 0)
        local_ms = ts[rfc] + shift.astype(np.int64) * 60_000
        local_s = local_ms // 1000
        day = local_s // _DAY_S
        first = int(day.min(initial=0))
        dates = pa.array(
            [
                ',"ts":"' + str(np.datetime64(d, "D")) + "T"
                for d in range(first, int(day.max(initial=0)) + 1)
            ]
        )
        texts_rfc = _join(
            _take(dates, day - first),
            _take(self.clock, local_s % _DAY_S),
            _take(self.millis, np.where(fmt[rfc] == 1, local_ms % 1000 + 1, 0)),
            _take(self.suffixes, np.where(fmt[rfc] == 2, 0, user[rfc] + 1)),
        )
        fraction = np.where(fmt[epoch] == 4, ts[epoch] % 1000 // _FLOAT_STEP_MS + 1, 0)
        texts_epoch = _join(
            ',"ts":',
            pa.array(ts[epoch] // 1000).cast(pa.string()),
            _take(self.epoch_tails, fraction),
        )
        order = np.empty(len(rows), np.int64)
        order[rfc] = np.arange(len(rfc))
        order[epoch] = len(rfc) + np.arange(len(epoch))
        return pa.concat_arrays([texts_rfc, texts_epoch]).take(pa.array(order))

    def _context(self, rows: np.ndarray, heads: pa.Array, tails: pa.Array) -> pa.Array:
        session, device = self.table.session[rows], self.table.device[rows]
        head = np.where(device < 0, 0, np.where(session >= 0, 1, 2))
        session_id = _join(
            _take(self.session_prefixes, self.table.session_kind[rows]),
            pc.utf8_lpad(pa.array(session).cast(pa.string()), _SESSION_DIGITS, "0"),
        )
        session_id = pc.if_else(pa.array(head == 1), session_id, "")
        code = _context_code(session, self.table.speaker[rows], device)
        return _join(_take(heads, head), session_id, _take(tails, code))

    def lines(self, rows: np.ndarray) -> pa.Array:
        """One JSON line per row, each ending in a newline."""
        table = self.table
        return _join(
            '{"event_id":"' + self.dataset.event_id.prefix,
            self._event_ids(rows),
            '"',
            _take(self.user_part, table.user[rows]),
            self._ts(rows),
            _take(self.type_part, table.type[rows]),
            _take(self.item_part, table.item[rows] + 1),
            _take(self.value_part, table.rating[rows] + 1),
            _take(self.text_part, table.text[rows] + 1),
            self._context(rows, self.context_heads, self.context_tails),
            "}\n",
        )

    def rows(self, rows: np.ndarray) -> pa.Table:
        """Parquet rows: `ts` as a UTC timestamp, absent fields as nulls."""
        item, rating, text = self.table.item[rows], self.table.rating[rows], self.table.text[rows]
        context = self._context(rows, self.parquet_heads, self.parquet_tails)
        columns = [
            _join(self.dataset.event_id.prefix, self._event_ids(rows)),
            _take(self.user_ids, self.table.user[rows]),
            pa.array(self.table.ts[rows] * 1000, UTC_TS),
            _take(self.types, self.table.type[rows]),
            pc.if_else(pa.array(item >= 0), _take(self.item_ids, np.maximum(item, 0)), _NULL),
            pa.array(rating / 2.0, pa.float64(), mask=rating < 0),
            pc.if_else(pa.array(text >= 0), _take(self.texts, np.maximum(text, 0)), _NULL),
            pc.if_else(pa.array(self.table.device[rows] >= 0), context, _NULL),
        ]
        return pa.Table.from_arrays(columns, schema=PARQUET_SCHEMA)


def line_offsets(array: pa.Array) -> np.ndarray:
    """Where each value of a string array starts in `string_bytes(array)`, plus the end."""
    offsets = np.frombuffer(array.buffers()[1], np.int32, len(array) + 1, array.offset * 4)
    return (offsets - offsets[0]).astype(np.int64)


def string_bytes(array: pa.Array) -> memoryview:
    """The concatenated bytes of a string array's values, without copying."""
    offsets = np.frombuffer(array.buffers()[1], np.int32, len(array) + 1, array.offset * 4)
    return memoryview(array.buffers()[2])[int(offsets[0]) : int(offsets[-1])]
