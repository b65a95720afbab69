"""Benchmark: `engram eval` on MovieLens-small: the LightGBM ranker against the baselines.

Ingests the data (read in place, never copied) into a fresh home under ENGRAM_HOME/eval/, trains
the ranker on a slice of history before the per-user cutoffs and evaluates every model on the
held-out part, in one run. Prints the metrics table, candidate recall and stage seconds.

    .venv/bin/python bench/rank.py [../shared/data/movielens-small] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/memory.py would shadow the
# `memory` package the ranker imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from engram.settings import get_settings  # noqa: E402
from ranking.evaluate import run_eval  # noqa: E402
from ranking.report import candidates_table, metrics_table  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-small"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="?", default=DEFAULT_DATA)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()

    began = time.perf_counter()
    result = run_eval(get_settings(), args.data, "movielens", default_report=True)
    seconds = time.perf_counter() - began
    if args.json:
        print(json.dumps(result.to_json()))
        return
    print(metrics_table(result.metrics))
    print()
    print(candidates_table(result.candidates))
    print(f"\ntraining: {result.training}")
    print(f"stages (s): {result.seconds}")
    print(f"total {seconds:.1f} s, load average {os.getloadavg()}, report {result.report}")


if __name__ == "__main__":
    main()
