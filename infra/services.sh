#!/usr/bin/env bash
# Start, stop or show the local Redis and Milvus servers of ENGRAM_HOME (default ~/.engram).
# Engram starts them by itself when REDIS_URL / MILVUS_URI are unset; this is for operators.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
exec "$here/.venv/bin/engram" services "${1:-status}"
