"""`engram train`, `engram eval`, `engram rank`, `engram models`, `engram training-data`,
`engram features show` and `engram candidates follow`: thin commands over ranking.fit,
ranking.evaluate, ranking.ranker, ranking.registry, ranking.training_data, the online feature
reader and ranking.follow."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from core.cli_errors import handle_errors
from core.errors import InvalidInputError
from core.settings import Settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the new version's metadata as JSON.")
@click.option(
    "--max-users",
    type=click.IntRange(min=1),
    help="Label users per slice, a fixed random sample (default: all); bounds training time.",
)
@click.pass_obj
@handle_errors
def train(settings: Settings, as_json: bool, max_users: int | None) -> None:
    """Train the LightGBM ranker on the ingested data and save it as a new registry version."""
    from ranking.fit import train_and_save

    meta = train_and_save(settings, max_users=max_users)
    if as_json:
        click.echo(json.dumps(meta, default=str))
        return
    metrics = meta["metrics"]
    click.echo(
        f"model {meta['version']}: {len(meta['features'])} features, "
        f"valid NDCG@10 {metrics['valid_ndcg@10']}, {metrics['best_iteration']} trees, "
        f"{meta['seconds']} s"
    )


@click.group()
def models() -> None:
    """The model registry: which versions exist and which one serves."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version.")
@click.pass_obj
@handle_errors
def models_list(settings: Settings, as_json: bool) -> None:
    """Every version, oldest first, with its validation NDCG@10; the serving one is marked."""
    from ranking import registry

    serving = registry.serving_version(settings)
    pinned = registry.pinned(settings)
    for version in registry.versions(settings):
        meta = registry.metadata(settings, version)
        row = {
            "version": version,
            "created_at": meta.get("created_at"),
            "valid_ndcg@10": meta.get("metrics", {}).get("valid_ndcg@10"),
            "serving": version == serving,
            "pinned": version == pinned,
        }
        if as_json:
            click.echo(json.dumps(row))
            continue
        mark = (
            " serving (pinned)" if row["pinned"] and row["serving"] else " serving" * row["serving"]
        )
        click.echo(f"{version}  {row['created_at']}  NDCG@10 {row['valid_ndcg@10']}{mark}")


@models.command("pin")
@click.argument("version")
@click.pass_obj
@handle_errors
def models_pin(settings: Settings, version: str) -> None:
    """Serve VERSION (a rollback) until `engram models unpin`; servers follow within a refresh."""
    from ranking import registry

    registry.pin(settings, version)
    click.echo(f"serving {version} (pinned)")


@models.command("unpin")
@click.pass_obj
@handle_errors
def models_unpin(settings: Settings) -> None:
    """Serve the latest version again."""
    from ranking import registry

    registry.unpin(settings)
    click.echo(f"serving {registry.serving_version(settings) or 'nothing: no model trained'}")


@click.command("eval")
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="The data to ingest (a MovieLens directory or a signals file).",
)
@click.option(
    "--format",
    "input_format",
    type=click.Choice(["signals", "movielens"]),
    default="movielens",
    show_default=True,
    help="Format of --data.",
)
@click.option("--catalog", type=click.Path(exists=True, path_type=Path), help="Item catalog file.")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=Path),
    help="Directory of the Markdown report and plots (default: in the run's home).",
)
@click.option(
    "--seeds",
    default=1,
    show_default=True,
    type=click.IntRange(1, 20),
    help="Train and score every seeded model this many times (seeds 0..N-1): metrics are "
    "the means, `metrics_std` their spread.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_obj
@handle_errors
def evaluate(
    settings: Settings,
    data: Path,
    input_format: str,
    catalog: Path | None,
    report_dir: Path | None,
    seeds: int,
    as_json: bool,
) -> None:
    """Ingest DATA into a fresh home, train the ranker and compare it with the baselines on a
    per-user temporal split; writes a report."""
    from ranking.evaluate import run_eval
    from ranking.report import candidates_table, metrics_table

    result = run_eval(
        settings,
        data,
        input_format,
        catalog=catalog,
        report_dir=report_dir,
        default_report=True,
        seeds=seeds,
    )
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    click.echo(metrics_table(result.metrics, result.metrics_std if seeds > 1 else None))
    click.echo()
    click.echo(candidates_table(result.candidates))
    click.echo(f"\nreport: {result.report}")


@click.command("training-data")
@click.argument("labels", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--service", default="ranking", show_default=True, help="Feature service to join.")
@click.pass_obj
@handle_errors
def training_data(settings: Settings, labels: Path, out: Path, service: str) -> None:
    """Join LABELS (user_id, item_id, event_timestamp, ...) with features as of each row's time."""
    from dataclasses import asdict

    from ranking.training_data import write_training_data

    summary = write_training_data(settings, labels, out, service)
    click.echo(json.dumps({"out": str(out), **asdict(summary)}))


@click.group()
def features() -> None:
    """Read features."""


@features.command("show")
@click.argument("user_id", required=False)
@click.option(
    "--sample", is_flag=True, help="Show the sample user (pipelines.feature_snapshots.sample_user)."
)
@click.option("--service", default="ranking", show_default=True, help="Feature service to read.")
@click.pass_obj
@handle_errors
def features_show(settings: Settings, user_id: str | None, sample: bool, service: str) -> None:
    """Print USER_ID's online features (or a sample user's) as JSON, read from Redis."""

    from core.stores import feature_store
    from core.stores.online.read_service import user_features
    from core.stores.services import connect_url, resolve_redis_url
    from pipelines import duck, feature_snapshots

    if user_id is None:
        if not sample:
            raise InvalidInputError("user_id", "give a USER_ID or --sample")
        user_id = feature_snapshots.sample_user(duck.connect(settings), settings)
    redis_url = resolve_redis_url(settings)
    store = feature_store.open_store(settings, redis_url)
    with connect_url(settings, redis_url) as client:
        shown = user_features(store, client, user_id, service)
    click.echo(json.dumps(shown, default=str, indent=2))


MEMORY_MATCH = 0.3  # cosine from which a preference memory is named as a reason for an item
EXPLAINED = 5  # ranked items shown with their matched memories


@click.command("rank")
@click.argument("user_id", required=False)
@click.option("--sample", is_flag=True, help="Rank for a sample user with history.")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--version", help="Model version (default: the one serving: pinned, else latest).")
@click.option("--json", "as_json", is_flag=True, help="Print the ranked items as one JSON object.")
@click.pass_obj
@handle_errors
def rank(
    settings: Settings,
    user_id: str | None,
    sample: bool,
    k: int,
    version: str | None,
    as_json: bool,
) -> None:
    """Rank USER_ID's items (or a sample user's) with the serving model: title, category,
    score and why (candidate sources, top features, matched preference memories)."""
    from ranking import registry
    from ranking.item_vectors import catalog_frame
    from ranking.ranker import load_ranker

    if sample == (user_id is not None):
        raise InvalidInputError("user_id", "give a USER_ID or --sample")
    ranker = load_ranker(settings, version or registry.serving_version(settings))
    user = user_id or _sample_user(settings, ranker)
    result = ranker.rank(user, k)
    catalog = catalog_frame(settings).drop_duplicates("item_id").set_index("item_id")
    memories = _matched_memories(settings, ranker, user, [i for i, _ in result.items[:EXPLAINED]])
    items = []
    for item_id, score in result.items:
        row = catalog.loc[item_id] if item_id in catalog.index else None
        items.append(
            {
                "item_id": item_id,
                "title": _text(row, "title"),
                "category": _text(row, "category"),
                "score": round(score, 4),
                **result.reasons.get(item_id, {}),
                "memories": memories.get(item_id, []),
            }
        )
    if as_json:
        out = {"user_id": user, "model_version": result.model_version, "items": items}
        click.echo(json.dumps(out, ensure_ascii=False))
        return
    _print_ranked(user, result.model_version, items)


def _text(row: Any, column: str) -> str | None:
    if row is None or column not in row.index:
        return None
    value = row[column]
    return value if isinstance(value, str) else None


def _sample_user(settings: Settings, ranker: Any) -> str:
    """The CLI's sample user (pipelines.feature_snapshots.sample_user) when they have contacts;
    else the user with the most contacts."""
    from pipelines import duck, feature_snapshots

    history = ranker.inputs.context.history
    user = feature_snapshots.sample_user(duck.connect(settings), settings)
    if len(history.before(user, 2**62).items):
        return user
    if not history.users:
        raise InvalidInputError("sample", "no user has any history: run `engram ingest`")
    return str(max(history.users, key=lambda u: len(history.before(u, 2**62).items)))


def _matched_memories(
    settings: Settings, ranker: Any, user_id: str, item_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Each item's closest live preference memories of the user (cosine >= MEMORY_MATCH);
    nothing when the user has none or the memory store is not there."""
    import numpy as np
    from pymilvus.exceptions import MilvusException

    from core.errors import EngramError
    from memory.service import build_memory_service

    if not item_ids or ranker._embedder is None:
        return {}
    try:
        service = build_memory_service(settings, embedder=ranker._embedder)
    except (EngramError, MilvusException):
        return {}
    try:
        stored = service.store.fetch(
            [user_id], as_of=datetime.now(UTC), kinds=["preference"], with_vectors=True
        )
    finally:
        service.close()
    stored = [s for s in stored if s.vector is not None]
    if not stored:
        return {}
    vectors = np.stack([s.vector for s in stored if s.vector is not None])
    sims = ranker.inputs.context.table.rows(item_ids) @ vectors.T
    out: dict[str, list[dict[str, Any]]] = {}
    for row, item_id in enumerate(item_ids):
        best = [j for j in np.argsort(-sims[row])[:2] if sims[row, j] >= MEMORY_MATCH]
        if best:
            out[item_id] = [
                {"text": stored[j].memory.text, "similarity": round(float(sims[row, j]), 3)}
                for j in best
            ]
    return out


def _print_ranked(user_id: str, version: str, items: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{user_id}: top {len(items)} ({version})")
    for column in ("#", "item", "title", "category", "score", "why"):
        table.add_column(column)
    for position, item in enumerate(items, start=1):
        why = [f"sources: {'+'.join(item.get('sources', [])) or '-'}"]
        why.append(
            "features: "
            + ", ".join(
                f"{f['name']} {f['contribution']:+.2f}" for f in item.get("top_features", [])
            )
        )
        why += [f"memory: {m['text']} ({m['similarity']:.2f})" for m in item["memories"]]
        table.add_row(
            str(position),
            item["item_id"],
            item["title"] or "",
            item["category"] or "",
            f"{item['score']:.3f}",
            "\n".join(why),
        )
    console = Console()
    console.width = max(console.width, 150)  # logs (make demo) are not 80 columns wide
    console.print(table)


@click.group()
def candidates() -> None:
    """Each user's candidates kept in Redis (ranking.candidate_store)."""


@candidates.command("compute")
@click.option("--version", default=None, help="A registry version (default: the serving one).")
@click.pass_obj
@handle_errors
def candidates_compute(settings: Settings, version: str | None) -> None:
    """Compute every user's candidates as of now again (as `engram train` does), save them in
    the version and write them to Redis; prints what was kept as JSON."""
    import time

    import pandas as pd

    from core.stores.services import connect_redis
    from ranking import precomputed, registry
    from ranking.candidate_store import CandidateStore
    from ranking.ranker import load_ranker

    version = version or registry.serving_version(settings)
    ranker = load_ranker(settings, version)
    began = time.perf_counter()
    budget = int(settings.engram_candidates_budget_mb * 2**20)
    inputs = ranker.inputs
    at = pd.Timestamp.now(tz="UTC")
    stored = precomputed.compute(inputs.sources, inputs.context.history, inputs.items, at, budget)
    seconds = time.perf_counter() - began
    registry.save_candidates(settings, ranker.version, stored)
    with connect_redis(settings) as client:
        store = CandidateStore(client, budget)
        store.claim(ranker.version)
        written = store.publish(ranker.version, stored)
    summary = {"version": ranker.version, "users": len(stored.users), "written": written}
    summary |= {"candidates": len(stored.codes), "bytes": stored.nbytes, "at": at.isoformat()}
    click.echo(json.dumps({**summary, "seconds": round(seconds, 2)}))


@candidates.command("follow")
@click.option("--consumer", default=None, help="Consumer name (default: host-pid).")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1))
@click.option("--block-ms", default=100, show_default=True, type=click.IntRange(1))
@click.pass_obj
@handle_errors
def candidates_follow(
    settings: Settings, consumer: str | None, batch_size: int, block_ms: int
) -> None:
    """Follow the signals stream (group engram-candidates) and rewrite the candidates of every
    user who acts, within seconds; stops on SIGTERM or SIGINT after the batch in hand."""
    import signal
    from types import FrameType

    import redis

    from core.stores.services import resolve_redis_url
    from ranking.candidate_store import CandidateStore
    from ranking.follow import FollowConfig, Follower, load_followed

    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    client = redis.Redis.from_url(resolve_redis_url(settings))
    store = CandidateStore(client, int(settings.engram_candidates_budget_mb * 2**20))
    config = FollowConfig(batch_size=batch_size, block_ms=block_ms)
    if consumer:
        config = FollowConfig(consumer=consumer, batch_size=batch_size, block_ms=block_ms)
    try:
        Follower(client, store, load_followed(settings), config).run(lambda: bool(stopping))
    finally:
        client.close()
