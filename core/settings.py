"""The one settings object: read from the environment once, passed down to what needs it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Engram's configuration; every field maps to an environment variable (see README)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    engram_home: Path = Field(
        default=Path.home() / ".engram",
        description="Data directory: offline store, dead-letter, registry, local services.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Online store and streams. Unset: Engram starts a local redis-server "
        "under ENGRAM_HOME/services on a free port.",
    )
    redis_cluster: bool = Field(
        default=False,
        description="REDIS_URL names a node of a Redis Cluster (Feast's redis_type: "
        "redis_cluster); the other nodes are found from it.",
    )
    milvus_uri: str | None = Field(
        default=None,
        description="Memory and item-vector store. Unset: Engram starts an embedded Milvus "
        "server under ENGRAM_HOME/services.",
    )
    engram_feast_registry_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a Feast SQL registry shared by several hosts, e.g. "
        "postgresql+psycopg://engram@db.internal:5432/engram_registry (a password is better "
        "kept in PGPASSWORD or ~/.pgpass than in the URL). Unset: SQLite at "
        "ENGRAM_HOME/registry.db.",
    )
    engram_state_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of the state every host shares: the model registry "
        "(versions, pin, files) and the dead-letter store, e.g. "
        "postgresql://engram@db.internal:5432/engram_state (docs/deploy.md). Unset: files "
        "under ENGRAM_HOME.",
    )
    engram_offline_dir: Path | None = Field(
        default=None,
        description="The offline store (stored events, feature snapshots, catalog) on a "
        "filesystem every host mounts at this same path. Unset: ENGRAM_HOME/offline.",
    )
    session_gap_minutes: int = Field(
        default=30, ge=1, description="Inactivity gap that closes a session."
    )
    duckdb_threads: int = Field(default=2, ge=1, description="Threads DuckDB may use.")
    duckdb_memory_limit: str = Field(
        default="3GB", description="DuckDB memory limit; larger jobs spill to ENGRAM_HOME/tmp."
    )
    spark_master: str = Field(
        default="local[2]",
        description="Spark master of `engram ingest --engine spark` (local mode by default).",
    )
    spark_driver_memory: str = Field(
        default="2g", description="Memory of the Spark driver (in local mode, the whole job)."
    )
    spark_shuffle_partitions: int = Field(
        default=4, ge=1, description="Partitions of the Spark engine's shuffles."
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description="More Spark settings for the Spark engine, as a JSON object (e.g. "
        '{"spark.sql.codegen.wholeStage": "false"}).',
    )
    # --- HTTP API (docs/api.md) ---
    engram_api_keys: str | None = Field(
        default=None,
        description="API keys as 'key:scope,scope;key2:scope' (scopes: read, write, admin).",
    )
    engram_api_keys_file: Path | None = Field(
        default=None, description="File of API keys, one 'key:scope,scope' per line."
    )
    engram_max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest request body the API accepts."
    )
    engram_milvus_timeout_ms: int = Field(
        default=2000,
        ge=10,
        description="Timeout of the API's Milvus calls: a hung Milvus "
        "answers 503 (memories) or a popularity ranking instead of holding a worker.",
    )
    engram_item_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long the ranker reuses item feature rows it read "
        "from Redis (0: read them on every request). User rows are always read live.",
    )
    engram_rank_shortlist: int = Field(
        default=200,
        ge=0,
        description="Of a user's stored candidates, how many the model scores per request: "
        "the best by reciprocal rank fusion of the sources' ranks (at least twice k; 0: all).",
    )
    engram_candidates_budget_mb: float = Field(
        default=256.0,
        ge=0,
        description="Storage in Redis for each user's candidates computed ahead (~43 KB a "
        "user): `engram train` computes the most active users', `engram candidates follow` "
        "adds those who act and evicts the users written longest ago; the others are generated "
        "per request. 0: none computed ahead.",
    )
    engram_store_timeout_ms: int = Field(
        default=250, ge=10, description="Socket timeout of the API's Redis calls: fail fast."
    )
    engram_model_check_seconds: float = Field(
        default=60.0,
        gt=0,
        description="`engram serve`: how often each process looks for a newly trained, pinned "
        "or rewritten (forget) model version, and drops cached copies that changed.",
    )
    engram_log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        default="info", description="`engram serve`: the least severe log line written."
    )
    engram_read_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="`engram serve`: a request's headers must arrive within this many seconds "
        "of the connection, and its body within as many after them (else 408), so that slow "
        "clients cannot hold the sync workers.",
    )

    # --- the memory inspector, /ui (docs/inspector.md) ---
    engram_ui_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs the inspector's session cookies. Unset: a random key kept in "
        "ENGRAM_HOME/ui/session.key (made on first use), shared by the workers of one host; set "
        "it when workers on several hosts serve one site.",
    )
    engram_ui_secure_cookie: bool = Field(
        default=False,
        description="Mark the inspector's session cookie Secure (sent over HTTPS only): set it "
        "when the site is served over TLS.",
    )

    # --- memory extraction by a chat model (docs/memory.md); off unless the URL is set ---
    engram_llm_base_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible chat-completions API (e.g. "
        "http://127.0.0.1:8000/v1) whose model extracts facts from user texts. Unset: the rules "
        "extract them (the default).",
    )
    engram_llm_model: str | None = Field(
        default=None, description="Model name sent with each request; needed with the URL."
    )
    engram_llm_api_key: SecretStr | None = Field(
        default=None, description="Bearer token for the model's API; never printed or logged."
    )
    engram_llm_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Socket timeout of one request to the model; a text whose request times "
        "out is read by the rules instead.",
    )
    engram_llm_concurrency: int = Field(
        default=4, ge=1, le=64, description="Requests to the model in flight at once."
    )

    @field_validator("engram_home", "engram_api_keys_file", "engram_offline_dir")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        """Absolute from the start: a relative ENGRAM_HOME would move with every chdir (the
        local redis-server resolves its log file after changing into its directory)."""
        return None if path is None else path.expanduser().absolute()

    @property
    def offline_dir(self) -> Path:
        """Parquet offline store: events, features, catalog (ENGRAM_OFFLINE_DIR when set)."""
        return self.engram_offline_dir or self.engram_home / "offline"

    @property
    def dead_letter_dir(self) -> Path:
        """Rejected records with their reasons."""
        return self.engram_home / "dead_letter"

    @property
    def services_dir(self) -> Path:
        """State of the local services Engram starts itself."""
        return self.engram_home / "services"

    @property
    def tmp_dir(self) -> Path:
        """Spill space for DuckDB."""
        return self.engram_home / "tmp"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
