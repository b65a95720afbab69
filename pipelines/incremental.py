"""Incremental aggregation: an ingest updates the rows of the users and items its new signals
touch, and moves every entity's as_of row to the new as_of, reading only recent signals.

What an ingest computes does not change: the snapshots as of `as_of` over every stored signal,
row for row what a full recompute writes (only `created`, the as_of of the run that wrote a row,
differs on rows an incremental run kept). How:

- A full recompute also keeps a state (ENGRAM_HOME/offline/aggregate_state/): a *horizon* H,
  the UTC midnight HORIZON_DAYS before its as_of day; each user's and item's totals over its
  signals before H (`pipelines/history.py`: counts, micro-weights and micro-stars, sessions,
  (user, item) pairs, category affinities); every signal from H to as_of, coded
  (`pipelines/recent_signals.py`); and what the state covers (event-store parts, catalog,
  as_of).
- An incremental run reads the parts the state does not cover, computes the snapshots of the
  recent signals plus them from those totals (the same functions as a full run), and keeps
  the rows that changed: a touched entity's rows from the UTC day of its earliest new signal
  on (a late signal rewrites the days after it), and every as_of row. Windows reach back 30
  days, so that day must lie at least 30 days after H. An entity with no signal since H
  keeps its row, re-stamped at the new as_of: its windows were empty and stay so.
- Anything else falls back to a full recompute, which rebuilds the state: no state, `--full`,
  a covered part changed or went (a forget rewrites parts; stream compaction merges them), the
  catalog or the session gap changed, as_of moved back, stored signals lay after the last
  as_of, a new signal lies before H + 30 days, or as_of moved REBASE_DAYS past the state's
  (which bounds the recent signals each run reads).

The state holds personal data: forgetting a user deletes it (the next ingest is full).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.settings import Settings
from pipelines import catalog_store, enrich, event_store, history, recent_signals, snapshot_files
from pipelines.aggregate_items import item_snapshots, trend
from pipelines.aggregate_users import KIND_WINDOWS, user_snapshots
from pipelines.signal_arrays import (
    WEIGHT_SCALE,
    SignalArrays,
    code_signals,
    signal_table,
    type_code,
)
from pipelines.timelines import MICROS_PER_DAY, WINDOWS

HORIZON_DAYS = 37
REBASE_DAYS = 30
_LONGEST_WINDOW = max(WINDOWS.values())
# Named anew when the state's layout changes: an older state is then not found, and the next
# ingest recomputes in full.
_STATE_FILE = "state-2.json"


@dataclass(frozen=True)
class State:
    """What the kept state covers."""

    as_of_us: int
    horizon_us: int
    session_gap_us: int
    catalog: str
    parts: dict[str, list[int]]  # part name: [size, mtime_ns]
    recent: str  # the stem of the recent signals' files (`recent_signals.save`)
    pending: bool  # stored signals later than as_of


@dataclass(frozen=True)
class Snapshots:
    """Where the user and item snapshots live (`pipelines/snapshot_files.py`)."""

    users: Path
    items: Path


def state_dir(settings: Settings) -> Path:
    """Directory of the incremental state."""
    return settings.offline_dir / "aggregate_state"


def clear(settings: Settings) -> None:
    """Drop the state: the next ingest recomputes everything (a forget calls this)."""
    shutil.rmtree(state_dir(settings), ignore_errors=True)


def load_state(settings: Settings) -> State | None:
    """The kept state, None when there is none."""
    path = state_dir(settings) / _STATE_FILE
    if not path.is_file():
        return None
    return State(**json.loads(path.read_text()))


def _parts_now(settings: Settings) -> dict[str, list[int]]:
    return event_store.parts_fingerprint(settings)


def catalog_digest(settings: Settings) -> str:
    """A digest of the stored catalog's bytes ("" without one)."""
    path = catalog_store.catalog_path(settings)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def why_full(settings: Settings, state: State | None, as_of_us: int, gap_us: int) -> str:
    """Why this ingest must recompute everything ("" when it can go incrementally)."""
    if state is None:
        return "no incremental state"
    if state.session_gap_us != gap_us:
        return "the session gap changed"
    if as_of_us < state.as_of_us:
        return "as_of is earlier than the last run's"
    if state.pending:
        return "stored signals were later than the last as_of"
    if as_of_us - state.horizon_us > (HORIZON_DAYS + REBASE_DAYS) * MICROS_PER_DAY:
        return "the horizon is rebased"
    if catalog_digest(settings) != state.catalog:
        return "the catalog changed"
    now = _parts_now(settings)
    if any(now.get(name) != stamp for name, stamp in state.parts.items()):
        return "stored events were rewritten or removed"
    return ""


def save_full(
    settings: Settings,
    signals: SignalArrays,
    *,
    as_of_us: int,
    session_gap_us: int,
    pending: bool,
) -> None:
    """Keep the state of a full recompute of `signals` (all with ts <= as_of)."""
    horizon = (as_of_us // MICROS_PER_DAY - HORIZON_DAYS) * MICROS_PER_DAY
    directory = state_dir(settings)
    fresh = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}.tmp")
    fresh.mkdir(parents=True)
    try:
        older = _subset(signals, signals.t < horizon)
        keys = history.pair_keys(older)
        per_user, per_item = history.distinct_counts(
            keys, len(older.user_names), len(older.item_names)
        )
        tables = {
            "user_history": history.totals(
                older, items=False, session_gap_us=session_gap_us, distinct=per_user
            ),
            "item_history": history.totals(
                older, items=True, session_gap_us=session_gap_us, distinct=per_item
            ),
            "affinity": history.affinities(older),
            "pair_users": pa.table({"key": older.user_names}),
            "pair_items": pa.table({"key": older.item_names}),
        }
        for name, table in tables.items():
            pq.write_table(table, fresh / f"{name}.parquet", compression="zstd")
        np.save(fresh / "pairs.npy", keys)
        recent = _subset(signals, signals.t >= horizon)
        seen = history.paired(keys, recent.users, recent.items)
        recent_stem = f"recent-{uuid.uuid4().hex[:8]}"
        recent_signals.save(recent, seen, fresh, recent_stem)
        state = State(
            as_of_us=as_of_us,
            horizon_us=horizon,
            session_gap_us=session_gap_us,
            catalog=catalog_digest(settings),
            parts=_parts_now(settings),
            recent=recent_stem,
            pending=pending,
        )
        (fresh / _STATE_FILE).write_text(json.dumps(dataclasses.asdict(state)))
        clear(settings)
        fresh.rename(directory)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise


def _subset(signals: SignalArrays, mask: np.ndarray) -> SignalArrays:
    """The signals `mask` selects (booleans or indices), with the same codes and names."""
    return dataclasses.replace(
        signals,
        users=signals.users[mask],
        items=signals.items[mask],
        categories=signals.categories[mask],
        t=signals.t[mask],
        types=signals.types[mask],
        weights=signals.weights[mask],
        ratings=signals.ratings[mask],
    )


def update(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    state: State,
    snapshots: Snapshots,
    *,
    as_of_us: int,
    session_gap_us: int,
) -> str:
    """Bring the snapshots to `as_of_us` with the parts the state does not cover; returns ""
    when done, else why a full recompute is needed (nothing was written then)."""
    directory = state_dir(settings)
    now = _parts_now(settings)
    new_parts = [event_store.events_dir(settings) / name for name in now if name not in state.parts]
    if not new_parts and as_of_us == state.as_of_us:
        return ""  # nothing new, and the windows did not move
    fresh = signal_table(
        enrich.enrich(
            con,
            event_store.scan_parts(con, new_parts),
            catalog_store.load(con, settings),
            session_gap=timedelta(microseconds=session_gap_us),
        )
    )
    t = np.asarray(fresh.column("t").to_numpy(), dtype=np.int64)
    visible = fresh.filter(pa.array(t <= as_of_us))
    first = int(t[t <= as_of_us].min()) if visible.num_rows else as_of_us
    if first // MICROS_PER_DAY * MICROS_PER_DAY - _LONGEST_WINDOW < state.horizon_us:
        return "a new signal lies before the horizon's margin"
    recent, recent_seen = recent_signals.load(directory, state.recent)
    new = code_signals(visible)
    new_seen = history.seen_pairs(
        new,
        np.load(directory / "pairs.npy"),
        pq.read_table(directory / "pair_users.parquet").column("key").combine_chunks(),
        pq.read_table(directory / "pair_items.parquet").column("key").combine_chunks(),
    )
    affinity = pq.read_table(directory / "affinity.parquet")
    signals = recent_signals.merge(recent, new, affinity.column("category").combine_chunks())
    seen = np.concatenate([recent_seen, new_seen])
    users_history = history.align(
        pq.read_table(directory / "user_history.parquet"),
        signals.user_names,
        affinity,
        signals.category_names,
    )
    items_history = history.align(
        pq.read_table(directory / "item_history.parquet"), signals.item_names
    )
    previous_as_of = state.as_of_us // MICROS_PER_DAY * MICROS_PER_DAY
    users = _Side(
        "user_id", "last_event_ts", signals.users, signals.user_names, snapshots.users, False
    )
    items = _Side(
        "item_id", "item_last_event_ts", signals.items, signals.item_names, snapshots.items, True
    )
    for side in (users, items):
        side.cuts = _cuts(visible, side.key, side.names, side.directory, previous_as_of)
        side.touched = np.zeros(len(side.names) + 1, dtype=bool)
        side.touched[_codes(side.cuts.column(side.key), side.names)] = True
        side.touched = side.touched[:-1]
    mine = np.flatnonzero(users.touched[signals.users])
    users.rows = user_snapshots(
        _subset(signals, mine), as_of_us, session_gap_us, None, users_history, seen[mine]
    )
    mine = np.flatnonzero(items.touched[np.maximum(signals.items, 0)] & (signals.items >= 0))
    items.rows = item_snapshots(_subset(signals, mine), as_of_us, items_history, seen[mine]).table
    for side in (users, items):
        _apply(side, signals, as_of_us)
    recent_stem = state.recent
    if visible.num_rows:
        recent_stem = f"recent-{uuid.uuid4().hex[:8]}"
        recent_signals.save(signals, seen, directory, recent_stem)
    kept = dataclasses.replace(
        state,
        as_of_us=as_of_us,
        parts=now,
        recent=recent_stem,
        pending=bool((t > as_of_us).any()),
    )
    temporary = directory / f".{_STATE_FILE}.tmp"
    temporary.write_text(json.dumps(dataclasses.asdict(kept)))
    temporary.replace(directory / _STATE_FILE)
    if recent_stem != state.recent:
        for name in recent_signals.files(state.recent):
            (directory / name).unlink(missing_ok=True)
    return ""


@dataclass
class _Side:
    """One kind of entity in an incremental run: its snapshot, codes and what changed."""

    key: str
    last_column: str
    codes: np.ndarray  # per signal, -1 for none
    names: pa.Array
    directory: Path
    items: bool
    cuts: pa.Table = dataclasses.field(default_factory=lambda: pa.table({}))
    touched: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=bool))
    rows: pa.Table = dataclasses.field(default_factory=lambda: pa.table({}))


def _codes(keys: pa.ChunkedArray | pa.Array, names: pa.Array) -> np.ndarray:
    """Each key's code in `names`, len(names) where absent."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    found = pc.fill_null(pc.index_in(keys, value_set=names), len(names))
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)


def _cuts(
    visible: pa.Table, key: str, names: pa.Array, directory: Path, previous_day: int
) -> pa.Table:
    """Per entity whose rows change: the UTC midnight from which they do, as `cut`. That is
    the day of an entity's earliest new signal; an entity with recent signals but no as_of row
    last time (its last signal was at that as_of) changes from that day on too, as it now
    needs one."""
    rows = visible.filter(pc.is_valid(visible.column(key)))
    earliest = rows.group_by(key).aggregate([("t", "min")])
    days = np.asarray(earliest.column("t_min").to_numpy(), dtype=np.int64) // MICROS_PER_DAY
    cuts = pa.table({key: earliest.column(key), "cut": days * MICROS_PER_DAY})
    previous = snapshot_files.read_as_of(directory)
    had_row = np.zeros(len(names) + 1, dtype=bool)
    if previous is not None:
        had_row[_codes(previous.column(key), names)] = True
    had_row[_codes(cuts.column(key), names)] = True
    without = np.flatnonzero(~had_row[:-1])
    if len(without):
        extra = pa.table(
            {key: names.take(pa.array(without)), "cut": np.full(len(without), previous_day)}
        )
        cuts = pa.concat_tables([cuts, extra.cast(cuts.schema)])
    return cuts


def windows_at(
    signals: SignalArrays, codes: np.ndarray, n: int, as_of_us: int, *, items: bool
) -> dict[str, np.ndarray]:
    """The windowed features at `as_of_us` per entity code (users' or, with `items`, items'),
    over `signals` (which must hold every signal of the last 30 days)."""
    out: dict[str, np.ndarray] = {}
    on = codes >= 0
    for label, window in WINDOWS.items():
        inside = np.flatnonzero(on & (signals.t > as_of_us - window))
        entity = codes[inside]
        prefix = "item_" if items else ""
        out[f"{prefix}events_{label}"] = np.bincount(entity, minlength=n)
        sums = history.group_sum(entity, signals.weights[inside], n) / WEIGHT_SCALE
        if not items or label != "1d":
            out[f"{prefix}weighted_{label}"] = sums
        kinds = [("item_purchases_30d", "purchase", "30d")] if items else KIND_WINDOWS
        for name, kind, kind_label in kinds:
            if kind_label == label:
                of_kind = signals.types[inside] == type_code(kind)
                out[name] = np.bincount(entity[of_kind], minlength=n)
    if items:
        out["item_trend"] = trend(out["item_weighted_7d"], out["item_weighted_30d"])
    return out


def _apply(side: _Side, signals: SignalArrays, as_of_us: int) -> None:
    """Write a run's rows that changed: touched entities' rows from their cut on, and the as_of
    rows; an untouched entity's is carried over, re-stamped, its windows recounted."""
    table = side.rows
    at_as_of = snapshot_files.as_of_rows(table, side.last_column)
    changed = snapshot_files.replaced_rows(table, side.key, side.cuts)
    day_rows = table.filter(pa.array(changed & ~at_as_of))
    as_of_rows = table.filter(pa.array(at_as_of))
    previous = snapshot_files.read_as_of(side.directory)
    if previous is not None and previous.num_rows:
        codes = _codes(previous.column(side.key), side.names)
        carried_at = np.flatnonzero(~np.append(side.touched, False)[codes])
        carried = previous.take(pa.array(carried_at))
        codes = codes[carried_at]
        windows = windows_at(signals, side.codes, len(side.names) + 1, as_of_us, items=side.items)
        stamp = pa.array(np.full(carried.num_rows, as_of_us), pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        )
        columns = {"event_timestamp": stamp, "created": stamp}
        columns.update(
            {name: pa.array(values[codes], from_pandas=True) for name, values in windows.items()}
        )
        for name, values in columns.items():
            at = carried.schema.get_field_index(name)
            field = carried.schema.field(name)
            carried = carried.set_column(at, field, values.cast(field.type))
        as_of_rows = pa.concat_tables([as_of_rows, carried.cast(as_of_rows.schema)])
    snapshot_files.replace_from(side.directory, side.key, side.cuts, day_rows, as_of_rows)
