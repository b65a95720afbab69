"""The kept recent signals: written and read back, and merged with new ones, they are coded as
coding all the signals at once codes them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipelines import recent_signals
from pipelines.signal_arrays import SIGNAL_COLUMNS, SignalArrays, code_signals


def _table(users: list[str], items: list[str | None], categories: list[str | None]) -> pa.Table:
    n = len(users)
    return pa.table(
        {
            "user_id": users,
            "item_id": items,
            "category": categories,
            "t": np.arange(n, dtype=np.int64),
            "type_code": np.zeros(n, dtype=np.int8),
            "weight_micros": np.arange(n, dtype=np.int64) * 10,
            "rating": np.full(n, np.nan),
        },
        schema=SIGNAL_COLUMNS,
    )


def _decoded(signals: SignalArrays) -> list[tuple[object, ...]]:
    def names(codes: np.ndarray, values: pa.Array) -> list[object]:
        return [values[int(code)].as_py() if code >= 0 else None for code in codes]

    return list(
        zip(
            names(signals.users, signals.user_names),
            names(signals.items, signals.item_names),
            names(signals.categories, signals.category_names),
            signals.t.tolist(),
            signals.weights.tolist(),
            strict=True,
        )
    )


def test_saved_and_merged_signals_are_coded_as_one_coding_of_all(tmp_path: Path) -> None:
    old_table = _table(["u2", "u1", "u2"], ["b", None, "a"], ["x", None, "y"])
    new_table = _table(["u3", "u1"], ["a", "c"], [None, "w"])
    old = code_signals(old_table)
    # Names the signals no longer use are dropped on save.
    padded = dataclasses.replace(old, user_names=pa.array(["u0", "u1", "u2"]), users=old.users + 1)
    seen = np.array([True, False, True])
    recent_signals.save(padded, seen, tmp_path, "recent-1")
    loaded, loaded_seen = recent_signals.load(tmp_path, "recent-1")
    assert loaded.user_names.to_pylist() == ["u1", "u2"]
    assert _decoded(loaded) == _decoded(old)
    assert loaded_seen.tolist() == seen.tolist()

    merged = recent_signals.merge(loaded, code_signals(new_table), pa.array(["v", "x"]))
    whole = code_signals(pa.concat_tables([old_table, new_table]))
    assert _decoded(merged) == _decoded(whole)
    assert merged.user_names.equals(whole.user_names)
    assert merged.item_names.equals(whole.item_names)
    assert merged.category_names.to_pylist() == ["v", "w", "x", "y"]
    assert sorted(recent_signals.files("recent-1")) == sorted(p.name for p in tmp_path.iterdir())
