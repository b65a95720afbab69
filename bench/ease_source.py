"""EASE as a point-in-time candidate source: its recall@100 on the validation split, per setting.

Usage: ENGRAM_HOME=<a home with MovieLens ingested> python bench/ease_source.py \
    LAMBDA,MIN_CONTACTS,GROWTH[,NEIGHBORS] ...

The validation split is the per-user temporal split of the evaluation's train part (the test
split's held-out interactions are never read). Each setting is fit on that train part and, with
GROWTH a number, retrained along the log (point in time: each user scored by the weights learned
before their cutoff); GROWTH "none" fits once, as the `ease` baseline does. Prints recall@100,
seconds, retrain points and the megabytes their weights hold.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import scipy.sparse as sp

from core.settings import get_settings
from ranking.baselines import EASE
from ranking.history import load_interactions
from ranking.split import temporal_split


def main() -> None:
    split = temporal_split(load_interactions(get_settings()))
    valid = temporal_split(split.train)
    for spec in sys.argv[1:]:
        lam, contacts, growth, neighbors = (spec + ",").split(",")[:4]
        began = time.perf_counter()
        model = EASE(
            regularization=float(lam),
            min_contacts=int(contacts),
            retrain_growth=None if growth == "none" else float(growth),
            neighbors=int(neighbors) if neighbors else None,
        )
        model.fit(valid.train if growth == "none" else split.train)
        recs = model.recommend(valid.users, valid.cutoffs, 100, valid.seen)
        found = [
            len(set(recs.get(u, [])) & set(want)) / len(want) for u, want in valid.relevant.items()
        ]
        recall = float(np.mean(found))
        held = sum(
            w.data.nbytes + w.indices.nbytes if sp.issparse(w) else w.nbytes
            for _, w in model._sides.values()
        )
        print(
            f"{spec}: recall@100 {recall:.4f}, {time.perf_counter() - began:.1f} s, "
            f"{len(model._sides)} retrain points, {held / 2**20:.0f} MB"
        )


if __name__ == "__main__":
    main()
