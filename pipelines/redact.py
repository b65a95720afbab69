"""PII redaction: emails, phone numbers and payment card numbers replaced by fixed markers.

Pure and vectorized: every pattern is RE2 run by pyarrow.compute, and `redact_text` runs the
same kernels on a one-element array, so a single string and a column can never disagree.

Choices (docs/signals.md repeats them for users):
- Cards are matched by shape only, without a Luhn check. A regex cannot compute a checksum and a
  per-row Python check would put a loop on the hot path; more to the point, a card number with
  one digit mistyped fails Luhn and is still card data. So we fail closed: any run of 13-19
  digits, and 4-4-4-(1-7) or 4-6-(4-5) digit groups split by spaces or dashes, become "[CARD]".
  The cost is that long plain numbers in free text (epoch milliseconds, order numbers) and four
  space-separated four-digit years are removed too.
- Phones are matched by the forms people write: "+CC ..." international numbers, North American
  "(555) 123-4567", "555-123-4567", "555.123.4567", "555 123 4567" (optionally after "1-"), and
  national numbers starting with 0 in the UK, French and German layouts. Ten bare digits
  ("5551234567") are not matched: nothing tells them from an ordinary number.
- Ordinary numbers stay: years, prices, quantities, dates, times, US zip and zip+4 codes.
"""

from __future__ import annotations

from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc

EMAIL_MARK = "[EMAIL]"
PHONE_MARK = "[PHONE]"
CARD_MARK = "[CARD]"

# Any characters but spaces and delimiters around an "@", a dot and a 2+ letter top-level domain:
# international addresses included (\p{L} classes would be as good but are slow to compile,
# a cost paid on every call for a single string).
# Quotes are left out too, so an address quoted in a reason ('a@b.io') keeps its quotes.
_NOT_IN_EMAIL = r"\s@<>()\[\]\",;:'`"
EMAIL_PATTERN = (
    rf"[^{_NOT_IN_EMAIL}]+@[^{_NOT_IN_EMAIL}.]+(?:\.[^{_NOT_IN_EMAIL}.]+)*"
    rf"\.[^{_NOT_IN_EMAIL}.!?0-9]{{2,}}"
)
# "+", a 1-3 digit country code, an optional "(area)", then 6-14 digits with single separators,
# so "+1 (2024)" and "+5 10 20" stay.
INTERNATIONAL_PHONE_PATTERN = r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d(?:[ .-]?\d){5,13}"
CARD_PATTERN = (
    r"\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{1,4}(?:[ -]?\d{1,3})?"  # 4-4-4-4(-3), 4-4-4-1
    r"|\d{4}[ -]\d{6}[ -]\d{4,5}"  # American Express 4-6-5, Diners 4-6-4
    r"|\d{13,19}"
)
NATIONAL_PHONE_PATTERNS: tuple[str, ...] = (
    r"\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}\b",  # (555) 123-4567
    r"\b(?:1[ .-])?\d{3}[ .-]\d{3}[ .-]\d{4}\b",  # 555-123-4567, 1-800-555-1234
    r"\b0\d{2}[ ]?\d{4}[ ]?\d{4}\b",  # UK 020 7946 0958
    r"\b0\d{3}[ ]?\d{3}[ ]?\d{4}\b",  # UK 0121 496 0000
    r"\b0\d{4}[ ]?\d{6}\b",  # UK 07700 900123
    r"\b0\d(?:[ .]?\d{2}){4}\b",  # FR 06 12 34 56 78
    r"\b0\d{2,4}[ /-]?\d{5,8}\b",  # DE 030 12345678
)

# Order matters: emails first (they may hold digits), then "+" phones before cards (a long
# international number is a phone), cards before national phones (a card holds phone shapes).
REDACTIONS: tuple[tuple[str, str], ...] = (
    (EMAIL_PATTERN, EMAIL_MARK),
    (INTERNATIONAL_PHONE_PATTERN, PHONE_MARK),
    (CARD_PATTERN, CARD_MARK),
    *((pattern, PHONE_MARK) for pattern in NATIONAL_PHONE_PATTERNS),
)
# Every pattern needs a digit or an "@"; rows without either are skipped without regex work.
_CANDIDATE_PATTERN = r"[0-9@]"

ArrayT = TypeVar("ArrayT", pa.Array, pa.ChunkedArray)


def redact_array(values: ArrayT) -> ArrayT:
    """The string array with every email, phone and card number replaced by its marker."""
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array([_redact_chunk(chunk) for chunk in values.chunks], values.type)
    return _redact_chunk(values)


def _redact_chunk(values: pa.Array) -> pa.Array:
    candidates = pc.match_substring_regex(values, _CANDIDATE_PATTERN)
    if not pc.any(candidates).as_py():
        return values
    redacted = pc.filter(values, candidates)
    for pattern, mark in REDACTIONS:
        redacted = pc.replace_substring_regex(redacted, pattern=pattern, replacement=mark)
    return pc.replace_with_mask(values, pc.fill_null(candidates, False), redacted)


def redact_text(text: str) -> str:
    """One string with every email, phone and card number replaced by its marker."""
    result = redact_array(pa.array([text], pa.string()))[0].as_py()
    assert isinstance(result, str)
    return result


__all__ = [
    "CARD_MARK",
    "EMAIL_MARK",
    "PHONE_MARK",
    "REDACTIONS",
    "redact_array",
    "redact_text",
]
