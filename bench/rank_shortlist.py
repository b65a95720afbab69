"""Benchmark: how much of the model's top 10 a shortlist keeps (issue 15).

For users with stored candidates (a trained ENGRAM_HOME with `engram materialize` done), the
model ranks every stored candidate as of now, then only those of a first stage; prints, per
first stage and shortlist size, the mean share of the full top 10's items that the shortlist's
top 10 holds (and the worst user's). First stages: reciprocal rank fusion of the sources' ranks
(`rrf`, what `ENGRAM_RANK_SHORTLIST` uses), the best rank in any source (`best_rank`), the best
rank relative to each source's limit (`relative_rank`).

    ENGRAM_HOME=... PYTHONPATH=. python bench/rank_shortlist.py [--users 300] [--sizes 100,200]
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/memory.py would shadow `memory`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from core.settings import get_settings  # noqa: E402
from ranking.candidates import RRF_K  # noqa: E402
from ranking.ranker import load_ranker  # noqa: E402

TOP = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--sizes", default="100,150,200,300")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    ranker = load_ranker(get_settings())
    limits = np.asarray(ranker._limits, dtype=float)
    now = datetime.now(UTC)
    kept: dict[tuple[str, int], list[float]] = {}
    rows = []
    for user in sorted(ranker.inputs.context.history.users)[: args.users]:
        found = ranker.stored(user)
        if found is None:
            continue
        rows.append(len(found.item_ids))
        matrix = ranker._assemble(
            user, found.item_ids.tolist(), found.scores, found.ranks, found.n_sources * 1.0, now
        )
        order = np.argsort(-ranker.score(matrix), kind="stable")
        full = set(order[:TOP].tolist())
        ranks = np.where(np.isnan(found.ranks), np.inf, found.ranks)
        stages = {
            "rrf": -np.nansum(1.0 / (RRF_K + found.ranks), axis=1),
            "best_rank": ranks.min(axis=1),
            "relative_rank": (ranks / limits).min(axis=1),
        }
        for name, first in stages.items():
            by_first = np.argsort(first, kind="stable")
            for size in sizes:
                inside = np.zeros(len(order), dtype=bool)
                inside[by_first[:size]] = True
                top = [row for row in order if inside[row]][:TOP]
                kept.setdefault((name, size), []).append(len(full & set(top)) / TOP)
    print(f"users {len(rows)}, stored candidates a user: mean {np.mean(rows):.1f}")
    for (name, size), shares in sorted(kept.items()):
        print(
            f"{name:>13} {size:>4}: kept {np.mean(shares):.4f} of the top {TOP}, "
            f"worst {min(shares):.1f}"
        )


if __name__ == "__main__":
    main()
