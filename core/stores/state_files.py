"""Files that every host needs: the model registry's and the dead-letter store's.

One small interface (`StateFiles`), two backends:
- `LocalFiles`: a directory of this host (the embedded default, under ENGRAM_HOME);
- `SharedFiles`: the table `engram_state` in the PostgreSQL named by ENGRAM_STATE_URL, which
  every host reaches; a file a host loads by path (`fetch`) is cached under
  ENGRAM_HOME/cache/state/, named after its revision, and a stale copy is deleted when the host
  next lists that area (`names`) (docs/deploy.md).

Keys are relative POSIX paths within an area ("v20261206-101500/model.txt"); a directory is a
key prefix. Every write replaces a whole file atomically: a reader gets the old content or the
new. Each operation opens its own connection: nothing is shared across a fork (gunicorn) and an
idle host holds no connection.
"""

from __future__ import annotations

import os
import shutil
import uuid
import zlib
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.errors import ServiceUnavailableError
from core.locks import exclusive
from core.settings import Settings

CHUNK_BYTES = 16 << 20  # a file is stored in rows of this size: bounded memory per row
CONNECT_TIMEOUT_S = 5
_TABLE = """
CREATE TABLE IF NOT EXISTS engram_state (
    key text NOT NULL,
    seq integer NOT NULL,
    revision text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (key, seq)
)
"""
_REVISION_MARK = "~"  # a cached copy is <key>~<revision>


@dataclass(frozen=True)
class Fetched:
    """A local file holding a stored file's content, and which write of it that is."""

    path: Path
    revision: str


class StateFiles(Protocol):
    """One area of files (the registry, the dead letter), on this host or shared."""

    def names(self) -> list[str]:
        """Every key of the area, sorted."""

    def read(self, key: str) -> bytes:
        """A file's content (FileNotFoundError when there is none)."""

    def fetch(self, key: str) -> Fetched:
        """A local file with the content, for readers that take a path."""

    def revision(self, key: str) -> str:
        """Which write of the file is stored now ("" when there is none)."""

    def write(self, key: str, data: bytes) -> None:
        """Create or replace the file, atomically."""

    def publish(self, directory: str, files: Mapping[str, bytes]) -> bool:
        """Create `directory` holding `files`, all at once; False when it exists already."""

    def remove(self, prefix: str) -> None:
        """Delete a file, or every file under a directory."""

    def lock(self, name: str) -> AbstractContextManager[None]:
        """An exclusive lock, held by one process of every host sharing the area."""


def open_state(settings: Settings, area: str, local_root: Path) -> StateFiles:
    """The area's files: shared when ENGRAM_STATE_URL is set, else under `local_root`."""
    if settings.engram_state_url:
        cache = settings.engram_home / "cache" / "state" / area
        return SharedFiles(settings.engram_state_url, area, cache)
    return LocalFiles(local_root)


class LocalFiles:
    """The area as a directory on this host."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(key for key in keys if not _temporary(key))

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def fetch(self, key: str) -> Fetched:
        path = self.root / key
        # Stat before the caller opens: a replace in between makes the revision older than the
        # content read, which costs a reload at most, never a stale copy kept.
        return Fetched(path, _file_revision(path.stat()))

    def revision(self, key: str) -> str:
        try:
            return _file_revision((self.root / key).stat())
        except FileNotFoundError:
            return ""

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def publish(self, directory: str, files: Mapping[str, bytes]) -> bool:
        final = self.root / directory
        if final.exists():
            return False
        partial = self.root / f".{directory}.{uuid.uuid4().hex[:8]}.partial"
        partial.mkdir(parents=True)
        try:
            for name, data in files.items():
                (partial / name).write_bytes(data)
            partial.rename(final)  # readers never see a half-written directory
        except OSError:
            if final.exists():
                return False
            raise
        finally:
            if partial.exists():
                shutil.rmtree(partial)
        return True

    def remove(self, prefix: str) -> None:
        path = self.root / prefix
        if path.is_dir():
            gone = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
            path.rename(gone)  # out of `list()` at once, then deleted
            shutil.rmtree(gone)
        else:
            path.unlink(missing_ok=True)

    def lock(self, name: str) -> AbstractContextManager[None]:
        return exclusive(self.root / f".{name}.lock")


class SharedFiles:
    """The area as rows of `engram_state` in PostgreSQL, keyed `<area>/<key>`."""

    def __init__(self, url: str, area: str, cache: Path) -> None:
        self._url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._area = area
        self.cache = cache

    def names(self) -> list[str]:
        rows = self._query(
            "SELECT key, revision FROM engram_state WHERE seq = 0 AND starts_with(key, %s)",
            [self._prefix("")],
        )
        stored = {self._key(key): revision for key, revision in rows}
        self._prune(stored)
        return sorted(stored)

    def read(self, key: str) -> bytes:
        return self._read(key)[0]

    def fetch(self, key: str) -> Fetched:
        revision = self.revision(key)
        if not revision:
            raise FileNotFoundError(key)
        path = self._cached(key, revision)
        if not path.is_file():
            data, revision = self._read(key)
            path = self._cached(key, revision)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                temporary.write_bytes(data)
                os.replace(temporary, path)  # two workers fetching at once write the same bytes
            finally:
                temporary.unlink(missing_ok=True)
        self._prune_key(key, revision)
        return Fetched(path, revision)

    def revision(self, key: str) -> str:
        rows = self._query(
            "SELECT revision FROM engram_state WHERE key = %s AND seq = 0", [self._prefix(key)]
        )
        return str(rows[0][0]) if rows else ""

    def write(self, key: str, data: bytes) -> None:
        with self._connect() as connection, connection.transaction():
            connection.execute("DELETE FROM engram_state WHERE key = %s", [self._prefix(key)])
            self._insert(connection, key, data)

    def publish(self, directory: str, files: Mapping[str, bytes]) -> bool:
        import psycopg

        try:
            with self._connect() as connection, connection.transaction():
                taken = connection.execute(
                    "SELECT 1 FROM engram_state WHERE starts_with(key, %s) LIMIT 1",
                    [self._prefix(directory + "/")],
                ).fetchall()
                if taken:
                    return False
                for name, data in files.items():
                    self._insert(connection, f"{directory}/{name}", data)
        except psycopg.errors.UniqueViolation:
            return False  # another host published the same name meanwhile
        return True

    def remove(self, prefix: str) -> None:
        with self._connect() as connection:
            connection.execute(
                "DELETE FROM engram_state WHERE key = %s OR starts_with(key, %s)",
                [self._prefix(prefix), self._prefix(prefix + "/")],
            )

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        # A session lock on a connection of its own, outside any transaction (no idle-in-
        # transaction timeout ends it): the server drops it if this host dies.
        key = zlib.crc32(self._prefix(name).encode())
        with self._connect(autocommit=True) as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", [key])
            try:
                yield
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", [key])

    # --- rows ---

    def _prefix(self, key: str) -> str:
        return f"{self._area}/{key}"

    def _key(self, stored: str) -> str:
        return stored[len(self._area) + 1 :]

    def _insert(self, connection: Any, key: str, data: bytes) -> None:
        revision = uuid.uuid4().hex
        chunks = [data[at : at + CHUNK_BYTES] for at in range(0, len(data), CHUNK_BYTES)] or [b""]
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO engram_state (key, seq, revision, data) VALUES (%s, %s, %s, %s)",
                [(self._prefix(key), seq, revision, chunk) for seq, chunk in enumerate(chunks)],
            )

    def _read(self, key: str) -> tuple[bytes, str]:
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT revision, data FROM engram_state WHERE key = %s ORDER BY seq",
                [self._prefix(key)],
            ).fetchall()
        if not rows:
            raise FileNotFoundError(key)
        return b"".join(bytes(row[1]) for row in rows), str(rows[0][0])

    def _query(self, query: str, params: list[Any]) -> list[Any]:
        with self._connect() as connection:
            return list(connection.execute(query, params).fetchall())

    def _connect(self, *, autocommit: bool = False) -> Any:
        import psycopg

        try:
            connection = psycopg.connect(
                self._url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=autocommit
            )
        except psycopg.OperationalError as error:
            raise ServiceUnavailableError("state", str(error).strip()) from error
        _ensure_table(connection, self._url)
        return connection

    # --- the local cache ---

    def _cached(self, key: str, revision: str) -> Path:
        return self.cache / f"{key}{_REVISION_MARK}{revision}"

    def _prune(self, stored: Mapping[str, str]) -> None:
        """Delete cached copies of files that are gone or were written again since."""
        if not self.cache.is_dir():
            return
        for path in self.cache.rglob("*"):
            if path.name.startswith("."):
                continue  # a fetch's temporary file, renamed into place in a moment
            relative = path.relative_to(self.cache).as_posix()
            key, mark, revision = relative.rpartition(_REVISION_MARK)
            if path.is_file() and mark and stored.get(key) != revision:
                path.unlink(missing_ok=True)

    def _prune_key(self, key: str, revision: str) -> None:
        keep = self._cached(key, revision)
        for path in keep.parent.glob(f"{Path(key).name}{_REVISION_MARK}*"):
            if path != keep:
                path.unlink(missing_ok=True)


_READY: set[str] = set()


def _ensure_table(connection: Any, url: str) -> None:
    """Create the table once per process and database (an advisory lock keeps two hosts'
    first connections from racing on CREATE TABLE)."""
    if url in _READY:
        return
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(b"engram_state")])
        connection.execute(_TABLE)
    _READY.add(url)


def _temporary(key: str) -> bool:
    return any(
        part.endswith((".tmp", ".partial", ".lock")) and part.startswith(".")
        for part in key.split("/")
    )


def _file_revision(stat: os.stat_result) -> str:
    return f"{stat.st_ino}:{stat.st_mtime_ns}"
