"""Where the features come from: the batch pipeline's Parquet snapshots, and pushes from streams.

`engram ingest` writes one snapshot file per entity under the offline store's features/ (see
pipelines/aggregate.py for what a snapshot row means; ENGRAM_OFFLINE_DIR, else
ENGRAM_HOME/offline). The path is this host's settings': the plain
`feast` CLI gets it from the environment through Engram's settings, and Engram's own apply
(core/stores/feature_store.py) binds it to the Settings it is given.
"""

from feast import Field, FileSource, PushSource, RequestSource
from feast.types import String

from core.settings import get_settings

SNAPSHOTS = get_settings().offline_dir.resolve() / "features"

user_stats_source = FileSource(
    name="user_stats_source",
    path=str(SNAPSHOTS / "user_features.parquet"),
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="User snapshots: a row per user per active UTC day, and one at the run's as_of.",
)

item_stats_source = FileSource(
    name="item_stats_source",
    path=str(SNAPSHOTS / "item_features.parquet"),
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="Item snapshots: a row per item per active UTC day, and one at the run's as_of.",
)

# The streaming path pushes whole snapshot rows here; every view over the source takes its
# columns from them, so one push refreshes all windows of an entity at once.
user_stats_push_source = PushSource(
    name="user_stats_push_source",
    batch_source=user_stats_source,
    description="Fresh user snapshot rows from the streaming path (same columns as the file).",
)

item_stats_push_source = PushSource(
    name="item_stats_push_source",
    batch_source=item_stats_source,
    description="Fresh item snapshot rows from the streaming path (same columns as the file).",
)

# The catalog has no history, so an item's category is known at request time (the caller has
# its candidates' catalog rows) rather than kept as a point-in-time feature.
ranking_request = RequestSource(
    name="ranking_request",
    schema=[
        Field(
            name="item_category",
            dtype=String,
            description="Catalog category of the candidate item; empty or null when unknown.",
        )
    ],
    description="What the ranker knows about a candidate at request time.",
)
