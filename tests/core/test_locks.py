"""One file lock for processes sharing ENGRAM_HOME: exclusive, and released when its holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.locks import exclusive

_ROOT = Path(__file__).resolve().parents[2]
_HOLD = """
import sys, time
from pathlib import Path
from core.locks import exclusive
with exclusive(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(lock: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the lock for `seconds`, once it has said so."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(lock), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(_ROOT)},
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_a_second_process_waits_for_the_holder(tmp_path: Path) -> None:
    lock = tmp_path / "missing" / "dir" / "start.lock"  # directories are made on first use
    holder = _holder(lock, 0.5)
    began = time.monotonic()
    with exclusive(lock):
        waited = time.monotonic() - began
        assert holder.wait(timeout=5) == 0  # it released the lock by finishing
    assert waited > 0.3


def test_a_killed_holder_leaves_the_lock_free(tmp_path: Path) -> None:
    lock = tmp_path / "start.lock"
    holder = _holder(lock, 60)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=5)
    began = time.monotonic()
    with exclusive(lock):
        assert time.monotonic() - began < 1.0
