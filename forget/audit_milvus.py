"""The forget audit in Milvus: every collection queried by user and read whole for the text.

A collection with a `user_id` field is asked for the user's rows (a count, read Strong, so the
forget's deletes are seen); then every row's non-vector fields are read through the query
iterator and searched for both needles. A collection that is not loaded is loaded for the scan
and released after. What Milvus keeps on its own disk (message log, binlogs) is scanned by
`scan_milvus_disk`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pymilvus import DataType

from core.settings import Settings
from core.text_scan import find_text
from forget.audit_report import Hit, Needles, PlaceReport
from memory.store import milvus_literal

BATCH = 1_000
_SKIPPED_TYPES = {
    DataType.FLOAT_VECTOR,
    DataType.BINARY_VECTOR,
    DataType.FLOAT16_VECTOR,
    DataType.BFLOAT16_VECTOR,
    DataType.SPARSE_FLOAT_VECTOR,
    DataType.INT8_VECTOR,
    DataType.BOOL,
    DataType.INT8,
    DataType.INT16,
    DataType.INT32,
    DataType.INT64,
    DataType.FLOAT,
    DataType.DOUBLE,
}


def scan_collections(
    client: Any, needles: Needles, collections: Sequence[str] | None = None
) -> PlaceReport:
    """Every collection (or those named): the user's rows by `user_id`, every row by text."""
    report = PlaceReport("milvus", "rows")
    for name in collections if collections is not None else client.list_collections():
        fields = client.describe_collection(name)["fields"]
        names = [f["name"] for f in fields]
        loaded = _load_state(client, name) == "Loaded"
        if not loaded:
            client.load_collection(name)
        try:
            if "user_id" in names:
                rows = client.query(
                    name,
                    filter=f"user_id == {milvus_literal(needles.user_id)}",
                    output_fields=["count(*)"],
                    consistency_level="Strong",
                )
                if int(rows[0]["count(*)"]):
                    report.check_text(f"{name} user_id ==", needles.user_id, needles)
            texts = [f["name"] for f in fields if f["type"] not in _SKIPPED_TYPES]
            primary = next(f["name"] for f in fields if f.get("is_primary"))
            report.scanned += _scan_rows(client, name, primary, texts, needles, report)
        finally:
            if not loaded:
                client.release_collection(name)
    return report


def _load_state(client: Any, name: str) -> str:
    state = client.get_load_state(name).get("state")
    return str(getattr(state, "name", state))


def _scan_rows(
    client: Any, name: str, primary: str, fields: list[str], needles: Needles, report: PlaceReport
) -> int:
    """Read every row's text-like fields; returns how many rows were read."""
    iterator = client.query_iterator(
        name,
        batch_size=BATCH,
        filter="",
        output_fields=list(dict.fromkeys([primary, *fields])),
        consistency_level="Strong",
    )
    count = 0
    try:
        while batch := iterator.next():
            for row in batch:
                count += 1
                for field in fields:
                    value = row.get(field)
                    if value is not None:
                        report.check_text(
                            f"{name} {primary}={row[primary]} {field}", str(value), needles
                        )
    finally:
        iterator.close()
    return count


def scan_milvus_disk(settings: Settings, needles: Needles, directory: Path | None) -> PlaceReport:
    """Milvus's own files (message log, binlogs), compressed blocks included
    (core/text_scan.py). They lose a forgotten user's bytes within a bound after the forget
    (core/stores/log_retention.py: `EMBEDDED_RETENTION` on the embedded server), so scan after it.
    `directory` is the server's data directory; None: this home's local server, if it has one."""
    if directory is None:
        if settings.milvus_uri:
            return PlaceReport(
                "milvus_disk", "files", skipped="Milvus at MILVUS_URI: give its data directory"
            )
        directory = settings.services_dir / "milvus" / "data"
    if not directory.is_dir():
        return PlaceReport("milvus_disk", "files", skipped=f"no directory {directory}")
    report = PlaceReport("milvus_disk", "files")
    report.scanned = sum(1 for path in directory.rglob("*") if path.is_file())
    for hit in find_text(directory, [needle for _, needle in needles.named()]):
        name = next(name for name, needle in needles.named() if needle == hit.needle)
        report.hits.append(Hit("milvus_disk", f"{hit.path} ({hit.encoding})", name))
    return report
