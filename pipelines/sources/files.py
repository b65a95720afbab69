"""Which files a source path names: itself, a directory's files of one kind, or a glob's matches."""

from __future__ import annotations

import glob as globbing
from pathlib import Path

from core.errors import SourceError


def source_files(path: Path, pattern: str) -> list[Path]:
    """The files `path` names, sorted: the file itself, the files of a directory matching
    `pattern` (such as "*.jsonl"), or a glob's matches. A SourceError when there are none."""
    if any(char in str(path) for char in "*?["):
        files = sorted(Path(name) for name in globbing.glob(str(path)) if Path(name).is_file())
        if not files:
            raise SourceError(str(path), "the pattern matches no file")
        return files
    if path.is_dir():
        files = sorted(child for child in path.glob(pattern) if child.is_file())
        if not files:
            raise SourceError(str(path), f"the directory holds no {pattern} file")
        return files
    if not path.is_file():
        raise SourceError(str(path), "no such file")
    return [path]
