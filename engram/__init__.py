"""Engram: user signals to features and memories, ranked and served. This package is the front
door: the `engram` command (engram/cli.py). The layers below it are described in
docs/architecture.md."""

import core  # noqa: F401  (its import order matters for every process: see core/__init__.py)

__version__ = "0.1.0"
