"""The stores: local Redis and Milvus (start, supervise, connect), log retention, Feast's
feature store (feature_store.py) and its Redis online format (online/)."""
