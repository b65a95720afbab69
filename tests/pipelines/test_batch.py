"""The batch runner end to end on generated data with planted truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from core.settings import Settings
from engram.cli import main
from pipelines import dead_letter, duck, event_store, feature_snapshots
from pipelines.batch import ITEM_FEATURES_FILE, USER_FEATURES_FILE, features_dir, run_ingest
from pipelines.generate import GenerateConfig, load_truth, write_dataset

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated dataset, written once for the module."""
    out = tmp_path_factory.mktemp("data")
    write_dataset(out, GenerateConfig.small())
    return out


def _ingest(settings: Settings, dataset: Path) -> dict[str, object]:
    summary = run_ingest(
        settings, dataset / "signals.jsonl", catalog=dataset / "catalog.jsonl", as_of=AS_OF
    )
    return summary.to_dict()


def _offline_files(settings: Settings) -> list[Path]:
    found = sorted(settings.offline_dir.rglob("*.parquet")) + sorted(
        settings.dead_letter_dir.rglob("*.parquet")
    )
    return [path for path in found if path.is_file()]  # snapshots are directories of files


def test_summary_counts_match_the_planted_truth(settings: Settings, dataset: Path) -> None:
    truth = load_truth(dataset / "truth.json")
    summary = _ingest(settings, dataset)
    assert summary["read"] == truth.counts.lines
    assert summary["read"] == summary["accepted"] + summary["rejected"]  # type: ignore[operator]
    assert summary["rejected"] == sum(truth.counts.malformed.values())
    assert summary["duplicates"] == truth.counts.duplicates
    assert summary["new"] == truth.counts.valid_unique
    assert summary["feature_rows"] > 0


def test_reingest_changes_nothing(settings: Settings, dataset: Path) -> None:
    _ingest(settings, dataset)
    before = {path: path.read_bytes() for path in _offline_files(settings)}
    again = _ingest(settings, dataset)
    assert again["new"] == 0
    assert again["duplicates"] == again["accepted"]
    after = {path: path.read_bytes() for path in _offline_files(settings)}
    assert sorted(after) == sorted(before)
    for path in (USER_FEATURES_FILE, ITEM_FEATURES_FILE):
        snapshot = features_dir(settings) / path
        assert pq.read_table(snapshot).equals(pq.read_table(snapshot))
    assert dead_letter.read(settings).num_rows == sum(
        load_truth(dataset / "truth.json").counts.malformed.values()
    )


def test_each_malformed_kind_lands_in_the_dead_letter_with_its_field(
    settings: Settings, dataset: Path
) -> None:
    truth = load_truth(dataset / "truth.json")
    _ingest(settings, dataset)
    rejected = dead_letter.read(settings).to_pylist()
    by_position = {row["position"]: row for row in rejected}
    assert len(by_position) == len(truth.malformed)
    for planted in truth.malformed:
        row = by_position[planted.position]
        assert row["field"] == planted.field, planted.kind
        assert row["reason"]
        assert row["rejected_at"] is not None
    assert {planted.kind for planted in truth.malformed} == set(truth.counts.malformed)


def test_no_planted_pii_reaches_any_store(settings: Settings, dataset: Path) -> None:
    truth = load_truth(dataset / "truth.json")
    assert truth.pii, "the generator must plant PII for this test to mean anything"
    raw = (dataset / "signals.jsonl").read_text()
    assert all(p.value in raw for p in truth.pii)
    _ingest(settings, dataset)
    stored = "\n".join(
        json.dumps(pq.read_table(path).to_pylist(), default=str)
        for path in _offline_files(settings)
    )
    leaked = [p.value for p in truth.pii if p.value in stored]
    assert leaked == []


def test_cli_json_summary_has_the_documented_keys(settings: Settings, dataset: Path) -> None:
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
            "2026-11-01T00:00:00Z",
        ],
        env={"ENGRAM_HOME": str(settings.engram_home)},
        obj=settings,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    keys = ("read", "accepted", "rejected", "rejected_by_reason", "users", "items", "feature_rows")
    assert set(keys) | {"seconds"} <= set(summary)


def test_cli_reports_a_missing_input_as_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ingest", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_movielens_ingest_counts_rate_and_tag_signals(
    settings: Settings, movielens_dir: Path
) -> None:
    summary = run_ingest(settings, movielens_dir, input_format="movielens", as_of=AS_OF)
    assert summary.rejected == 0
    assert summary.accepted == 100_836 + 3_683
    from pipelines import duck, event_store

    con = duck.connect(settings)
    counts = dict(event_store.scan(con, settings).aggregate("type, count(*)", "type").fetchall())
    assert counts == {"rate": 100_836, "tag": 3_683}


def test_small_batches_store_the_same_events(
    settings: Settings, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deduplication across batches (and the store) keeps the same first copies as in one batch."""
    from functools import partial

    from pipelines import duck, event_store, normalize

    whole = _ingest(settings, dataset)
    small = Settings(engram_home=tmp_path / "small", redis_url=None, milvus_uri=None)
    monkeypatch.setattr(
        normalize, "iter_normalize", partial(normalize.iter_normalize, batch_rows=1000)
    )
    batched = _ingest(small, dataset)
    keys = ("read", "accepted", "rejected", "duplicates", "new", "users", "items", "feature_rows")
    assert {key: batched[key] for key in keys} == {key: whole[key] for key in keys}

    def stored(home: Settings) -> list[tuple[object, ...]]:
        columns = "event_id, user_id, ts, type, item_id, value, text, context"
        return event_store.scan(duck.connect(home), home).project(columns).fetchall()

    assert stored(small) == stored(settings)


def test_the_sample_user_is_active_in_the_last_day_and_wrote_the_most(
    settings: Settings, dataset: Path
) -> None:
    _ingest(settings, dataset)
    con = duck.connect(settings)
    user = feature_snapshots.sample_user(con, settings)
    per_user = event_store.scan(con, settings).aggregate(
        "user_id, max(ts) AS last, count(*) FILTER (WHERE type IN ('message', 'review')"
        " AND coalesce(speaker, 'user') = 'user') AS written",
        "user_id",
    )
    rows = {r[0]: r[1:] for r in per_user.fetchall()}
    newest = max(last for last, _ in rows.values())
    recent = {u: written for u, (last, written) in rows.items() if last > newest - timedelta(1)}
    assert user in recent and recent[user] == max(recent.values()) > 0
