"""The forget audit: after a forget, search every place Engram keeps data for the user's id and
a distinctive text of theirs. Zero hits is the pass (`bench/forget_audit.py`, tests/forget).

Places, in the report's order:
- `redis`: every key name and value of every database (the signals stream and its dead-letter
  stream, window state, online rows, markers);
- `redis_aof`: the Redis server's files when they are on this host (append-only files, RDB,
  its log), and those of ENGRAM_HOME's local server;
- `milvus`: every collection, queried by user and read whole for the text;
- `milvus_disk`: Milvus's own files (message log, binlogs), which keep a forgotten user's
  bytes for a bounded time after the forget (core/stores/log_retention.py): audit after it;
- `offline`: every file of the offline store (events, feature snapshots, catalog; at
  ENGRAM_OFFLINE_DIR when set);
- `dead_letter`: the dead-letter store (files, or PostgreSQL rows with ENGRAM_STATE_URL);
- `registry`: every model version's files (pickles loaded and walked, every file as bytes; in
  PostgreSQL with ENGRAM_STATE_URL);
- `home`: every other file of ENGRAM_HOME (local services' directories are the places above),
  the cached copies of shared state files included;
- `logs`: the server logs given.
A user id is searched as a substring, so audit with a distinctive id: a short one ("42") is
found inside unrelated values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.settings import Settings
from core.stores.services import connect_milvus, connect_url, resolve_redis_url
from core.stores.state_files import LocalFiles, StateFiles
from forget import audit_files, audit_milvus, audit_redis
from forget.audit_report import AuditReport, Needles, PlaceReport
from pipelines.dead_letter import dead_letter_files
from ranking.registry import registry_dir, registry_files

REDIS_TIMEOUT_S = 30.0


def audit(
    settings: Settings,
    user_id: str,
    text: str,
    *,
    logs: Sequence[Path] = (),
    collections: Sequence[str] | None = None,
    milvus_dir: Path | None = None,
) -> AuditReport:
    """Search every place for the user's id and `text`; `collections` limits the Milvus
    collections read (default: all of them); `milvus_dir` is the Milvus server's data
    directory (default: this home's local server's)."""
    needles = Needles(user_id, text)
    places: list[PlaceReport] = []
    with connect_url(
        settings, resolve_redis_url(settings), socket_timeout=REDIS_TIMEOUT_S
    ) as client:
        places.append(audit_redis.scan_keys(client, needles))
        files = audit_redis.server_files(client, [settings.services_dir / "redis"])
        places.append(audit_redis.scan_files(files, needles))
    milvus = connect_milvus(settings)
    try:
        places.append(audit_milvus.scan_collections(milvus, needles, collections))
    finally:
        milvus.close()
    places.append(audit_milvus.scan_milvus_disk(settings, needles, milvus_dir))
    stores = [settings.offline_dir, settings.dead_letter_dir, registry_dir(settings)]
    rest = audit_files.files_under(settings.engram_home, leaving=[*stores, settings.services_dir])
    # Before the shared files are listed: listing drops this host's stale cached copies.
    home = audit_files.scan_files("home", rest, needles)
    places.append(
        audit_files.scan_files("offline", audit_files.files_under(settings.offline_dir), needles)
    )
    places.append(_scan_state("dead_letter", dead_letter_files(settings), needles))
    places.append(_scan_state("registry", registry_files(settings), needles))
    places.append(home)
    if logs:
        places.append(audit_files.scan_files("logs", [Path(p) for p in logs], needles))
    else:
        places.append(PlaceReport("logs", "files", skipped="no log file given"))
    return AuditReport(needles, places)


def _scan_state(place: str, files: StateFiles, needles: Needles) -> PlaceReport:
    """A local area's every file (a crash's leftovers too), or a shared area's every row."""
    if isinstance(files, LocalFiles):
        return audit_files.scan_files(place, audit_files.files_under(files.root), needles)
    contents = ((f"{place}/{key}", files.read(key)) for key in files.names())
    return audit_files.scan_contents(place, contents, needles)
