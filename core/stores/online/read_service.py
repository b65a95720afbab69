"""A feature service read online like `get_online_features`, through the fast path: its stored
views in one round trip (read.py), or from in-process caches (cache.py), and its on-demand views
computed here by calling the very function registered with Feast (python mode) on the decoded
inputs, so the results equal `get_online_features` with the service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from core.errors import InvalidInputError, ServiceUnavailableError, UnknownUserError
from core.stores.cluster import RedisClient
from core.stores.online.plan import OnDemandRef, ServicePlan, service_plan
from core.stores.online.read import OnlineFeatureReader

if TYPE_CHECKING:  # the SDK takes seconds to import
    from feast import FeatureStore


class StoredFeatures(Protocol):
    """Stored features of entities of one join key: `OnlineFeatures`, or cached rows."""

    @property
    def event_times(self) -> dict[str, list[datetime | None]]: ...

    def values(self, name: str) -> list[Any]: ...

    def matrix(self, names: Sequence[str] | None = None) -> np.ndarray: ...


class CachedEntity(Protocol):
    """Rows of one join key held in memory (cache.EntityCache)."""

    def rows(
        self, ids: Sequence[str], *, enforce_ttl: bool = False, now: datetime | None = None
    ) -> StoredFeatures: ...


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

    def __init__(self, client: RedisClient, project: str, plan: ServicePlan) -> None:
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
        already_read: Mapping[str, StoredFeatures] | None = None,
    ) -> ServiceFeatures:
        """Features for rows of entities (a key given one id applies to every row).

        With on_demand=False only stored features are read, and entities may name any subset
        of the service's join keys (a user alone, say). event_times=True also fetches each
        view's event time (`.stored[key].event_times`). Join keys in `cached` come from those
        caches (cache.EntityCache) instead of Redis, and join keys in `already_read` were read
        by the caller (`stored_reader.prepare`, in a round trip of its own).
        """
        rows = max((len(ids) for ids in entities.values()), default=0)
        for key, ids in entities.items():
            if len(ids) not in (1, rows):
                raise InvalidInputError(key, f"give 1 or {rows} ids, not {len(ids)}")
        keys = [key for key in self.plan.join_keys if key in entities]
        if on_demand and len(keys) < len(self.plan.join_keys):
            missing = sorted(set(self.plan.join_keys) - set(keys))
            raise InvalidInputError("entities", f"missing join keys {missing}")
        cached, done = cached or {}, already_read or {}
        live = [key for key in keys if key not in cached and key not in done]
        stored: dict[str, StoredFeatures] = {key: done[key] for key in keys if key in done}
        if live:
            stored.update(
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
    store: FeatureStore, client: RedisClient, user_id: str, service: str = "ranking"
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
