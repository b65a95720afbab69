"""`engram`, the command-line front door. Errors become one line on stderr and an exit code."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from core.cli_errors import err_console, handle_errors
from core.errors import InvalidInputError
from core.settings import Settings, get_settings

F = TypeVar("F", bound=Callable[..., Any])


def _parse_time(value: str | None, option: str = "as-of") -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidInputError(option, f"not an ISO 8601 time: {value!r}") from e
    if parsed.tzinfo is None:
        raise InvalidInputError(option, "needs a UTC offset, e.g. 2026-11-01T00:00:00Z")
    return parsed


@click.group()
@click.version_option(package_name="engram")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Engram: user signals to features and memories, ranked and served."""
    ctx.obj = get_settings()


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "input_format",
    type=click.Choice(["signals", "movielens"]),
    default="signals",
    help="signals: contract v1 as JSONL or Parquet; movielens: a MovieLens directory.",
)
@click.option("--catalog", type=click.Path(exists=True, path_type=Path), help="Item catalog file.")
@click.option("--as-of", help="Time of the serving snapshot (default: now), RFC 3339.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option(
    "--memories/--no-memories",
    default=None,
    help="Remember the text signals. Default: when MILVUS_URI is set or the local Milvus is "
    "running (engram services start); --memories starts it.",
)
@click.pass_obj
@handle_errors
def ingest(
    settings: Settings,
    path: Path,
    input_format: str,
    catalog: Path | None,
    as_of: str | None,
    as_json: bool,
    memories: bool | None,
) -> None:
    """Run the batch pipeline on PATH: normalize, store, enrich, aggregate, and remember the
    text signals as memories (searchable when the command returns)."""
    from pipelines.batch import run_ingest

    if memories is None:
        memories = _milvus_running(settings)
        if not memories:
            err_console.print("memories: skipped, no Milvus running (engram services start)")
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json and not err_console.is_terminal,
    ) as progress:
        task = progress.add_task("ingest", total=None)
        summary = run_ingest(
            settings,
            path,
            input_format=input_format,  # type: ignore[arg-type]
            catalog=catalog,
            as_of=_parse_time(as_of),
            on_stage=lambda name: progress.update(task, description=f"ingest: {name}"),
            memories=memories,
        )
    if as_json:
        click.echo(json.dumps(summary.to_dict()))
        return
    _print_summary(summary.to_dict())


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="ingest", show_header=False)
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        table.add_row(key, str(value))
    Console().print(table)


@main.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--preset", type=click.Choice(["small", "demo", "bench"]), default="small")
@click.option("--users", type=int, help="Override the preset's number of users.")
@click.option("--events", type=int, help="Bench preset: total events (default 10M).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--format", "output_format", type=click.Choice(["jsonl", "parquet"]), default="jsonl")
@handle_errors
def generate(
    out: Path,
    preset: str,
    users: int | None,
    events: int | None,
    seed: int,
    output_format: str,
) -> None:
    """Write synthetic signals, a catalog and their planted truth to OUT."""
    from pipelines.generate import GenerateConfig, write_dataset

    if preset == "bench":
        config = GenerateConfig.bench(events=events or 10_000_000)
    else:
        config = getattr(GenerateConfig, preset)()
    overrides: dict[str, Any] = {"seed": seed, "format": output_format}
    if users is not None:
        overrides["users"] = users
    config = config.replace(**overrides)
    paths = write_dataset(out, config)
    click.echo(json.dumps({k: str(v) for k, v in vars(paths).items()}))


@main.group()
def features() -> None:
    """Read features."""


@features.command("show")
@click.argument("user_id", required=False)
@click.option("--sample", is_flag=True, help="Show the most active user.")
@click.option("--service", default="ranking", show_default=True, help="Feature service to read.")
@click.pass_obj
@handle_errors
def features_show(settings: Settings, user_id: str | None, sample: bool, service: str) -> None:
    """Print USER_ID's online features (or a sample user's) as JSON, read from Redis."""
    from core.stores import feature_store
    from core.stores.services import resolve_redis_url
    from pipelines import duck, feature_snapshots

    if user_id is None:
        if not sample:
            raise InvalidInputError("user_id", "give a USER_ID or --sample")
        user_id = feature_snapshots.sample_user(duck.connect(settings), settings)
    import redis

    from ranking.online_features import user_features

    redis_url = resolve_redis_url(settings)
    store = feature_store.open_store(settings, redis_url)
    with redis.Redis.from_url(redis_url) as client:
        shown = user_features(store, client, user_id, service)
    click.echo(json.dumps(shown, default=str, indent=2))


@main.command()
@click.option("--end", help="Materialize rows up to this time (default: now), RFC 3339.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_obj
@handle_errors
def materialize(settings: Settings, end: str | None, as_json: bool) -> None:
    """Apply the feature repo if needed, then load every view's new rows into Redis."""
    from pipelines.materialize import run_materialize

    summary = run_materialize(settings, end=_parse_time(end, "end"))
    if as_json:
        click.echo(json.dumps(summary))
        return
    from rich.table import Table

    table = Table(title=f"materialize up to {summary['end']}")
    for column in ("views", "from", "rows read", "rows written", "seconds"):
        table.add_column(column)
    for done in summary["passes"]:
        table.add_row(
            ", ".join(done["views"]),
            done["start"] or "the beginning",
            str(done["rows_read"]),
            str(done["rows_written"]),
            str(done["seconds"]),
        )
    Console().print(table)
    click.echo(f"{summary['views']} views, {summary['seconds']} s")


@main.command("training-data")
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


@main.command("feast-env")
@click.pass_obj
@handle_errors
def feast_env(settings: Settings) -> None:
    """Print `export` lines for the plain feast CLI: eval "$(engram feast-env)"."""
    import shlex

    from core.stores.feature_store import feast_environment
    from core.stores.services import resolve_redis_url

    for name, value in feast_environment(settings, resolve_redis_url(settings)).items():
        click.echo(f"export {name}={shlex.quote(value)}")


@main.group()
def services() -> None:
    """Local Redis and Milvus servers used when REDIS_URL / MILVUS_URI are unset."""


@services.command("start")
@click.pass_obj
@handle_errors
def services_start(settings: Settings) -> None:
    """Start the local services (no-op for a service whose URL is configured)."""
    from core.stores.services import resolve_milvus_uri, resolve_redis_url

    click.echo(
        json.dumps({"redis": resolve_redis_url(settings), "milvus": resolve_milvus_uri(settings)})
    )


@services.command("stop")
@click.pass_obj
@handle_errors
def services_stop(settings: Settings) -> None:
    """Stop the local services of this ENGRAM_HOME."""
    from core.stores.services import stop_local_services

    click.echo(json.dumps(stop_local_services(settings)))


@services.command("supervise")
@click.pass_obj
@handle_errors
def services_supervise(settings: Settings) -> None:
    """Start the local services and restart any that dies, until Ctrl-C (engram serve runs
    this itself)."""
    from core.stores import supervisor

    supervisor.run(settings)


@services.command("status")
@click.pass_obj
@handle_errors
def services_status(settings: Settings) -> None:
    """Where each service is (null when a local one is not running)."""
    from core.stores.services import local_services_status

    click.echo(json.dumps(local_services_status(settings)))


# --- memories -----------------------------------------------------------------------------------


@main.group()
def memories() -> None:
    """Search and list what Engram remembers about users."""


@memories.command("search")
@click.argument("user_id", required=False)
@click.argument("query", required=False)
@click.option("--k", "k", type=int, default=10, show_default=True, help="Memories to return.")
@click.option("--kind", "kinds", multiple=True, help="Only memories of this kind (repeatable).")
@click.option("--as-of", help="Search what was true and known then (default: now), RFC 3339.")
@click.option(
    "--queries",
    "queries_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSONL of {"id"?, "user_id", "query", "k"?, "as_of"?}: one JSON answer per line.',
)
@click.option("--json", "as_json", is_flag=True, help="Print the hits as one JSON object.")
@click.option("--sample", is_flag=True, help="Search the user who wrote the most (give QUERY).")
@click.pass_obj
@handle_errors
def memories_search(
    settings: Settings,
    user_id: str | None,
    query: str | None,
    k: int,
    kinds: tuple[str, ...],
    as_of: str | None,
    queries_file: Path | None,
    as_json: bool,
    sample: bool,
) -> None:
    """Search USER_ID's memories for QUERY, or answer every query of --queries FILE."""
    from memory.service import answer_queries, build_memory_service, hit_dict
    from memory.store import checked_id

    if sample:
        if query is not None:
            raise InvalidInputError("sample", "--sample takes only QUERY, not USER_ID")
        user_id, query = _sample_user(settings), user_id
    if queries_file is not None and (user_id or query):
        raise InvalidInputError("queries", "give USER_ID and QUERY, or --queries FILE, not both")
    if queries_file is None and not (user_id and query):
        raise InvalidInputError("query", "give USER_ID and QUERY, or --queries FILE")
    if user_id is not None:
        checked_id(user_id)  # before loading anything
    service = build_memory_service(settings)
    try:
        if queries_file is not None:
            with queries_file.open(encoding="utf-8") as lines:
                for answer in answer_queries(service, lines):
                    click.echo(json.dumps(answer, ensure_ascii=False))
            return
        hits = service.search(user_id or "", query or "", k, kinds or None, _parse_time(as_of))
    finally:
        service.close()
    if as_json:
        found = {"user_id": user_id, "query": query, "memories": [hit_dict(h) for h in hits]}
        click.echo(json.dumps(found, ensure_ascii=False))
        return
    _print_memories(
        f"{user_id}: {query}",
        [(f"{hit.score:.3f}", hit.memory) for hit in hits],
    )


@memories.command("list")
@click.argument("user_id", required=False)
@click.option("--as-of", help="What was true and known then (default: now), RFC 3339.")
@click.option("--history", is_flag=True, help="Every memory, superseded and expired ones too.")
@click.option("--kind", "kinds", multiple=True, help="Only memories of this kind (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the memories as one JSON object.")
@click.option("--facts", is_flag=True, help="Facts only: no episodes (raw turns).")
@click.option("--sample", is_flag=True, help="List the user who wrote the most.")
@click.pass_obj
@handle_errors
def memories_list(
    settings: Settings,
    user_id: str | None,
    as_of: str | None,
    history: bool,
    kinds: tuple[str, ...],
    as_json: bool,
    facts: bool,
    sample: bool,
) -> None:
    """List USER_ID's memories, oldest first."""
    from datetime import UTC

    from memory.records import FACT_KINDS
    from memory.service import connect_store, memory_dict

    if facts and kinds:
        raise InvalidInputError("facts", "--facts lists every fact kind; drop --kind")
    if facts:
        kinds = tuple(sorted(FACT_KINDS))

    if sample:
        user_id = _sample_user(settings)
    if not user_id:
        raise InvalidInputError("user_id", "give a USER_ID or --sample")
    if history and as_of:
        raise InvalidInputError("history", "--history lists every time; drop --as-of")
    at = None if history else (_parse_time(as_of) or datetime.now(UTC))
    store = connect_store(settings)
    try:
        found = store.list_user(user_id, as_of=at, kinds=kinds or None) if store.exists() else []
    finally:
        store.close()
    if as_json:
        listed = {"user_id": user_id, "memories": [memory_dict(m) for m in found]}
        click.echo(json.dumps(listed, ensure_ascii=False))
        return
    _print_memories(user_id, [(f"{m.confidence:.2f}", m) for m in found], first="confidence")


def _milvus_running(settings: Settings) -> bool:
    """MILVUS_URI is set, or this home's local Milvus is up: memories cost no server start."""
    from core.stores import local_milvus

    return (
        bool(settings.milvus_uri)
        or local_milvus.milvus_status(settings.services_dir / "milvus") is not None
    )


def _sample_user(settings: Settings) -> str:
    from memory.ingest import busiest_writer
    from pipelines import duck, event_store

    user_id = busiest_writer(event_store.scan(duck.connect(settings), settings))
    if user_id is None:
        raise InvalidInputError("sample", "no user has written a message yet")
    return user_id


def _print_memories(title: str, rows: list[tuple[str, Any]], first: str = "score") -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in (first, "kind", "text", "valid", "sources"):
        table.add_column(column)
    for score, memory in rows:
        start = memory.valid_from.date().isoformat()
        end = memory.valid_to.date().isoformat() if memory.valid_to else ""
        sources = ", ".join(memory.source_event_ids[:3])
        if len(memory.source_event_ids) > 3:
            sources += f" (+{len(memory.source_event_ids) - 3})"
        table.add_row(score, memory.kind, memory.text, f"{start}..{end}", sources)
    Console().print(table)


@main.command()
@click.argument("user_id")
@click.pass_obj
@handle_errors
def forget(settings: Settings, user_id: str) -> None:
    """Delete everything held about USER_ID; prints what each store removed, as JSON."""
    from forget.everywhere import forget_everywhere

    click.echo(json.dumps(forget_everywhere(settings, user_id)))


from loadtest.cli import loadtest  # noqa: E402  # registered last, beside its peers' commands

main.add_command(loadtest)

from ranking.cli import evaluate as eval_command  # noqa: E402
from ranking.cli import rank as rank_command  # noqa: E402
from ranking.cli import train as train_command  # noqa: E402

main.add_command(train_command)
main.add_command(eval_command)
main.add_command(rank_command)

from serving.cli import serve  # noqa: E402  (the API; imports Flask only when run)

main.add_command(serve)

from pipelines.stream.cli import produce_command, stream_command  # noqa: E402  (issue 6)

main.add_command(produce_command)
main.add_command(stream_command)

if __name__ == "__main__":
    main()
