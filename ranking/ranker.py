"""The serving ranker: candidates, online features and the saved LightGBM model, per request.

`load_ranker(settings, version=None)` loads a registry version (the latest by default), the item
vectors from Milvus and a fast reader of the `ranking` feature service in Redis; `rank()` then
generates candidates for the user as of the request time, builds their features with the same
`assemble` as training (service values read online, views older than their ttl treated as
missing, as the point-in-time join does) and orders them by the model's score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import redis

from core.errors import InvalidInputError, ServiceUnavailableError, UnknownUserError
from core.settings import Settings
from core.stores.online.cache import EntityCache
from core.stores.online.read_service import StoredFeatures
from core.stores.online.transport import Read, read_all
from core.times import epoch_micros
from ranking.baselines import catalog_positions, to_micros
from ranking.candidate_store import CandidateStore, Record
from ranking.candidates import DEFAULT_LIMITS, UserCandidates, generate_user
from ranking.features import assemble_user
from ranking.predictor import compiled, predictor_dir
from ranking.registry import ModelVersion
from ranking.train import RankingInputs, ranking_inputs

QUERY_HITS = 50  # items a text query adds to the candidates
PUBLISH_TIMEOUT_S = 30.0  # per Redis call when writing a version's candidates
TOP_REASONS = 3  # features named per ranked item


@dataclass(frozen=True)
class Fetched:
    """What one request reads from Redis, in one round trip (`Ranker.fetch`)."""

    at: datetime  # the request's time, which the reads' ttl were judged at
    record: Record | None  # the user's stored candidates (None: none, or not needed)
    rows: dict[str, StoredFeatures]  # the user's feature rows, by join key
    extra: list[Any]  # the caller's own reads, parsed, in their order


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
        candidates: CandidateStore | None = None,
    ) -> None:
        self.settings = settings
        self.model = model
        self._predictor = compiled(model.booster, predictor_dir(settings))
        self.inputs = inputs
        self._reader = reader  # core.stores.online.read_service.ServiceReader
        # Item rows from the process, the user's row live (core.stores.online.cache). The rows are
        # read whole by `refresh_items` (now, then from the server's background thread every
        # ENGRAM_ITEM_CACHE_SECONDS) and swapped in at once: a request never reads them.
        self._cached: dict[str, EntityCache] = {}
        self._cache_items = (
            settings.engram_item_cache_seconds > 0 and "item_id" in reader.plan.join_keys
        )
        self.refresh_items()
        # Each user's candidates in Redis, from training or the follower (see `stored`).
        self._candidates = candidates
        self._catalog = np.asarray(inputs.items, dtype=object)
        self._names = list(inputs.source_names)
        self._limits = [DEFAULT_LIMITS.get(name, 100) for name in self._names]
        self._item_store = item_store
        self._embedder = embedder
        categories = inputs.context.categories
        self._category = {
            str(item): category
            for item, category in zip(categories.index, categories.to_numpy(), strict=True)
            if isinstance(category, str)
        }
        inputs.context.table  # noqa: B018  (built now, not on the first request)

    @property
    def item_refresh_seconds(self) -> float:
        """How often `refresh_items` should run (0: never, the item rows are read live)."""
        return self.settings.engram_item_cache_seconds if self._cache_items else 0.0

    def refresh_items(self) -> None:
        """Read every catalog item's feature rows now and swap them in whole. Requests keep
        the previous rows until the swap, so none waits for a read; the rows never expire on
        their own (a refresh that fails keeps them)."""
        if not self._cache_items:
            return
        fresh = EntityCache(
            self._reader.stored_reader, "item_id", list(self.inputs.items), math.inf
        )
        try:
            fresh.rows(list(self.inputs.items[:1]))  # the first use reads the whole catalog
        except (redis.RedisError, OSError) as error:
            raise ServiceUnavailableError("redis", str(error)) from error
        self._cached = {"item_id": fresh}

    @property
    def version(self) -> str:
        """The model version in use."""
        return self.model.version

    @property
    def revision(self) -> str:
        """Which write of the version's sources this ranker read (ranking.registry.revision)."""
        return self.model.revision

    def knows(self, user_id: str) -> bool:
        """True when this ranker holds contacts of the user (the log it was trained on)."""
        return self.inputs.context.history.knows(user_id)

    def forget_user(self, user_id: str) -> None:
        """Rank the user as one with no history from now on, in place: the history, every
        candidate source's per-user state and the feature context drop them, so their answer
        is a stranger's. What the sources learned over everyone keeps their contacts until
        the rewritten registry version is loaded (ranking.registry.forget_user)."""
        self.inputs.context.forget_user(user_id)
        for source in self.inputs.sources:
            source.forget_user(user_id)

    def features(self, frame: pd.DataFrame, at: datetime) -> pd.DataFrame:
        """The model matrix of candidate rows of one user at `at`, service read online."""
        return pd.DataFrame(self.matrix(frame, at), index=frame.index, columns=self.model.features)

    def matrix(self, frame: pd.DataFrame, at: datetime) -> np.ndarray:
        """`features` as a C-contiguous float64 array: `assemble_user` on the frame's columns
        and the service values read online (ttl enforced as the point-in-time join does)."""
        users = frame["user_id"].unique()
        if len(users) != 1:
            raise InvalidInputError("candidates", "rows of exactly one user are needed")
        names = self.inputs.source_names
        scores = np.column_stack([frame[f"score_{s}"].to_numpy(dtype=float) for s in names])
        ranks = np.column_stack([frame[f"rank_{s}"].to_numpy(dtype=float) for s in names])
        return self._assemble(
            str(users[0]),
            [str(i) for i in frame["item_id"]],
            scores,
            ranks,
            frame["n_sources"].to_numpy(dtype=float),
            at,
        )

    def _assemble(
        self,
        user: str,
        items: list[str],
        scores: np.ndarray,
        ranks: np.ndarray,
        n_sources: np.ndarray,
        at: datetime,
        fetched: Fetched | None = None,
    ) -> np.ndarray:
        return assemble_user(
            self.inputs.context,
            user,
            epoch_micros(at),
            items,
            scores,
            ranks,
            n_sources,
            self.service(user, items, at, fetched),
        )

    def service(
        self, user_id: str, items: list[str], at: datetime, fetched: Fetched | None = None
    ) -> np.ndarray:
        """The feature service's values (items x service features) read online at `at`; the
        user's rows from `fetched` when given."""
        request = {"item_category": [self._category.get(i) for i in items]}
        read = self._reader.read(
            {"user_id": [user_id], "item_id": items},
            request,
            enforce_ttl=True,
            now=at,
            cached=self._cached,
            already_read=fetched.rows if fetched is not None else None,
        )
        return read.matrix(self.inputs.service_features)

    def fetch(
        self,
        user_id: str,
        at: datetime | None = None,
        query: str | None = None,
        extra: Sequence[Read] = (),
    ) -> Fetched:
        """What `rank` reads from Redis for the user, with the caller's `extra` reads, in one
        round trip: their stored candidates (when `rank` will use them: no query, no time)
        and their feature rows (the item rows come from the process's cache)."""
        moment = _utc(at)
        reads = list(extra)
        wants_record = self._candidates is not None and not query and at is None
        if wants_record:
            reads.append(CandidateStore.read_of(user_id))
        pending = None
        if "user_id" in self._reader.plan.join_keys and "user_id" not in self._cached:
            pending = self._reader.stored_reader.prepare(
                {"user_id": [user_id]}, enforce_ttl=True, now=moment, event_times=False
            )
            reads += pending.reads
        try:
            replies = read_all(self._reader.stored_reader.client, reads)
        except (redis.RedisError, OSError) as error:
            raise ServiceUnavailableError("redis", str(error)) from error
        mine = replies[len(extra) :]
        return Fetched(
            moment,
            mine.pop(0) if wants_record else None,
            pending.finish(mine) if pending is not None else {},
            replies[: len(extra)],
        )

    def score(self, matrix: np.ndarray) -> np.ndarray:
        """The model's scores of model-matrix rows, on one thread, by its trees compiled to C
        (ranking.predictor; LightGBM's predict when they could not be)."""
        return self._predictor.predict(matrix)

    def rank(
        self,
        user_id: str,
        k: int = 10,
        candidates: list[str] | None = None,
        query: str | None = None,
        at: datetime | None = None,
        explain: bool = True,
        fetched: Fetched | None = None,
    ) -> RankResult:
        """The user's k best items as of `at` (default now); `candidates` limits the choice,
        `query` adds the items nearest to it in Milvus. Each item's reasons name its sources
        and, with `explain`, the features that moved its score most (LightGBM's SHAP values,
        computed for the k answered items only). `fetched`: what `fetch` read for this
        request (else read here, in one round trip)."""
        if k < 1:
            raise InvalidInputError("k", f"must be positive, got {k}")
        if fetched is None:
            fetched = self.fetch(user_id, at, query)
        moment = pd.Timestamp(fetched.at)
        found = None
        if not query and at is None:
            if candidates is None:
                found = self.stored(user_id, fetched)
                shortlist = self.settings.engram_rank_shortlist
                if found is not None and shortlist:
                    found = found.shortlist(max(shortlist, 2 * k))
            else:
                found = self._given(user_id, moment, candidates, fetched)
        if found is None:
            found = self._generate(user_id, moment, candidates, query)
        if not len(found.item_ids):
            history = self.inputs.context.history
            micros = int(to_micros([moment])[0])
            if candidates is None and not len(history.before(user_id, micros).items):
                raise UnknownUserError(user_id)
            return RankResult([], self.version)
        item_ids = found.item_ids
        matrix = self._assemble(
            user_id,
            item_ids.tolist(),
            found.scores,
            found.ranks,
            found.n_sources.astype(float),
            fetched.at,
            fetched,
        )
        scores = self.score(matrix)
        order = np.lexsort((item_ids, -scores))[:k]
        sources = found.sources()
        reasons: dict[str, dict[str, Any]] = {
            str(item_ids[i]): {"sources": [s for s in sources[i].split("+") if s]} for i in order
        }
        if explain:
            names = self.model.features
            contributions = self.model.booster.predict(
                matrix[order], pred_contrib=True, num_threads=1
            )[:, :-1]
            for row, position in enumerate(order):
                top = np.argsort(-np.abs(contributions[row]))[:TOP_REASONS]
                reasons[str(item_ids[position])]["top_features"] = [
                    {"name": names[j], "contribution": round(float(contributions[row, j]), 4)}
                    for j in top
                ]
        items = [(str(item_ids[i]), float(scores[i])) for i in order]
        return RankResult(items, self.version, reasons)

    def stored(self, user_id: str, fetched: Fetched | None = None) -> UserCandidates | None:
        """The user's candidates kept in Redis for this version (ranking.candidate_store:
        computed at training, recomputed by the follower when the user acts; None when none
        are kept): what a request without candidates, query or time ranks, instead of the
        sources scoring the catalog. Read now unless `fetched` holds them."""
        if self._candidates is None:
            return None
        if fetched is not None:
            record = fetched.record
        else:
            try:
                record = self._candidates.read(user_id)
            except (redis.RedisError, OSError) as error:
                raise ServiceUnavailableError("redis", str(error)) from error
        if (
            record is None
            or record.version != self.version
            or record.catalog_size != len(self._catalog)
            or record.scores.shape[1] != len(self._limits)
        ):
            return None  # another version's: generated live until it is rewritten
        return record.candidates(self._catalog, self._names, self._limits)

    def _given(
        self,
        user_id: str,
        moment: pd.Timestamp,
        candidates: list[str],
        fetched: Fetched | None = None,
    ) -> UserCandidates | None:
        """The given candidates with each source's score of them (those items only) and their
        ranks in the user's source lists kept in Redis (None: none kept): what
        `generate_user(..., only=candidates)` gives without any source ranking the catalog.
        The lists leave out the items the user had touched when they were computed, as the
        lists training ranked do."""
        kept = self.stored(user_id, fetched)
        if kept is None or kept.lists is None or kept.lists.shape[1] == 0:
            return None
        positions = catalog_positions(self, self.inputs.items, [str(i) for i in candidates])
        chosen = positions[positions >= 0]
        item_ids = self._catalog[chosen]
        when = pd.DatetimeIndex([moment]).as_unit("us")  # no conversion in each source
        scores = np.empty((len(chosen), len(self._names)))
        for j, source in enumerate(self.inputs.sources):
            scores[:, j] = source.scores([user_id], when, self.inputs.items, chosen)[0]
        listed = kept.lists >= 0
        lists, depth = np.nonzero(listed)
        place = np.zeros((len(listed), len(self._catalog)), dtype=np.int32)  # 1-based; 0: none
        place[lists, kept.lists[lists, depth]] = np.cumsum(listed, axis=1)[lists, depth]
        found = place[:, chosen].T
        ranks = np.where(found > 0, found, np.nan)
        inside = ranks <= np.asarray(self._limits, dtype=float)  # NaN compares False
        return UserCandidates(item_ids, list(self._names), scores, ranks, inside)

    def _generate(
        self,
        user_id: str,
        moment: pd.Timestamp,
        candidates: list[str] | None,
        query: str | None,
    ) -> UserCandidates:
        """The sources' candidates as of `moment`: the given ones, or each source's best items
        the user has not touched; plus the items nearest a text query."""
        inputs = self.inputs
        history = inputs.context.history
        seen = set(history.before(user_id, int(to_micros([moment])[0])).items)
        only = list(candidates) if candidates is not None else None
        if query:
            hits = [item for item, _ in self._query_hits(query)]
            if only is None:
                base = generate_user(inputs.sources, user_id, moment, inputs.items, seen)
                only = base.item_ids.tolist()
            only = list(dict.fromkeys([*only, *(h for h in hits if h not in seen)]))
        return generate_user(
            inputs.sources,
            user_id,
            moment,
            inputs.items,
            seen if candidates is None else (),
            only=only,
        )

    def _query_hits(self, query: str) -> list[tuple[str, float]]:
        if self._item_store is None or self._embedder is None:
            raise InvalidInputError("query", "this ranker has no item vector store")
        vector = self._embedder.embed([query])
        return self._item_store.search(vector, QUERY_HITS)[0]


def _utc(at: datetime | None) -> datetime:
    """The request's time: `at` (which must say its offset) in UTC, or now."""
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInputError("at", "needs a UTC offset")
    return at.astimezone(UTC)


def load_ranker(
    settings: Settings,
    version: str | None = None,
    *,
    embedder: Any | None = None,
    milvus_timeout_s: float | None = None,
    redis_timeout_s: float | None = None,
) -> Ranker:
    """The ranker of a registry version (latest when None), wired to Redis and Milvus. With the
    timeouts (the API) every store call is bounded by them, no local server is started, and a
    store that does not answer while loading is a ServiceUnavailableError (core.stores.services)."""
    import grpc
    from pymilvus.exceptions import MilvusException

    from core.stores import feature_store
    from core.stores.online.plan import service_plan
    from core.stores.online.read_service import ServiceReader
    from core.stores.services import connect_redis, locate_redis_url, resolve_redis_url
    from memory.embed import load_embedder
    from ranking import registry
    from ranking.item_vectors import connect_item_store

    model = registry.load(settings, version)
    embedder = embedder or load_embedder(settings)
    item_store = connect_item_store(
        settings, embedder, model.meta["item_collection"], milvus_timeout_s
    )
    try:
        item_store.ensure_collection()
        vectors = item_store.load()
    except (MilvusException, grpc.RpcError) as error:
        # A deadline inside the vectors' query iterator comes up as gRPC's own error.
        item_store.close()
        raise ServiceUnavailableError("milvus", getattr(error, "message", str(error))) from error
    serving = redis_timeout_s is not None
    redis_url = locate_redis_url(settings) if serving else resolve_redis_url(settings)
    store = feature_store.open_store(settings, redis_url)
    state = model.sources
    inputs = ranking_inputs(
        settings, state["interactions"], state["models"], vectors, state["categories"], store
    )
    if inputs.features != model.features:
        raise InvalidInputError("model", "the registry's feature list differs from the code's")
    client = connect_redis(settings, redis_timeout_s)
    reader = ServiceReader(client, store.project, service_plan(store, "ranking"))
    budget = int(settings.engram_candidates_budget_mb * 2**20)
    candidates = CandidateStore(client, budget)
    if model.candidates is not None and model.candidates.names == inputs.source_names:
        # Megabytes to write: not under the request path's short timeout.
        writer = connect_redis(settings, PUBLISH_TIMEOUT_S) if serving else client
        try:
            _publish(CandidateStore(writer, budget), model)
        finally:
            if writer is not client:
                writer.close()
    ranker = Ranker(settings, model, inputs, reader, item_store, embedder, candidates)
    _warm(ranker)
    _one_thread(state["models"])
    return ranker


def _publish(candidates: CandidateStore, model: ModelVersion) -> None:
    """Write the version's candidates from training to Redis, once: the first process to load
    the version does (ranking.candidate_store.CandidateStore.claim). When the write fails the
    claim is given back, for the next process that loads the version; meanwhile requests
    generate the candidates."""
    import logging

    assert model.candidates is not None
    log = logging.getLogger("engram")
    try:
        if candidates.claim(model.version):
            try:
                written = candidates.publish(model.version, model.candidates)
            except (redis.RedisError, OSError):
                candidates.release(model.version)
                raise
            log.info("candidates of %s: %d users written to redis", model.version, written)
    except (redis.RedisError, OSError) as error:
        log.warning("candidates of %s not written: %s", model.version, error)


def _one_thread(models: dict[str, Any]) -> None:
    """Requests run on one thread each: a request's matrices are small (~100 x 384), so BLAS
    and implicit's OpenMP threads only wait on each other and take cores from the other
    workers (demo preset, 2 cores: Ranker.rank 27 -> 23 ms). Process-wide for BLAS: call this
    only where the process serves (load_ranker)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    for model in models.values():
        for side in getattr(model, "_sides", {}).values():  # the retrained ALS item sides
            if hasattr(side, "num_threads"):
                side.num_threads = 1


def _warm(ranker: Ranker) -> None:
    """Score once now, so the first request does not pay for lazily retrained item sides."""
    some = next(iter(ranker.inputs.context.history.users), None)
    if some is not None:
        now = pd.DatetimeIndex([pd.Timestamp.now(tz="UTC")])
        for source in ranker.inputs.sources:
            source.scores([some], now, ranker.inputs.items[:1])


__all__ = ["Fetched", "RankResult", "Ranker", "load_ranker"]
