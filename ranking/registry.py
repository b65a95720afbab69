"""A small on-disk model registry: ENGRAM_HOME/models/registry/<version>/.

Each version holds `model.txt` (the LightGBM booster), `sources.pkl` (the fitted candidate
sources and the log they read) and `meta.json` (version, feature list, training window,
metrics). Versions are `vYYYYMMDD-HHMMSS[-n]`, so their sorted order is their age and `load()`
without a version takes the latest.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engram.errors import InvalidInputError, ModelNotFoundError
from engram.settings import Settings

MODEL_FILE = "model.txt"
SOURCES_FILE = "sources.pkl"
META_FILE = "meta.json"


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


def save(settings: Settings, booster: Any, sources: dict[str, Any], meta: dict[str, Any]) -> str:
    """Write a new version and return its name; the metadata gains `version` and `created_at`."""
    root = registry_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    version = new_version(root)
    partial = root / f".{version}.partial"
    partial.mkdir()
    booster.save_model(str(partial / MODEL_FILE))
    with (partial / SOURCES_FILE).open("wb") as handle:
        pickle.dump(sources, handle, protocol=pickle.HIGHEST_PROTOCOL)
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
    if "/" in version or version.startswith("."):
        raise InvalidInputError("version", "not a version name")
    if version not in known:
        raise ModelNotFoundError(version)
    path = registry_dir(settings) / version
    booster = lgb.Booster(model_file=str(path / MODEL_FILE))
    with (path / SOURCES_FILE).open("rb") as handle:
        sources = pickle.load(handle)  # files this registry wrote itself
    meta = json.loads((path / META_FILE).read_text())
    return ModelVersion(version, booster, sources, meta)
