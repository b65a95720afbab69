"""The point-in-time join for training, in DuckDB: one as-of join per snapshot file.

What Feast's `get_historical_features` does over its DuckDB offline store (feast/infra/
offline_stores/ibis.py `point_in_time_join`), computed the way DuckDB is fast at: for every label
and every view, the view's columns of the newest snapshot row of the label's entity stamped at or
before the label's time (ties on that time: the newest `created`), NULL when there is none or when
that row is older than the view's ttl (a row stamped exactly ttl before the label still counts).
Feast builds an inner join of every label with every earlier row of its entity and keeps the
newest per label with a window function, once per view; an ASOF JOIN finds the same row by a
merge of two sorted lists, and the views of one snapshot file (every window of a user, say) share
it. tests/ranking/test_point_in_time.py holds both to the same rows and values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from core.errors import InvalidInputError
from core.stores.online.layout import ViewRef
from core.stores.online.plan import ServicePlan

if TYPE_CHECKING:
    from feast import FeatureStore

_ROW = "__pit_row"
_AT = "__pit_at_us"
_SNAP = "__pit_snap_us"
_KEY = "__pit_key"
_SNAP_ROW = "__pit_snap_row"
MATCH = "__pit_match__"  # + view name: which snapshot row a label row took (NA: none)


@dataclass(frozen=True)
class SnapshotFile:
    """Where a view's rows are: the offline store's Parquet file and its two time columns."""

    path: str
    timestamp_field: str
    created_field: str | None


def snapshot_files(store: FeatureStore, views: Sequence[ViewRef]) -> dict[str, SnapshotFile]:
    """Each view's batch source from the registry (a push source's file source), by view name."""
    out: dict[str, SnapshotFile] = {}
    for view in views:
        source: Any = store.get_feature_view(view.name).batch_source
        path = getattr(source, "path", None)
        if path is None:
            raise InvalidInputError(view.name, "only file sources are joined in DuckDB")
        if source.field_mapping:
            raise InvalidInputError(view.name, "field mappings are not supported in DuckDB")
        if not Path(path).is_absolute():
            path = str(Path(store.repo_path) / path)
        out[view.name] = SnapshotFile(
            path, source.timestamp_field, source.created_timestamp_column or None
        )
    return out


def join(
    con: duckdb.DuckDBPyConnection,
    labels: pd.DataFrame,
    views: Sequence[ViewRef],
    files: dict[str, SnapshotFile],
    event_timestamp: str = "event_timestamp",
) -> pd.DataFrame:
    """Every view's features for each label row (same order, same index), as of its time.

    `labels` holds each view's join key and `event_timestamp` (UTC datetimes)."""
    times = pd.to_datetime(labels[event_timestamp], utc=True)
    at = times.dt.as_unit("us").astype("int64").to_numpy()
    keys = list(dict.fromkeys(v.join_key for v in views))
    missing = [k for k in keys if k not in labels.columns]
    if missing:
        raise InvalidInputError("labels", f"missing join keys {missing}")
    columns: dict[str, pa.ChunkedArray] = {}
    groups: dict[str, dict[SnapshotFile, list[ViewRef]]] = {}
    for view in views:
        groups.setdefault(view.join_key, {}).setdefault(files[view.name], []).append(view)
    for key, by_file in groups.items():
        # Each distinct (entity, time) is joined once: a user's hundreds of candidates at one
        # time share its rows.
        ids = labels[key].astype(str).to_numpy()
        pair = pd.DataFrame({"id": ids, "at": at}).groupby(["id", "at"], sort=False).ngroup()
        inverse = pair.to_numpy()
        first = np.unique(inverse, return_index=True)[1]
        table = pa.table(
            {
                _ROW: pa.array(np.arange(len(first), dtype=np.int64)),
                _AT: pa.array(at[first], type=pa.int64()),
                key: pa.array(ids[first], type=pa.string()),
            }
        )
        con.register("__pit_labels", table)
        try:
            for file, members in by_file.items():
                result = con.sql(_query(key, file, members)).to_arrow_table()
                for name in result.column_names:
                    if name != _ROW:
                        columns[name] = result.column(name).take(inverse)
        finally:
            con.unregister("__pit_labels")
    names = [f.name for v in views for f in v.features]
    for view in views:
        columns[MATCH + view.name] = columns[f"{_SNAP_ROW}{view.join_key}"]
    names += [MATCH + view.name for view in views]
    frame = pa.table({n: columns[n] for n in dict.fromkeys(names)}).to_pandas()
    frame.index = labels.index
    return frame


def _query(key: str, file: SnapshotFile, views: Sequence[ViewRef]) -> str:
    """The as-of join of the labels with one snapshot file, a column per feature, ttl applied."""
    ts, created = _ident(file.timestamp_field), file.created_field
    names = list(dict.fromkeys(f.name for v in views for f in v.features))
    newest_first = f"{ts} DESC" + (f", {_ident(created)} DESC NULLS LAST" if created else "")
    selected = []
    for view in views:
        for feature in view.features:
            column = f"s.{_ident(feature.name)}"
            if view.ttl is not None and view.ttl.total_seconds() > 0:
                ttl_us = int(view.ttl.total_seconds() * 1_000_000)
                column = f"CASE WHEN s.{_SNAP} >= l.{_AT} - {ttl_us} THEN {column} END"
            selected.append(f"{column} AS {_ident(feature.name)}")
    selected.append(f"s.{_SNAP_ROW} AS {_ident(_SNAP_ROW + key)}")
    return f"""
        WITH snap AS (
            SELECT {_ident(key)} AS {_KEY}, epoch_us({ts}) AS {_SNAP},
                   row_number() OVER () AS {_SNAP_ROW},
                   {", ".join(_ident(n) for n in names)}
            FROM read_parquet({_literal(file.path)})
            QUALIFY row_number() OVER (PARTITION BY {_ident(key)}, {ts} ORDER BY {newest_first}) = 1
        )
        SELECT l.{_ROW}, {", ".join(selected)}
        FROM __pit_labels l
        ASOF LEFT JOIN snap s ON l.{_ident(key)} = s.{_KEY} AND l.{_AT} >= s.{_SNAP}
        ORDER BY l.{_ROW}
    """


def on_demand(
    plan: ServicePlan, stored: pd.DataFrame, request: pd.DataFrame
) -> dict[str, list[Any]]:
    """The plan's on-demand outputs over joined rows, by the functions registered with Feast,
    fed as Feast feeds them (a list per input, both spellings of each stored input)."""
    out: dict[str, list[Any]] = {}
    for ref in plan.on_demand:
        inputs: dict[str, list[Any]] = {}
        for view, feature in ref.inputs:
            values = _python_values(stored[feature], stored.get(MATCH + view))
            inputs[feature] = inputs[f"{view}__{feature}"] = values
        for name in ref.request:
            inputs[name] = pa.Array.from_pandas(request[name]).to_pylist()
        produced = ref.udf(inputs)
        out.update({name: list(produced[name]) for name in ref.outputs})
    return out


def _python_values(column: pd.Series, matches: pd.Series | None) -> list[Any]:
    """The column as Python values (lists for list features, None for missing). Rows holding
    the same snapshot row's value share one object, converted once: a user's rows at one time
    (hundreds of candidates) hold the same lists, and the functions index a repeated list once."""
    if matches is None or column.dtype != object:
        return pa.Array.from_pandas(column).to_pylist()
    # A matched row past the view's ttl holds None: the code says which value a row holds.
    present = column.notna().to_numpy()
    codes = np.where(present, matches.fillna(-1).to_numpy(dtype=np.int64), -1)
    distinct, first = np.unique(codes, return_index=True)
    values = pa.Array.from_pandas(column.iloc[first]).to_pylist()
    by_code = dict(zip(distinct.tolist(), values, strict=True))
    by_code[-1] = None
    return [by_code[code] for code in codes.tolist()]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
