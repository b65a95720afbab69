"""The booster's scores from C code generated for its trees (tl2cgen), or LightGBM's own predict.

A request's rows are scored faster by the trees compiled to C than by LightGBM's predict, to the
same last bit (bench/predictor.py, docs/benchmarks.md). `compiled` builds the library once per
model text and host under ENGRAM_HOME/cache/predictors (the registry may be shared, a compiled
library belongs to the host that built it), checks it against the booster, and falls back to
the booster when anything on that path fails: a load never fails for the faster path.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.locks import exclusive
from core.settings import Settings

TOOLCHAIN = "gcc"
# Thresholds compared as bin indices, the trees in 8 C files: as fast as the plain code and the
# least compile CPU of those measured (gcc compiles small files faster, even on one thread).
CODEGEN: dict[str, Any] = {"quantize": 1, "parallel_comp": 8}
# LightGBM reads a value within kZeroThreshold (1e-35f) of zero as zero.
ZERO = float(np.float32(1e-35))
LOW_WORD = np.uint64(0xFFFFFFFF)
PROBE_ROWS = 512

log = logging.getLogger("engram")


class Predictor(Protocol):
    """Raw scores of model-matrix rows (float64, one row per candidate)."""

    def predict(self, matrix: np.ndarray) -> np.ndarray: ...


class BoosterPredictor:
    """LightGBM's own predict, on one thread (more only add their start-up cost)."""

    def __init__(self, booster: Any) -> None:
        self._booster = booster

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """The booster's raw scores."""
        return np.asarray(self._booster.predict(matrix, num_threads=1))


class CompiledPredictor:
    """A compiled library's scores, on the calling thread, as LightGBM gives them. tl2cgen's
    runtime reads two kinds of value otherwise than LightGBM, so they are handled here: a value
    within 1e-35f of zero is zero to LightGBM (set so), and a double whose low 32 bits are all
    set is tl2cgen's missing mark (its entry is a union of the double and an int, -1 when
    missing): the rare rows holding one are scored by the booster."""

    def __init__(self, library: Path, booster: Any) -> None:
        import tl2cgen

        self._predictor = tl2cgen.Predictor(library, nthread=1)
        self._rows = tl2cgen.DMatrix
        self._booster = booster
        # tl2cgen's predict takes one caller at a time, and ctypes lets go of the GIL.
        self._lock = threading.Lock()

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """The booster's raw scores (NaN: missing, as in LightGBM)."""
        values = np.asarray(matrix, dtype=np.float64)
        values = np.where(np.abs(values) <= ZERO, 0.0, values)
        rows = self._rows(values)
        with self._lock:
            scores: np.ndarray = self._predictor.predict(rows, pred_margin=True).reshape(-1)
        marked = ((values.view(np.uint64) & LOW_WORD) == LOW_WORD).any(axis=1)
        if marked.any():
            scores[marked] = self._booster.predict(values[marked], num_threads=1)
        return scores


def predictor_dir(settings: Settings) -> Path:
    """Where this host keeps the libraries it compiled."""
    return settings.engram_home / "cache" / "predictors"


def compiled(booster: Any, cache_dir: Path) -> Predictor:
    """The booster's predictor compiled to C (built once per model text in `cache_dir`), or
    the booster's own when compiling or loading fails (logged)."""
    try:
        text = booster.model_to_string()
        predictor = CompiledPredictor(library(text, cache_dir), booster)
        _check(predictor, booster, text)
    except Exception as error:  # a faster path only: whatever fails, the booster is right
        log.warning("compiled predictor unavailable, LightGBM's predict serves: %r", error)
        return BoosterPredictor(booster)
    return predictor


def library(model_text: str, cache_dir: Path) -> Path:
    """The compiled library of a LightGBM model text in `cache_dir`, built when missing. Built
    in a temporary directory and moved in whole, under a lock, so workers loading the same
    model at once compile it once and never read half a file."""
    import tl2cgen
    import treelite

    fingerprint = json.dumps([tl2cgen.__version__, treelite.__version__, TOOLCHAIN, CODEGEN])
    key = hashlib.sha256(f"{fingerprint}\n{model_text}".encode()).hexdigest()
    path = cache_dir / f"{key}.so"
    if path.exists():
        return path
    with exclusive(cache_dir / ".build.lock"):
        if path.exists():
            return path
        with tempfile.TemporaryDirectory(dir=cache_dir) as work:
            source = Path(work) / "model.txt"
            source.write_text(model_text)
            model = treelite.frontend.load_lightgbm_model(source)
            built = Path(work) / path.name
            messages = io.StringIO()
            with contextlib.redirect_stdout(messages):  # tl2cgen prints its progress
                tl2cgen.export_lib(model, TOOLCHAIN, built, dict(CODEGEN), nthread=1)
            log.debug("tl2cgen: %s", messages.getvalue().strip())
            os.replace(built, path)
    log.info("compiled predictor built: %s", path)
    return path


def probe_rows(model_text: str, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Rows that reach the model's decisions: each feature's values drawn from its split
    thresholds, the doubles on either side of them, zero and NaN (missing); in an eighth of the
    rows one value has its low 32 bits set (see CompiledPredictor)."""
    thresholds: dict[int, list[float]] = {}
    features: list[int] = []
    width = 0
    for line in model_text.splitlines():
        if line.startswith("max_feature_idx="):
            width = int(line.partition("=")[2]) + 1
        elif line.startswith("split_feature="):
            features = [int(value) for value in line.partition("=")[2].split()]
        elif line.startswith("threshold="):
            values = [float(value) for value in line.partition("=")[2].split()]
            for feature, value in zip(features, values, strict=True):
                thresholds.setdefault(feature, []).append(value)
    rng = np.random.default_rng(seed)
    matrix = np.empty((rows, width))
    for j in range(width):
        split = np.asarray(thresholds.get(j, []), dtype=np.float64)
        edges = (np.nextafter(split, np.inf), np.nextafter(split, -np.inf), [0.0, np.nan])
        matrix[:, j] = rng.choice(np.concatenate((split, *edges)), rows)
    marked = rng.choice(rows, rows // 8, replace=False)
    columns = rng.integers(width, size=len(marked))
    matrix[marked, columns] = (matrix[marked, columns].view(np.uint64) | LOW_WORD).view(np.float64)
    return matrix


def _check(predictor: CompiledPredictor, booster: Any, model_text: str) -> None:
    """Raise unless the compiled scores equal the booster's, to the last bit, on rows at its
    thresholds (both add the trees' leaves in order from zero)."""
    rows = probe_rows(model_text)
    expected = np.asarray(booster.predict(rows, num_threads=1))
    if not np.array_equal(predictor.predict(rows), expected):
        raise ValueError("compiled scores differ from LightGBM's")


__all__ = [
    "BoosterPredictor",
    "CompiledPredictor",
    "Predictor",
    "compiled",
    "library",
    "predictor_dir",
    "probe_rows",
]
