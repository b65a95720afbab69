"""Benchmark: one `engram stream` consumer process, throughput and freshness.

On its own redis-server and ENGRAM_HOME (under bench/out/stream), with generated events:

1. Throughput: the consumer idles on an empty stream, then `--events` records are appended at
   once; events/s = records / (first append -> group drained: nothing undelivered or pending).
   Then, the time until the outbox is drained into the offline event store (the consumer drains
   in a background thread), and the events stored there.
2. Freshness: records are appended at `--rate` per second for `--seconds`, and every
   `--probe-ms` a probe signal for a user never seen before is appended among them; a poller
   reads the outstanding probe users through Feast's `get_online_features` until their
   `events_all` is 1. Freshness = visible there - just before the XADD; p50 / p99 reported.

    .venv/bin/python bench/stream.py --events 100000 --rate 5000 --seconds 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "stream"
sys.path.insert(0, str(ROOT))

from core.settings import Settings  # noqa: E402
from core.stores import feature_store, local_redis  # noqa: E402
from pipelines import catalog_store, duck, event_store  # noqa: E402
from pipelines.generate import GenerateConfig, write_dataset  # noqa: E402
from pipelines.stream.consumer import GROUP  # noqa: E402
from pipelines.stream.metrics import group_lag  # noqa: E402
from pipelines.stream.outbox import OUTBOX_KEY  # noqa: E402
from pipelines.stream.producer import STREAM, produce  # noqa: E402
from pipelines.stream.views import layout_from_store, save_layout  # noqa: E402


def setup(events: int) -> tuple[Settings, list[bytes], str]:
    """A fresh home with the catalog and the layout cache, its Redis URL, and the records."""
    shutil.rmtree(OUT / "home", ignore_errors=True)
    data = OUT / f"data-{events}"
    if not (data / "signals.jsonl").exists():
        write_dataset(data, GenerateConfig.bench(events))
    url = local_redis.ensure_redis(OUT / "redis")
    redis.Redis.from_url(url).flushdb()
    settings = Settings(engram_home=OUT / "home", redis_url=url, milvus_uri=None)
    con = duck.connect(settings)
    catalog = con.read_json(str(data / "catalog.jsonl"), format="newline_delimited")
    catalog_store.upsert(con, settings, catalog.to_arrow_table())
    store = feature_store.open_store(settings, url)
    feature_store.apply_repo(store, settings)
    save_layout(settings, layout_from_store(store))
    lines = [line for line in (data / "signals.jsonl").read_bytes().splitlines() if line.strip()]
    return settings, lines, url


def start_consumer(settings: Settings, url: str, batch_size: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ENGRAM_HOME": str(settings.engram_home), "REDIS_URL": url}
    command = [
        str(Path(sys.executable).parent / "engram"),
        "stream",
        "--no-memories",
        "--consumer",
        "bench",
        "--batch-size",
        str(batch_size),
        "--block-ms",
        "20",
    ]
    return subprocess.Popen(command, env=env, cwd=ROOT)


def wait_drained(client: redis.Redis, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = group_lag(client, STREAM, GROUP)
        if state["lag"] == 0 and state["pending"] == 0:
            return time.perf_counter()
        time.sleep(0.01)
    raise TimeoutError("the consumer did not drain the stream")


def wait_offline(client: redis.Redis, timeout: float) -> float:
    """Until the outbox is empty (at once when the consumer has none: the code before it)."""
    deadline = time.monotonic() + timeout
    while client.exists(OUTBOX_KEY) and client.xlen(OUTBOX_KEY):
        if time.monotonic() > deadline:
            raise TimeoutError("the consumer did not drain its outbox")
        time.sleep(0.05)
    return time.perf_counter()


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def throughput(
    client: redis.Redis, lines: list[bytes], consumer: psutil.Process, server: psutil.Process
) -> dict[str, float]:
    """Append everything at once, wait until drained; CPU seconds of consumer and Redis too
    (steadier than wall time on a shared machine)."""
    cpu_before = _cpu(consumer), _cpu(server)
    started = time.perf_counter()
    for start in range(0, len(lines), 10_000):
        produce(client, lines[start : start + 10_000])
    appended = time.perf_counter()
    done = wait_drained(client, 600)
    consumer_cpu = _cpu(consumer) - cpu_before[0]
    server_cpu = _cpu(server) - cpu_before[1]
    offline = wait_offline(client, 600)
    return {
        "offline_seconds": round(offline - started, 3),
        "events": len(lines),
        "append_seconds": round(appended - started, 3),
        "seconds": round(done - started, 3),
        "events_per_s": round(len(lines) / (done - started)),
        "consumer_cpu_s": round(consumer_cpu, 2),
        "redis_cpu_s": round(server_cpu, 2),
        "consumer_cpu_us_per_event": round(consumer_cpu / len(lines) * 1e6),
        "redis_cpu_us_per_event": round(server_cpu / len(lines) * 1e6),
    }


def freshness(
    client: redis.Redis, store: object, lines: list[bytes], rate: int, seconds: float, probe_ms: int
) -> dict[str, float]:
    """Append at `rate` with probes; read probes back through get_online_features."""
    outstanding: dict[str, float] = {}
    lock = threading.Lock()
    latencies: list[float] = []
    reads: list[float] = []  # seconds per get_online_features call (part of what is measured)
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set() or outstanding:
            with lock:
                users = list(outstanding)
            if not users:
                time.sleep(0.002)
                continue
            began_read = time.perf_counter()
            got = store.get_online_features(  # type: ignore[attr-defined]
                features=["user_profile:events_all"], entity_rows=[{"user_id": u} for u in users]
            ).to_dict()
            now = time.perf_counter()
            reads.append(now - began_read)
            with lock:
                for user, count in zip(got["user_id"], got["events_all"], strict=True):
                    if count == 1 and user in outstanding:
                        latencies.append(now - outstanding.pop(user))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    tick = 0.01
    per_tick = max(int(rate * tick), 1)
    next_probe = time.perf_counter()
    began = time.perf_counter()
    sent = probes = 0
    position = 0
    while time.perf_counter() - began < seconds:
        chunk = lines[position : position + per_tick]
        position = (position + per_tick) % max(len(lines) - per_tick, 1)
        now = time.perf_counter()
        if now >= next_probe:
            user = f"probe-{probes}"
            probe = json.dumps(
                {
                    "event_id": f"probe-{probes}-{time.time_ns()}",
                    "user_id": user,
                    "type": "view",
                    "item_id": "i-probe",
                    "ts": datetime.now(UTC).isoformat(),
                }
            )
            with lock:
                outstanding[user] = time.perf_counter()
            produce(client, [*chunk, probe])
            probes += 1
            next_probe += probe_ms / 1000
        else:
            produce(client, chunk)
        sent += len(chunk)
        sleep = began + (sent / rate) - time.perf_counter()
        if sleep > 0:
            time.sleep(sleep)
    elapsed = time.perf_counter() - began
    wait_drained(client, 120)
    stop.set()
    poller.join(timeout=30)
    values = np.array(latencies) * 1000
    return {
        "rate_asked": rate,
        "rate_sent": round(sent / elapsed),
        "probes": probes,
        "probes_seen": len(latencies),
        "freshness_p50_ms": round(float(np.percentile(values, 50)), 1),
        "freshness_p99_ms": round(float(np.percentile(values, 99)), 1),
        "freshness_max_ms": round(float(values.max()), 1),
        "read_p50_ms": round(float(np.percentile(reads, 50)) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="records for throughput")
    parser.add_argument("--rate", type=int, default=5_000, help="records/s in the freshness run")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--probe-ms", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=2_000)
    args = parser.parse_args()
    fresh_events = int(args.rate * args.seconds) + 1
    settings, lines, url = setup(args.events + fresh_events)
    client = redis.Redis.from_url(url)
    consumer = start_consumer(settings, url, args.batch_size)
    with contextlib.suppress(redis.ResponseError):  # the consumer may have made it already
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    time.sleep(3.0)  # let the consumer start (imports) before the clock runs
    load = os.getloadavg()
    try:
        server = psutil.Process(int((OUT / "redis" / "redis.pid").read_text()))
        result = {
            "throughput": throughput(
                client, lines[: args.events], psutil.Process(consumer.pid), server
            )
        }
        scan = event_store.scan(duck.connect(settings), settings)
        result["throughput"]["offline_events"] = int(scan.aggregate("count(*)").fetchall()[0][0])
        store = feature_store.open_store(settings, url)
        result["freshness"] = freshness(
            client, store, lines[args.events :], args.rate, args.seconds, args.probe_ms
        )
    finally:
        consumer.terminate()
        consumer.wait(timeout=30)
        local_redis.stop_redis(OUT / "redis")
    result["machine"] = {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "batch_size": args.batch_size,
        "load_before": [round(x, 2) for x in load],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
