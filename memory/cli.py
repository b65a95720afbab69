"""`engram memories search` and `engram memories list`: what Engram remembers about users.

`--sample` names the user who wrote the most, a fact of the event store, which lives above
memory (pipelines): the front door builds these commands with that lookup (`memories_group`),
so this package never imports upward.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from core.cli_errors import handle_errors
from core.errors import InvalidInputError
from core.settings import Settings
from core.times import parse_time

SampleUser = Callable[[Settings], str]


def memories_group(sample_user: SampleUser) -> click.Group:
    """The `memories` commands; `sample_user` answers their --sample."""

    @click.group("memories")
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
            user_id, query = sample_user(settings), user_id
        if queries_file is not None and (user_id or query):
            raise InvalidInputError(
                "queries", "give USER_ID and QUERY, or --queries FILE, not both"
            )
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
            at = parse_time(as_of, "as-of")
            hits = service.search(user_id or "", query or "", k, kinds or None, at)
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
        from memory.records import FACT_KINDS
        from memory.service import connect_store, memory_dict

        if facts and kinds:
            raise InvalidInputError("facts", "--facts lists every fact kind; drop --kind")
        if facts:
            kinds = tuple(sorted(FACT_KINDS))

        if sample:
            user_id = sample_user(settings)
        if not user_id:
            raise InvalidInputError("user_id", "give a USER_ID or --sample")
        if history and as_of:
            raise InvalidInputError("history", "--history lists every time; drop --as-of")
        at = None if history else (parse_time(as_of, "as-of") or datetime.now(UTC))
        store = connect_store(settings)
        try:
            found = (
                store.list_user(user_id, as_of=at, kinds=kinds or None) if store.exists() else []
            )
        finally:
            store.close()
        if as_json:
            listed = {"user_id": user_id, "memories": [memory_dict(m) for m in found]}
            click.echo(json.dumps(listed, ensure_ascii=False))
            return
        _print_memories(user_id, [(f"{m.confidence:.2f}", m) for m in found], first="confidence")

    @memories.command("migrate")
    @click.option("--collection", default=None, help="The collection (default: engram_memories).")
    @click.pass_obj
    @handle_errors
    def memories_migrate(settings: Settings, collection: str | None) -> None:
        """Bring a memory collection made before scopes and history up to date (a copy, then a
        swap; stop writers first). Does nothing to one that is up to date."""
        from memory.service import connect_store
        from memory.store import DEFAULT_COLLECTION

        store = connect_store(settings, collection=collection or DEFAULT_COLLECTION)
        try:
            copied = store.migrate()
        finally:
            store.close()
        if copied:
            click.echo(f"{store.collection}: {copied} memories copied into the current schema")
        else:
            click.echo(f"{store.collection}: up to date")

    return memories


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
