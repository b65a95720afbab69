"""The serving ranker: candidates, online features and the saved LightGBM model, per request.

`load_ranker(settings, version=None)` loads a registry version (the latest by default), the item
vectors from Milvus and a fast reader of the `ranking` feature service in Redis; `rank()` then
generates candidates for the user as of the request time, builds their features with the same
`assemble` as training (service values read online, views older than their ttl treated as
missing, as the point-in-time join does) and orders them by the model's score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from engram.errors import InvalidInputError, UnknownUserError
from engram.settings import Settings
from ranking.baselines import to_micros
from ranking.candidates import generate
from ranking.features import assemble
from ranking.registry import ModelVersion
from ranking.train import RankingInputs, ranking_inputs

QUERY_HITS = 50  # items a text query adds to the candidates
TOP_REASONS = 3  # features named per ranked item


@dataclass
class RankResult:
    """Ranked items (item_id, score), the model version, and why each item is there."""

    items: list[tuple[str, float]]
    model_version: str
    reasons: dict[str, dict[str, Any]] = field(default_factory=dict)


class Ranker:
    """Ranks a user's candidates with one registry version; built once, used per request."""

    def __init__(
        self,
        settings: Settings,
        model: ModelVersion,
        inputs: RankingInputs,
        reader: Any,
        item_store: Any | None = None,
        embedder: Any | None = None,
    ) -> None:
        self.settings = settings
        self.model = model
        self.inputs = inputs
        self._reader = reader  # ranking.online_features.ServiceReader
        self._item_store = item_store
        self._embedder = embedder

    @property
    def version(self) -> str:
        """The model version in use."""
        return self.model.version

    def features(self, frame: pd.DataFrame, at: datetime) -> pd.DataFrame:
        """The model matrix of candidate rows of one user at `at`, service read online."""
        users = frame["user_id"].astype(str).unique()
        if len(users) != 1:
            raise InvalidInputError("candidates", "rows of exactly one user are needed")
        items = frame["item_id"].astype(str).tolist()
        categories = self.inputs.context.categories.reindex(items)
        request = {"item_category": [c if isinstance(c, str) else None for c in categories]}
        read = self._reader.read(
            {"user_id": [users[0]], "item_id": items}, request, enforce_ttl=True, now=at
        )
        service = pd.DataFrame({name: read.values(name) for name in read.names},
                               index=frame.index)  # fmt: skip
        return assemble(
            frame, service, self.inputs.context, self.inputs.source_names,
            self.inputs.service_features,
        )  # fmt: skip

    def rank(
        self,
        user_id: str,
        k: int = 10,
        candidates: list[str] | None = None,
        query: str | None = None,
        at: datetime | None = None,
    ) -> RankResult:
        """The user's k best items as of `at` (default now); `candidates` limits the choice,
        `query` adds the items nearest to it in Milvus."""
        if k < 1:
            raise InvalidInputError("k", f"must be positive, got {k}")
        moment = pd.Timestamp(at or datetime.now(UTC))
        if moment.tzinfo is None:
            raise InvalidInputError("at", "needs a UTC offset")
        moment = moment.tz_convert("UTC")
        history = self.inputs.context.history
        seen = history.before(user_id, int(to_micros([moment])[0]))
        only = list(candidates) if candidates is not None else None
        if query:
            hits = [item for item, _ in self._query_hits(query)]
            if only is None:
                base = generate(self.inputs.sources, [user_id], pd.DatetimeIndex([moment]),
                                self.inputs.items, {user_id: set(seen.items)})  # fmt: skip
                only = list(base.frame["item_id"])
            only = list(dict.fromkeys([*only, *(h for h in hits if h not in set(seen.items))]))
        generated = generate(
            self.inputs.sources, [user_id], pd.DatetimeIndex([moment]), self.inputs.items,
            {user_id: set(seen.items)} if candidates is None else {}, only=only,
        )  # fmt: skip
        frame = generated.frame
        if frame.empty:
            if not len(seen.items) and candidates is None:
                raise UnknownUserError(user_id)
            return RankResult([], self.version)
        matrix = self.features(frame, moment.to_pydatetime())
        scores = self.model.booster.predict(matrix[self.model.features])
        order = np.lexsort((frame["item_id"].to_numpy(), -scores))[:k]
        contributions = self.model.booster.predict(
            matrix[self.model.features].iloc[order], pred_contrib=True
        )[:, :-1]
        names = self.model.features
        reasons = {}
        for row, position in enumerate(order):
            top = np.argsort(-np.abs(contributions[row]))[:TOP_REASONS]
            reasons[str(frame["item_id"].iloc[position])] = {
                "sources": [s for s in str(frame["sources"].iloc[position]).split("+") if s],
                "top_features": [
                    {"name": names[j], "contribution": round(float(contributions[row, j]), 4)}
                    for j in top
                ],
            }
        items = [(str(frame["item_id"].iloc[i]), float(scores[i])) for i in order]
        return RankResult(items, self.version, reasons)

    def _query_hits(self, query: str) -> list[tuple[str, float]]:
        if self._item_store is None or self._embedder is None:
            raise InvalidInputError("query", "this ranker has no item vector store")
        vector = self._embedder.embed([query])
        return self._item_store.search(vector, QUERY_HITS)[0]


def load_ranker(settings: Settings, version: str | None = None, *, embedder: Any | None = None
                ) -> Ranker:  # fmt: skip
    """The ranker of a registry version (latest when None), wired to Redis and Milvus."""
    import redis

    from engram import feature_store
    from engram.services import resolve_redis_url
    from ranking import registry
    from ranking.evaluate import load_embedder
    from ranking.item_vectors import connect_item_store
    from ranking.online_features import ServiceReader, service_plan

    model = registry.load(settings, version)
    embedder = embedder or load_embedder(settings)
    item_store = connect_item_store(settings, embedder, model.meta["item_collection"])
    item_store.ensure_collection()
    vectors = item_store.load()
    redis_url = resolve_redis_url(settings)
    store = feature_store.open_store(settings, redis_url)
    state = model.sources
    inputs = ranking_inputs(
        settings, state["interactions"], state["models"], vectors, state["categories"], store
    )
    if inputs.features != model.features:
        raise InvalidInputError("model", "the registry's feature list differs from the code's")
    reader = ServiceReader(redis.Redis.from_url(redis_url), store.project,
                           service_plan(store, "ranking"))  # fmt: skip
    ranker = Ranker(settings, model, inputs, reader, item_store, embedder)
    _warm(ranker)
    return ranker


def _warm(ranker: Ranker) -> None:
    """Score once now, so the first request does not pay for lazily retrained item sides."""
    some = next(iter(ranker.inputs.context.history.users), None)
    if some is not None:
        now = pd.DatetimeIndex([pd.Timestamp.now(tz="UTC")])
        for source in ranker.inputs.sources:
            source.scores([some], now, ranker.inputs.items[:1])


__all__ = ["RankResult", "Ranker", "load_ranker"]
