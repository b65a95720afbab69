"""Benchmark: a full ingest, then an ingest of the next 1% of events (incremental), and whether
the incremental snapshots equal a full recompute of the same store.

Generates the bench preset once under /tmp (never the repo), splits it by time (the newest 1%
of events, by ts, arrive second), then runs `engram ingest --json --no-memories` twice in child
processes on one fresh ENGRAM_HOME: the older 99% (a full recompute, as_of at their last event)
and the newest 1% (as_of the end of the data). CPU seconds are the child's user + sys
(getrusage of children: every thread, DuckDB's included). Then `engram ingest --full` of the
same store recomputes everything at the same as_of, and DuckDB counts the rows (all columns but
`created`) that differ between the two results.

    .venv/bin/python bench/ingest_incremental.py --events 10000000
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

import duckdb

ROOT = Path(__file__).resolve().parent.parent
ENGRAM = Path(sys.executable).parent / "engram"


def dataset(out: Path, events: int, share: float) -> tuple[Path, Path, Path, str, str]:
    """The generated signals split by time: (older, newer, catalog, older's last ts, end)."""
    signals, catalog = out / "signals.parquet", out / "catalog.jsonl"
    if not signals.exists():
        command = [str(ENGRAM), "generate", str(out), "--preset", "bench"]
        command += ["--events", str(events), "--format", "parquet"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    older, newer = out / "older.parquet", out / "newer.parquet"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    source = f"read_parquet('{signals}')"
    cut = con.sql(f"SELECT quantile_disc(ts, {1 - share}) FROM {source}").fetchall()[0][0]
    end = con.sql(f"SELECT max(ts) FROM {source}").fetchall()[0][0]
    if not newer.exists():
        for path, condition in ((older, "<="), (newer, ">")):
            con.sql(
                f"COPY (SELECT * FROM {source} WHERE ts {condition} '{cut}') TO '{path}' "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
    return older, newer, catalog, cut.isoformat(), end.isoformat()


def ingest(home: Path, signals: Path, as_of: str, *extra: str) -> dict[str, object]:
    """One `engram ingest` in a child process; adds its CPU and wall seconds and the load."""
    command = [str(ENGRAM), "ingest", str(signals), "--json", "--no-memories", "--as-of", as_of]
    env = {**os.environ, "ENGRAM_HOME": str(home)}
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([*command, *extra], check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    summary["wall_seconds"] = round(wall, 2)
    summary["cpu_seconds"] = round(
        after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2
    )
    summary["load"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    return summary


def differing_rows(left: Path, right: Path, key: str) -> int:
    """Rows (all columns but `created`) in one snapshot and not the other, both ways."""
    con = duckdb.connect()
    a = f"(SELECT * EXCLUDE (created) FROM read_parquet('{left}'))"
    b = f"(SELECT * EXCLUDE (created) FROM read_parquet('{right}'))"
    query = f"SELECT count(*) FROM ({a} EXCEPT ALL {b})"
    there = con.sql(query).fetchall()[0][0]
    back = con.sql(f"SELECT count(*) FROM ({b} EXCEPT ALL {a})").fetchall()[0][0]
    return int(there) + int(back)


def main() -> None:
    """Parse arguments, run, print figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--share", type=float, default=0.01, help="share of events arriving last")
    parser.add_argument("--out", type=Path, default=Path("/tmp/engram-bench-incremental"))
    parser.add_argument("--no-check", action="store_true", help="skip the full recompute check")
    args = parser.parse_args()
    data = args.out / f"signals-{args.events}"
    data.mkdir(parents=True, exist_ok=True)
    older, newer, catalog, cut, end = dataset(data, args.events, args.share)
    home = args.out / "home"
    shutil.rmtree(home, ignore_errors=True)
    first = ingest(home, older, cut, "--catalog", str(catalog))
    second = ingest(home, newer, end)
    for name, run in (("full ingest of the older events", first), ("ingest of the newest", second)):
        keys = ("read", "new", "aggregation", "feature_rows", "cpu_seconds", "wall_seconds")
        print(name, json.dumps({key: run[key] for key in keys}), "load", run["load"])
        print("  stage CPU seconds", json.dumps(run["stage_cpu_seconds"]))
    share = float(second["cpu_seconds"]) / float(first["cpu_seconds"])  # type: ignore[arg-type]
    print(f"CPU of the {args.share:.0%} ingest / the full ingest: {share:.1%}")
    if args.no_check:
        return
    features = home / "offline" / "features"
    kept = args.out / "incremental-features"
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(features, kept)
    again = ingest(home, newer, end, "--full")
    print(
        "full recompute of the same store",
        json.dumps({key: again[key] for key in ("aggregation", "cpu_seconds", "wall_seconds")}),
        "load",
        again["load"],
    )
    for name, key in (("user_features.parquet", "user_id"), ("item_features.parquet", "item_id")):
        print(f"{name}: rows differing from the full recompute:", end=" ")
        print(differing_rows(kept / name, features / name, key))
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
