"""`engram produce FILE` and `engram stream`: replay signals into the stream, run a consumer."""

from __future__ import annotations

import codecs
import json
import signal
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click
import pyarrow as pa

from core.cli_errors import handle_errors
from core.settings import Settings
from pipelines import dead_letter
from pipelines.stream.consumer import GROUP, Consumer, ConsumerConfig, default_consumer_name
from pipelines.stream.outbox import DEFAULT_EVERY_S
from pipelines.stream.payload import encode
from pipelines.stream.producer import DEFAULT_MAX_LEN, STREAM, produce

PRODUCE_CHUNK = 5_000


@click.command("produce")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--stream", default=STREAM, show_default=True, help="Stream to append to.")
@click.option(
    "--max-len",
    default=DEFAULT_MAX_LEN,
    show_default=True,
    help="Refuse to grow the unprocessed backlog past this many entries.",
)
@click.pass_obj
@handle_errors
def produce_command(settings: Settings, path: Path, stream: str, max_len: int) -> None:
    """Append every non-blank line of a JSON Lines FILE to the stream (replay): each record
    normalized and redacted first; rejected lines go to the dead-letter store."""
    from core.stores.services import connect_redis
    from pipelines.normalize import RecordNormalizer

    counts = {"appended": 0, "rejected": 0}
    with (
        connect_redis(settings) as client,
        path.open("rb") as lines,
        RecordNormalizer() as normalizer,
    ):

        def send(chunk: list[bytes], numbers: list[int]) -> None:
            normalized = normalizer.normalize(
                chunk, source="produce", ingested_at=datetime.now(UTC)
            )
            rejected = normalized.rejected
            if rejected.num_rows:
                # Positions in the dead letter are the file's 0-based line numbers.
                at = rejected.schema.get_field_index("position")
                lines_at = [numbers[p] for p in rejected.column("position").to_pylist()]
                dead_letter.write(
                    settings, rejected.set_column(at, "position", pa.array(lines_at, pa.int64()))
                )
            sent = produce(client, encode(normalized.accepted), stream=stream, max_len=max_len)
            counts["appended"] += len(sent)
            counts["rejected"] += rejected.num_rows

        chunk: list[bytes] = []
        numbers: list[int] = []
        for number, line in enumerate(lines):
            if number == 0:
                line = line.removeprefix(codecs.BOM_UTF8)
            if line.strip():
                chunk.append(line.rstrip(b"\r\n"))
                numbers.append(number)
            if len(chunk) >= PRODUCE_CHUNK:
                send(chunk, numbers)
                chunk, numbers = [], []
        if chunk:
            send(chunk, numbers)
    click.echo(json.dumps({"stream": stream, **counts}))


@click.command("stream")
@click.option("--stream", default=STREAM, show_default=True)
@click.option("--group", default=GROUP, show_default=True)
@click.option("--consumer", default=None, help="Consumer name (default: host-pid).")
@click.option("--batch-size", default=1_000, show_default=True, type=click.IntRange(1))
@click.option("--block-ms", default=100, show_default=True, type=click.IntRange(1))
@click.option(
    "--max-attempts",
    default=5,
    show_default=True,
    type=click.IntRange(1),
    help="Deliveries before an entry goes to the dead-letter stream.",
)
@click.option(
    "--claim-idle-ms",
    default=30_000,
    show_default=True,
    type=click.IntRange(1),
    help="Claim other consumers' entries pending this long.",
)
@click.option("--until-idle", is_flag=True, help="Exit once the group has nothing left.")
@click.option(
    "--memories/--no-memories",
    default=None,
    help="Hand text signals to the memory service. Default: when Milvus is set or running.",
)
@click.option(
    "--offline/--no-offline",
    default=True,
    show_default=True,
    help="Append the events applied to the offline event store (the outbox drain).",
)
@click.option(
    "--drain-every-s",
    default=DEFAULT_EVERY_S,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds between two drains of the outbox, at most.",
)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics here.")
@click.pass_obj
@handle_errors
def stream_command(
    settings: Settings,
    stream: str,
    group: str,
    consumer: str | None,
    batch_size: int,
    block_ms: int,
    max_attempts: int,
    claim_idle_ms: int,
    until_idle: bool,
    memories: bool | None,
    offline: bool,
    drain_every_s: float,
    metrics_port: int | None,
) -> None:
    """Run one consumer of the group: signals to window state, online features and memories."""
    from core.stores.services import connect_url, resolve_redis_url
    from pipelines.stream.metrics import StreamMetrics
    from pipelines.stream.process import open_context
    from pipelines.stream.views import load_layout

    # Handlers first: a stop asked for during the slow setup below still ends the run cleanly.
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)  # finish the batch in hand, acknowledge it, then leave

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    url = resolve_redis_url(settings)
    client = connect_url(settings, url)
    memory = None
    if memories or (memories is None and settings.milvus_uri):
        from memory.service import build_memory_service

        memory = build_memory_service(settings)
    ctx = open_context(settings, client, load_layout(settings, url), memory=memory)
    config = ConsumerConfig(
        stream=stream,
        group=group,
        consumer=consumer or default_consumer_name(),
        batch_size=batch_size,
        block_ms=block_ms,
        max_attempts=max_attempts,
        claim_idle_ms=claim_idle_ms,
        offline=offline,
        drain_every_s=drain_every_s,
    )
    metrics = StreamMetrics()
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, registry=metrics.registry)
    runner = Consumer(ctx, config, metrics)
    try:
        runner.run(lambda: bool(stopping), until_idle=until_idle)
    finally:
        runner.close()
        client.close()
