"""The ONNX embedding export, made once per test run and shared by the tests that embed."""

from __future__ import annotations

from pathlib import Path

import pytest


def link_embedding_models(request: pytest.FixtureRequest, home: Path) -> None:
    """Give `home` the ONNX embedding export shared by the whole test run (made once).

    Only the .onnx files are linked, into a real `home/models` directory: a model registry a
    test trains under `home/models/registry` stays private to that test.
    """
    from memory.embed import build_onnx

    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    if cache is None:
        return  # the test exports into its own home
    shared = Path(cache.mkdir("engram-models"))
    build_onnx(shared, "int8")  # exports fp32 and int8 once; a no-op when they are there
    for onnx in shared.glob("*.onnx"):
        (models / onnx.name).symlink_to(onnx)
