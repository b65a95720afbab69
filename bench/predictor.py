"""Benchmark: LightGBM's predict against the trees compiled to C (ranking.predictor, issue 15).

Loads the serving model of ENGRAM_HOME with `load_ranker` and builds the model matrices of
users' stored candidates as `Ranker.rank` does (the shortlist of 200); then, per code
generation setting, compiles the model in a temporary directory (wall and CPU seconds, the
compiler's processes included), and times single calls on one thread (CPU: time.thread_time,
median and p99 in microseconds) at 1, 100 and 200 rows, LightGBM's predict(num_threads=1)
interleaved with the compiled library's. Prints the largest score difference over every real
row and over rows at the model's thresholds (ranking.predictor.probe_rows).

    ENGRAM_HOME=... PYTHONPATH=. python bench/predictor.py [--users 100] [--calls 3000]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, bench/ comes first on sys.path, and bench/memory.py would shadow `memory`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from core.settings import get_settings  # noqa: E402
from ranking import predictor  # noqa: E402
from ranking.ranker import Ranker, load_ranker  # noqa: E402

SETTINGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "quantize": {"quantize": 1},
    "quantize+parallel_comp=8": {"quantize": 1, "parallel_comp": 8},
}
ROWS = (1, 100, 200)


def matrices(ranker: Ranker, users: int) -> list[np.ndarray]:
    """The model matrices `Ranker.rank` scores for users with stored candidates, now."""
    now = datetime.now(UTC)
    shortlist = ranker.settings.engram_rank_shortlist
    found = []
    for user in sorted(ranker.inputs.context.history.users):
        stored = ranker.stored(user)
        if stored is None:
            continue
        if shortlist:
            stored = stored.shortlist(shortlist)
        found.append(
            ranker._assemble(
                user,
                stored.item_ids.tolist(),
                stored.scores,
                stored.ranks,
                stored.n_sources.astype(float),
                now,
            )
        )
        if len(found) == users:
            break
    return found


def compile_seconds(text: str, work: Path) -> tuple[float, float, Path]:
    """Wall and CPU seconds of one build of the library in an empty directory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, wall = time.process_time(), time.perf_counter()
    path = predictor.library(text, work)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - wall, time.process_time() - cpu + children, path


def timed(call: Any, rows: np.ndarray) -> float:
    began = time.thread_time()
    call(rows)
    return (time.thread_time() - began) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per row count")
    args = parser.parse_args()
    ranker = load_ranker(get_settings())
    booster = ranker.model.booster
    text = booster.model_to_string()
    real = matrices(ranker, args.users)
    stacked = np.vstack(real)
    low = stacked.view(np.uint64) & predictor.LOW_WORD
    marked = (low == predictor.LOW_WORD).any(axis=1)
    print(
        f"model {ranker.version}: {booster.num_trees()} trees, {booster.num_feature()} features; "
        f"{len(real)} users' matrices, {len(stacked)} rows "
        f"({np.mean([len(m) for m in real]):.0f} a user), {np.isnan(stacked).mean():.1%} NaN; "
        f"{marked.sum()} rows hold a value tl2cgen reads as missing (scored by LightGBM)",
        flush=True,
    )
    lightgbm = predictor.BoosterPredictor(booster)
    expected = lightgbm.predict(stacked)
    probes = predictor.probe_rows(text, 20_000)
    expected_probes = lightgbm.predict(probes)
    pick = np.random.default_rng(0)
    for name, codegen in SETTINGS.items():
        predictor.CODEGEN = codegen
        with tempfile.TemporaryDirectory() as work:
            wall, cpu, path = compile_seconds(text, Path(work))
            size = path.stat().st_size
            fast = predictor.CompiledPredictor(path, booster)  # loaded: the file may go
        differences = [
            np.max(np.abs(fast.predict(stacked) - expected)),
            np.max(np.abs(fast.predict(probes) - expected_probes)),
        ]
        print(
            f"{name}: compile {wall:.2f} s wall, {cpu:.2f} s CPU, {size // 1024} KB; "
            f"max |score difference| real rows {differences[0]:.3g}, "
            f"threshold rows {differences[1]:.3g}",
            flush=True,
        )
        for count in ROWS:
            chosen = [m[:count] for m in real if len(m) >= count]
            for m in chosen[:20]:  # warm up
                lightgbm.predict(m), fast.predict(m)
            slow_us, fast_us = [], []
            for _ in range(args.calls):
                rows = chosen[pick.integers(len(chosen))]
                slow_us.append(timed(lightgbm.predict, rows))
                fast_us.append(timed(fast.predict, rows))
            print(
                f"  {count:>3} rows: LightGBM p50 {np.median(slow_us):.0f} us, "
                f"p99 {np.percentile(slow_us, 99):.0f} us; compiled p50 "
                f"{np.median(fast_us):.0f} us, p99 {np.percentile(fast_us, 99):.0f} us "
                f"({np.median(slow_us) / np.median(fast_us):.1f}x)",
                flush=True,
            )
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
