"""A circuit breaker: after a store fails, skip it for a short cool-down instead of waiting on it.

While open, callers answer from what they have (the ranker falls back to popularity) or fail fast
with 503; after the cool-down one call is let through, and its success closes the breaker, so the
API recovers by itself when the store is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

COOLDOWN_S = 2.0


class Breaker:
    """Open for `cooldown` seconds after a failure; closed again by the next success."""

    def __init__(
        self, name: str, cooldown: float = COOLDOWN_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0
        self.last_error: str | None = None

    @property
    def closed(self) -> bool:
        """True when calls may go to the store (closed, or the cool-down is over)."""
        return self._clock() >= self._open_until

    def failure(self, reason: str) -> None:
        """Record a failure: open for the cool-down."""
        with self._lock:
            self._open_until = self._clock() + self._cooldown
            self.last_error = reason

    def success(self) -> None:
        """Record a success: closed."""
        if self._open_until or self.last_error:
            with self._lock:
                self._open_until = 0.0
                self.last_error = None
