# ruff: noqa: E402  (imports follow the sys.path fix below)
"""Benchmark: LoCoMo through `engram ingest --memories`, then POST /v1/users/{id}/memories/search
under an open-loop load against `engram serve` (issue 14's write and search figures).

1. Writes: the development half's 2,760 turns (bench/memory_locomo.py's signals: one user per
   conversation, every turn a `message`) go through `engram ingest --memories --json` of the
   project at `--code`, in a fresh ENGRAM_HOME whose stores and ONNX model were made by a
   one-signal ingest first (so neither start-up is timed). Printed: the command's wall time,
   messages/s, the memory stage's own seconds, the command's CPU, and the CPU the local Milvus
   and Redis spent meanwhile.
2. Search: `engram serve --no-auth` (`--workers`, default 2) on that home; every LoCoMo question
   of categories 1-4 asked of its conversation's user (~580 memories each) at k = 10, in the
   open loop of bench/rank_load.py (send times drawn before the stage, Poisson arrivals, latency
   from the scheduled send to the last byte, each request on its own connection). Per stage:
   p50/p95/p99/max, errors, the gunicorn processes' CPU per answer, and the CPU of the stores
   (Milvus, Redis) per answer.

    .venv/bin/python bench/memory_search_load.py --data ../shared/data/locomo-dev \\
        [--code DIR] [--home DIR] [--rates 20,50] [--seconds 30] [--label after]

`--code DIR` runs another copy of the project (e.g. `git archive` of the tree before a change);
`--home DIR` keeps the home (a second run with it skips the ingest). The stores the run starts
are stopped at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

# As in bench/memory_locomo.py: the project's root first (bench/memory.py would shadow the
# `memory` package), this directory last (for rank_load and memory_locomo).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))

import argparse
import asyncio
import json
import os
import resource
import subprocess
import tempfile
import time
from typing import Any

import numpy as np
import psutil
from memory_locomo import load_locomo, write_signals

sys.path.append(str(_HERE))  # memory_locomo's own sys.path fix took this directory out again
from rank_load import (
    Stage,
    cpu_seconds,
    free_port,
    gunicorn_processes,
    run_stage,
    schedule,
    stop_server,
)

READY_S = 600.0


def engram(code: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`engram ARGS` of the project at `code` on `home`."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(code),
        "ENGRAM_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "engram.cli", *args]
    return subprocess.run(command, cwd=code, env=environment, capture_output=True, text=True)


def store_processes(home: Path) -> list[psutil.Process]:
    """The local Milvus and Redis of `home` (their command lines name its directory)."""
    out = []
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if str(home) in line and "engram.cli" not in line and "gunicorn" not in line:
            out.append(process)
    return out


def ingest(code: Path, home: Path, data: Path) -> dict[str, Any]:
    """Stores and model made by a one-signal ingest, then the LoCoMo turns timed."""
    turns, _ = load_locomo(data)
    signals = home / "locomo-signals.jsonl"
    write_signals(turns, signals)
    first = home / "warm.jsonl"
    first.write_text(
        json.dumps(
            {"event_id": "warm:1", "user_id": "warm", "ts": "2023-01-01T00:00:00Z"}
            | {"type": "message", "text": "warm: hello"}
        )
        + "\n"
    )
    warm = engram(code, home, "ingest", str(first), "--memories", "--json")
    if warm.returncode:
        raise SystemExit(f"warm-up ingest failed: {warm.stderr[-2000:]}")
    stores = store_processes(home)
    stores_before = sum(cpu_seconds(stores).values())
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = engram(code, home, "ingest", str(signals), "--memories", "--json")
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"ingest failed: {done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    messages = sum(len(mine) for mine in turns.values())
    cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    stores_cpu = sum(cpu_seconds(stores).values()) - stores_before
    return {
        "messages": messages,
        "seconds": round(seconds, 1),
        "messages_per_s": round(messages / seconds, 1),
        # run_ingest's own time: the command's less its start-up (Python, imports, settings).
        "pipeline_s": summary.get("seconds"),
        "pipeline_messages_per_s": round(messages / max(summary.get("seconds") or 1e-9, 1e-9), 1),
        "memory_stage_s": summary.get("memories", {}).get("seconds"),
        "memory_stage_messages_per_s": round(
            messages / max(summary.get("memories", {}).get("seconds") or 1e-9, 1e-9), 1
        ),
        "command_cpu_ms_per_message": round(1000 * cpu / messages, 2),
        "stores_cpu_ms_per_message": round(1000 * stores_cpu / messages, 2),
        "memories": summary.get("memories"),
        "load": [load, os.getloadavg()[0]],
    }


def requests(data: Path, count: int, rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """`count` searches: LoCoMo questions (categories 1-4) to their conversation's user."""
    _, questions = load_locomo(data)
    picked = rng.choice(len(questions), count)
    return [
        (
            f"/v1/users/{questions[i].user_id}/memories/search",
            json.dumps({"query": questions[i].text, "k": 10}).encode(),
        )
        for i in picked
    ]


def serve(code: Path, home: Path, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    """`engram serve --no-auth` of the project at `code` on `home`, on loopback."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(code),
        "ENGRAM_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "engram.cli", "serve", "--no-auth", "--port", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(
            [*command, "--workers", str(workers)], cwd=code, env=environment, stdout=out, stderr=out
        )


def wait_ready(port: int, data: Path, process: subprocess.Popen[bytes]) -> None:
    """Until every worker has answered searches (model and indexes loaded) several times."""
    load = requests(data, 200, np.random.default_rng(1))
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        stage = Stage("warm", 10, 1)
        asyncio.run(run_stage("127.0.0.1", port, stage, np.arange(40) / 20, load[:40]))
        if stage.errors == 0:
            # Every user's index in every worker: all questions once more, slowly.
            stage = Stage("warm", 10, 1)
            asyncio.run(run_stage("127.0.0.1", port, stage, np.arange(200) / 20, load))
            return
        time.sleep(2)
    raise SystemExit("server not ready in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the locomo-dev directory")
    parser.add_argument("--code", type=Path, default=_HERE.parent)
    parser.add_argument("--home", type=Path, help="keep ENGRAM_HOME here (reused if ingested)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rates", default="20,50", help="requests/s per stage, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--label", default="")
    parser.add_argument("--log", type=Path, default=Path("/tmp/memory_search_load_server.log"))
    args = parser.parse_args()
    code, data = args.code.resolve(), args.data.resolve()
    temporary = None
    if args.home is None:
        temporary = tempfile.TemporaryDirectory(prefix="bench-memload-")
        home = Path(temporary.name)
    else:
        home = args.home.resolve()
        home.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"label": args.label, "code": str(code)}
    process = None
    try:
        if not (home / "locomo-signals.jsonl").exists():
            results["ingest"] = ingest(code, home, data)
            print(json.dumps({"ingest": results["ingest"]}), flush=True)
        port = free_port()
        process = serve(code, home, port, args.workers, args.log)
        wait_ready(port, data, process)
        server = gunicorn_processes(psutil.Process(process.pid))
        stores = store_processes(home)
        rng = np.random.default_rng(0)
        me = psutil.Process()
        results["stages"] = []
        for rate in (float(r) for r in args.rates.split(",")):
            offsets = schedule(rate, args.seconds, "poisson", rng)
            stage = Stage("memory_search", rate, args.seconds)
            load = requests(data, len(offsets), rng)
            before, stores_before, mine = cpu_seconds(server), cpu_seconds(stores), me.cpu_times()
            asyncio.run(run_stage("127.0.0.1", port, stage, offsets, load))
            after, stores_after = cpu_seconds(server), cpu_seconds(stores)
            mine_after = me.cpu_times()
            stage.server_cpu_s = sum(after[p] - before.get(p, 0.0) for p in after)
            stage.client_cpu_s = mine_after.user + mine_after.system - mine.user - mine.system
            answered = max(len(stage.latencies_ms), 1)
            stores_cpu = sum(stores_after[p] - stores_before.get(p, 0.0) for p in stores_after)
            row = {
                **stage.summary(),
                "stores_cpu_ms_per_request": round(1000 * stores_cpu / answered, 2),
                "load": round(os.getloadavg()[0], 2),
            }
            results["stages"].append(row)
            print(json.dumps(row), flush=True)
    finally:
        if process is not None:
            stop_server(process)
        engram(code, home, "services", "stop")
        if temporary is not None:
            temporary.cleanup()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
