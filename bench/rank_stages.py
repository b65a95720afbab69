"""Benchmark: where one `Ranker.rank` request goes, stage by stage, and what fewer candidates
would save. Run on a trained, materialized home (e.g. after `make demo`):

    ENGRAM_HOME=.engram-demo .venv/bin/python bench/rank_stages.py [--users 300]

Prints p50/p99 ms of each stage for the most active users (each candidate source scoring the
catalog, the whole candidate generation, the feature service read, the model matrix, LightGBM
on the candidates, SHAP for the top 10, the whole request without SHAP), then `Ranker.rank`
without SHAP with every source's candidate limit as is and halved, alternating, twice.
"""

# ruff: noqa: B023  (each stage's lambda runs at once, inside the loop that binds its names)

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, bench/ comes first on sys.path and bench/memory.py would shadow `memory`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import ranking.candidates as candidates  # noqa: E402
from core.settings import get_settings  # noqa: E402
from ranking.baselines import to_micros  # noqa: E402
from ranking.ranker import load_ranker  # noqa: E402


def percentiles(times: list[float]) -> str:
    return f"{np.percentile(times, 50):.2f} | {np.percentile(times, 99):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300)
    args = parser.parse_args()
    ranker = load_ranker(get_settings())
    inputs, history = ranker.inputs, ranker.inputs.context.history
    users = sorted(history.users, key=lambda u: -len(history.before(u, 2**62).items))
    users = users[: args.users]
    times: dict[str, list[float]] = {}

    def timed(name: str, call: Callable[[], object]) -> object:
        began = time.perf_counter()
        result = call()
        times.setdefault(name, []).append((time.perf_counter() - began) * 1_000)
        return result

    for user in users:
        at = pd.Timestamp.now(tz="UTC")
        moment, when = pd.DatetimeIndex([at]), at.to_pydatetime()
        seen = set(history.before(user, int(to_micros([at])[0])).items)
        for source in inputs.sources:
            timed(f"source {source.name}", lambda s=source: s.scores([user], moment, inputs.items))
        found = timed(
            "candidates (all sources, top-k, union)",
            lambda: candidates.generate_user(inputs.sources, user, at, inputs.items, seen),
        )
        items = found.item_ids.tolist()  # type: ignore[attr-defined]
        timed("feature service read", lambda: ranker.service(user, items, when))
        matrix = timed(
            "model matrix (read included)",
            lambda: ranker._assemble(
                user, items, found.scores, found.ranks, found.n_sources.astype(float), when
            ),
        )  # type: ignore[attr-defined]
        scores = timed("LightGBM on the candidates", lambda: ranker.score(matrix))  # type: ignore[arg-type]
        top = np.argsort(-np.asarray(scores))[:10]
        timed(
            "SHAP for the top 10",
            lambda: ranker.model.booster.predict(matrix[top], pred_contrib=True, num_threads=1),
        )  # type: ignore[index]
        timed("Ranker.rank, no SHAP", lambda: ranker.rank(user, 10, explain=False))
    print(f"{len(users)} users, ~{len(items)} candidates a request")
    print("| stage | p50 ms | p99 ms |\n| --- | --- | --- |")
    for name, values in times.items():
        print(f"| {name} | {percentiles(values)} |")

    full = dict(candidates.DEFAULT_LIMITS)
    print("\n| limits (sum) | Ranker.rank p50 ms | p99 ms |\n| --- | --- | --- |")
    for _ in range(2):
        for limits in (full, {name: n // 2 for name, n in full.items()}):
            candidates.DEFAULT_LIMITS.clear()
            candidates.DEFAULT_LIMITS.update(limits)
            runs = []
            for user in users:
                began = time.perf_counter()
                ranker.rank(user, 10, explain=False)
                runs.append((time.perf_counter() - began) * 1_000)
            print(f"| {sum(limits.values())} | {percentiles(runs)} |")
    candidates.DEFAULT_LIMITS.clear()
    candidates.DEFAULT_LIMITS.update(full)


if __name__ == "__main__":
    main()
