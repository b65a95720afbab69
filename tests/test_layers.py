"""The layers contract (pyproject.toml, `make lint`): imports run one way, and an upward import,
even a lazy one inside a function, fails the check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engram", "serving", "loadtest", "forget", "ranking", "pipelines", "memory", "core")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(ROOT / "pyproject.toml", tree)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return tree


def test_a_lazy_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    with (tree / "core" / "times.py").open("a") as module:
        module.write("\n\ndef _upward() -> None:\n    from ranking import ranker  # noqa: F401\n")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "core is not allowed to import ranking" in result.stdout
    assert "core.times -> ranking.ranker" in result.stdout


def test_an_import_between_siblings_serving_and_loadtest_breaks_the_layers(
    tmp_path: Path,
) -> None:
    tree = _copy(tmp_path)
    with (tree / "serving" / "cli.py").open("a") as module:
        module.write("\n\ndef _sideways() -> None:\n    from loadtest import slo  # noqa: F401\n")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "serving is not allowed to import loadtest" in result.stdout


def test_a_cycle_between_modules_of_a_package_breaks_the_check(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    with (tree / "core" / "contract.py").open("a") as module:
        module.write("\n\ndef _back() -> None:\n    from core import times  # noqa: F401\n")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No cycles are allowed in core" in result.stdout


def test_every_package_directory_is_a_regular_package() -> None:
    """A directory without __init__.py is a namespace package, which the check skips unseen."""
    missing = [
        str(directory.relative_to(ROOT))
        for package in PACKAGES
        for directory in [ROOT / package, *(ROOT / package).rglob("*")]
        if directory.is_dir()
        and directory.name != "__pycache__"
        and any(directory.glob("*.py"))
        and not (directory / "__init__.py").exists()
    ]
    assert missing == []
