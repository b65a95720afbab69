"""A small on-disk model registry: ENGRAM_HOME/models/registry/<version>/.

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

import json
import os
import pickle
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import InvalidInputError, ModelNotFoundError
from core.locks import exclusive
from core.settings import Settings
from ranking import precomputed
from ranking.precomputed import StoredCandidates

MODEL_FILE = "model.txt"
SOURCES_FILE = "sources.pkl"
META_FILE = "meta.json"
LOCK_FILE = ".lock"
PIN_FILE = ".pinned"  # the pinned version's name; a dot file, so never taken for a version


def registry_dir(settings: Settings) -> Path:
    """Where model versions live."""
    return settings.engram_home / "models" / "registry"


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


def new_version(root: Path, now: datetime | None = None) -> str:
    """A fresh, sortable version name."""
    base = (now or datetime.now(UTC)).strftime("v%Y%m%d-%H%M%S")
    version, n = base, 1
    while (root / version).exists():
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
    root = registry_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    version = new_version(root)
    partial = root / f".{version}.partial"
    partial.mkdir()
    booster.save_model(str(partial / MODEL_FILE))
    with (partial / SOURCES_FILE).open("wb") as handle:
        pickle.dump(sources, handle, protocol=pickle.HIGHEST_PROTOCOL)
    if candidates is not None:
        (partial / precomputed.FILE).write_bytes(candidates.to_bytes())
    full = {"version": version, "created_at": datetime.now(UTC).isoformat(), **meta}
    (partial / META_FILE).write_text(json.dumps(full, indent=2, default=str))
    partial.rename(root / version)  # readers never see a half-written version
    return version


def versions(settings: Settings) -> list[str]:
    """Saved versions, oldest first."""
    root = registry_dir(settings)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def load(settings: Settings, version: str | None = None) -> ModelVersion:
    """A saved version (the latest when None)."""
    import lightgbm as lgb

    known = versions(settings)
    if version is None:
        if not known:
            raise ModelNotFoundError(None)
        version = known[-1]
    _check_name(version)
    if version not in known:
        raise ModelNotFoundError(version)
    path = registry_dir(settings) / version
    booster = lgb.Booster(model_file=str(path / MODEL_FILE))
    with (path / SOURCES_FILE).open("rb") as handle:
        read = _revision(os.fstat(handle.fileno()))  # of the file read, whatever replaces it
        sources = pickle.load(handle)  # files this registry wrote itself
    meta = json.loads((path / META_FILE).read_text())
    stored = path / precomputed.FILE
    candidates = precomputed.load(stored) if stored.is_file() else None
    return ModelVersion(version, booster, sources, meta, read, candidates)


def metadata(settings: Settings, version: str) -> dict[str, Any]:
    """A version's meta.json, without loading its model."""
    _check_name(version)
    if version not in versions(settings):
        raise ModelNotFoundError(version)
    return dict(json.loads((registry_dir(settings) / version / META_FILE).read_text()))


def pin(settings: Settings, version: str) -> None:
    """Serve `version` from now on, whatever is trained after it."""
    _check_name(version)
    if version not in versions(settings):
        raise ModelNotFoundError(version)
    root = registry_dir(settings)
    partial = root / f"{PIN_FILE}.{uuid.uuid4().hex}.partial"
    partial.write_text(version)
    partial.replace(root / PIN_FILE)  # atomic: a reader sees the old pin or the new one


def unpin(settings: Settings) -> None:
    """Serve the latest version again."""
    (registry_dir(settings) / PIN_FILE).unlink(missing_ok=True)


def pinned(settings: Settings) -> str | None:
    """The pinned version, or None."""
    try:
        return (registry_dir(settings) / PIN_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def serving_version(settings: Settings) -> str | None:
    """What serving loads: the pinned version while it exists, else the latest (None when
    nothing is trained)."""
    known = versions(settings)
    chosen = pinned(settings)
    if chosen in known:
        return chosen
    return known[-1] if known else None


def revision(settings: Settings, version: str) -> str:
    """Which write of the version's sources.pkl is on disk now ("" when there is none): a
    rewrite replaces the file, so a loaded copy whose revision differs is out of date."""
    try:
        return _revision((registry_dir(settings) / version / SOURCES_FILE).stat())
    except FileNotFoundError:
        return ""


def _revision(stat: os.stat_result) -> str:
    return f"{stat.st_ino}:{stat.st_mtime_ns}"


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
    root = registry_dir(settings)
    if not root.is_dir():
        return ForgetSummary()
    versions_changed = interactions = 0
    with exclusive(root / LOCK_FILE):
        for version in versions(settings):
            path = root / version / SOURCES_FILE
            with path.open("rb") as handle:
                state = pickle.load(handle)
            log = state["interactions"]
            mine = (log["user_id"].astype(str) == user_id).to_numpy()
            if not mine.any():
                continue
            versions_changed += 1
            interactions += int(mine.sum())
            kept = log.loc[~mine].reset_index(drop=True)
            if kept.empty:
                _remove(root / version)
                continue
            stored = root / version / precomputed.FILE
            if stored.is_file():  # first: a reader that sees the new sources sees these too
                _write_atomically(precomputed.load(stored).without(user_id).to_bytes(), stored)
            models = {name: model.fit(kept) for name, model in state["models"].items()}
            _dump_atomically({**state, "interactions": kept, "models": models}, path)
    return ForgetSummary(versions_changed, interactions)


def save_candidates(settings: Settings, version: str, stored: StoredCandidates) -> None:
    """Replace a version's candidates.npz (`engram candidates compute`), under the forget lock."""
    _check_name(version)
    if version not in versions(settings):
        raise ModelNotFoundError(version)
    root = registry_dir(settings)
    with exclusive(root / LOCK_FILE):
        _write_atomically(stored.to_bytes(), root / version / precomputed.FILE)


def _dump_atomically(state: dict[str, Any], path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temporary.open("wb") as handle:
            pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_atomically(data: bytes, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _remove(directory: Path) -> None:
    """Take a version out of `versions()` at once (a rename), then delete its files."""
    gone = directory.with_name(f".{directory.name}.forgotten")
    directory.rename(gone)
    shutil.rmtree(gone)


def _check_name(version: str) -> None:
    if not version or "/" in version or version.startswith("."):
        raise InvalidInputError("version", "not a version name")
