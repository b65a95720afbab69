"""Benchmark: `engram eval` on MovieLens-small (the LightGBM ranker against the baselines), or
with --latency the in-process ranking latency of a trained, materialized home.

Eval: ingests the data (read in place, never copied) into a fresh home under ENGRAM_HOME/eval/,
trains the ranker on a slice of history before the per-user cutoffs and evaluates every model on
the held-out part, in one run. Prints the metrics table, candidate recall and stage seconds.

    .venv/bin/python bench/rank.py [../shared/data/movielens-small] [--json]

Latency: loads the latest model of ENGRAM_HOME (after `engram ingest`, `materialize`, `train`;
e.g. the demo preset) and times, per request of one user x N given candidates, interleaved so
every mode sees the same machine load:
- `score`: `assemble_user` + LightGBM predict (1 thread, float64 array), features already read;
- `score_pandas`: the training path on the same inputs, `assemble` (DataFrame) + predict on it;
- `read+score`: the feature service read from Redis, then `score`;
- `rank_given`: the whole `Ranker.rank(user, k=10, candidates=...)` (sources score the catalog
  for the rank features, reasons for the top k);
- `rank_generated`: `Ranker.rank(user, k=10)`, candidates generated (~N00 items), explained;
- `rank_unexplained`: the same without the top-feature contributions (what POST /v1/rank does
  unless asked to explain);
- `service_unexplained`: `RankService.rank` as POST /v1/rank calls it: the forget check (one
  Redis read of the user's tombstone, every user here being known to the model), then
  `rank_unexplained`;
- `forget_check`: that check alone (`RankService.honour_forget`), what forgetting adds.
Users cycle through those with history; warm-up requests are not counted.

    ENGRAM_HOME=... .venv/bin/python bench/rank.py --latency [--requests 1000] [--candidates 100]
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

from core.settings import get_settings  # noqa: E402
from ranking.evaluate import run_eval  # noqa: E402
from ranking.report import candidates_table, metrics_table  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-small"


def latency(requests: int, n_candidates: int, warmup: int) -> dict[str, dict[str, float]]:
    """p50/p99/mean milliseconds of each mode (see the module docstring)."""
    from datetime import UTC, datetime

    import numpy as np
    import pandas as pd

    from core.stores.services import connect_redis
    from core.times import epoch_micros
    from ranking.candidates import generate
    from ranking.features import assemble, assemble_user
    from ranking.ranker import load_ranker
    from serving.backends import RankService
    from serving.breaker import Breaker

    settings = get_settings()
    ranker = load_ranker(settings)
    client = connect_redis(settings, settings.engram_store_timeout_ms / 1000)  # as the app's
    rank_service = RankService(settings, Breaker("redis"), lambda _s, _m: ranker, client=client)
    rank_service.refresh()
    inputs = ranker.inputs
    history = inputs.context.history
    users = sorted(history.users, key=lambda u: -len(history.before(u, 2**62).items))[:200]
    at = datetime.now(UTC)
    stamp = pd.DatetimeIndex([pd.Timestamp(at)])
    rng = np.random.default_rng(0)
    cases = []
    for user in users[: min(len(users), 50)]:
        seen = {user: set(history.before(user, epoch_micros(at)).items)}
        union = generate(inputs.sources, [user], stamp, inputs.items, seen).frame["item_id"]
        chosen = list(rng.choice(union.to_numpy(), min(n_candidates, len(union)), replace=False))
        frame = generate(inputs.sources, [user], stamp, inputs.items, {}, only=chosen).frame
        service = ranker.service(user, chosen, at)
        arrays = tuple(
            frame[[f"{kind}_{s}" for s in inputs.source_names]].to_numpy(float)
            for kind in ("score", "rank")
        )
        cases.append((user, chosen, frame, service, *arrays, frame["n_sources"].to_numpy(float)))
    names = inputs.source_names
    booster = ranker.model.booster

    def score(case: tuple) -> None:
        user, chosen, _, service, scores, ranks, n_sources = case
        ranker.score(
            assemble_user(
                inputs.context, user, epoch_micros(at), chosen, scores, ranks, n_sources, service
            )
        )

    def score_pandas(case: tuple) -> None:
        _, _, frame, service = case[:4]
        rows = pd.DataFrame(service, columns=inputs.service_features)
        matrix = assemble(frame, rows, inputs.context, names, inputs.service_features)
        booster.predict(matrix)

    modes = {
        "score": score,
        "score_pandas": score_pandas,
        "read+score": lambda case: ranker.score(ranker.matrix(case[2], at)),
        "rank_given": lambda case: ranker.rank(case[0], 10, candidates=case[1], at=at),
        "rank_generated": lambda case: ranker.rank(case[0], 10, at=at),
        "rank_unexplained": lambda case: ranker.rank(case[0], 10, at=at, explain=False),
        "service_unexplained": lambda case: rank_service.rank(case[0], 10, None, None, at),
        "forget_check": lambda case: rank_service.honour_forget(case[0]),
    }
    times: dict[str, list[float]] = {name: [] for name in modes}
    for i in range(warmup + requests):
        case = cases[i % len(cases)]
        for name, run in modes.items():
            began = time.perf_counter()
            run(case)
            if i >= warmup:
                times[name].append((time.perf_counter() - began) * 1_000)
    return {
        name: {
            "p50_ms": round(float(np.percentile(t, 50)), 3),
            "p99_ms": round(float(np.percentile(t, 99)), 3),
            "mean_ms": round(float(np.mean(t)), 3),
        }
        for name, t in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="?", default=DEFAULT_DATA)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--latency", action="store_true", help="time ranking in process")
    parser.add_argument("--requests", type=int, default=1_000, help="timed requests per mode")
    parser.add_argument("--candidates", type=int, default=100, help="given candidates a request")
    parser.add_argument("--warmup", type=int, default=100, help="requests not timed")
    args = parser.parse_args()

    if args.latency:
        began = time.perf_counter()
        figures = latency(args.requests, args.candidates, args.warmup)
        if args.json:
            print(json.dumps(figures))
            return
        print(
            f"{args.requests} requests a mode (+{args.warmup} warm-up), "
            f"{args.candidates} given candidates"
        )
        print("| mode | p50 ms | p99 ms | mean ms |\n| --- | --- | --- | --- |")
        for name, row in figures.items():
            print(f"| {name} | {row['p50_ms']} | {row['p99_ms']} | {row['mean_ms']} |")
        print(f"total {time.perf_counter() - began:.1f} s, load average {os.getloadavg()}")
        return

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
