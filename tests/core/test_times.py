"""One helper for times: RFC 3339 parsing, the contract's range, exact epoch microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInputError
from core.times import (
    EARLIEST,
    LATEST,
    epoch_micros,
    epoch_seconds,
    from_epoch_micros,
    join_epoch_micros,
    parse_contract_time,
    parse_time,
    split_epoch_micros,
)


def test_rfc3339_times_parse_with_their_offset() -> None:
    assert parse_time("2026-11-01T00:00:00Z") == datetime(2026, 11, 1, tzinfo=UTC)
    at = parse_time("2026-11-01T02:00:00.5+02:00")
    assert at == datetime(2026, 11, 1, 0, 0, 0, 500_000, tzinfo=UTC)
    assert parse_time(None) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-11-01T00:00:00", "needs a UTC offset, e.g. 2026-11-01T00:00:00Z"),
        ("2026-11-01", "needs a UTC offset, e.g. 2026-11-01T00:00:00Z"),
        ("yesterday", "not an RFC 3339 time: 'yesterday'"),
        (1_700_000_000, "must be an RFC 3339 time string"),
    ],
)
def test_a_bad_time_names_the_field_and_why(value: object, reason: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_time(value, "as-of")
    assert (raised.value.field, raised.value.reason) == ("as-of", reason)


def test_the_contract_range_is_1970_to_before_2100() -> None:
    assert parse_contract_time("1970-01-01T00:00:00Z") == EARLIEST
    assert parse_contract_time("2099-12-31T23:59:59Z") == LATEST - timedelta(seconds=1)
    for outside in ("1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z"):
        with pytest.raises(InvalidInputError) as raised:
            parse_contract_time(outside, "context.time")
        assert raised.value.field == "context.time"
        assert raised.value.reason == (
            "must be between 1970-01-01T00:00:00Z and 2100-01-01T00:00:00Z"
        )
    assert parse_time("2100-01-01T00:00:00Z") is not None  # parse_time alone has no range


def _reference_micros(moment: datetime) -> int:
    """Brute force: whole days, seconds and microseconds of the UTC time, counted apart."""
    utc = moment.astimezone(UTC)
    days = (utc.date() - datetime(1970, 1, 1).date()).days
    return ((days * 24 + utc.hour) * 3600 + utc.minute * 60 + utc.second) * 10**6 + utc.microsecond


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2250, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30))]),
    )
)
def test_epoch_micros_are_exact_and_round_trip(moment: datetime) -> None:
    micros = epoch_micros(moment)
    assert micros == _reference_micros(moment)
    assert from_epoch_micros(micros) == moment


def test_a_naive_time_has_no_epoch() -> None:
    with pytest.raises(InvalidInputError) as raised:
        epoch_micros(datetime(2026, 11, 1), "as_of")
    assert (raised.value.field, raised.value.reason) == ("as_of", "needs a UTC offset")


@given(st.lists(st.integers(-(2**60), 2**60), min_size=1, max_size=30))
def test_epoch_micros_split_into_whole_seconds_and_join_back(micros: list[int]) -> None:
    for value in micros:
        seconds, rest = split_epoch_micros(value)
        assert 0 <= rest < 10**6 and seconds == value // 10**6
        assert join_epoch_micros(seconds, rest) == value
    array = np.array(micros, np.int64)
    seconds, rest = split_epoch_micros(array)
    assert seconds.tolist() == [m // 10**6 for m in micros]
    np.testing.assert_array_equal(join_epoch_micros(seconds, rest), array)


def test_epoch_seconds_of_micros_are_floats() -> None:
    at = datetime(2026, 11, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    assert epoch_seconds(epoch_micros(at)) == at.timestamp()
    np.testing.assert_array_equal(epoch_seconds(np.array([1_500_000, -500_000])), [1.5, -0.5])
