"""The application factory: settings in, a Flask app with its stores, model and routes out.

The app is flask-openapi3's (serving/spec.py): routes declare the models they take and answer,
requests are validated against them, and /openapi.json and /docs are built from them.

Everything costly is built here once per process (Redis pool, feature registry, popularity
table, model, DuckDB connection) and kept in `app.extensions["engram"]`; routes stay thin.
`test_config` overrides Flask config; the keys Engram reads: `ENGRAM_AUTH` (False turns auth
off; `engram serve --no-auth` allows it on loopback only), `ENGRAM_API_KEYS` (more keys, as
'key:scopes;...'), `ENGRAM_MEMORY_COLLECTION`, `ENGRAM_EMBEDDER` (an already loaded embedder),
`ENGRAM_RANKER` (a Ranker to use as the model instead of the registry's), `ENGRAM_REFRESH`
(False: no reload thread), `ENGRAM_WARM` (False: open the feature registry on first use).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from flask.json.provider import JSONProvider
from flask_openapi3 import OpenAPI

from core.errors import ConfigError
from core.settings import Settings, get_settings
from core.stores.services import connect_redis, locate_redis_url
from memory.llm_extract import llm_config
from memory.store import DEFAULT_COLLECTION
from memory.versions import MemoryVersions
from pipelines import strict_json
from pipelines.normalize import RecordNormalizer
from serving import features, health, logs, memories, rank, signals, ui, users
from serving.auth import (
    authorize,
    has_keys,
    load_keys,
    parse_keys,
    refuse_keys_in_query,
    scopes_by_endpoint,
)
from serving.backends import FeatureReader, MemoryHandle, RankService
from serving.breaker import Breaker
from serving.errors import register_error_handlers
from serving.extension import Engram
from serving.metrics import Metrics
from serving.request_body import EngramRequest
from serving.spec import new_app
from serving.wiring import StreamSync, load_model, produce

log = logging.getLogger("engram.serving")
SYNC_TIMEOUT_MS = 10_000


class OrjsonProvider(JSONProvider):
    """JSON out by orjson (RFC 3339 times with Z, NaN as null, numpy values, fast); JSON in by
    `pipelines.strict_json` (no duplicate keys, lone surrogates or NaN)."""

    _OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=self._OPTIONS, default=str).decode("utf-8")

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        # Request bodies come through here: strict, so that one body means one thing.
        return strict_json.loads(s)


def create_app(
    settings: Settings | None = None, test_config: Mapping[str, Any] | None = None
) -> OpenAPI:
    """The Engram API for these settings (default: from the environment)."""
    settings = settings or get_settings()
    app = new_app("engram")
    app.request_class = EngramRequest
    app.json = OrjsonProvider(app)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.engram_max_body_bytes,
        ENGRAM_AUTH=True,
        ENGRAM_REFRESH=True,
        ENGRAM_WARM=True,
        ENGRAM_MEMORY_COLLECTION=DEFAULT_COLLECTION,
    )
    app.config.update(test_config or {})

    keys = load_keys(settings)
    if app.config.get("ENGRAM_API_KEYS"):
        keys.update(parse_keys(app.config["ENGRAM_API_KEYS"]))
    llm_config(settings)  # a bad ENGRAM_LLM_* stops the start, not the first memory request
    for module in (signals, features, memories, rank, users, health):
        app.register_api(module.bp)

    # Workers never start a store: `engram serve`'s supervisor does (core/stores/supervisor.py).
    redis_url = locate_redis_url(settings)
    client = connect_redis(settings, settings.engram_store_timeout_ms / 1000)
    if app.config["ENGRAM_AUTH"] and not has_keys(keys, client):
        raise ConfigError(
            "ENGRAM_API_KEYS",
            "auth is on and no API key is configured (`engram keys create`, or set "
            "ENGRAM_API_KEYS or ENGRAM_API_KEYS_FILE; --no-auth on loopback for development)",
        )
    redis_breaker = Breaker("redis")
    memory_handle = MemoryHandle(
        settings,
        Breaker("milvus"),
        collection=app.config["ENGRAM_MEMORY_COLLECTION"],
        embedder=app.config.get("ENGRAM_EMBEDDER"),
        versions=MemoryVersions(client),
    )
    model = app.config.get("ENGRAM_RANKER")
    ranking = RankService(
        settings,
        redis_breaker,
        (lambda _s, _m: model) if model is not None else load_model,
        client=client,
    )
    ranking.refresh()
    metrics = Metrics()
    app.extensions["engram"] = Engram(
        settings=settings,
        api_keys=keys,
        scopes=scopes_by_endpoint(app),
        redis_url=redis_url,
        redis=client,
        redis_breaker=redis_breaker,
        normalizer=RecordNormalizer(threads=1),  # see RecordNormalizer
        features=FeatureReader(settings, redis_url, client, redis_breaker),
        memories=memory_handle,
        ranking=ranking,
        produce=produce,
        # Sync batches run scripts and writes that may take longer than a read: own timeouts.
        sync=StreamSync(
            settings,
            connect_redis(settings, SYNC_TIMEOUT_MS / 1000),
            redis_url,
            memory_handle.sink(),
        ),
        metrics=metrics,
    )
    if app.config["ENGRAM_REFRESH"]:
        ranking.start_refresh(every=settings.engram_model_check_seconds)
    if app.config["ENGRAM_WARM"]:
        # The feature registry (and the Feast SDK) now, not in the first request.
        app.extensions["engram"].features.warm()

    ui.init_app(app, settings)  # the memory inspector's pages under /ui (docs/inspector.md)
    app.before_request(refuse_keys_in_query)
    metrics.init_app(app)
    logs.init_app(app)
    app.before_request(authorize)  # after the metrics' clock starts: a 401 is timed too
    register_error_handlers(app)
    return app
