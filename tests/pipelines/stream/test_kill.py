"""A consumer killed with SIGKILL at random points loses nothing and counts nothing twice, in
the window state and in the offline event store (its outbox drains run and die with it)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import redis

from core.contract import SIGNAL_TYPES
from pipelines import dead_letter, duck, event_store
from pipelines.batch import run_ingest
from pipelines.generate import load_truth
from pipelines.normalize import normalize_records
from pipelines.stream.consumer import GROUP
from pipelines.stream.metrics import group_lag
from pipelines.stream.producer import STREAM, produce
from pipelines.stream.views import save_layout
from tests.feature_home import AS_OF
from tests.pipelines.stream.conftest import StreamHome

ROOT = Path(__file__).resolve().parents[3]
KILLS = 6


def start(home: StreamHome, settings_home: Path, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ENGRAM_HOME": str(settings_home), "REDIS_URL": home.stream_url}
    env.pop("MILVUS_URI", None)
    command = [
        str(Path(sys.executable).parent / "engram"),
        "stream",
        "--no-memories",
        "--consumer",
        name,
        "--batch-size",
        "150",
        "--block-ms",
        "20",
        "--claim-idle-ms",
        "500",
        "--max-attempts",
        "1000",
        "--drain-every-s",
        "0.05",  # kills land in drains too
    ]
    return subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE)


def wait_for_progress(client: redis.Redis, name: str, since: int, timeout: float = 60) -> None:
    """Until consumer `name` has read from the group since this call (a reused name counts only
    once its new process reads), and the group has read past `since` entries or has nothing
    left to read (earlier consumers may have read it all; this one then works on what they left
    pending)."""
    began = time.monotonic()
    while time.monotonic() < began + timeout:
        waited_ms = (time.monotonic() - began) * 1000
        active = any(
            _text(c["name"]) == name and int(c["idle"]) < waited_ms
            for c in client.xinfo_consumers(STREAM, GROUP)
        )
        lag = group_lag(client, STREAM, GROUP)["lag"]
        if active and (_entries_read(client) > since or lag == 0):
            return
        time.sleep(0.01)
    raise TimeoutError(f"the consumer {name} made no progress")


def _entries_read(client: redis.Redis) -> int:
    for info in client.xinfo_groups(STREAM):
        if info["name"] in (GROUP, GROUP.encode()):
            return int(info.get("entries-read") or 0)
    return 0


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    stream_home: StreamHome, stream_client: redis.Redis, tmp_path: Path
) -> None:
    settings = stream_home.settings.model_copy(update={"engram_home": tmp_path / "home"})
    save_layout(settings, stream_home.layout)  # the consumer reads it; no Feast import there
    (settings.offline_dir).mkdir(parents=True)
    catalog = stream_home.settings.offline_dir / "catalog.parquet"
    (settings.offline_dir / "catalog.parquet").write_bytes(catalog.read_bytes())
    lines = [line for line in stream_home.paths.signals.read_bytes().splitlines() if line.strip()]
    stream_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)

    # Producing goes on while consumers die: a quarter now, the rest in chunks meanwhile.
    produce(stream_client, lines[: len(lines) // 4])
    rest = lines[len(lines) // 4 :]

    def feed() -> None:
        with redis.Redis.from_url(stream_home.stream_url) as client:
            for start_at in range(0, len(rest), 100):
                produce(client, rest[start_at : start_at + 100])
                time.sleep(0.02)

    feeder = threading.Thread(target=feed)
    feeder.start()
    chance = random.Random(6)
    for kill in range(KILLS):
        # Alternate: the same name comes back (re-reads its own pending entries), or a new
        # one does (claims the dead one's entries once idle).
        name = f"c{kill % 2 if kill < 4 else kill}"
        consumer = start(stream_home, settings.engram_home, name)
        wait_for_progress(stream_client, name, _entries_read(stream_client))
        time.sleep(chance.uniform(0.0, 0.4))
        consumer.send_signal(signal.SIGKILL)
        consumer.wait()
        assert consumer.returncode == -signal.SIGKILL
    feeder.join()
    last = start(stream_home, settings.engram_home, "last")
    deadline = time.monotonic() + 60
    # Done when the last consumer has joined the group (its stop handlers are in place by then)
    # and nothing is left: the killed ones may have finished everything before it started.
    while group_lag(stream_client, STREAM, GROUP) != {"lag": 0, "pending": 0} or "last" not in {
        _text(c["name"]) for c in stream_client.xinfo_consumers(STREAM, GROUP)
    }:
        assert time.monotonic() < deadline, group_lag(stream_client, STREAM, GROUP)
        assert last.poll() is None, last.stderr.read() if last.stderr else ""
        time.sleep(0.05)
    last.send_signal(signal.SIGTERM)
    assert last.wait(timeout=30) == 0

    truth = load_truth(stream_home.paths.truth)
    totals = {
        k.decode(): int(v) for k, v in stream_client.hgetall("engram:{stream}:totals").items()
    }
    by_type = {SIGNAL_TYPES[int(k[1:])]: v for k, v in totals.items() if k.startswith("t")}
    assert by_type == {k: v for k, v in truth.counts.by_type.items() if v}
    assert sum(by_type.values()) == truth.counts.valid_unique
    assert totals["rejected"] == sum(truth.counts.malformed.values())
    assert dead_letter.read(settings).num_rows == totals["rejected"]
    assert stream_client.xlen(f"{STREAM}:dead") == 0
    # Per user, against a plain count of the file's valid events (first copy of each id).
    first: dict[str, str] = {}
    for event_id, user in normalized_events(lines):
        first.setdefault(event_id, user)
    expected = Counter(first.values())
    assert sum(expected.values()) == truth.counts.valid_unique
    for user, count in expected.items():
        assert int(stream_client.hget(f"engram:{{stream}}:u:{user}", "n")) == count, user

    # Offline: every accepted event once (the last consumer drained the outbox on its way out,
    # after kills that may have hit drains too), and the batch path finds nothing new in them.
    assert stream_client.xlen("engram:{stream}:outbox") == 0
    con = duck.connect(settings)
    offline = Counter(event_store.scan(con, settings).to_arrow_table()["event_id"].to_pylist())
    assert offline == Counter(set(first))
    assert event_store.stream_parts(settings)  # they came through the stream
    again = run_ingest(settings, stream_home.paths.signals, as_of=AS_OF)
    assert again.new == 0 and again.accepted == len(normalized_events(lines))


def normalized_events(lines: list[bytes]) -> list[tuple[str, str]]:
    accepted = normalize_records(lines, source="test", ingested_at=datetime.now(UTC)).accepted
    ids, users = accepted.column("event_id").to_pylist(), accepted.column("user_id").to_pylist()
    return list(zip(ids, users, strict=True))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
