"""Synthetic signals with planted ground truth: tastes, facts, distractors, PII, bad records.

`write_dataset(out_dir, config)` writes signals, catalog, truth.json and queries.jsonl;
`load_truth(path)` reads the truth back as typed records. See `build.py` for how the pieces fit.
"""

from __future__ import annotations

from pipelines.generate.config import DatasetPaths, GenerateConfig
from pipelines.generate.malformed import MALFORMED_FIELDS, MALFORMED_KINDS
from pipelines.generate.truth import (
    Counts,
    Duplicate,
    Fact,
    MalformedLine,
    Mention,
    Pii,
    Truth,
    UserTruth,
    load_truth,
)
from pipelines.generate.write import write_dataset

__all__ = [
    "MALFORMED_FIELDS",
    "MALFORMED_KINDS",
    "Counts",
    "DatasetPaths",
    "Duplicate",
    "Fact",
    "GenerateConfig",
    "MalformedLine",
    "Mention",
    "Pii",
    "Truth",
    "UserTruth",
    "load_truth",
    "write_dataset",
]
