"""Feast 0.67's Redis online store, read and written directly: the format and its fast paths.

Engram reads and writes the very hashes Feast does (one hash per entity, keyed by the serialized
entity key plus the project; one field per feature, the murmur3 of "view:feature"; `_ts:view`
holding the row's event time), so `FeatureStore.get_online_features` and Engram's fast paths
read the same data, value for value, without a second copy.

The format, with no I/O: `layout` (value kinds, view refs, keys, fields), `value_proto` (Feast's
Value message), `varints` (byte matrices), `timestamps` (`_ts:` values), `encode` and `decode`
(column values). The paths: `plan` (a feature service's views from the registry), `transport`
(pipelined raw commands on one pooled connection, replies parsed by hiredis), `read` (views of
a join key), `read_service` (a feature service, on-demand views included), `cache` (every entity
of a join key held in memory), `write` (bulk materialization) and `push` (stream rows). Nothing
here imports the Feast SDK at module level: it takes seconds, and only `plan` needs it.
"""
