"""The streaming path: signals through a Redis stream to fresh online features and memories.

producer.py appends records (and trims only what every group has acknowledged), consumer.py
reads them in a consumer group, and process.py runs one micro-batch through the same normalize
and enrich code as the batch path, folds it into the incremental window state (state.py, one
atomic Lua script with the event_id dedup), turns the touched entities' state into snapshot rows
(rows.py, the batch aggregates' semantics) and writes them as Feast's push would (online.py).
docs/streaming.md describes the delivery guarantees and policies.
"""
