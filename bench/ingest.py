"""Benchmark: the batch pipeline (normalize + enrich + aggregate) on generated events.

Generates the events once (cached under bench/out/), then runs `engram ingest --json` in a child
process on a fresh ENGRAM_HOME and reports events/s end to end, the child's peak RSS and CPU
seconds, and the load average (the machine is shared: CPU seconds are the steadier figure).

    .venv/bin/python bench/ingest.py --events 10000000 --format parquet
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def dataset(events: int, fmt: str) -> Path:
    """Generate (once) the bench preset with `events` events; returns the signals path."""
    target = OUT / f"signals-{events}-{fmt}"
    signals = target / f"signals.{fmt}"
    if not signals.exists():
        started = time.perf_counter()
        command = [
            str(ROOT / ".venv" / "bin" / "engram"),
            "generate",
            str(target),
            "--preset",
            "bench",
            "--events",
            str(events),
            "--format",
            fmt,
        ]
        subprocess.run(command, check=True)
        print(f"generated {events:,} events ({fmt}) in {time.perf_counter() - started:.1f} s")
    return signals


def run_ingest(signals: Path, catalog: Path, code: Path | None = None) -> dict[str, object]:
    """One ingest on an empty home, in a child process; adds the child's peak RSS, its CPU
    seconds (user + sys: less noisy than wall time on a shared machine) and the load average.

    `code`, when given, is a directory holding another `pipelines` package to run instead of
    this tree's (a copy of the old code, to compare side by side in the same conditions).
    """
    home = OUT / "home"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "ENGRAM_HOME": str(home)}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [
        str(ROOT / ".venv" / "bin" / "engram"),
        "ingest",
        str(signals),
        "--catalog",
        str(catalog),
        "--json",
        "--no-memories",  # features only, as the figures in docs/benchmarks.md
        "--as-of",
        "2026-11-01T00:00:00Z",
    ]
    started = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    summary: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    summary["wall_seconds"] = round(wall, 2)
    # ru_maxrss of children is in KiB on Linux: the largest child, here the only one.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary["cpu_user_seconds"] = round(after.ru_utime - before.ru_utime, 2)
    summary["cpu_sys_seconds"] = round(after.ru_stime - before.ru_stime, 2)
    summary["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    summary["peak_rss_gb"] = round(after.ru_maxrss / 2**20, 2)
    return summary


def main() -> None:
    """Parse arguments, run, print figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--format", choices=["jsonl", "parquet"], default="parquet")
    parser.add_argument(
        "--code", type=Path, help="directory with another `pipelines` package to run instead"
    )
    args = parser.parse_args()
    signals = dataset(args.events, args.format)
    summary = run_ingest(signals, signals.parent / "catalog.jsonl", args.code)
    read = int(summary["read"])  # type: ignore[call-overload]
    print(json.dumps(summary, indent=2))
    print(
        f"\n{args.format}: {read:,} events in {summary['wall_seconds']} s wall "
        f"({read / float(summary['wall_seconds']):,.0f} events/s end to end incl. process start), "  # type: ignore[arg-type]
        f"pipeline {summary['seconds']} s ({read / float(summary['seconds']):,.0f} events/s), "  # type: ignore[arg-type]
        f"peak RSS {summary['peak_rss_gb']} GB, CPU {summary['cpu_user_seconds']} s user + "
        f"{summary['cpu_sys_seconds']} s sys, load average {summary['load_average']} "
        "(before, after)"
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
