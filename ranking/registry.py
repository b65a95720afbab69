"""The model registry: versions of the ranker, in ENGRAM_HOME/models/registry/<version>/ or, with
ENGRAM_STATE_URL set, in PostgreSQL shared by every host (core/stores/state_files.py; each host
caches the files it loads).

Each version holds `model.txt` (the LightGBM booster), `sources.pkl` (the fitted candidate
sources and the log they read), `meta.json` (version, feature list, training window,
metrics) and, when training computed them, `candidates.npz` (each user's candidates:
ranking.precomputed). Versions are `vYYYYMMDD-HHMMSS[-n]`, so their sorted order is their age
and `load()` without a version takes the latest.

Serving takes the latest version unless one is pinned (`pin`; `unpin` goes back to the latest):
a pin is the rollback when a new version serves worse. It is a file beside the versions, so
every process reading this registry follows it at its next model check.

Forgetting a user (`forget_user`) rewrites `sources.pkl` of every version without them; the
file's *revision* (`revision`) then changes, which is how a serving process that loaded the
version before knows to load it again.
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import InvalidInputError, ModelNotFoundError
from core.settings import Settings
from core.stores.state_files import StateFiles, open_state
from ranking import precomputed
from ranking.precomputed import StoredCandidates

MODEL_FILE = "model.txt"
SOURCES_FILE = "sources.pkl"
META_FILE = "meta.json"
FORGET_LOCK = "forget"
PIN_FILE = ".pinned"  # the pinned version's name; a dot file, so never taken for a version


def registry_dir(settings: Settings) -> Path:
    """Where model versions live on this host when the registry is not shared."""
    return settings.engram_home / "models" / "registry"


def registry_files(settings: Settings) -> StateFiles:
    """The registry's files: shared (ENGRAM_STATE_URL) or in `registry_dir`."""
    return open_state(settings, "registry", registry_dir(settings))


@dataclass
class ModelVersion:
    """A loaded version: booster, candidate-source state and metadata."""

    version: str
    booster: Any
    sources: dict[str, Any]
    meta: dict[str, Any]
    revision: str = ""  # which write of sources.pkl was read (see `revision`)
    candidates: StoredCandidates | None = None  # each user's, computed at training

    @property
    def features(self) -> list[str]:
        """The model's feature columns, in order."""
        return list(self.meta["features"])


def new_version(taken: list[str], now: datetime | None = None) -> str:
    """A fresh, sortable version name, none of `taken`."""
    base = (now or datetime.now(UTC)).strftime("v%Y%m%d-%H%M%S")
    version, n = base, 1
    while version in taken:
        version, n = f"{base}-{n}", n + 1
    return version


def save(
    settings: Settings,
    booster: Any,
    sources: dict[str, Any],
    meta: dict[str, Any],
    candidates: StoredCandidates | None = None,
) -> str:
    """Write a new version and return its name; the metadata gains `version` and `created_at`."""
    files = registry_files(settings)
    content = {
        MODEL_FILE: booster.model_to_string().encode(),
        SOURCES_FILE: pickle.dumps(sources, protocol=pickle.HIGHEST_PROTOCOL),
    }
    if candidates is not None:
        content[precomputed.FILE] = candidates.to_bytes()
    tried: list[str] = []
    while True:  # another process may take the same name at once: take the next one
        version = new_version(versions(settings, files) + tried)
        full = {"version": version, "created_at": datetime.now(UTC).isoformat(), **meta}
        content[META_FILE] = json.dumps(full, indent=2, default=str).encode()
        if files.publish(version, content):  # readers never see a half-written version
            return version
        tried.append(version)


def versions(settings: Settings, files: StateFiles | None = None) -> list[str]:
    """Saved versions, oldest first."""
    keys = (files or registry_files(settings)).names()
    return sorted({key.split("/")[0] for key in keys if "/" in key and not key.startswith(".")})


def load(settings: Settings, version: str | None = None) -> ModelVersion:
    """A saved version (the latest when None)."""
    import lightgbm as lgb

    files = registry_files(settings)
    known = versions(settings, files)
    if version is None:
        if not known:
            raise ModelNotFoundError(None)
        version = known[-1]
    _check_name(version)
    if version not in known:
        raise ModelNotFoundError(version)
    booster = lgb.Booster(model_file=str(files.fetch(f"{version}/{MODEL_FILE}").path))
    fetched = files.fetch(f"{version}/{SOURCES_FILE}")
    with fetched.path.open("rb") as handle:
        sources = pickle.load(handle)  # files this registry wrote itself
    meta = json.loads(files.read(f"{version}/{META_FILE}"))
    stored = f"{version}/{precomputed.FILE}"
    candidates = precomputed.load(files.fetch(stored).path) if files.revision(stored) else None
    return ModelVersion(version, booster, sources, meta, fetched.revision, candidates)


def metadata(settings: Settings, version: str) -> dict[str, Any]:
    """A version's meta.json, without loading its model."""
    _check_name(version)
    files = registry_files(settings)
    if version not in versions(settings, files):
        raise ModelNotFoundError(version)
    return dict(json.loads(files.read(f"{version}/{META_FILE}")))


def pin(settings: Settings, version: str) -> None:
    """Serve `version` from now on, whatever is trained after it."""
    _check_name(version)
    files = registry_files(settings)
    if version not in versions(settings, files):
        raise ModelNotFoundError(version)
    files.write(PIN_FILE, version.encode())  # atomic: a reader sees the old pin or the new one


def unpin(settings: Settings) -> None:
    """Serve the latest version again."""
    registry_files(settings).remove(PIN_FILE)


def pinned(settings: Settings) -> str | None:
    """The pinned version, or None."""
    try:
        return registry_files(settings).read(PIN_FILE).decode().strip() or None
    except FileNotFoundError:
        return None


def serving_version(settings: Settings) -> str | None:
    """What serving loads: the pinned version while it exists, else the latest (None when
    nothing is trained)."""
    files = registry_files(settings)
    known = versions(settings, files)
    try:
        chosen: str | None = files.read(PIN_FILE).decode().strip()
    except FileNotFoundError:
        chosen = None
    if chosen in known:
        return chosen
    return known[-1] if known else None


def revision(settings: Settings, version: str) -> str:
    """Which write of the version's sources.pkl is stored now ("" when there is none): a
    rewrite replaces the file, so a loaded copy whose revision differs is out of date."""
    return registry_files(settings).revision(f"{version}/{SOURCES_FILE}")


@dataclass(frozen=True)
class ForgetSummary:
    """What `forget_user` changed in the registry."""

    versions: int = 0  # versions that held the user: rewritten, or removed when only theirs
    interactions: int = 0  # the user's rows removed from those versions' logs, summed


def forget_user(settings: Settings, user_id: str) -> ForgetSummary:
    """Rewrite every version's sources without the user.

    Their rows leave the saved log and every candidate source is fitted again on what is left,
    with its own parameters, so nothing of theirs remains in sources.pkl: no profile, no ALS
    user factors, no co-occurrence or embedding history, and the item sides (ALS item factors,
    kNN similarities, pair counts, popularity) are learned again without them when the version
    is next loaded. The booster (model.txt) was fitted on everyone's rows and keeps what it
    learned until the next `engram train`; meta.json names no user; the user's precomputed
    candidates leave candidates.npz (rewritten before sources.pkl). A version whose log held
    nobody else is removed whole. Each file is replaced atomically (a reader gets the old file
    or the new one) and forgets take a lock, so two never undo each other's rewrite.
    """
    files = registry_files(settings)
    versions_changed = interactions = 0
    with files.lock(FORGET_LOCK):
        for version in versions(settings, files):
            state = pickle.loads(files.read(f"{version}/{SOURCES_FILE}"))
            log = state["interactions"]
            mine = (log["user_id"].astype(str) == user_id).to_numpy()
            if not mine.any():
                continue
            versions_changed += 1
            interactions += int(mine.sum())
            kept = log.loc[~mine].reset_index(drop=True)
            if kept.empty:
                files.remove(version)
                continue
            stored = f"{version}/{precomputed.FILE}"
            if files.revision(stored):  # first: a reader that sees the new sources sees these too
                without = precomputed.load(io.BytesIO(files.read(stored))).without(user_id)
                files.write(stored, without.to_bytes())
            models = {name: model.fit(kept) for name, model in state["models"].items()}
            rewritten = {**state, "interactions": kept, "models": models}
            files.write(
                f"{version}/{SOURCES_FILE}",
                pickle.dumps(rewritten, protocol=pickle.HIGHEST_PROTOCOL),
            )
    return ForgetSummary(versions_changed, interactions)


def save_candidates(settings: Settings, version: str, stored: StoredCandidates) -> None:
    """Replace a version's candidates.npz (`engram candidates compute`), under the forget lock."""
    _check_name(version)
    files = registry_files(settings)
    if version not in versions(settings, files):
        raise ModelNotFoundError(version)
    with files.lock(FORGET_LOCK):
        files.write(f"{version}/{precomputed.FILE}", stored.to_bytes())


def _check_name(version: str) -> None:
    if not version or "/" in version or version.startswith("."):
        raise InvalidInputError("version", "not a version name")
