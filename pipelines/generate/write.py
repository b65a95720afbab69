"""Write a generated dataset: signals (JSONL or Parquet), catalog, truth and queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow.parquet as pq

from pipelines.generate.build import Dataset, build_dataset
from pipelines.generate.config import DatasetPaths, GenerateConfig
from pipelines.generate.encode import PARQUET_SCHEMA, Encoder, line_offsets, string_bytes
from pipelines.generate.truth import dump_truth


def write_dataset(out_dir: Path, config: GenerateConfig) -> DatasetPaths:
    """Generate the dataset `config` describes into `out_dir` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = build_dataset(config)
    paths = DatasetPaths(
        signals=out_dir / f"signals.{config.format}",
        catalog=out_dir / "catalog.jsonl",
        truth=out_dir / "truth.json",
        queries=out_dir / "queries.jsonl",
    )
    if config.format == "parquet":
        _write_parquet(paths.signals, dataset)
    else:
        _write_jsonl(paths.signals, dataset)
    _write_lines(paths.catalog, dataset.catalog.rows)
    _write_lines(paths.queries, dataset.queries)
    paths.truth.write_bytes(dump_truth(dataset.truth))
    return paths


def _write_lines(path: Path, records: list[dict[str, object]]) -> None:
    with path.open("wb") as out:
        for record in records:
            out.write(orjson.dumps(record) + b"\n")


def _write_jsonl(path: Path, dataset: Dataset) -> None:
    encoder = Encoder(dataset)
    refs = dataset.line_refs
    step = dataset.config.chunk_rows
    with path.open("wb") as out:
        for start in range(0, len(refs), step):
            chunk = refs[start : start + step]
            lines = encoder.lines(chunk[chunk >= 0])
            data, offsets = string_bytes(lines), line_offsets(lines)
            # Valid lines go out in runs, with each malformed line written where it belongs.
            done = 0
            for k, position in enumerate(np.flatnonzero(chunk < 0).tolist()):
                upto = position - k  # valid lines before this malformed one
                out.write(data[offsets[done] : offsets[upto]])
                out.write(dataset.malformed[-int(chunk[position]) - 1].line.encode() + b"\n")
                done = upto
            out.write(data[offsets[done] :])


def _write_parquet(path: Path, dataset: Dataset) -> None:
    encoder = Encoder(dataset)
    refs = dataset.line_refs[dataset.line_refs >= 0]
    step = dataset.config.chunk_rows
    with pq.ParquetWriter(path, PARQUET_SCHEMA, compression="zstd") as writer:
        for start in range(0, len(refs), step):
            writer.write_table(encoder.rows(refs[start : start + step]))
