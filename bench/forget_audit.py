"""Forget audit: after `engram forget USER_ID` (or DELETE /v1/users/USER_ID), search every place
Engram keeps data for the user's id and a distinctive text of theirs (forget/audit.py lists the
places). Prints what was scanned and every hit; exits 1 when anything was found.

    ENGRAM_HOME=... .venv/bin/python bench/forget_audit.py USER_ID --text "a phrase they sent" \
        [--log server.log ...] [--collection memories ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/memory.py would shadow the
# `memory` package the audit imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from engram.settings import get_settings  # noqa: E402
from forget.audit import audit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("user_id")
    parser.add_argument("--text", required=True, help="a distinctive text the user sent")
    parser.add_argument("--log", type=Path, action="append", default=[], help="a server log")
    parser.add_argument("--collection", action="append", help="only these Milvus collections")
    args = parser.parse_args()

    began = time.perf_counter()
    report = audit(
        get_settings(), args.user_id, args.text, logs=args.log, collections=args.collection
    )
    print("\n".join(report.lines()))
    print(f"{time.perf_counter() - began:.1f} s")
    sys.exit(0 if report.passed else 1)


if __name__ == "__main__":
    main()
