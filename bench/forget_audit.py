"""Forget audit: after `engram forget USER_ID` (or DELETE /v1/users/USER_ID), search every place
Engram keeps data for the user's id and a distinctive text of theirs (forget/audit.py lists the
places). Prints what was scanned and every hit; exits 1 when anything was found.

    ENGRAM_HOME=... .venv/bin/python bench/forget_audit.py USER_ID --text "a phrase they sent" \
        [--log server.log ...] [--collection memories ...] [--milvus-dir DIR] [--wait-bound]

Milvus's own files keep a forgotten user's bytes for a stated time after the forget
(core/stores/log_retention.py); `--wait-bound` waits for it before scanning.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/memory.py would shadow the
# `memory` package the audit imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from core.settings import Settings, get_settings  # noqa: E402
from core.stores.log_retention import EMBEDDED_RETENTION  # noqa: E402
from core.stores.services import connect_redis  # noqa: E402
from forget.audit import audit  # noqa: E402
from pipelines.stream.tombstones import read_tombstones  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("user_id")
    parser.add_argument("--text", required=True, help="a distinctive text the user sent")
    parser.add_argument("--log", type=Path, action="append", default=[], help="a server log")
    parser.add_argument("--collection", action="append", help="only these Milvus collections")
    parser.add_argument("--milvus-dir", type=Path, help="the Milvus data directory (MILVUS_URI)")
    parser.add_argument(
        "--wait-bound",
        action="store_true",
        help="first wait until the embedded Milvus's on-disk bound after the forget has passed",
    )
    args = parser.parse_args()
    settings = get_settings()
    if args.wait_bound:
        wait_for_bound(settings, args.user_id)

    began = time.perf_counter()
    report = audit(
        settings,
        args.user_id,
        args.text,
        logs=args.log,
        collections=args.collection,
        milvus_dir=args.milvus_dir,
    )
    print("\n".join(report.lines()))
    print(f"{time.perf_counter() - began:.1f} s")
    sys.exit(0 if report.passed else 1)


def wait_for_bound(settings: Settings, user_id: str) -> None:
    """Sleep until the embedded Milvus's stated bound has passed since the user's forget."""
    with connect_redis(settings) as client:
        tombstone = read_tombstones(client, [user_id]).get(user_id)
    if tombstone is None:
        sys.exit(f"{user_id} has no tombstone: was the user forgotten?")
    # Time ticks alone close a message-log page within a minute (core/stores/log_retention.py).
    due = tombstone.forgotten_at_ms / 1000 + EMBEDDED_RETENTION.bound_s(page_fill_s=60)
    if due > time.time():
        print(f"waiting {due - time.time():.0f} s for the on-disk bound", flush=True)
        time.sleep(due - time.time())


if __name__ == "__main__":
    main()
