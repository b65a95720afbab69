"""The one place that turns Settings into Feast's RepoConfig and FeatureStore, and applies the repo.

`feature_repo/feature_store.yaml` stays the single description of the store; its variables
(`${ENGRAM_FEAST_REGISTRY}`, `${ENGRAM_FEAST_REDIS}`, `${ENGRAM_FEAST_REDIS_TYPE}`) are filled
here from the Settings passed in, never from the process environment, and `feast_environment`
gives the same values to the plain `feast` CLI (with ENGRAM_HOME and ENGRAM_OFFLINE_DIR, which the
repo's file sources read). The registry is SQLite in ENGRAM_HOME unless ENGRAM_FEAST_REGISTRY_URL
names a shared one (PostgreSQL, docs/deploy.md). The repo's file sources are bound to the
Settings' offline store when applied, so one checkout serves any number of ENGRAM_HOMEs (tests,
the demo, production).
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from core.errors import ConfigError
from core.locks import exclusive
from core.settings import Settings
from core.stores.online.layout import feast_connection_string

if TYPE_CHECKING:  # the SDK takes seconds to import; only the functions below load it
    from feast import FeatureStore, RepoConfig

FEATURE_REPO = Path(__file__).resolve().parents[2] / "feature_repo"
# A store built only for offline reads must never reach a real Redis by accident.
OFFLINE_ONLY_REDIS = "redis://offline-only.invalid:6379/0"
_VARIABLE = re.compile(r"\$\{(\w+)\}")


def project_name(repo_path: Path = FEATURE_REPO) -> str:
    """The Feast project the repo registers (it ends every Redis key)."""
    raw = yaml.safe_load((repo_path / "feature_store.yaml").read_text())
    return str(raw["project"])


def registry_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the Feast registry: the shared one when set, else SQLite in
    ENGRAM_HOME."""
    if settings.engram_feast_registry_url:
        return settings.engram_feast_registry_url
    return f"sqlite:///{settings.engram_home.resolve()}/registry.db"


def registry_changed_at(settings: Settings) -> float | None:
    """When the registry last changed (seconds since the epoch), read without the Feast SDK;
    None when that cannot be told: no registry yet, or a shared one that cannot be reached.

    SQLite: the file's mtime. A shared registry: the project's `last_updated_timestamp` in the
    `feast_metadata` table of Feast's SQL registry, in whole seconds by the clock of the host
    that changed it; the end of that second is returned, so that a cache written within it
    counts as older."""
    if not settings.engram_feast_registry_url:
        path = settings.engram_home / "registry.db"
        return path.stat().st_mtime if path.exists() else None
    import sqlalchemy

    url = settings.engram_feast_registry_url
    connect_args = {"connect_timeout": 5} if url.startswith("postgresql") else {}
    engine = sqlalchemy.create_engine(url, connect_args=connect_args)
    query = sqlalchemy.text(
        "SELECT last_updated_timestamp FROM feast_metadata"
        " WHERE project_id = :project AND metadata_key = 'last_updated_timestamp'"
    )
    try:
        with engine.connect() as connection:
            latest = connection.execute(query, {"project": project_name()}).scalar()
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError):
        return None  # unreachable, or no tables yet
    finally:
        engine.dispose()
    return None if latest is None else float(latest) + 1


def feast_environment(settings: Settings, redis_url: str) -> dict[str, str]:
    """The variables feature_store.yaml (and the repo's file sources) read, for these settings
    and this Redis."""
    variables = {
        "ENGRAM_HOME": str(settings.engram_home.resolve()),
        "ENGRAM_FEAST_REDIS": feast_connection_string(redis_url, cluster=settings.redis_cluster),
        "ENGRAM_FEAST_REGISTRY": registry_url(settings),
        "ENGRAM_FEAST_REDIS_TYPE": "redis_cluster" if settings.redis_cluster else "redis",
    }
    if settings.engram_offline_dir is not None:
        variables["ENGRAM_OFFLINE_DIR"] = str(settings.engram_offline_dir.resolve())
    return variables


def render_config(text: str, variables: Mapping[str, str]) -> dict[str, Any]:
    """feature_store.yaml with its ${VARIABLES} filled in, parsed. Pure."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise ConfigError(name, "feature_store.yaml uses a variable Engram does not set")
        return variables[name]

    # Comments may show shell syntax such as "$(...)"; only settings lines are filled.
    lines = [
        line if line.lstrip().startswith("#") else _VARIABLE.sub(fill, line)
        for line in text.splitlines()
    ]
    raw = yaml.safe_load("\n".join(lines))
    if not isinstance(raw, dict):
        raise ConfigError("feature_store.yaml", "is not a mapping")
    return raw


def repo_config(
    settings: Settings, redis_url: str, *, repo_path: Path = FEATURE_REPO
) -> RepoConfig:
    """Feast's RepoConfig for these settings: the repo's yaml with Engram's values filled in."""
    from feast import RepoConfig

    text = (repo_path / "feature_store.yaml").read_text()
    raw = render_config(text, feast_environment(settings, redis_url))
    config = RepoConfig(**raw)
    config.repo_path = repo_path
    return config


def open_store(
    settings: Settings, redis_url: str, *, repo_path: Path = FEATURE_REPO
) -> FeatureStore:
    """Engram's FeatureStore; the registry's tables are created on first use.

    Processes opening one home at once (an API's workers, say) take turns: two creating the
    registry's tables together make one of them fail. The lock is a file in ENGRAM_HOME, so
    hosts sharing a registry do not take turns (docs/deploy.md: create it from one host)."""
    from feast import FeatureStore

    config = repo_config(settings, redis_url, repo_path=repo_path)
    with exclusive(_registry_lock(settings)):
        store = FeatureStore(config=config)
        _ = store.registry  # Feast creates the registry (and its tables) on first access
        return store


def _registry_lock(settings: Settings) -> Path:
    return settings.engram_home / ".feast-registry.lock"


def snapshot_path(settings: Settings, declared: str) -> str:
    """Where a file source declared in the repo lives in this offline store: same file name."""
    return str((settings.offline_dir / "features" / Path(declared).name).resolve())


def repo_objects(settings: Settings, *, repo_path: Path = FEATURE_REPO) -> list[Any]:
    """Every Feast object the repo defines (as `feast apply` finds them), bound to `settings`."""
    from feast import Entity, FeatureService, FeatureView, FileSource, OnDemandFeatureView
    from feast.data_source import DataSource, PushSource

    # Feast imports repo files as top-level modules with the repo on sys.path; so does this.
    if str(repo_path) not in sys.path:
        sys.path.insert(0, str(repo_path))
    files = sorted(repo_path.glob("*.py"))
    # Imported afresh on every call: Feast's apply writes registry state (materialization
    # intervals) into the objects it is given, which must not leak into another home.
    for file in files:
        sys.modules.pop(file.stem, None)
    kinds = (Entity, DataSource, FeatureView, OnDemandFeatureView, FeatureService)
    found: list[Any] = []
    for file in files:
        module = importlib.import_module(file.stem)
        if not str(getattr(module, "__file__", "")).startswith(str(repo_path)):
            raise ConfigError(file.stem, f"another module shadows {file} on sys.path")
        for value in vars(module).values():
            if isinstance(value, kinds) and not any(value is seen for seen in found):
                found.append(value)
    for value in found:
        sources = [value]
        if isinstance(value, PushSource):
            sources.append(value.batch_source)
        if isinstance(value, FeatureView):
            sources += [value.batch_source, value.stream_source]
        for source in sources:
            if isinstance(source, FileSource):
                source.file_options.uri = snapshot_path(settings, source.path)
    return found


def apply_repo(store: FeatureStore, settings: Settings, *, repo_path: Path = FEATURE_REPO) -> int:
    """Register the repo's objects; safe to repeat (materialization intervals are kept)."""
    objects = repo_objects(settings, repo_path=repo_path)
    with exclusive(_registry_lock(settings)), warnings.catch_warnings():
        # Feast flags every on-demand view as experimental on each apply; it is noise here.
        warnings.filterwarnings("ignore", "On demand feature view is an experimental feature")
        store.apply(objects)
    return len(objects)
