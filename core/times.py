"""Times, one definition for every package: RFC 3339 parsing (commands, HTTP, query files), the
signal contract's range, and epoch microseconds in exact integer arithmetic (float seconds would
round them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.contract import EPOCH_MAX_SECONDS, EPOCH_MIN_SECONDS
from core.errors import InvalidInputError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The signal contract's range: every time in it converts to UTC and to pandas' nanosecond
# timestamps (1677 to 2262), windows around it included.
EARLIEST = datetime.fromtimestamp(EPOCH_MIN_SECONDS, UTC)
LATEST = datetime.fromtimestamp(EPOCH_MAX_SECONDS, UTC)
_MICROSECOND = timedelta(microseconds=1)
_MICROS_PER_SECOND = 1_000_000


def parse_time(value: object, field: str = "as_of") -> datetime | None:
    """An RFC 3339 time with a UTC offset ("Z" allowed); None for None. Anything else is an
    InvalidInputError naming `field`."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(field, "must be an RFC 3339 time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise InvalidInputError(field, f"not an RFC 3339 time: {value!r}") from error
    if parsed.tzinfo is None:
        raise InvalidInputError(field, "needs a UTC offset, e.g. 2026-11-01T00:00:00Z")
    return parsed


def parse_contract_time(value: object, field: str = "as_of") -> datetime | None:
    """`parse_time`, and the time must fall in the signal contract's range [EARLIEST, LATEST)."""
    parsed = parse_time(value, field)
    if parsed is not None and not EARLIEST <= parsed < LATEST:
        raise InvalidInputError(
            field,
            f"must be between {EARLIEST:%Y-%m-%dT%H:%M:%SZ} and {LATEST:%Y-%m-%dT%H:%M:%SZ}",
        )
    return parsed


def epoch_micros(moment: datetime, field: str = "time") -> int:
    """Microseconds since the epoch of a time with a UTC offset (exact); a naive time is an
    InvalidInputError naming `field`."""
    if moment.utcoffset() is None:
        raise InvalidInputError(field, "needs a UTC offset")
    return (moment - EPOCH) // _MICROSECOND


def from_epoch_micros(micros: int) -> datetime:
    """The UTC time `micros` microseconds after the epoch (exact)."""
    return EPOCH + timedelta(microseconds=int(micros))


def split_epoch_micros(micros: Any) -> tuple[Any, Any]:
    """Whole epoch seconds and the microseconds left over (in [0, 1e6)), of epoch microseconds:
    an int or a numpy int64 array, floored as a protobuf Timestamp holds a time."""
    return divmod(micros, _MICROS_PER_SECOND)


def join_epoch_micros(seconds: Any, micros: Any = 0) -> Any:
    """Epoch microseconds of whole epoch seconds plus microseconds (ints or numpy arrays): the
    inverse of `split_epoch_micros`, exact."""
    return seconds * _MICROS_PER_SECOND + micros


def epoch_seconds(micros: Any) -> Any:
    """Epoch seconds as floats (float64 arrays for numpy) of epoch microseconds."""
    return micros / _MICROS_PER_SECOND
