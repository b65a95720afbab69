"""Capping the label users of a training slice."""

from __future__ import annotations

import pandas as pd

from ranking.train import LabelSlice


def test_a_capped_slice_is_a_fixed_subset_in_the_original_order() -> None:
    cutoffs = pd.Series(
        pd.date_range("2026-01-01", periods=50, tz="UTC"), index=[f"u{i}" for i in range(50)]
    )
    part = LabelSlice(cutoffs, {}, {})
    small = part.limited(10)
    assert len(small.cutoffs) == 10
    assert set(small.cutoffs.index) <= set(cutoffs.index)
    assert list(small.cutoffs.index) == [u for u in cutoffs.index if u in set(small.cutoffs.index)]
    assert (small.cutoffs == cutoffs[small.cutoffs.index]).all()
    assert list(part.limited(10).cutoffs.index) == list(small.cutoffs.index)  # same every run
    assert part.limited(100) is part
