"""The stack under test: data prepared with Engram's own commands, then `engram serve` started.

Whatever it starts it stops: the server, and the local Redis / Milvus if they were down.

Every step runs the CLI in a child process with the run's environment, exactly as a person would
(`engram generate`, `ingest --memories`, `materialize`, `train` unless told not to, `serve`),
so the load test measures the product as shipped. The server runs in its own process group and
is stopped by that group's id, never by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import ServiceUnavailableError
from core.settings import Settings

_READY_TIMEOUT_S = 180.0
_STOP_TIMEOUT_S = 20.0
DATA_DIR_NAME = "loadtest-data"


def engram_command(*args: str) -> list[str]:
    """The `engram` CLI of this interpreter: its console script, else `python -m engram.cli`."""
    script = Path(sys.executable).with_name("engram")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "engram.cli", *args]


def run_step(args: Sequence[str], env: dict[str, str], log: Path, timeout_s: float = 1_800) -> str:
    """Run one CLI step, its stderr appended to `log`; its stdout is returned."""
    began = time.monotonic()
    with log.open("a", encoding="utf-8") as err:
        err.write(f"$ {' '.join(args)}\n")
        err.flush()
        done = subprocess.run(
            list(args),
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        err.write(f"\n# exit {done.returncode} after {time.monotonic() - began:.1f} s\n")
    if done.returncode != 0:
        raise ServiceUnavailableError(
            "loadtest", f"`{' '.join(args)}` exited {done.returncode}; see {log}"
        )
    return done.stdout


def prepare_data(
    settings: Settings,
    env: dict[str, str],
    preset: str,
    log: Path,
    say: Callable[[str], None],
    train: bool = True,
) -> Path:
    """Generate, ingest (with memories), materialize and train when ENGRAM_HOME has no features.

    Returns the generated data directory (its queries.jsonl feeds memory searches).
    """
    from pipelines.batch import USER_FEATURES_FILE, features_dir

    data_dir = settings.engram_home / DATA_DIR_NAME
    if (features_dir(settings) / USER_FEATURES_FILE).exists():
        say(f"data: using what {settings.engram_home} holds")
        return data_dir
    say(f"data: generating the {preset} preset into {data_dir}")
    run_step(engram_command("generate", str(data_dir), "--preset", preset), env, log)
    say("data: ingest with memories")
    run_step(
        engram_command(
            "ingest",
            str(data_dir / "signals.jsonl"),
            "--catalog",
            str(data_dir / "catalog.jsonl"),
            "--memories",
            "--json",
        ),
        env,
        log,
    )
    say("data: materialize")
    materialize(env, log)
    if train:
        say("data: train the ranker")
        run_step(engram_command("train"), env, log)
    return data_dir


def materialize(env: dict[str, str], log: Path) -> None:
    """Load the feature snapshots into the online store."""
    run_step(engram_command("materialize", "--json"), env, log)


@contextmanager
def stopping_local_services(settings: Settings, say: Callable[[str], None]) -> Iterator[None]:
    """Stop on exit the local Redis / Milvus of this home that were not running on entry."""
    from core.stores import local_milvus, local_redis
    from core.stores.services import local_services_status

    before = local_services_status(settings)
    try:
        yield
    finally:
        after = local_services_status(settings)
        stoppers = {"redis": local_redis.stop_redis, "milvus": local_milvus.stop_milvus}
        for name, stop in stoppers.items():
            if before[name] is None and after[name] is not None:
                say(f"services: stopping the local {name} this run started")
                stop(settings.services_dir / name)


@dataclass(frozen=True)
class Server:
    """A server the run started: its base URL and the pid of its process-group leader."""

    url: str
    pid: int


def http_status(url: str, headers: dict[str, str] | None = None, timeout_s: float = 5.0) -> int:
    """The HTTP status of a GET (0 when nothing answers)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    """Poll GET /readyz until it answers 200; fail fast if the server exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceUnavailableError(
                "server", f"exited {process.returncode} while starting; see {log}"
            )
        if http_status(f"{url}/readyz", timeout_s=2.0) == 200:
            return
        time.sleep(0.5)
    raise ServiceUnavailableError("server", f"not ready after {timeout_s:.0f} s; see {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)  # our own group: the server and its workers
        process.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=_STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass


@contextmanager
def running_server(
    command: Sequence[str],
    url: str,
    env: dict[str, str],
    log: Path,
    ready_timeout_s: float = _READY_TIMEOUT_S,
) -> Iterator[Server]:
    """Start `command` in a new process group, wait for /readyz, stop the group on exit."""
    with log.open("ab") as out:
        out.write(f"$ {json.dumps(list(command))}\n".encode())
        out.flush()
        process = subprocess.Popen(
            list(command), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        began = time.monotonic()
        wait_ready(url, process, log, ready_timeout_s)
        with log.open("a", encoding="utf-8") as out_text:
            out_text.write(f"# ready after {time.monotonic() - began:.1f} s\n")
        yield Server(url=url, pid=process.pid)
    finally:
        _stop(process)
