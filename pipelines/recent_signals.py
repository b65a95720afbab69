"""The incremental state's recent signals, kept coded: integer arrays (`SignalArrays`) and the
sorted names their codes number, so an ingest reads them back as arrays instead of decoding
and coding millions of strings each run; only its new signals are coded.

Kept per signal beside them: whether its (user, item) pair was seen before the horizon, which
does not change while the horizon stays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.signal_arrays import SignalArrays

_ARRAYS = ("users", "items", "categories", "t", "types", "weights", "ratings")
_NAMES = {"users": "user_names", "items": "item_names", "categories": "category_names"}


def files(stem: str) -> list[str]:
    """The names of the files `save` writes under `stem`."""
    return [f"{stem}.npz", *(f"{stem}-{side}.parquet" for side in _NAMES)]


def save(signals: SignalArrays, seen: np.ndarray, directory: Path, stem: str) -> None:
    """Write `signals` and their `seen` flags, numbering only the names they use."""
    arrays: dict[str, np.ndarray] = {name: getattr(signals, name) for name in _ARRAYS}
    for side, names_field in _NAMES.items():
        codes, names = _used(arrays[side], getattr(signals, names_field))
        arrays[side] = codes
        pq.write_table(pa.table({"key": names}), directory / f"{stem}-{side}.parquet")
    arrays["seen"] = seen
    # numpy's stubs take any keyword for savez's allow_pickle flag.
    np.savez(directory / f"{stem}.npz", **arrays)  # type: ignore[arg-type]


def load(directory: Path, stem: str) -> tuple[SignalArrays, np.ndarray]:
    """What `save` wrote: the signals and their `seen` flags."""
    with np.load(directory / f"{stem}.npz") as stored:
        arrays = {name: stored[name] for name in _ARRAYS}
        seen = stored["seen"]
    names = {
        field: pq.read_table(directory / f"{stem}-{side}.parquet").column("key").combine_chunks()
        for side, field in _NAMES.items()
    }
    return SignalArrays(**arrays, **names), seen


def merge(old: SignalArrays, new: SignalArrays, categories: pa.Array) -> SignalArrays:
    """`old`'s signals then `new`'s, coded into the sorted union of their names (with
    `categories` among the category names)."""
    coded = {}
    for side, names_field in _NAMES.items():
        extra = [categories] if side == "categories" else []
        union = _union([getattr(old, names_field), getattr(new, names_field), *extra])
        parts = [
            _recode(getattr(part, side), getattr(part, names_field), union) for part in (old, new)
        ]
        coded[side] = np.concatenate(parts)
        coded[names_field] = union
    rest = {
        name: np.concatenate([getattr(old, name), getattr(new, name)])
        for name in _ARRAYS
        if name not in _NAMES
    }
    return SignalArrays(**coded, **rest)


def _union(arrays: list[pa.Array]) -> pa.Array:
    """The distinct non-null values of `arrays`, sorted as `signal_arrays.encode` sorts names."""
    values = pc.unique(pa.concat_arrays([array.cast(pa.string()) for array in arrays]))
    values = values.drop_null()
    return values.take(pc.sort_indices(values))


def _recode(codes: np.ndarray, names: pa.Array, union: pa.Array) -> np.ndarray:
    """`codes` into `names` (-1 for none) as codes into `union`, which holds every name."""
    at = np.asarray(pc.index_in(names, value_set=union).to_numpy(zero_copy_only=False))
    return np.append(at.astype(np.int32), np.int32(-1))[codes]


def _used(codes: np.ndarray, names: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """`codes` renumbered over the names they use (still in name order), and those names."""
    used = np.zeros(len(names), dtype=bool)
    used[codes[codes >= 0]] = True
    renumber = np.append(np.cumsum(used, dtype=np.int32) - 1, np.int32(-1))
    return renumber[codes], names.filter(pa.array(used))
