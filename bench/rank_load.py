"""Benchmark: POST /v1/rank under an open-loop load, against `engram serve` on a trained home.

Open loop: the send times are drawn before the run (a fixed interval, or Poisson arrivals) and
each request's latency counts from its *scheduled* send time to the last byte of the answer, so
a server that falls behind is charged for the queue it builds (no coordinated omission). Each
request opens its own connection (sync workers do not keep connections alive) from one asyncio
loop; requests in flight are not capped. With `--keepalive` (and `--threads` > 1: gthread
workers) requests reuse connections as a client's pool does (engram.client holds a
requests.Session), opening one only when none is idle, so the schedule stays open loop.

Per stage (one route at one rate): p50 / p95 / p99 / max, errors (a failed connection, a
timeout, a non-200 answer), degraded answers (200 from the popularity fallback: fast, but not
the model), the achieved rate (answers / span of the stage), and the CPU the server's gunicorn
processes (master and workers, from psutil) spent per answer and the load generator per
request. Before each stage the server is drained: probes until one is answered within 0.5 s,
so a stage is not charged with the queue the one before left.

Routes: `given` (100 candidates drawn from the catalog, k=10), `generated` (no candidates: the
server generates them, k=10), and `healthz` (GET /healthz: an answer through the same server
with no work in it, the floor the two others stand on; not in the default routes). Users and
items come from the MovieLens directory the home was ingested from (`--data`), read in place.

    ENGRAM_HOME=... python bench/rank_load.py --data ../shared/data/movielens-small \\
        [--code DIR] [--rates 100,200,300] [--routes given,generated] [--seconds 30] [--json]

Ends with issue 15's verdict per route: p50 / p99 at 100 requests/s against 5 / 15 ms, and the
first rate run whose p99 passes 50 ms.

`--code DIR` serves another copy of the project (e.g. the tree before a change: `git archive`)
for side-by-side runs; the server is started here and stopped at the end. `--url` benches a
server already running instead (no CPU figures then).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROUTES = ("given", "generated")
FLOOR = "healthz"
Request = tuple[str, bytes]  # a path and a JSON body
CANDIDATES = 100
TIMEOUT_S = 10.0
READY_S = 300.0  # model, item vectors and caches load in every worker
DRAINED_S = 0.5  # a probe answered within this: nothing queued any more
DRAIN_MAX_S = 300.0


@dataclass
class Stage:
    """What one stage measured."""

    route: str
    rate: float
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    degraded: int = 0
    span_s: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    connections: int = 0  # opened with --keepalive (0: one per request)

    def summary(self) -> dict[str, Any]:
        """Percentiles, counts and CPU per request, JSON-ready."""
        done = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        sent = len(self.latencies_ms) + self.errors
        return {
            "route": self.route,
            "rate": self.rate,
            "requests": sent,
            "errors": self.errors,
            "degraded": self.degraded,
            "achieved_rps": round(len(self.latencies_ms) / self.span_s, 1) if self.span_s else 0,
            "p50_ms": round(float(np.percentile(done, 50)), 2),
            "p95_ms": round(float(np.percentile(done, 95)), 2),
            "p99_ms": round(float(np.percentile(done, 99)), 2),
            "max_ms": round(float(np.max(done)), 2),
            # Per answer: with errors, the server also worked on requests answered too late.
            "server_cpu_ms_per_request": round(
                1000 * self.server_cpu_s / max(len(self.latencies_ms), 1), 2
            ),
            "client_cpu_ms_per_request": round(1000 * self.client_cpu_s / max(sent, 1), 2),
            "connections": self.connections or sent,
        }


def schedule(rate: float, seconds: float, arrivals: str, rng: np.random.Generator) -> np.ndarray:
    """Send offsets in seconds from the stage's start: every 1/rate, or Poisson at `rate`."""
    count = int(rate * seconds)
    if arrivals == "constant":
        return np.arange(count) / rate
    gaps = rng.exponential(1.0 / rate, size=count)
    return np.cumsum(gaps) - gaps[0]


def bodies(
    data: Path, route: str, count: int, rng: np.random.Generator
) -> list[bytes] | list[Request]:
    """`count` requests of the route: bodies of random users, and for `given` random items;
    for the floor, GETs of /healthz (an empty body)."""
    if route == FLOOR:
        return [("/healthz", b"")] * count
    with (data / "ratings.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    users = sorted({row["userId"] for row in rows})
    with (data / "movies.csv").open() as handle:
        items = [row["movieId"] for row in csv.DictReader(handle)]
    out = []
    for _ in range(count):
        body: dict[str, Any] = {"user_id": str(rng.choice(users)), "k": 10}
        if route == "given":
            body["candidates"] = [str(i) for i in rng.choice(items, CANDIDATES, replace=False)]
        out.append(json.dumps(body).encode())
    return out


async def send(host: str, port: int, body: bytes, path: str = "/v1/rank") -> tuple[int, bytes]:
    """One POST of `body` to `path` (a GET when the body is empty) on a fresh connection:
    (status, answer body)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(_request(host, path, body, keep=False))
        await writer.drain()
        answer = await reader.read()  # until the server closes
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, payload


def _request(host: str, path: str, body: bytes, keep: bool) -> bytes:
    method = b"POST" if body else b"GET"
    return (
        b"%b %b HTTP/1.1\r\nHost: %b\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: %b\r\n\r\n%b"
        % (
            method,
            path.encode(),
            host.encode(),
            len(body),
            b"keep-alive" if keep else b"close",
            body,
        )
    )


class Connections:
    """Kept-alive connections, as a client's pool holds them: a request takes an idle one or,
    when none is idle, opens a new one (it never waits for one: the schedule stays open loop),
    and gives it back after the whole answer is read."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def send(self, body: bytes, path: str = "/v1/rank") -> tuple[int, bytes]:
        """One request on a kept-alive connection: (status, answer body). A reused connection
        the server closed meanwhile (its keep-alive timeout) is dropped and the request sent
        again on a new one, as a client's pool does; the latency still counts from the
        schedule."""
        while self.idle:
            reader, writer = self.idle.pop()
            try:
                return await self._exchange(reader, writer, body, path)
            except (OSError, asyncio.IncompleteReadError) as error:
                if getattr(error, "partial", b""):
                    raise  # the server had begun answering: not a stale connection
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return await self._exchange(reader, writer, body, path)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes, path: str
    ) -> tuple[int, bytes]:
        try:
            writer.write(_request(self.host, path, body, keep=True))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            payload = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if b"connection: close" in head.lower():
            writer.close()
        else:
            self.idle.append((reader, writer))
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        return status, payload

    def close(self) -> None:
        """Close every idle connection."""
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def run_stage(
    host: str,
    port: int,
    stage: Stage,
    offsets: np.ndarray,
    load: list[bytes] | list[Request],
    keepalive: bool = False,
):
    """Send `load[i]` (a body for /v1/rank, or a path and body) at `offsets[i]`, record each
    latency from its scheduled time; with `keepalive`, on kept-alive connections (Connections)."""
    loop = asyncio.get_running_loop()
    pool = Connections(host, port) if keepalive else None
    start = loop.time() + 0.05
    last_done = start

    async def one(scheduled: float, request: bytes | Request) -> None:
        nonlocal last_done
        path, body = ("/v1/rank", request) if isinstance(request, bytes) else request
        try:
            sent = pool.send(body, path) if pool else send(host, port, body, path)
            status, payload = await asyncio.wait_for(sent, TIMEOUT_S)
        except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError):
            stage.errors += 1
            return
        done = loop.time()
        last_done = max(last_done, done)
        if status != 200:
            stage.errors += 1
            return
        if b'"degraded":true' in payload.replace(b" ", b""):
            stage.degraded += 1
        stage.latencies_ms.append((done - scheduled) * 1000)

    tasks = []
    for offset, body in zip(offsets, load, strict=True):
        scheduled = start + float(offset)
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled, body)))
    await asyncio.gather(*tasks)
    stage.span_s = max(last_done - start, 1e-9)
    if pool:
        stage.connections = pool.opened
        pool.close()


def gunicorn_processes(master: psutil.Process) -> list[psutil.Process]:
    """The gunicorn master and its workers (forked: same command line), not the supervisor of
    the local stores nor the stores themselves."""
    line = master.cmdline()
    return [master, *(c for c in master.children() if c.cmdline() == line)]


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    """User + system CPU seconds of each process still alive, by pid."""
    out = {}
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            out[process.pid] = times.user + times.system
    return out


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server (gunicorn drains its workers), then kill it if still up after 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    code: Path, port: int, workers: int, log: Path, threads: int = 1
) -> subprocess.Popen[bytes]:
    """`engram serve --no-auth` of the project at `code`, on loopback."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(code),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "engram.cli", "serve", "--no-auth", "--port", str(port)]
    command += ["--workers", str(workers), "--threads", str(threads)]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=code, env=environment, stdout=out, stderr=out)


def wait_ready(host: str, port: int, data: Path, process: subprocess.Popen[bytes] | None) -> None:
    """Until every worker ranks with the model (a non-degraded answer, several times over)."""
    body = bodies(data, "generated", 1, np.random.default_rng(1))[0]
    deadline = time.monotonic() + READY_S
    good = 0
    while good < 20:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit("server not ready in time")
        request = urllib.request.Request(
            f"http://{host}:{port}/v1/rank",
            body,
            {"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                good = good + 1 if not json.loads(answer.read())["degraded"] else 0
        except OSError:
            good = 0
            time.sleep(1.0)


def drain(host: str, port: int, data: Path) -> float:
    """Wait until the server answers a probe within `DRAINED_S`: the connections a stage left
    queued (clients gone, the server still works through them) would otherwise be charged to
    the next stage. Returns the seconds waited."""
    body = bodies(data, "given", 1, np.random.default_rng(2))[0]
    began = time.monotonic()
    while time.monotonic() - began < DRAIN_MAX_S:
        sent = time.monotonic()
        request = urllib.request.Request(
            f"http://{host}:{port}/v1/rank", body, {"Content-Type": "application/json"}
        )
        with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
        if time.monotonic() - sent < DRAINED_S:
            break
    return round(time.monotonic() - began, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the MovieLens directory")
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--url", help="bench this running server (host:port) instead")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="per worker (1: sync workers)")
    parser.add_argument("--rates", default="100", help="requests/s per stage, comma-separated")
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--seconds", type=float, default=30.0, help="timed seconds per stage")
    parser.add_argument("--warmup", type=float, default=3.0, help="untimed seconds per stage")
    parser.add_argument("--arrivals", choices=["poisson", "constant"], default="poisson")
    parser.add_argument("--label", default="", help="a name for this run in the table")
    parser.add_argument("--log", type=Path, default=Path("/tmp/rank_load_server.log"))
    parser.add_argument(
        "--keepalive",
        action="store_true",
        help="keep connections alive, as a client's pool does (needs --threads > 1: gunicorn's "
        "sync workers close every connection)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    host, port, process = "127.0.0.1", 0, None
    if args.url:
        host, _, text = args.url.rpartition(":")
        port = int(text)
    else:
        port = free_port()
        process = start_server(args.code.resolve(), port, args.workers, args.log, args.threads)
    rng = np.random.default_rng(0)
    me = psutil.Process()
    results = []
    try:
        wait_ready(host, port, args.data, process)
        server = gunicorn_processes(psutil.Process(process.pid)) if process else []
        for rate in (float(r) for r in args.rates.split(",")):
            for route in args.routes.split(","):
                drained = drain(host, port, args.data)
                warm = Stage(route, rate, args.warmup)
                offsets = schedule(rate, args.warmup, args.arrivals, rng)
                load = bodies(args.data, route, len(offsets), rng)
                asyncio.run(run_stage(host, port, warm, offsets, load, args.keepalive))
                stage = Stage(route, rate, args.seconds)
                offsets = schedule(rate, args.seconds, args.arrivals, rng)
                load = bodies(args.data, route, len(offsets), rng)
                before, mine = cpu_seconds(server), me.cpu_times()
                asyncio.run(run_stage(host, port, stage, offsets, load, args.keepalive))
                after, mine_after = cpu_seconds(server), me.cpu_times()
                stage.server_cpu_s = sum(after[p] - before.get(p, 0.0) for p in after)
                stage.client_cpu_s = (mine_after.user + mine_after.system) - (
                    mine.user + mine.system
                )
                row = {
                    "label": args.label,
                    **stage.summary(),
                    "load": os.getloadavg()[0],
                    "drained_s": drained,
                }
                results.append(row)
                if not args.json:
                    print(json.dumps(row), flush=True)
    finally:
        if process is not None:
            stop_server(process)
    if args.json:
        print(json.dumps(results))
        return
    print(
        "| run | route | rate | requests | errors | degraded | achieved/s | p50 | p95 | p99 | max "
        "| server CPU ms/req | client CPU ms/req | load 1 min |"
    )
    print("|" + " --- |" * 14)
    for r in results:
        print(
            f"| {r['label']} | {r['route']} | {r['rate']:.0f} | {r['requests']} | {r['errors']} "
            f"| {r['degraded']} | {r['achieved_rps']} | {r['p50_ms']} | {r['p95_ms']} "
            f"| {r['p99_ms']} | {r['max_ms']} | {r['server_cpu_ms_per_request']} "
            f"| {r['client_cpu_ms_per_request']} | {r['load']:.2f} |"
        )
    for line in verdict(results):
        print(line)


def verdict(results: list[dict[str, Any]]) -> list[str]:
    """Per route, issue 15's targets: p50 <= 5 ms and p99 <= 15 ms at 100 requests/s, and the
    first rate run whose p99 passes 50 ms (>= 300 wanted)."""
    lines = []
    for route in dict.fromkeys(r["route"] for r in results):
        runs = sorted((r for r in results if r["route"] == route), key=lambda r: r["rate"])
        at_100 = [r for r in runs if r["rate"] == 100]
        if at_100:
            r = at_100[0]
            met = r["p50_ms"] <= 5 and r["p99_ms"] <= 15 and not r["errors"]
            lines.append(
                f"{route}: at 100/s p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms "
                f"(target p50 <= 5, p99 <= 15): {'met' if met else 'not met'}"
            )
        past = [r["rate"] for r in runs if r["p99_ms"] > 50 or r["errors"]]
        top = runs[-1]["rate"]
        knee = f"p99 past 50 ms first at {past[0]:.0f}/s" if past else f"not up to {top:.0f}/s"
        lines.append(f"{route}: {knee} (target: not below 300/s)")
    return lines


if __name__ == "__main__":
    main()
