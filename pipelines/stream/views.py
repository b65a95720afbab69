"""Which feature views each push source feeds, read from the Feast registry once and cached.

The consumer must not import the Feast SDK (over 5 s, and the consumer restarts at any time),
so the layout of the push sources' views (names, join key, features and their value kinds) is
read from the registry by the first process that needs it and kept as JSON in ENGRAM_HOME,
read back by later ones; a registry changed after the cache (a `feast apply`, on any host when
the registry is shared) invalidates it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.settings import Settings
from core.stores.online.layout import FeatureRef, ValueKind, ViewRef, view_ref

USER_PUSH_SOURCE = "user_stats_push_source"
ITEM_PUSH_SOURCE = "item_stats_push_source"


@dataclass(frozen=True)
class PushLayout:
    """The Feast project and, per push source, the views one push refreshes."""

    project: str
    views: dict[str, tuple[ViewRef, ...]]


def cache_path(settings: Settings) -> Path:
    """Where the layout is cached for this ENGRAM_HOME."""
    return settings.engram_home / "stream" / "push_views.json"


def layout_from_store(store: Any) -> PushLayout:
    """The push sources' views as the store's registry holds them (imports Feast)."""
    views: dict[str, list[ViewRef]] = {}
    for feature_view in store.list_feature_views():
        source = feature_view.stream_source
        if source is not None and feature_view.online:
            views.setdefault(source.name, []).append(view_ref(feature_view))
    return PushLayout(store.project, {name: tuple(refs) for name, refs in sorted(views.items())})


def load_layout(settings: Settings, redis_url: str) -> PushLayout:
    """The cached layout, or the registry's (applying the repo when it has no views yet)."""
    from core.stores import feature_store

    path = cache_path(settings)
    if path.exists():
        changed = feature_store.registry_changed_at(settings)
        if changed is None or changed <= path.stat().st_mtime:
            return _decode(json.loads(path.read_text()))
    store = feature_store.open_store(settings, redis_url)
    layout = layout_from_store(store)
    if USER_PUSH_SOURCE not in layout.views:
        feature_store.apply_repo(store, settings)
        layout = layout_from_store(store)
    save_layout(settings, layout)
    return layout


def save_layout(settings: Settings, layout: PushLayout) -> None:
    """Write the cache atomically."""
    path = cache_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(_encode(layout), indent=1))
    os.replace(temporary, path)


def _encode(layout: PushLayout) -> dict[str, Any]:
    return {
        "project": layout.project,
        "views": {
            source: [
                {
                    "name": view.name,
                    "join_key": view.join_key,
                    "ttl_seconds": view.ttl.total_seconds() if view.ttl else None,
                    "features": [[f.name, f.kind.name] for f in view.features],
                }
                for view in views
            ]
            for source, views in layout.views.items()
        },
    }


def _decode(raw: dict[str, Any]) -> PushLayout:
    views = {}
    for source, entries in raw["views"].items():
        views[source] = tuple(
            ViewRef(
                name=entry["name"],
                join_key=entry["join_key"],
                features=tuple(
                    FeatureRef(entry["name"], name, ValueKind[kind])
                    for name, kind in entry["features"]
                ),
                ttl=timedelta(seconds=entry["ttl_seconds"]) if entry["ttl_seconds"] else None,
            )
            for entry in entries
        )
    return PushLayout(raw["project"], views)
