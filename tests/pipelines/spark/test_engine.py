"""`engram ingest --engine spark` against the DuckDB engine on the same generated data: the same
summary counts, the same event store and dead letter, and the same feature rows value by value.

One Spark session (local mode, its own JVM) for the module, stopped at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from pyspark.sql import SparkSession

from core.settings import Settings, get_settings
from engram.cli import main
from pipelines import dead_letter, event_store
from pipelines.batch import ITEM_FEATURES_FILE, USER_FEATURES_FILE, features_dir
from pipelines.generate import GenerateConfig, write_dataset
from pipelines.spark.session import spark_session, stop_spark

pytestmark = pytest.mark.slow

ENGINES = ("duckdb", "spark")
# After every generated signal, then inside the data (later signals must be left out).
AS_OF_AFTER = "2026-11-01T00:00:00Z"
AS_OF_INSIDE = "2026-10-20T12:00:00Z"
# Not compared: timings, and how the snapshots were made (Spark always recomputes in full).
NOT_COMPARED = ("seconds", "stage_seconds", "stage_cpu_seconds", "aggregation")


# Small data: a quick JIT and no code generation start sooner than they lose.
SPARK_ENV = {
    "SPARK_SHUFFLE_PARTITIONS": "2",
    "SPARK_CONF": json.dumps(
        {
            "spark.sql.codegen.wholeStage": "false",
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        }
    ),
}


def _settings(home: Path) -> Settings:
    return Settings(
        engram_home=home,
        redis_url=None,
        milvus_uri=None,
        spark_shuffle_partitions=int(SPARK_ENV["SPARK_SHUFFLE_PARTITIONS"]),
        spark_conf=json.loads(SPARK_ENV["SPARK_CONF"]),
    )


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """The module's Spark session; its JVM is stopped when the module ends."""
    session = spark_session(_settings(tmp_path_factory.mktemp("spark-home")))
    yield session
    stop_spark(session)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    write_dataset(out, GenerateConfig.small())
    return out


def _ingest(settings: Settings, dataset: Path, engine: str, as_of: str) -> dict[str, object]:
    get_settings.cache_clear()  # the command reads its settings from this environment
    result = CliRunner().invoke(
        main,
        [
            "ingest",
            str(dataset / "signals.jsonl"),
            "--catalog",
            str(dataset / "catalog.jsonl"),
            "--json",
            "--no-memories",
            "--as-of",
            as_of,
            "--engine",
            engine,
        ],
        env={"ENGRAM_HOME": str(settings.engram_home), **SPARK_ENV},
    )
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return {key: value for key, value in summary.items() if key not in NOT_COMPARED}


@pytest.fixture(scope="module")
def homes(
    spark: SparkSession, dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Settings, dict[str, object]]]:
    """One home per engine, each holding one ingest of the dataset; and its summary."""
    done = {}
    for engine in ENGINES:
        settings = _settings(tmp_path_factory.mktemp(engine))
        done[engine] = (settings, _ingest(settings, dataset, engine, AS_OF_AFTER))
    return done


def _snapshots(settings: Settings) -> dict[str, pa.Table]:
    return {
        name: pq.read_table(features_dir(settings) / name)
        for name in (USER_FEATURES_FILE, ITEM_FEATURES_FILE)
    }


def _assert_same_snapshots(duckdb: Settings, spark: Settings) -> None:
    expected, got = _snapshots(duckdb), _snapshots(spark)
    for name, table in expected.items():
        assert got[name].schema.equals(table.schema, check_metadata=False), name
        assert got[name].num_rows == table.num_rows > 0, name
        for column in table.schema.names:
            # Value by value, floats included: both engines do the same arithmetic.
            assert got[name].column(column).to_pylist() == table.column(column).to_pylist(), (
                name,
                column,
            )


def test_the_json_summaries_count_the_same(
    homes: dict[str, tuple[Settings, dict[str, object]]],
) -> None:
    (_, duckdb), (_, spark) = homes["duckdb"], homes["spark"]
    assert spark == duckdb
    assert duckdb["duplicates"] and duckdb["rejected"]  # the data exercises both


def test_the_feature_rows_are_equal_value_by_value(
    homes: dict[str, tuple[Settings, dict[str, object]]],
) -> None:
    _assert_same_snapshots(homes["duckdb"][0], homes["spark"][0])


def test_the_event_store_and_dead_letter_hold_the_same_records(
    homes: dict[str, tuple[Settings, dict[str, object]]],
) -> None:
    def events(settings: Settings) -> list[dict[str, object]]:
        parts = event_store.parts(settings)
        assert len(parts) == 1  # one part per ingest, written atomically
        table = pq.read_table(parts[0]).drop_columns(["ingested_at"])
        return table.to_pylist()  # in input order, the first copy of each event

    def rejected(settings: Settings) -> list[dict[str, object]]:
        return dead_letter.read(settings).drop_columns(["rejected_at"]).to_pylist()

    duckdb, spark = homes["duckdb"][0], homes["spark"][0]
    assert events(spark) == events(duckdb)
    assert rejected(spark) == rejected(duckdb)


def test_a_second_ingest_adds_nothing_and_snapshots_agree_as_of_inside_the_data(
    homes: dict[str, tuple[Settings, dict[str, object]]], dataset: Path
) -> None:
    again = {engine: _ingest(homes[engine][0], dataset, engine, AS_OF_INSIDE) for engine in ENGINES}
    assert again["spark"] == again["duckdb"]
    assert again["spark"]["new"] == 0
    assert again["spark"]["duplicates"] == again["spark"]["accepted"]
    assert len(event_store.parts(homes["spark"][0])) == 1
    _assert_same_snapshots(homes["duckdb"][0], homes["spark"][0])


def test_the_duckdb_path_never_loads_pyspark() -> None:
    code = (
        "import sys, engram.cli, pipelines.batch; "
        "sys.exit(any(name.startswith('pyspark') for name in sys.modules))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])
