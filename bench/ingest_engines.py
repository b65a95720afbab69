"""Benchmark: `engram ingest` on the DuckDB engine beside the Spark engine (local mode), same
generated events, same run.

Generates the bench preset once per size under /tmp/engram-bench (never in the repository), then
for each engine runs `engram ingest --json --no-memories --engine E` in a child process on an
empty ENGRAM_HOME. Prints per engine: events read, pipeline seconds and events/s, wall seconds of
the whole command (process and JVM start included), CPU seconds (user + sys of the command and
everything it waited for: the Spark engine stops its JVM, so the JVM's CPU counts), peak RSS of
the largest process, and the load average before and after (the machine is shared: CPU seconds
are the steadier figure).

    python bench/ingest_engines.py --events 1000000 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path("/tmp/engram-bench")
ENGINES = ("duckdb", "spark")
AS_OF = "2026-11-01T00:00:00Z"
ENGRAM = [sys.executable, "-m", "engram.cli"]


def dataset(events: int) -> Path:
    """Generate (once) the bench preset with `events` events as Parquet; returns its directory."""
    target = OUT / f"signals-{events}"
    if not (target / "signals.parquet").exists():
        started = time.perf_counter()
        command = [*ENGRAM, "generate", str(target), "--preset", "bench", "--events", str(events)]
        subprocess.run([*command, "--format", "parquet"], check=True, stdout=subprocess.DEVNULL)
        print(f"generated {events:,} events in {time.perf_counter() - started:.1f} s", flush=True)
    return target


def ingest(data: Path, engine: str) -> dict[str, object]:
    """One ingest on an empty home in a child process, with its wall time, CPU and peak RSS."""
    home = OUT / f"home-{engine}"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "ENGRAM_HOME": str(home)}
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [
        *ENGRAM,
        "ingest",
        str(data / "signals.parquet"),
        "--catalog",
        str(data / "catalog.jsonl"),
        "--json",
        "--no-memories",
        "--as-of",
        AS_OF,
        "--engine",
        engine,
    ]
    started = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    summary.pop("rejected_by_reason", None)
    summary.pop("memories", None)
    summary["engine"] = engine
    summary["wall_seconds"] = round(wall, 2)
    summary["cpu_seconds"] = round(
        after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2
    )
    summary["peak_rss_gb"] = round(after.ru_maxrss / 2**20, 2)  # KiB on Linux
    summary["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    shutil.rmtree(home, ignore_errors=True)
    return summary


def main() -> None:
    """Parse arguments, run both engines per size, print figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    args = parser.parse_args()
    for events in args.events:
        data = dataset(events)
        for engine in args.engines:
            summary = ingest(data, engine)
            print(json.dumps(summary), flush=True)
            read = int(summary["read"])  # type: ignore[call-overload]
            seconds = float(summary["seconds"])  # type: ignore[arg-type]
            print(
                f"{engine}: {read:,} events, pipeline {seconds} s "
                f"({read / seconds:,.0f} events/s), "
                f"wall {summary['wall_seconds']} s, CPU {summary['cpu_seconds']} s "
                f"({summary['cpu_seconds'] / read * 1e6:.1f} us/event), "  # type: ignore[operator]
                f"peak RSS {summary['peak_rss_gb']} GB, load {summary['load_average']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
