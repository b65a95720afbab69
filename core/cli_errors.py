"""How every `engram` command ends on an error: one line on stderr and an exit code.

Every package's cli.py decorates its commands with `handle_errors`; `engram.cli` only registers
them, so no command imports the front door back.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console

from core.errors import EngramError, InvalidInputError, ServiceUnavailableError

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True)
_EXIT_CODES: dict[type[EngramError], int] = {InvalidInputError: 2, ServiceUnavailableError: 3}


def _exit_code(error: EngramError) -> int:
    for kind, code in _EXIT_CODES.items():
        if isinstance(error, kind):
            return code
    return 2 if error.status_code < 500 else 1


def handle_errors(command: F) -> F:
    """Turn EngramError into a one-line message and an exit code instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EngramError as error:
            err_console.print(f"[red]error:[/red] {error}", highlight=False)
            sys.exit(_exit_code(error))

    return wrapper  # type: ignore[return-value]
