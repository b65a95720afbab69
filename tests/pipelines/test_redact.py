"""PII redaction: emails, phones and card numbers go, ordinary numbers stay."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.redact import CARD_MARK, EMAIL_MARK, PHONE_MARK, redact_array, redact_text


@pytest.mark.parametrize(
    "text",
    [
        "bob.smith@example.com",
        "first.last+tag@mail.example.co.uk",
        "niño@correo.es",
    ],
)
def test_emails_are_redacted(text: str) -> None:
    assert redact_text(f"write to {text} please") == f"write to {EMAIL_MARK} please"


@pytest.mark.parametrize(
    "text",
    [
        "+44 20 7946 0958",
        "+1 (555) 123-4567",
        "+33 1 42 68 53 00",
        "+49 30 12345678",
        "+14155552671",
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "555 123 4567",
        "1-800-555-1234",
        "020 7946 0958",
        "07700 900123",
        "0121 496 0000",
        "06 12 34 56 78",
        "030 12345678",
    ],
)
def test_phone_numbers_are_redacted(text: str) -> None:
    assert redact_text(f"call {text} now") == f"call {PHONE_MARK} now"


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "3782 822463 10005",  # American Express 4-6-5
        "6011 0009 9013 9424",
        "4111111111111",  # 13 digits
        "4111 1111 1111 1111 123",  # 19 digits
    ],
)
def test_card_numbers_are_redacted(text: str) -> None:
    assert redact_text(f"card {text} ok") == f"card {CARD_MARK} ok"


def test_cards_are_redacted_without_a_luhn_check() -> None:
    # 4111 1111 1111 1112 fails Luhn: a mistyped card is still card data.
    assert redact_text("4111 1111 1111 1112") == CARD_MARK


@pytest.mark.parametrize(
    "text",
    [
        "In 1999 I paid $1,299.99 for 3 x 250g",
        "zip 02139 and 02139-4307, room 101",
        "on 2024-01-15 at 10:30, 192.168.1.100, v1.2.3",
        "10000 steps, 555-1234, +1 (2024), +5 10 20, 4.5 stars",
        "order #12345678, qty 12, 99 problems",
    ],
)
def test_ordinary_numbers_stay(text: str) -> None:
    assert redact_text(text) == text


def test_an_array_keeps_nulls_and_untouched_rows() -> None:
    values = pa.array(["a 555-123-4567", None, "plain", "x@example.com"])
    assert redact_array(values).to_pylist() == [f"a {PHONE_MARK}", None, "plain", EMAIL_MARK]


def test_a_chunked_array_stays_chunked() -> None:
    values = pa.chunked_array([["a@b.io"], ["plain", None]])
    redacted = redact_array(values)
    assert isinstance(redacted, pa.ChunkedArray)
    assert redacted.to_pylist() == [EMAIL_MARK, "plain", None]


def test_redaction_is_idempotent() -> None:
    once = redact_text("mail a@b.io, call +44 20 7946 0958, card 4111111111111111")
    assert redact_text(once) == once


# --- Properties -------------------------------------------------------------------------------

_LETTERS = st.text(
    alphabet=st.characters(
        categories=("Lu", "Ll", "Zs", "Po"), exclude_characters="@+", max_codepoint=0x2FF
    ),
    max_size=40,
)
_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12)
_EMAILS = st.builds(
    lambda user, domain, tld: f"{user}@{domain}.{tld}",
    _WORDS,
    _WORDS,
    st.sampled_from(["com", "org", "io", "co.uk", "de"]),
)


def _digits(count: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=count, max_size=count)


_PHONES = st.one_of(
    st.builds(lambda a, b, c: f"({a}) {b}-{c}", _digits(3), _digits(3), _digits(4)),
    st.builds(lambda a, b, c: f"{a}-{b}-{c}", _digits(3), _digits(3), _digits(4)),
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", _digits(3), _digits(3), _digits(4)),
    st.builds(
        lambda cc, a, b: f"+{cc} {a} {b}",
        st.integers(1, 999).map(str),
        _digits(3),
        _digits(4),
    ),
    st.builds(lambda a, b: f"020 {a} {b}", _digits(4), _digits(4)),
)
_CARDS = st.one_of(
    st.integers(13, 19).flatmap(_digits),
    st.builds(
        lambda a, b, c, d, sep: sep.join([a, b, c, d]),
        _digits(4),
        _digits(4),
        _digits(4),
        _digits(4),
        st.sampled_from([" ", "-"]),
    ),
    st.builds(lambda a, b, c: f"{a} {b} {c}", _digits(4), _digits(6), _digits(5)),
)


@settings(max_examples=150, deadline=None)
@given(before=_LETTERS, secret=st.one_of(_EMAILS, _PHONES, _CARDS), after=_LETTERS)
def test_pii_in_random_text_is_always_removed(before: str, secret: str, after: str) -> None:
    redacted = redact_text(f"{before} {secret} {after}")
    assert secret not in redacted
    assert any(mark in redacted for mark in (EMAIL_MARK, PHONE_MARK, CARD_MARK))


@settings(max_examples=150, deadline=None)
@given(text=_LETTERS)
def test_text_without_digits_or_at_signs_is_unchanged(text: str) -> None:
    assert redact_text(text) == text
