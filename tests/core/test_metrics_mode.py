"""Importing feast after the foundation (core) leaves prometheus_client's values in the process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import os, sys
import core
if sys.argv[1] == "feast":
    import feast  # sets PROMETHEUS_MULTIPROC_DIR for the process when unset
from prometheus_client import values
print(values.ValueClass.__name__, os.environ.get("PROMETHEUS_MULTIPROC_DIR", "-"))
"""
CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}


def probe(env: dict[str, str], then: str = "feast") -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, then],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.split("\n")[-2].split()


def test_feast_does_not_switch_engram_to_multiprocess_metrics() -> None:
    kind, directory = probe(CLEAN)
    assert kind == "MutexValue" and "feast_metrics_" in directory  # set, too late to matter


def test_a_directory_inherited_from_feast_is_dropped_one_chosen_is_kept(tmp_path: Path) -> None:
    inherited = {**CLEAN, "PROMETHEUS_MULTIPROC_DIR": "/tmp/feast_metrics_abc123"}
    assert probe(inherited, then="nothing") == ["MutexValue", "-"]
    chosen = {
        **CLEAN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "PROMETHEUS_MULTIPROCESS_DIR": str(tmp_path),
    }
    assert probe(chosen, then="nothing") == ["MmapedValue", str(tmp_path)]
