"""Enriched signals read once into numpy arrays with integer codes, for the aggregations."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.contract import SIGNAL_TYPES

# Weights are summed as integer micro-units, so a window's sum (a difference of two prefix
# sums) is exact and an empty window is exactly 0.
WEIGHT_SCALE = 1_000_000


@dataclass(frozen=True)
class SignalArrays:
    """Signals with ts <= as_of, one array element per signal, in no particular order."""

    users: np.ndarray  # int32 code into user_names
    user_names: pa.Array  # sorted
    items: np.ndarray  # int32 code into item_names, -1 without an item
    item_names: pa.Array  # sorted
    categories: np.ndarray  # int32 code into category_names, -1 without a category
    category_names: pa.Array  # sorted, so code order is name order
    t: np.ndarray  # int64 epoch microseconds
    types: np.ndarray  # int8 index into SIGNAL_TYPES
    weights: np.ndarray  # int64 micro-weights
    ratings: np.ndarray  # float64 value of `rate` signals, NaN otherwise

    def __len__(self) -> int:
        return len(self.t)


def type_code(name: str) -> int:
    """The code of a signal type in `SignalArrays.types`."""
    return SIGNAL_TYPES.index(name)


def type_code_sql() -> str:
    """SQL mapping the `type` column to its index in SIGNAL_TYPES (TINYINT, -1 if unknown)."""
    cases = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(SIGNAL_TYPES))
    return f"CAST(CASE type {cases} ELSE -1 END AS TINYINT)"


# What the aggregations read of each signal: SIGNAL_COLUMNS' table, before coding.
SIGNAL_COLUMNS = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("category", pa.string()),
        ("t", pa.int64()),
        ("type_code", pa.int8()),
        ("weight_micros", pa.int64()),
        ("rating", pa.float64()),
    ]
)


def read_signals(enriched: duckdb.DuckDBPyRelation, as_of_us: int) -> SignalArrays:
    """The enriched signals up to `as_of_us` (epoch microseconds) as coded arrays."""
    return code_signals(signal_table(enriched, as_of_us))


def signal_table(enriched: duckdb.DuckDBPyRelation, as_of_us: int | None = None) -> pa.Table:
    """The enriched signals (up to `as_of_us` when given) as SIGNAL_COLUMNS, not yet coded."""
    if as_of_us is not None:
        enriched = enriched.filter(f"epoch_us(ts) <= {as_of_us}")
    table = enriched.project(
        f"""
        user_id, item_id, category, epoch_us(ts) AS t, {type_code_sql()} AS type_code,
        CAST(round(weight * {WEIGHT_SCALE}) AS BIGINT) AS weight_micros,
        CASE WHEN type = 'rate' THEN value END AS rating
        """
    ).to_arrow_table()
    return table.cast(SIGNAL_COLUMNS)


def code_signals(table: pa.Table) -> SignalArrays:
    """A SIGNAL_COLUMNS table as coded arrays."""
    codes = {}
    for name in ("user_id", "item_id", "category"):
        codes[name] = encode(table.column(name))
        table = table.drop_columns([name])  # frees the strings before the next column is coded
    return SignalArrays(
        users=codes["user_id"][0],
        user_names=codes["user_id"][1],
        items=codes["item_id"][0],
        item_names=codes["item_id"][1],
        categories=codes["category"][0],
        category_names=codes["category"][1],
        t=table.column("t").to_numpy(),
        types=table.column("type_code").to_numpy(),
        weights=table.column("weight_micros").to_numpy(),
        ratings=table.column("rating").to_numpy(),
    )


def encode(values: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Codes (int32, -1 for NULL) numbering the distinct values in sorted order, and the values."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    dictionary = encoded.dictionary
    order = np.asarray(pc.sort_indices(dictionary), dtype=np.int32)
    # rank[i] is the sorted position of dictionary entry i; the extra last slot maps NULL to -1.
    rank = np.full(len(order) + 1, -1, dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    indices = encoded.indices
    if indices.null_count:
        indices = pc.fill_null(indices, len(order))
    return rank[indices.to_numpy()], dictionary.take(pa.array(order))
