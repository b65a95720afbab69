"""The audit's scanners find the needles wherever a store may keep them: any kind of Redis value,
an RDB file whose strings are compressed, compressed Parquet columns, pickled frames."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import redis

from forget.audit_files import scan_files
from forget.audit_redis import scan_files as scan_redis_files
from forget.audit_redis import scan_keys
from forget.audit_report import Needles
from tests.serving.conftest import RedisProcess

NEEDLES = Needles("fg_user7", "quendorwhisp")


def test_every_kind_of_redis_value_is_searched(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("string", "x quendorwhisp x")
    client.hset("hash", mapping={"a": "1", "fg_user7": "2"})
    client.sadd("set", "fg_user7")
    client.zadd("zset", {"quendorwhisp": 1.0})
    client.rpush("list", *[str(n) for n in range(2_500)], "quendorwhisp")  # past one chunk
    for n in range(1_500):
        client.xadd("stream", {"signal": f'{{"n": {n}}}'})
    client.xadd("stream", {"signal": '{"user_id": "fg_user7"}'})
    client.set("name:fg_user7", "1")
    client.set("clean", "nothing here")

    report = scan_keys(client, NEEDLES)

    found = {(hit.where.split(" ", 1)[1], hit.needle) for hit in report.hits}
    assert found == {
        ("b'string'", "text"),
        ("b'hash'", "user_id"),
        ("b'set'", "user_id"),
        ("b'zset'", "text"),
        ("b'list'", "text"),
        ("b'stream'", "user_id"),
        ("b'name:fg_user7'", "user_id"),
    }
    # Every key of every database (other tests' session fixtures keep theirs in other ones).
    keyspace = client.info("keyspace")
    assert report.scanned == sum(int(db["keys"]) for db in keyspace.values())
    assert keyspace["db0"]["keys"] == 8


def test_an_rdb_file_is_read_key_by_key_though_its_strings_are_compressed(
    stoppable_redis: RedisProcess,
) -> None:
    needles = Needles("fg_user7", "quendor" * 12)  # repetitive: LZF keeps no literal copy
    client = redis.Redis.from_url(stoppable_redis.url)
    client.config_set("rdbcompression", "yes")
    client.set("k", "padding " * 20 + needles.text)
    client.bgsave()
    while client.info("persistence")["rdb_bgsave_in_progress"]:
        time.sleep(0.05)
    rdb = stoppable_redis.directory / "dump.rdb"
    assert needles.in_bytes(rdb.read_bytes()) == []  # a byte search would miss it

    report = scan_redis_files([rdb], needles)

    assert [hit.needle for hit in report.hits] == ["text"]


def test_compressed_parquet_columns_and_pickled_frames_are_searched(tmp_path: Path) -> None:
    table = pa.table(
        {
            "user_id": ["a", "fg_user7"],
            "n": [1, 2],
            "tags": pa.array([["x"], ["quendorwhisp"]]),
        }
    )
    pq.write_table(table, tmp_path / "events.parquet", compression="zstd")
    frame = pd.DataFrame({"user_id": np.array(["a", "b"], dtype="U8"), "w": [1.0, 2.0]})
    with (tmp_path / "clean.pkl").open("wb") as handle:
        pickle.dump({"log": frame}, handle)
    frame.loc[1, "user_id"] = "fg_user7"
    with (tmp_path / "sources.pkl").open("wb") as handle:
        pickle.dump({"log": frame, "users": np.array(["fg_user7"])}, handle)

    report = scan_files("offline", sorted(tmp_path.iterdir()), NEEDLES)

    assert report.scanned == 3
    assert {(Path(hit.where.split(" ")[0]).name, hit.needle) for hit in report.hits} == {
        ("events.parquet", "user_id"),
        ("events.parquet", "text"),
        ("sources.pkl", "user_id"),
    }
