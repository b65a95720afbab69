"""Point-in-time training rows: each label joined with the features as they were at its time.

For every label (user_id, item_id, event_timestamp) and every view: the newest snapshot row of
that entity with event_timestamp <= the label's, and not older than the view's ttl; nothing later
can enter. The join is ranking.point_in_time's DuckDB as-of join over the offline store's
snapshot files (`join="duckdb"`, the default), held equal to Feast's `get_historical_features`
(`join="feast"`), which computes the same rows far slower. On-demand features are computed from
those values and the request fields by the functions registered with Feast; `item_category`,
which the ranker knows at request time, comes from the catalog when the labels do not carry it
(the catalog keeps no history, so this is the one input that is not point-in-time).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
import pyarrow.parquet as pq

from core.errors import InvalidInputError, SourceError
from core.settings import Settings

if TYPE_CHECKING:  # the SDK takes seconds to import
    from feast import FeatureStore

    from core.stores.online.plan import ServicePlan

LABEL_KEYS = ("user_id", "item_id", "event_timestamp")
# Request fields the catalog can fill, and the catalog column each one is.
CATALOG_FIELDS = {"item_category": "category"}
_ROW = "__label_row"


@dataclass(frozen=True)
class TrainingSummary:
    """What one `engram training-data` run wrote."""

    rows: int
    features: int
    feature_service: str
    seconds: float


def check_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """Labels with event_timestamp as UTC microseconds (naive times are UTC, as in Feast). Pure."""
    missing = [c for c in LABEL_KEYS if c not in labels.columns]
    if missing:
        raise InvalidInputError("labels", f"missing columns {missing}")
    if _ROW in labels.columns:
        raise InvalidInputError("labels", f"column {_ROW!r} is reserved")
    out = labels.copy()
    given = out["event_timestamp"]
    if isinstance(given.dtype, pd.DatetimeTZDtype) and given.dtype.unit in ("s", "ms", "us"):
        # Already UTC-able times no finer than microseconds (training's own labels): nothing to
        # parse or floor, which on millions of labels took seconds.
        if given.isna().any():
            raise InvalidInputError("event_timestamp", "a label has no time")
        out["event_timestamp"] = given.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        return _check_ids(out)
    try:
        times = pd.to_datetime(out["event_timestamp"])
    except (ValueError, TypeError) as e:
        raise InvalidInputError("event_timestamp", f"not times: {e}") from e
    if times.isna().any():
        raise InvalidInputError("event_timestamp", "a label has no time")
    times = times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")
    # Snapshots are stamped in microseconds, so flooring a label's time changes no join.
    out["event_timestamp"] = times.dt.floor("us").astype("datetime64[us, UTC]")
    return _check_ids(out)


def _check_ids(labels: pd.DataFrame) -> pd.DataFrame:
    for key in ("user_id", "item_id"):
        if labels[key].isna().any():
            raise InvalidInputError(key, "a label has no id")
    return labels


def with_catalog_fields(
    labels: pd.DataFrame, catalog: pd.DataFrame, fields: list[str]
) -> pd.DataFrame:
    """Labels with the request fields the catalog fills, looked up by item_id. Pure."""
    out = labels
    for name in fields:
        column = CATALOG_FIELDS[name]
        by_item = catalog.drop_duplicates("item_id").set_index("item_id")[column]
        out = out.assign(**{name: out["item_id"].map(by_item)})
    return out


def _read_catalog(settings: Settings) -> pd.DataFrame:
    from pipelines.catalog_store import catalog_path

    path = catalog_path(settings)
    if not path.exists():
        return pd.DataFrame({"item_id": [], **{c: [] for c in CATALOG_FIELDS.values()}})
    return pq.read_table(path, columns=["item_id", *CATALOG_FIELDS.values()]).to_pandas()


def _bound_duckdb(settings: Settings) -> None:
    """Give Feast's DuckDB offline store (ibis' default backend) the settings' limits."""
    import ibis

    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    ibis.set_backend(
        ibis.duckdb.connect(
            threads=settings.duckdb_threads,
            memory_limit=settings.duckdb_memory_limit,
            temp_directory=str(settings.tmp_dir),
        )
    )


def offline_store(settings: Settings) -> FeatureStore:
    """The feature store for offline reads, the repo applied; it never connects to Redis."""
    from core.stores import feature_store

    store = feature_store.open_store(
        settings, settings.redis_url or feature_store.OFFLINE_ONLY_REDIS
    )
    feature_store.apply_repo(store, settings)
    return store


def training_frame(
    settings: Settings,
    labels: pd.DataFrame,
    feature_service: str = "ranking",
    *,
    store: FeatureStore | None = None,
    join: Literal["duckdb", "feast"] = "duckdb",
) -> pd.DataFrame:
    """The labels, in their order, with the service's features as of each label's time: joined
    in DuckDB, or by Feast's `get_historical_features` (the reference, same rows and values)."""
    from feast.errors import FeatureServiceNotFoundException

    from core.stores.online.plan import service_plan

    labels = check_labels(labels)
    store = store or offline_store(settings)
    try:
        service = store.get_feature_service(feature_service)
    except FeatureServiceNotFoundException as e:
        raise InvalidInputError("feature_service", f"no feature service {feature_service!r}") from e
    plan = service_plan(store, service)
    absent = [f for f in plan.request_fields if f not in labels.columns]
    unknown = [f for f in absent if f not in CATALOG_FIELDS]
    if unknown:
        raise InvalidInputError("labels", f"missing request fields {unknown}")
    if absent:
        labels = with_catalog_fields(labels, _read_catalog(settings), absent)
    if join == "duckdb":
        return _duckdb_frame(settings, store, plan, labels)
    _bound_duckdb(settings)
    # Feast's join does not keep row order; a row number brings it back.
    entity_df = labels.assign(**{_ROW: range(len(labels))})
    with warnings.catch_warnings():
        # ibis still calls a DuckDB method deprecated in 2.0, once per view.
        warnings.filterwarnings("ignore", "fetch_arrow_table", DeprecationWarning)
        job = store.get_historical_features(entity_df=entity_df, features=service)
        joined = job.to_df()
    joined = joined.sort_values(_ROW, kind="stable").drop(columns=[_ROW]).reset_index(drop=True)
    return joined[[*labels.columns, *plan.outputs]]


def _duckdb_frame(
    settings: Settings, store: FeatureStore, plan: ServicePlan, labels: pd.DataFrame
) -> pd.DataFrame:
    from pipelines import duck
    from ranking import point_in_time

    files = point_in_time.snapshot_files(store, plan.views)
    con = duck.connect(settings)
    try:
        stored = point_in_time.join(con, labels, plan.views, files)
    finally:
        con.close()
    computed = point_in_time.on_demand(plan, stored, labels)
    features = {
        name: stored[name] if name in stored else pd.Series(computed[name], index=labels.index)
        for name in plan.outputs
    }  # the join's match columns are left out
    joined = pd.concat([labels, pd.DataFrame(features, index=labels.index)], axis=1)
    return joined.reset_index(drop=True)


def write_training_data(
    settings: Settings, labels_path: Path, out: Path, feature_service: str = "ranking"
) -> TrainingSummary:
    """Read labels from Parquet, join the features point-in-time, write the rows to Parquet."""
    began = time.perf_counter()
    if out.suffix != ".parquet":
        raise InvalidInputError("OUT", "training rows are written as Parquet: use a .parquet path")
    try:
        labels = pd.read_parquet(labels_path)
    except (OSError, ValueError) as e:
        raise SourceError(str(labels_path), f"cannot read labels as Parquet: {e}") from e
    frame = training_frame(settings, labels, feature_service)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    added = set(frame.columns) - set(labels.columns) - set(CATALOG_FIELDS)
    return TrainingSummary(
        rows=len(frame),
        features=len(added),
        feature_service=feature_service,
        seconds=round(time.perf_counter() - began, 3),
    )
