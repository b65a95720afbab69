"""A client generated from the live server's /openapi.json (openapi-python-client) reads well and
works: one module per operation named by its operationId, grouped by tag, typed models in and
out, against a real `engram serve` (gunicorn) with API keys."""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.serving.conftest import KEYS, serving, signal

PACKAGE = "engram_client"
# No post hooks: the client is used as generated, not formatted.
CONFIG = f"package_name_override: {PACKAGE}\npost_hooks: []\n"
OPERATIONS = {
    "signals": {"post_signals"},
    "features": {"get_features"},
    "memories": {
        "add_memories",
        "list_memories",
        "get_memory",
        "search_memories",
        "update_memory",
        "memory_history",
        "delete_memory",
    },
    "ranking": {"rank"},
    "users": {"forget_user"},
    "service": {"healthz", "readyz", "metrics", "openapi"},
}


@pytest.fixture
def live_server(tmp_path: Path, redis_url: str, milvus_uri: str) -> Iterator[str]:
    """`engram serve` with the test keys, on the session's stores and a fresh home."""
    env = {**os.environ, "ENGRAM_HOME": str(tmp_path / "home"), "REDIS_URL": redis_url}
    env["MILVUS_URI"] = milvus_uri
    with serving(env, auth=True) as base:
        yield base


def _generate(base: str, directory: Path) -> float:
    """Generate the client package into `directory` from the server's document; seconds taken."""
    config = directory / "config.yaml"
    config.write_text(CONFIG)
    began = time.monotonic()
    done = subprocess.run(
        [
            *(sys.executable, "-m", "openapi_python_client", "generate"),
            *("--url", f"{base}/openapi.json", "--meta", "none", "--config", str(config)),
            *("--output-path", str(directory / PACKAGE)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Its one warning: NDJSON signals have no typed form (the JSON array has).
    assert "Unsupported content type application/x-ndjson" in done.stdout + done.stderr
    return time.monotonic() - began


@contextlib.contextmanager
def _imported(directory: Path) -> Iterator[ModuleType]:
    """The generated package, importable while in use."""
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(directory))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _api(tag: str, operation: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}")


def _model(name: str) -> Any:
    return getattr(importlib.import_module(f"{PACKAGE}.models"), name)


@pytest.mark.slow
def test_a_generated_client_works_against_a_live_server(live_server: str, tmp_path: Path) -> None:
    seconds = _generate(live_server, tmp_path)
    print(f"client generated in {seconds:.1f} s")
    api = tmp_path / PACKAGE / "api"
    assert {
        tag.name: {module.stem for module in tag.glob("*.py")} - {"__init__"}
        for tag in api.iterdir()
        if tag.is_dir() and tag.name != "__pycache__"
    } == OPERATIONS
    with _imported(tmp_path) as package:
        authenticated = package.AuthenticatedClient(base_url=live_server, token=KEYS["admin"])
        reader = package.AuthenticatedClient(base_url=live_server, token=KEYS["read"])

        records = [
            signal("e1", "ana", "view", item_id="item-1"),
            signal("e2", "ana", "message", text="I am vegetarian.", context={"speaker": "user"}),
            signal("e3", "ana", "rate", item_id="item-1", value=9),
        ]
        sent = _api("signals", "post_signals").sync(
            client=authenticated,
            sync=True,
            body=[_model("PostSignalsJsonSignal").from_dict(record) for record in records],
        )
        assert isinstance(sent, _model("SignalsAnswer"))
        assert (sent.accepted, sent.rejected) == (2, 1)
        assert (sent.rejections[0].index, sent.rejections[0].field) == (2, "value")

        features = _api("features", "get_features").sync("ana", client=reader)
        assert isinstance(features, _model("Features")) and features.user_id == "ana"
        assert features.features.additional_properties

        listed = _api("memories", "list_memories").sync("ana", client=reader)
        assert isinstance(listed, _model("MemoryList"))
        vegetarian = {m.memory_id for m in listed.memories if "vegetarian" in m.text.lower()}
        found = _api("memories", "search_memories").sync(
            "ana", client=reader, body=_model("SearchRequest")(query="what does ana eat", k=1)
        )
        assert isinstance(found, _model("SearchAnswer"))
        [hit] = found.memories
        assert hit.memory_id in vegetarian and hit.score > 0

        ranked = _api("ranking", "rank").sync(
            client=reader, body=_model("RankRequest")(user_id="ana", k=3)
        )
        assert isinstance(ranked, _model("RankAnswer"))
        assert (ranked.model_version, ranked.degraded_reason) == ("popularity", "no model")
        assert not ranked.additional_properties  # every field of the answer is declared
        refused = _api("ranking", "rank").sync(
            client=reader, body=_model("RankRequest")(user_id="ana", k=0)
        )
        assert isinstance(refused, _model("ErrorBody"))
        assert (refused.error, refused.field) == ("invalid_input", "k")

        forget = _api("users", "forget_user")
        assert isinstance(forget.sync("ana", client=reader), _model("ErrorBody"))  # 403
        forgotten = forget.sync("ana", client=authenticated)
        assert isinstance(forgotten, _model("Forgotten"))
        assert forgotten.user_id == "ana" and forgotten.memories >= 1 and forgotten.online == 1
        assert not forgotten.additional_properties  # every field of the answer is declared
        after = _api("memories", "list_memories").sync("ana", client=reader)
        assert after is not None and after.memories == []

        ready = _api("service", "readyz").sync(client=package.Client(base_url=live_server))
        assert isinstance(ready, _model("Ready")) and ready.ready
