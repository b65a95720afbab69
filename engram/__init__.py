"""Engram: user signals to features and memories, ranked and served."""

__version__ = "0.1.0"
