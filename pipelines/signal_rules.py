"""The contract's rules as DuckDB SQL: raw records in, checked field values out.

`checks_sql` gives one query over a relation of raw records (either shape, see normalize.py)
whose rows carry the parsed values (ts as TIMESTAMPTZ, type lower-cased, context keys lifted),
the first failing rule as `err_field`/`err_reason` (the rules from $ to text, but for the text
rules that need NFKC) and the context rule's `context_field`/`context_reason`, in input order.

Two things shape the SQL:
- Cheap first: a conjunction of cheap tests accepts the usual record, and reasons (string work,
  JSON kind look-ups that parse the record again) are computed only for records that fail it.
- Order and safety: no IN list (DuckDB plans a long one as a join, which does not keep the input
  order), and no JSON function is fed a value it could fail on, because the optimizer may hoist
  a call out of the CASE guarding it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import duckdb

from core.contract import (
    CONTEXT_MAX_DEPTH,
    EPOCH_MAX_SECONDS,
    EPOCH_MIN_SECONDS,
    ID_PATTERN,
    ITEM_TYPES,
    RATING_MAX,
    RATING_MIN,
    SIGNAL_TYPES,
    SPEAKERS,
    TEXT_TYPES,
)
from core.errors import InvalidInputError

FIELDS: tuple[str, ...] = (
    "event_id",
    "user_id",
    "ts",
    "type",
    "item_id",
    "value",
    "text",
    "context",
)
REQUIRED_TYPED_COLUMNS: tuple[str, ...] = ("event_id", "user_id", "ts", "type")
ID_FIELDS: tuple[str, ...] = ("event_id", "user_id", "item_id")
# Values echoed in a reason are cut to this many characters: a reason must stay readable.
ECHO_MAX_CHARS = 64

# DuckDB's JSON parser accepts more than RFC 8259: trailing commas, NaN and Infinity, and an
# object naming a key twice (it reads the first, Python the last: a record could be credited to
# one user and forgotten as another). Records that may hold any of them are flagged `suspect` for
# a strict re-check (normalize's `_strict_json`): any with a trailing comma or with a key Engram
# reads written twice (one regex for both: a quoted name seen twice, as a key or not), and those
# whose context holds a NaN-like word (a case-insensitive regex over every line costs more than
# parsing it). In the scalar fields such a literal is caught by its JSON kind instead; in fields
# Engram ignores it is not looked for.
_TRAILING_COMMA = r",\s*[}\]]"
_CONTEXT_KEYS = ("session_id", "speaker", "role", "device")  # the context keys Engram reads
_READ_KEYS = (*FIELDS, *_CONTEXT_KEYS)
_SUSPECT_TEXT = "|".join([_TRAILING_COMMA, *(f'"{key}".*"{key}"' for key in _READ_KEYS)])
_NAN_WORDS = ("NaN", "nan", "NAN", "Inf", "inf", "INF")
_AMBIGUOUS_ID = r"-?[0-9]+[.][0-9]+|[-+]?(?i:nan|inf|infinity)"
_ID_BODY = ID_PATTERN.removeprefix("^").removesuffix("$")
_RFC3339 = r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
_NO_OFFSET = r"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?"

# A context may nest deeper than CONTEXT_MAX_DEPTH only if it has more opening brackets than
# that, which takes at least twice as many characters: the count is made on long ones alone,
# and what it flags is measured exactly by the strict re-check.
_DEEP_CONTEXT = (
    f"coalesce(length(f_context) > {2 * CONTEXT_MAX_DEPTH} AND length(f_context) - "
    f"length(replace(replace(f_context, '{{', ''), '[', '')) > {CONTEXT_MAX_DEPTH}, false)"
)

_KindOf = Callable[[str], str]


def checks_sql(raw: duckdb.DuckDBPyRelation, view: str) -> str:
    """The checking query over raw records, registered as view `view` (the caller drops it)."""
    return _checks_sql(*_fields_sql(raw, view))


# --- SQL: raw records to field values ----------------------------------------------------------
#
# Both shapes become the same columns: src, position, raw, doc_error; v_<field> VARCHAR for the
# scalar fields (a string's text, or the text of another JSON value: 12, 4.5, true, {"a":1});
# f_text and f_context as JSON text; and kind_<id field>, the JSON kind of an id when it is
# neither string nor integer ('boolean', 'number', ...), else NULL. For JSON records that kind is
# looked up only where the text leaves it open (an id reading "true" or "1.5"), so the common
# record is parsed once.

_STRUCT = json.dumps(
    {name: "JSON" if name in ("text", "context") else "VARCHAR" for name in FIELDS}
)
_CONTEXT_STRUCT = json.dumps(dict.fromkeys(_CONTEXT_KEYS, "VARCHAR"))
# A JSON function fails on invalid JSON, and the optimizer may hoist a call out of the CASE that
# guards it (common subexpressions), so every such call gets an argument that is always valid.
_SAFE_RAW = "CASE WHEN doc_error IS NULL THEN raw ELSE '{}' END"
_JSON_KINDS = (
    "CASE {0} WHEN 'VARCHAR' THEN 'string' WHEN 'BIGINT' THEN 'integer' WHEN 'UBIGINT' "
    "THEN 'integer' WHEN 'DOUBLE' THEN 'number' WHEN 'BOOLEAN' THEN 'boolean' WHEN 'OBJECT' "
    "THEN 'object' WHEN 'ARRAY' THEN 'array' WHEN 'NULL' THEN 'null' END"
)


def _fields_sql(raw: duckdb.DuckDBPyRelation, view: str) -> tuple[str, _KindOf]:
    """SQL giving the field columns of raw records (as view `view`), and SQL for a JSON kind."""
    columns = {name.lower(): name for name in raw.columns}
    types = dict(zip(raw.columns, (str(t).upper() for t in raw.types), strict=True))
    if "position" not in columns:
        raise InvalidInputError("raw", "raw records need a position column")
    raw.create_view(view, replace=True)
    source = _quoted(columns["source"]) if "source" in columns else "NULL"
    position = _quoted(columns["position"])
    head = f"CAST({source} AS VARCHAR) AS src, CAST({position} AS BIGINT) AS position"
    if "raw" in columns:
        return _json_fields_sql(view, head, columns), _json_kind
    missing = [name for name in REQUIRED_TYPED_COLUMNS if name not in columns]
    if missing:
        raise InvalidInputError(
            "raw",
            f"records need a raw column or the columns {', '.join(REQUIRED_TYPED_COLUMNS)}; "
            f"missing {', '.join(missing)}",
        )
    typed = {name: (columns[name], types[columns[name]]) for name in FIELDS if name in columns}
    # An instant or a number needs no trip through text: t_ts and n_value carry them as they are.
    direct_ts = "ts" in typed and _is_instant(typed["ts"][1])
    direct_value = "value" in typed and _kind_of_type(typed["value"][1]) in ("integer", "number")
    if direct_ts:
        del typed["ts"]
    if direct_value:
        del typed["value"]
    # Text of a text column is taken as it is; JSON text is made only for other column types.
    text_column = typed.pop("text", None)
    if text_column is None:
        text = "NULL::VARCHAR AS s_text"
    elif text_column[1] == "VARCHAR":
        text = f"{_quoted(text_column[0])} AS s_text"
    else:
        text = "NULL::VARCHAR AS s_text"
        typed["text"] = text_column
    direct = (
        f"{_quoted(columns['ts']) if direct_ts else 'NULL'}::TIMESTAMPTZ AS t_ts, "
        f"{_quoted(columns['value']) if direct_value else 'NULL'}::DOUBLE AS n_value"
    )
    values = ", ".join(
        f"{_typed_value(*typed[name], field=name) if name in typed else 'NULL::VARCHAR'} "
        f"AS {_field_column(name)}"
        for name in FIELDS
    )
    kinds = ", ".join(
        f"{_typed_id_kind(typed[name][1]) if name in typed else 'NULL::VARCHAR'} AS kind_{name}"
        for name in ID_FIELDS
    )

    def typed_kind(field: str) -> str:
        return f"'{_kind_of_type(typed[field][1])}'" if field in typed else "NULL"

    sql = (
        f"SELECT {head}, NULL::VARCHAR AS raw, NULL::VARCHAR AS doc_error, {values}, {text}, "
        f"{kinds}, {direct}, false AS suspect FROM {view}"
    )
    return sql, typed_kind


def _field_column(name: str) -> str:
    return f"f_{name}" if name in ("text", "context") else f"v_{name}"


def _json_kind(field: str) -> str:
    """SQL for the JSON kind of a field of a JSON record (parses the record: use on few rows)."""
    return _JSON_KINDS.format(f"json_type({_SAFE_RAW}, '$.{field}')")


def _json_fields_sql(view: str, head: str, columns: dict[str, str]) -> str:
    raw = _quoted(columns["raw"])
    valid = f"CASE WHEN json_valid({raw}) THEN {raw} ELSE 'null' END"
    error = _quoted(columns["error"]) if "error" in columns else "NULL"
    values = ", ".join(f"p.{name} AS {_field_column(name)}" for name in FIELDS)
    text = "CASE WHEN starts_with(p.text, '\"') THEN json_extract_string(p.text, '$') END AS s_text"
    kinds = ", ".join(
        # Only these texts may be a string or a boolean or non-integer: look those up.
        f"CASE WHEN p.{name} IN ('true', 'false') OR regexp_full_match(p.{name}, "
        f"'{_AMBIGUOUS_ID}') THEN nullif(nullif({_json_kind(name)}, 'string'), 'integer') "
        f"END AS kind_{name}"
        for name in ID_FIELDS
    )
    return f"""
        SELECT src, position, raw, doc_error, {values}, {text}, {kinds},
            NULL::TIMESTAMPTZ AS t_ts, NULL::DOUBLE AS n_value,
            doc_error IS NULL AND (regexp_matches(raw, '{_SUSPECT_TEXT}')
                OR {" OR ".join(f"contains(p.context, '{word}')" for word in _NAN_WORDS)})
                AS suspect
        FROM (
            SELECT *, CASE WHEN doc_error IS NULL THEN from_json({_SAFE_RAW}, '{_STRUCT}') END AS p
            FROM (
                SELECT {head}, CAST({raw} AS VARCHAR) AS raw,
                    CASE
                        WHEN {error} IS NOT NULL THEN {error}
                        WHEN {raw} IS NULL THEN 'record is empty'
                        WHEN NOT json_valid({raw}) THEN 'record is not valid JSON'
                        WHEN left({raw}, 1) = '{{' THEN NULL
                        WHEN json_type({valid}) <> 'OBJECT'
                            THEN 'record must be a JSON object, got '
                            || {_JSON_KINDS.format(f"json_type({valid})")}
                    END AS doc_error
                FROM {view}
            )
        )
    """


def _kind_of_type(duck_type: str) -> str:
    """The JSON kind of a typed column's values (every row of a column has the same)."""
    if duck_type == "VARCHAR":
        return "string"
    if duck_type in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT") or (
        duck_type.startswith("U") and duck_type.endswith("INT")
    ):
        return "integer"
    if duck_type in ("FLOAT", "DOUBLE") or duck_type.startswith("DECIMAL"):
        return "number"
    if duck_type == "BOOLEAN":
        return "boolean"
    if duck_type.startswith(("STRUCT", "MAP")) or duck_type == "JSON":
        return "object"
    if duck_type.endswith("]"):
        return "array"
    return duck_type.lower()


def _is_instant(duck_type: str) -> bool:
    return duck_type.startswith("TIMESTAMP WITH TIME ZONE") or duck_type == "TIMESTAMPTZ"


def _typed_id_kind(duck_type: str) -> str:
    kind = _kind_of_type(duck_type)
    return "NULL::VARCHAR" if kind in ("string", "integer") else f"'{kind}'"


def _typed_value(column: str, duck_type: str, *, field: str) -> str:
    """SQL for a typed column's value in the JSON records' form (text, or JSON text for f_)."""
    quoted = _quoted(column)
    if field == "context" and duck_type == "VARCHAR":
        # A context column of text holds JSON; text that is not JSON is a (rejected) string.
        return f"CASE WHEN json_valid({quoted}) THEN {quoted} ELSE to_json({quoted})::VARCHAR END"
    if field in ("text", "context") or _kind_of_type(duck_type) in ("object", "array"):
        return f"to_json({quoted})::VARCHAR"
    if duck_type.startswith("TIMESTAMP") or duck_type == "DATE":
        # Without an offset, so the ts rule rejects it with its own reason.
        return f"strftime({quoted}, '%Y-%m-%dT%H:%M:%S.%f')"
    return f"CAST({quoted} AS VARCHAR)"


# --- SQL: the rules ----------------------------------------------------------------------------


def _checks_sql(fields_sql: str, kind_of: _KindOf) -> str:
    """SQL applying every rule but the text rules (which need NFKC) to the field columns.

    A cheap conjunction accepts the usual record; the reasons (string work, kind look-ups) are
    computed only for records that fail it.
    """
    low, high = EPOCH_MIN_SECONDS, EPOCH_MAX_SECONDS
    # The JSON kind of a field, for reasons only: looked up on failing records alone.
    kinds = ", ".join(
        [
            *(
                f"CASE WHEN NOT ok THEN coalesce(kind_{name}, {kind_of(name)}) END AS k_{name}"
                for name in ID_FIELDS
            ),
            f"CASE WHEN NOT ok THEN {kind_of('text')} END AS k_text",
            f"CASE WHEN NOT context_ok THEN {kind_of('context')} END AS k_context",
        ]
    )
    ok_id = "coalesce(regexp_full_match(v_{0}, '{1}') AND kind_{0} IS NULL, false)"
    return f"""
        WITH fields AS ({fields_sql}),
        parsed AS (
            SELECT *,
                {ok_id.format("event_id", _ID_BODY)} AS event_id_ok,
                {ok_id.format("user_id", _ID_BODY)} AS user_id_ok,
                {ok_id.format("item_id", _ID_BODY)} AS item_id_ok,
                coalesce(regexp_full_match(v_ts, '{_RFC3339}'), false) AS ts_rfc3339,
                lower(v_type) AS type_value,
                {_DEEP_CONTEXT} AS deep_context,
                coalesce(n_value, TRY_CAST(v_value AS DOUBLE)) AS value_number,
                v_value IS NOT NULL OR n_value IS NOT NULL AS has_value,
                CASE WHEN starts_with(f_context, '{{')
                    THEN from_json(
                        CASE WHEN starts_with(f_context, '{{') THEN f_context END,
                        '{_CONTEXT_STRUCT}'
                    ) END AS c
            FROM fields
        ),
        valued AS (
            SELECT *,
                CASE WHEN ts_rfc3339 THEN TRY_CAST(upper(v_ts) AS TIMESTAMPTZ) END AS ts_string,
                CASE WHEN NOT ts_rfc3339 THEN TRY_CAST(v_ts AS DOUBLE) END AS ts_number,
                {_one_of(SIGNAL_TYPES, "type_value")} AS type_ok,
                coalesce(c.speaker, c.role) AS speaker_text
            FROM parsed
        ),
        stamped AS (
            SELECT *,
                coalesce(t_ts, ts_string, CASE WHEN ts_number BETWEEN {low} AND {high}
                    THEN to_timestamp(CASE WHEN ts_number BETWEEN {low} AND {high}
                        THEN ts_number END) END) AS ts_value,
                lower(speaker_text) AS speaker_value
            FROM valued
        ),
        checked AS (
            SELECT *,
                CASE WHEN doc_error IS NULL AND event_id_ok AND user_id_ok
                    AND ts_value BETWEEN to_timestamp({low}) AND to_timestamp({high})
                    AND type_ok
                    AND (item_id_ok
                        OR v_item_id IS NULL AND NOT {_one_of(ITEM_TYPES, "type_value")})
                    AND (NOT has_value AND type_value <> 'rate'
                        OR isfinite(value_number) AND (type_value <> 'rate'
                            OR value_number BETWEEN {RATING_MIN} AND {RATING_MAX}))
                    AND (s_text IS NOT NULL
                        OR f_text IS NULL AND NOT {_one_of(TEXT_TYPES, "type_value")})
                THEN true ELSE false END AS ok,
                f_context IS NULL OR c IS NOT NULL
                    AND (speaker_value IS NULL OR {_one_of(SPEAKERS, "speaker_value")})
                    AS context_ok
            FROM stamped
        ),
        kinds AS (
            SELECT *, {kinds}
            FROM checked
        ),
        explained AS (
            SELECT *,
                CASE WHEN ok THEN NULL ELSE CASE {_record_reasons()} END END AS err,
                CASE WHEN context_ok THEN NULL ELSE CASE {_context_reasons()} END END
                    AS context_err
            FROM kinds
        )
        SELECT
            src AS source,
            position,
            CASE WHEN event_id_ok THEN v_event_id END AS event_id,
            CASE WHEN user_id_ok THEN v_user_id END AS user_id,
            ts_value AS ts,
            type_value AS type,
            v_item_id AS item_id,
            value_number AS value,
            s_text AS text,
            f_context AS context,
            c.session_id AS session_id,
            speaker_value AS speaker,
            c.device AS device,
            err[1] AS err_field,
            err[2] AS err_reason,
            context_err[1] AS context_field,
            context_err[2] AS context_reason,
            suspect OR deep_context AS suspect,
            CASE WHEN err IS NOT NULL OR context_err IS NOT NULL OR s_text IS NOT NULL OR suspect
                OR deep_context
                THEN coalesce(raw, {_rebuilt_raw()}) END AS raw
        FROM explained
    """


def _record_reasons() -> str:
    """CASE branches giving [field, reason] for the first failing rule ($ to text)."""
    low, high = EPOCH_MIN_SECONDS, EPOCH_MAX_SECONDS
    rate_range = f"a number between {RATING_MIN:g} and {RATING_MAX:g}"
    value_text = "coalesce(v_value, CAST(n_value AS VARCHAR))"
    ts_text = "coalesce(v_ts, strftime(timezone('UTC', t_ts), '%Y-%m-%dT%H:%M:%S.%fZ'))"
    branches = [
        "WHEN doc_error IS NOT NULL THEN ['$', doc_error]",
        *_id_reasons("event_id"),
        *_id_reasons("user_id"),
        "WHEN v_ts IS NULL AND t_ts IS NULL THEN ['ts', 'ts is required']",
        f"WHEN ts_number > {high} AND ts_number / 1000 BETWEEN {low} AND {high} THEN ['ts', "
        "'ts looks like epoch milliseconds; send epoch seconds (ts / 1000 = ' || "
        "CAST(ts_number / 1000 AS VARCHAR) || ')']",
        f"WHEN ts_number IS NOT NULL AND NOT (ts_number BETWEEN {low} AND {high}) THEN ['ts', "
        f"'ts must be epoch seconds between {low} and {high} (1970 to 2100), got ' || "
        f"{_echo('v_ts')}]",
        f"WHEN v_ts IS NOT NULL AND ts_number IS NULL AND NOT ts_rfc3339 "
        f"AND regexp_full_match(v_ts, '{_NO_OFFSET}') "
        "THEN ['ts', 'timestamp has no UTC offset (RFC 3339 requires Z or +hh:mm), got ' || "
        f"{_echo_quoted('v_ts')}]",
        "WHEN v_ts IS NOT NULL AND ts_number IS NULL AND NOT ts_rfc3339 THEN ['ts', "
        "'ts must be an RFC 3339 "
        "timestamp with an offset (such as 2024-05-01T12:00:00Z) or epoch seconds, got ' || "
        f"{_echo_quoted('v_ts')}]",
        "WHEN ts_value IS NULL THEN ['ts', 'ts is not a valid date and time, got ' || "
        f"{_echo_quoted('v_ts')}]",
        f"WHEN NOT (ts_value BETWEEN to_timestamp({low}) AND to_timestamp({high})) THEN ['ts', "
        "'ts must be between 1970-01-01T00:00:00Z and 2100-01-01T00:00:00Z, got ' || "
        f"{_echo_quoted(ts_text)}]",
        "WHEN v_type IS NULL THEN ['type', 'type is required']",
        f"WHEN NOT type_ok THEN ['type', 'type must be one of {', '.join(SIGNAL_TYPES)}; got ' "
        f"|| {_echo_quoted('v_type')}]",
        f"WHEN v_item_id IS NULL AND {_one_of(ITEM_TYPES, 'type_value')} "
        "THEN ['item_id', 'item_id is required for type ' || type_value]",
        *_id_reasons("item_id", required=False),
        "WHEN v_value IS NOT NULL AND value_number IS NULL THEN ['value', 'value must be a "
        f"number, got ' || {_echo_quoted('v_value')}]",
        "WHEN has_value AND NOT isfinite(value_number) THEN ['value', 'value must be "
        f"a finite number, got ' || {_echo(value_text)}]",
        f"WHEN type_value = 'rate' AND NOT has_value THEN ['value', 'rate value is required "
        f"({rate_range})']",
        f"WHEN type_value = 'rate' AND NOT (value_number BETWEEN {RATING_MIN} AND {RATING_MAX}) "
        f"THEN ['value', 'rate value must be {rate_range}, got ' || {_echo(value_text)}]",
        "WHEN f_text IS NOT NULL AND s_text IS NULL THEN ['text', 'text must be a string, "
        "got ' || k_text]",
        f"WHEN f_text IS NULL AND s_text IS NULL AND {_one_of(TEXT_TYPES, 'type_value')} "
        "THEN ['text', 'text is required for type ' || type_value]",
    ]
    return "\n".join(branches)


def _context_reasons() -> str:
    """CASE branches giving [field, reason] for the context rules."""
    speakers = sorted(SPEAKERS)
    return "\n".join(
        [
            "WHEN c IS NULL THEN ['context', 'context must be a JSON object, got ' || k_context]",
            f"WHEN NOT {_one_of(SPEAKERS, 'speaker_value')} THEN "
            f"['context.speaker', 'speaker must be one of {', '.join(speakers)}; got ' || "
            f"{_echo_quoted('speaker_text')}]",
        ]
    )


def _id_reasons(name: str, *, required: bool = True) -> list[str]:
    kind = f"k_{name}"
    return [
        *([f"WHEN v_{name} IS NULL THEN ['{name}', '{name} is required']"] if required else []),
        f"WHEN v_{name} IS NOT NULL AND {kind} NOT IN ('string', 'integer') THEN ['{name}', "
        f"'{name} must be a string or integer, got ' || {kind}]",
        f"WHEN v_{name} IS NOT NULL AND NOT {name}_ok THEN ['{name}', '{name} must be 1-128 "
        f"letters, digits or _ . : - (pattern {ID_PATTERN}), got ' || "
        f"{_echo_quoted(f'v_{name}')}]",
    ]


def _one_of(values: Iterable[str], sql: str) -> str:
    """SQL testing membership; false for NULL. A CASE, not IN: DuckDB plans a long IN list as a
    join, and a join does not keep the input order."""
    branches = " ".join(f"WHEN '{value}' THEN true" for value in sorted(values))
    return f"CASE {sql} {branches} ELSE false END"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _echo(sql: str) -> str:
    """SQL echoing a value in a reason, cut to ECHO_MAX_CHARS."""
    return (
        f"CASE WHEN length({sql}) > {ECHO_MAX_CHARS} THEN left({sql}, {ECHO_MAX_CHARS - 3}) "
        f"|| '...' ELSE {sql} END"
    )


def _echo_quoted(sql: str) -> str:
    return f"'''' || {_echo(sql)} || ''''"


def _rebuilt_raw() -> str:
    """SQL for a typed record's JSON text, rebuilt from its values (for the dead letter)."""
    values = {name: f"v_{name}" for name in FIELDS}
    values["ts"] = "coalesce(v_ts, strftime(timezone('UTC', t_ts), '%Y-%m-%dT%H:%M:%S.%fZ'))"
    values["value"] = "coalesce(n_value::JSON, to_json(v_value))"
    values["text"] = "coalesce(to_json(s_text), f_text::JSON)"
    values["context"] = "f_context::JSON"
    pairs = ", ".join(f"'{name}', {value}" for name, value in values.items())
    return f"json_object({pairs})::VARCHAR"


__all__ = ["ECHO_MAX_CHARS", "FIELDS", "ID_FIELDS", "REQUIRED_TYPED_COLUMNS", "checks_sql"]
