"""The fast online read: Feast's own Redis hashes, fetched in one round trip and decoded in bulk.

Reads the keys and values Feast writes (see core/stores/feast_codec.py), so it needs no second copy
of the data and agrees with `FeatureStore.get_online_features` value for value. Every view of an
entity lives in the same hash, so one HMGET per entity fetches all requested views at once; the
HMGETs of one join key run inside one EVAL (one reply, parsed in C), and the EVALs of all join
keys (one user and its candidate items) go out in one write. A Redis Cluster would need one EVAL
per slot's keys: this reader takes a plain client only.

Freshness, as Feast 0.67 does it: its read path returns whatever the hash holds however old
(`ttl` only bounds materialization and historical joins), and Redis drops a whole entity hash only
when the online store sets `key_ttl_seconds`. `enforce_ttl=True` here additionally treats a view's
values older than its `ttl` as missing.

A feature service reads the same way (`ServiceReader`): its stored views through one round trip,
and its on-demand views computed here by calling the very function registered with Feast (python
mode) on the decoded inputs, so the results equal `get_online_features` with the service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import redis
from google.protobuf.timestamp_pb2 import Timestamp

from core.errors import InvalidInputError, ServiceUnavailableError, UnknownUserError
from core.stores import feast_codec
from core.stores.feast_codec import ValueKind, ViewRef

if TYPE_CHECKING:  # the SDK takes seconds to import; only the registry readers need it
    from feast import FeatureService, FeatureStore, OnDemandFeatureView


def views_from_store(
    store: FeatureStore, features: Sequence[str] | FeatureService | str
) -> list[ViewRef]:
    """ViewRefs from the registry for "view:feature" refs, a feature service or its name."""
    from feast import FeatureService

    if isinstance(features, str):
        features = store.get_feature_service(features)
    wanted: dict[str, list[str]] = {}
    if isinstance(features, FeatureService):
        for projection in features.feature_view_projections:
            if projection.name_alias or projection.join_key_map:
                raise InvalidInputError(projection.name, "aliased projections are not supported")
            wanted.setdefault(projection.name, []).extend(f.name for f in projection.features)
    else:
        for ref in features:
            view, _, name = ref.partition(":")
            if not name:
                raise InvalidInputError("features", f"expected 'view:feature', got {ref!r}")
            wanted.setdefault(view, []).append(name)
    return [
        feast_codec.view_ref(store.get_feature_view(name), names) for name, names in wanted.items()
    ]


class CachedEntity(Protocol):
    """Rows of one join key held in memory (ranking.entity_cache.EntityCache)."""

    def rows(
        self, ids: Sequence[str], *, enforce_ttl: bool = False, now: datetime | None = None
    ) -> StoredFeatures: ...


@dataclass
class OnlineFeatures:
    """Features of many entities of one join key, kept as stored bytes and decoded on demand."""

    join_key: str
    ids: list[str]
    raw: dict[str, list[bytes | None]]
    types: dict[str, ValueKind]
    stamps: dict[str, list[bytes | None]] = field(default_factory=dict)  # view -> `_ts:` values

    @property
    def event_times(self) -> dict[str, list[datetime | None]]:
        """Each view's event time per entity (None where the view has no row), decoded now."""
        return {
            view: [feast_codec.decode_event_timestamp(raw) for raw in raws]
            for view, raws in self.stamps.items()
        }

    @property
    def names(self) -> list[str]:
        """Output feature names, in the order they were asked for."""
        return list(self.raw)

    def values(self, name: str) -> list[Any]:
        """Python values of one feature (None when missing), as Feast's to_dict gives them."""
        return feast_codec.decode_column(self.raw[name], self.types[name])

    def numeric(self, name: str) -> np.ndarray:
        """One numeric feature as float64, NaN when missing; times as epoch seconds."""
        return feast_codec.decode_numeric(self.raw[name], self.types[name])

    def matrix(self, names: Sequence[str] | None = None) -> np.ndarray:
        """An (entities x features) float64 matrix of numeric features, NaN when missing."""
        chosen = self.names if names is None else list(names)
        out = np.empty((len(self.ids), len(chosen)))
        by_kind: dict[ValueKind, list[int]] = {}
        for j, name in enumerate(chosen):
            by_kind.setdefault(self.types[name], []).append(j)
        # One decode per kind over all its columns: numpy's fixed cost is paid once, not per column.
        for kind, columns in by_kind.items():
            flat = [raw for j in columns for raw in self.raw[chosen[j]]]
            decoded = feast_codec.decode_numeric(flat, kind).reshape(len(columns), len(self.ids))
            out[:, columns] = decoded.T
        return out

    def to_dict(self) -> dict[str, list[Any]]:
        """The join key and every feature as lists: the shape of Feast's OnlineResponse.to_dict."""
        out: dict[str, list[Any]] = {self.join_key: list(self.ids)}
        for name in self.raw:
            out[name] = self.values(name)
        return out


class StoredFeatures(Protocol):
    """Stored features of entities of one join key: `OnlineFeatures`, or cached rows."""

    @property
    def event_times(self) -> dict[str, list[datetime | None]]: ...

    def values(self, name: str) -> list[Any]: ...

    def matrix(self, names: Sequence[str] | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class _Group:
    """Views sharing a join key: one HMGET per entity fetches all of them."""

    join_key: str
    views: tuple[ViewRef, ...]
    names: tuple[str, ...]  # output name per feature field
    fields: tuple[bytes, ...]  # the feature fields, then one `_ts:` field per view


# HMGET of the same fields on every key, in one command: Redis answers one nested reply that
# hiredis parses in C, instead of one reply per entity parsed through redis-py (~9 us each).
_HMGET_ALL = b"""local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HMGET', key, unpack(ARGV)) end
return out"""


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _hmget_all(keys: Sequence[bytes], fields: Sequence[bytes]) -> bytes:
    """RESP of one EVAL running HMGET `fields` on every key (missing fields come back None)."""
    head = b"*%d\r\n$4\r\nEVAL\r\n%s%s" % (
        3 + len(keys) + len(fields),
        _bulk(_HMGET_ALL),
        _bulk(b"%d" % len(keys)),
    )
    return b"".join([head, *map(_bulk, keys), *map(_bulk, fields)])


class OnlineFeatureReader:
    """Reads feature views from Feast's Redis online store without going through the SDK."""

    def __init__(
        self,
        client: redis.Redis,
        project: str,
        views: Sequence[ViewRef],
        *,
        full_feature_names: bool = False,
    ) -> None:
        if not isinstance(client, redis.Redis):
            raise InvalidInputError("client", "needs a redis.Redis client (not a cluster)")
        self._client = client
        self._project = project
        self._groups: dict[str, _Group] = {}
        self._types: dict[str, ValueKind] = {}
        by_key: dict[str, list[ViewRef]] = {}
        for view in views:
            by_key.setdefault(view.join_key, []).append(view)
        for join_key, group_views in by_key.items():
            names: list[str] = []
            fields: list[bytes] = []
            for view in group_views:
                for ref in view.features:
                    name = f"{view.name}__{ref.name}" if full_feature_names else ref.name
                    if name in self._types:
                        raise InvalidInputError(name, "two views give this feature name")
                    self._types[name] = ref.kind
                    names.append(name)
                    fields.append(feast_codec.feature_field(view.name, ref.name))
            stamps = [feast_codec.timestamp_field(v.name) for v in group_views]
            self._groups[join_key] = _Group(
                join_key=join_key,
                views=tuple(group_views),
                names=tuple(names),
                fields=tuple(fields + stamps),
            )

    @property
    def join_keys(self) -> list[str]:
        """The join keys this reader serves."""
        return list(self._groups)

    def views(self, join_key: str) -> tuple[ViewRef, ...]:
        """The views read for a join key, in order."""
        return self._groups[join_key].views

    def names(self, join_key: str) -> list[str]:
        """The output feature names of a join key, view by view in `views` order."""
        return list(self._groups[join_key].names)

    def read(
        self,
        join_key: str,
        ids: Sequence[str],
        *,
        enforce_ttl: bool = False,
        now: datetime | None = None,
        event_times: bool = True,
    ) -> OnlineFeatures:
        """Features of the given entities of one join key."""
        return self.read_many(
            {join_key: ids}, enforce_ttl=enforce_ttl, now=now, event_times=event_times
        )[join_key]

    def read_many(
        self,
        entities: Mapping[str, Sequence[str]],
        *,
        enforce_ttl: bool = False,
        now: datetime | None = None,
        event_times: bool = True,
    ) -> dict[str, OnlineFeatures]:
        """Features of entities of several join keys (a user and its items) in one round trip.

        event_times=False leaves the views' `_ts:` fields unread (a fifth less to fetch and
        parse for the ranker), unless enforce_ttl needs them.
        """
        timed = event_times or enforce_ttl
        groups = []
        for join_key in entities:
            if join_key not in self._groups:
                raise InvalidInputError(join_key, "no requested view has this join key")
            groups.append(self._groups[join_key])
        commands = []
        for group in groups:
            keys = feast_codec.redis_keys(self._project, group.join_key, entities[group.join_key])
            fields = group.fields if timed else group.fields[: len(group.names)]
            commands.append(_hmget_all(keys, fields))
        replies = _send(self._client, commands)
        now_s = (now or datetime.now(UTC)).timestamp()
        out = {}
        for group, rows in zip(groups, replies, strict=True):
            ids = list(entities[group.join_key])
            out[group.join_key] = self._collect(group, ids, rows, timed, enforce_ttl, now_s)
        return out

    def _collect(
        self,
        group: _Group,
        ids: list[str],
        rows: list[list[bytes | None]],
        timed: bool,
        enforce_ttl: bool,
        now_s: float,
    ) -> OnlineFeatures:
        n_features = len(group.names)
        width = n_features + (len(group.views) if timed else 0)
        # Transposed once: one list per field, entities in request order.
        columns = list(map(list, zip(*rows, strict=True))) if rows else [[] for _ in range(width)]
        stamps = (
            {view.name: columns[n_features + i] for i, view in enumerate(group.views)}
            if timed
            else {}
        )
        position = 0
        for view in group.views:
            size = len(view.features)
            if enforce_ttl and view.ttl is not None:
                oldest = now_s - view.ttl.total_seconds()
                stale = [
                    row
                    for row, raw in enumerate(stamps[view.name])
                    if raw is not None and _seconds(raw) < oldest
                ]
                for column in columns[position : position + size]:
                    for row in stale:
                        column[row] = None
            position += size
        raw = dict(zip(group.names, columns[:n_features], strict=True))
        types = {name: self._types[name] for name in group.names}
        return OnlineFeatures(group.join_key, ids, raw, types, stamps)


def _seconds(raw: bytes) -> float:
    ts = Timestamp.FromString(raw)
    return ts.seconds + ts.nanos / 1e9


def _send(client: redis.Redis, commands: list[bytes]) -> list[Any]:
    """Write every command at once on a pooled connection, then read the replies in order."""
    if not commands:
        return []
    pool = client.connection_pool
    try:
        connection = pool.get_connection()
    except (redis.ConnectionError, redis.TimeoutError) as e:
        raise ServiceUnavailableError("redis", str(e)) from e
    try:
        connection.send_packed_command([b"".join(commands)])
        return [connection.read_response(disable_decoding=True) for _ in commands]
    except (redis.ConnectionError, redis.TimeoutError) as e:
        connection.disconnect()
        raise ServiceUnavailableError("redis", str(e)) from e
    except BaseException:
        # Replies may be left unread on the socket: never hand it back to the pool like that.
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


# --- feature services ------------------------------------------------------------------------


@dataclass(frozen=True)
class OnDemandRef:
    """An on-demand view computed by the fast path with the function registered in Feast."""

    name: str
    inputs: tuple[tuple[str, str], ...]  # (view, feature) it reads from stored views
    request: tuple[str, ...]  # request fields it reads
    outputs: tuple[str, ...]
    udf: Callable[[dict[str, list[Any]]], dict[str, list[Any]]]


@dataclass(frozen=True)
class ServicePlan:
    """What reading a feature service takes: stored views (with on-demand inputs), outputs."""

    name: str
    views: tuple[ViewRef, ...]
    outputs: tuple[str, ...]  # output feature names, in the service's order
    on_demand: tuple[OnDemandRef, ...]

    @property
    def join_keys(self) -> list[str]:
        """Join keys of the service's stored views, in order of first use."""
        return list(dict.fromkeys(v.join_key for v in self.views))

    @property
    def request_fields(self) -> list[str]:
        """Request fields the on-demand views need."""
        return list(dict.fromkeys(f for odfv in self.on_demand for f in odfv.request))


def _on_demand_ref(odfv: OnDemandFeatureView) -> OnDemandRef:
    if odfv.mode != "python" or odfv.singleton:
        raise InvalidInputError(odfv.name, "only batch python-mode on-demand views are read here")
    inputs = tuple(
        (projection.name, f.name)
        for projection in odfv.source_feature_view_projections.values()
        for f in projection.features
    )
    request = tuple(
        f.name for source in odfv.source_request_sources.values() for f in source.schema
    )
    outputs = tuple(f.name for f in odfv.features)
    transformation = odfv.feature_transformation
    if transformation is None:
        raise InvalidInputError(odfv.name, "the on-demand view has no transformation")
    return OnDemandRef(odfv.name, inputs, request, outputs, transformation.udf)


def service_plan(store: FeatureStore, service: FeatureService | str) -> ServicePlan:
    """The plan of a feature service from the registry: its views, outputs and on-demand views."""
    from feast.errors import FeatureServiceNotFoundException

    if isinstance(service, str):
        name = service
        try:
            service = store.get_feature_service(name)
        except FeatureServiceNotFoundException as e:
            raise InvalidInputError(
                name, "no such feature service in the registry (`engram materialize` applies it)"
            ) from e
    odfv_names = {v.name for v in store.list_on_demand_feature_views()}
    wanted: dict[str, list[str]] = {}
    outputs: list[str] = []
    on_demand: list[OnDemandRef] = []
    for projection in service.feature_view_projections:
        if projection.name_alias or projection.join_key_map:
            raise InvalidInputError(projection.name, "aliased projections are not supported")
        if projection.name in odfv_names:
            ref = _on_demand_ref(store.get_on_demand_feature_view(projection.name))
            chosen = {f.name for f in projection.features}
            on_demand.append(ref)
            outputs += [name for name in ref.outputs if name in chosen]
            continue
        names = [f.name for f in projection.features]
        wanted.setdefault(projection.name, []).extend(names)
        outputs += names
    hidden: dict[str, list[str]] = {}
    for ref in on_demand:
        for view, feature in ref.inputs:
            if feature not in wanted.get(view, []):
                hidden.setdefault(view, []).append(feature)
    views = [
        feast_codec.view_ref(
            store.get_feature_view(name),
            list(dict.fromkeys(wanted.get(name, []) + hidden.get(name, []))),
        )
        for name in dict.fromkeys([*wanted, *hidden])
    ]
    return ServicePlan(service.name, tuple(views), tuple(outputs), tuple(on_demand))


@dataclass
class ServiceFeatures:
    """A feature service's values for n rows; an entity given once stands for every row."""

    rows: int
    ids: dict[str, list[str]]  # join key -> the ids as given (1 or n)
    stored: Mapping[str, StoredFeatures]  # join key -> its features
    on_demand: dict[str, list[Any]]
    names: list[str]
    _where: dict[str, str] = field(default_factory=dict)  # feature -> join key

    def values(self, name: str) -> list[Any]:
        """One output feature for every row, as Feast's to_dict gives it."""
        if name in self.on_demand:
            return self.on_demand[name]
        return self._broadcast(self._where[name], self.stored[self._where[name]].values(name))

    def _broadcast(self, join_key: str, values: list[Any]) -> list[Any]:
        return values * self.rows if len(self.ids[join_key]) == 1 else values

    def matrix(self, names: Sequence[str] | None = None) -> np.ndarray:
        """An (rows x features) float64 matrix of numeric outputs, NaN when missing."""
        chosen = self.names if names is None else list(names)
        out = np.empty((self.rows, len(chosen)))
        by_key: dict[str, list[int]] = {}
        for j, name in enumerate(chosen):
            if name in self.on_demand:
                out[:, j] = [np.nan if v is None else float(v) for v in self.on_demand[name]]
            else:
                by_key.setdefault(self._where[name], []).append(j)
        for join_key, columns in by_key.items():
            block = self.stored[join_key].matrix([chosen[j] for j in columns])
            out[:, columns] = block  # one row broadcasts over every row
        return out

    def to_dict(self) -> dict[str, list[Any]]:
        """Join keys and output features per row: the shape of Feast's OnlineResponse.to_dict."""
        out: dict[str, list[Any]] = {
            key: self._broadcast(key, list(ids)) for key, ids in self.ids.items()
        }
        for name in self.names:
            out[name] = self.values(name)
        return out


class ServiceReader:
    """Reads a feature service online like get_online_features, through the fast path."""

    def __init__(self, client: redis.Redis, project: str, plan: ServicePlan) -> None:
        self.plan = plan
        self.stored_reader = OnlineFeatureReader(client, project, plan.views)
        self._where = {ref.name: v.join_key for v in plan.views for ref in v.features}

    def read(
        self,
        entities: Mapping[str, Sequence[str]],
        request: Mapping[str, Sequence[Any]] | None = None,
        *,
        on_demand: bool = True,
        enforce_ttl: bool = False,
        now: datetime | None = None,
        event_times: bool = False,
        cached: Mapping[str, CachedEntity] | None = None,
    ) -> ServiceFeatures:
        """Features for rows of entities (a key given one id applies to every row).

        With on_demand=False only stored features are read, and entities may name any subset
        of the service's join keys (a user alone, say). event_times=True also fetches each
        view's event time (`.stored[key].event_times`). Join keys in `cached` come from those
        caches (ranking.entity_cache) instead of Redis.
        """
        rows = max((len(ids) for ids in entities.values()), default=0)
        for key, ids in entities.items():
            if len(ids) not in (1, rows):
                raise InvalidInputError(key, f"give 1 or {rows} ids, not {len(ids)}")
        keys = [key for key in self.plan.join_keys if key in entities]
        if on_demand and len(keys) < len(self.plan.join_keys):
            missing = sorted(set(self.plan.join_keys) - set(keys))
            raise InvalidInputError("entities", f"missing join keys {missing}")
        cached = cached or {}
        live = [key for key in keys if key not in cached]
        stored: dict[str, StoredFeatures] = dict(
            self.stored_reader.read_many(
                {key: entities[key] for key in live},
                enforce_ttl=enforce_ttl,
                now=now,
                event_times=event_times,
            )
        )
        for key in keys:
            if key in cached:
                stored[key] = cached[key].rows(entities[key], enforce_ttl=enforce_ttl, now=now)
        stored = {key: stored[key] for key in keys}
        names = [n for n in self.plan.outputs if self._where.get(n) in stored]
        result = ServiceFeatures(
            rows, {key: list(entities[key]) for key in keys}, stored, {}, names, self._where
        )
        if on_demand:
            for ref in self.plan.on_demand:
                result.on_demand.update(self._compute(ref, result, request or {}))
            result.names = list(self.plan.outputs)
        return result

    def _compute(
        self, ref: OnDemandRef, result: ServiceFeatures, request: Mapping[str, Sequence[Any]]
    ) -> dict[str, list[Any]]:
        inputs: dict[str, list[Any]] = {}
        for view, feature in ref.inputs:
            values = result._broadcast(
                self._where[feature], result.stored[self._where[feature]].values(feature)
            )
            # Feast hands the function both spellings of each input.
            inputs[feature] = inputs[f"{view}__{feature}"] = values
        for name in ref.request:
            if name not in request:
                raise InvalidInputError(name, f"the request needs it for {ref.name}")
            given = list(request[name])
            if len(given) not in (1, result.rows):
                raise InvalidInputError(name, f"give 1 or {result.rows} values")
            inputs[name] = given * result.rows if len(given) == 1 else given
        produced = ref.udf(inputs)
        return {name: list(produced[name]) for name in ref.outputs}


def user_features(
    store: FeatureStore, client: redis.Redis, user_id: str, service: str = "ranking"
) -> dict[str, Any]:
    """One user's stored features of a service, read online, with each view's event time."""
    plan = service_plan(store, service)
    views = [v for v in plan.views if v.join_key == "user_id"]
    if not views:
        raise InvalidInputError(service, "the feature service has no user features")
    if all(store.get_feature_view(v.name).most_recent_end_time is None for v in views):
        raise ServiceUnavailableError(
            "online store", f"no user view of {service!r} is materialized: run `engram materialize`"
        )
    return user_row(ServiceReader(client, store.project, plan), user_id)


def user_row(reader: ServiceReader, user_id: str) -> dict[str, Any]:
    """One user's stored features of the reader's service, with each view's event time
    (`engram features show` and GET /v1/users/{id}/features); UnknownUserError when no view
    holds the user."""
    got = reader.read({"user_id": [user_id]}, on_demand=False, event_times=True)
    times = {view: stamps[0] for view, stamps in got.stored["user_id"].event_times.items()}
    if all(t is None for t in times.values()):
        raise UnknownUserError(user_id)
    return {
        "user_id": user_id,
        "feature_service": reader.plan.name,
        "event_timestamps": times,
        "features": {name: got.values(name)[0] for name in got.names},
    }
